import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { describe, expect, it } from "vitest";
import { findAnchor } from "../../../../cli/operator/emergency";
import { loadReconcileConfig } from "../../../../shared/lib/config";
import {
  OPERATOR_CONTRACT,
  OPERATOR_SECRET_ARN,
  operatorClientMocks,
} from "../../../support/operator-fixture";

const _ARN = OPERATOR_SECRET_ARN;
const CONTRACT = OPERATOR_CONTRACT;

const { asg } = operatorClientMocks();

describe("findAnchor", () => {
  const config = loadReconcileConfig({
    ...CONTRACT,
    TARGET_GROUPS: "us-east-1:gone,us-west-2:ci-b,us-east-1:ci-a",
  });
  const ctx = { config, autoScaling: (region: string) => new AutoScalingClient({ region }) };

  it("is the first target group, in TARGET_GROUPS order, that exists", async () => {
    asg
      .on(DescribeAutoScalingGroupsCommand)
      .callsFake(async (input: { AutoScalingGroupNames?: string[] }) => ({
        AutoScalingGroups: (input.AutoScalingGroupNames ?? [])
          .filter((n) => n !== "gone")
          .map((n) => ({ AutoScalingGroupName: n })),
      }));
    expect(await findAnchor(ctx)).toEqual({ region: "us-west-2", groupName: "ci-b" });
  });

  it("refuses to guess when a region cannot be described", async () => {
    asg
      .on(DescribeAutoScalingGroupsCommand)
      .rejects(Object.assign(new Error("denied"), { name: "AccessDenied" }));
    await expect(findAnchor(ctx)).rejects.toThrow(/cannot describe the target groups in us-east-1/);
  });
});

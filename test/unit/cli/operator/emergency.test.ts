import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { findAnchor } from "../../../../cli/operator/emergency";
import { loadReconcileConfig } from "../../../../shared/lib/config";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/agent-token-AbC123";
const CONTRACT = {
  ROTATION_SECRET_ARN: ARN,
  BUILDKITE_ORGANIZATION: "acme",
  BUILDKITE_CLUSTER_ID: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
  BUILDKITE_API_TOKEN_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/api-XyZ789",
  REPLICA_REGIONS: "us-west-2",
  TARGET_GROUPS: "us-east-1:ci-a,us-west-2:ci-b",
};

const lambda = mockClient(LambdaClient);
const secrets = mockClient(SecretsManagerClient);
const asg = mockClient(AutoScalingClient);
beforeEach(() => {
  lambda.reset();
  secrets.reset();
  asg.reset();
});
afterEach(() => {
  lambda.reset();
});

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

import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  DescribeSecretCommand,
  ListSecretVersionIdsCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { describeManagedToken } from "../../../../shared/buildkite/description";
import { loadReconcileConfig } from "../../../../shared/config";
import { observe } from "../../../../shared/rollout/observe";
import { MARKER_TAG } from "../../../../shared/rollout/plan";
import { ARN, reconcileEnv } from "../../../support/rollout-fixtures";

const config = loadReconcileConfig(reconcileEnv());
const sm = mockClient(SecretsManagerClient);
const asg = mockClient(AutoScalingClient);

beforeEach(() => {
  sm.reset();
  asg.reset();
  sm.on(ListSecretVersionIdsCommand).resolves({ Versions: [{ VersionId: "v2", CreatedDate: new Date(0) }] });
  sm.on(DescribeSecretCommand).resolves({
    VersionIdsToStages: { v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"] },
    // Secrets Manager also replicates to a region the configuration does not list.
    ReplicationStatus: [
      { Region: "eu-west-1", Status: "InSync" },
      { Region: "ap-south-1", Status: "InSync" },
    ],
  });
  asg.on(DescribeAutoScalingGroupsCommand).callsFake((input: { AutoScalingGroupNames?: string[] }) => ({
    AutoScalingGroups: (input.AutoScalingGroupNames ?? []).map((name) => ({
      AutoScalingGroupName: name,
      Instances: [{ InstanceId: `i-${name}` }],
      Tags: [{ Key: MARKER_TAG, Value: "version=v2 refresh=r-1" }],
    })),
  }));
  asg.on(DescribeInstanceRefreshesCommand).resolves({
    InstanceRefreshes: [{ InstanceRefreshId: "r-1", Status: "Successful", StartTime: new Date(1) }],
  });
});

function deps() {
  const clients = new Map<string, SecretsManagerClient>();
  return {
    config,
    secrets: (region: string) => {
      if (!clients.has(region)) clients.set(region, new SecretsManagerClient({ region }));
      return clients.get(region) as SecretsManagerClient;
    },
    autoScaling: (region: string) => new AutoScalingClient({ region }),
    buildkite: {
      listTokens: async () => [
        {
          id: "t2",
          description: describeManagedToken(ARN, "v2"),
          createdAt: undefined,
          expiresAt: undefined,
        },
        { id: "h", description: "by hand", createdAt: undefined, expiresAt: undefined },
      ],
    },
    now: () => new Date(1_000),
  };
}

describe("observe", () => {
  it("asks every replica region Secrets Manager reports, not only the configured ones", async () => {
    const obs = await observe(deps());
    expect(obs.replicas.map((r) => r.region).sort()).toEqual(["ap-south-1", "eu-west-1"]);
  });

  it("reads markers, refreshes and managed tokens", async () => {
    const obs = await observe(deps());
    expect(obs.secret.current).toBe("v2");
    expect(
      obs.targets.map((t) => [t.groupName, t.marker?.refreshId, t.refreshes[0]?.status, t.instances]),
    ).toEqual([
      ["ci-a", "r-1", "Successful", 1],
      ["ci-b", "r-1", "Successful", 1],
    ]);
    expect(obs.tokens.map((t) => [t.id, t.versionId])).toEqual([
      ["t2", "v2"],
      ["h", undefined],
    ]);
  });
});

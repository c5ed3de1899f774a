import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { EC2Client } from "@aws-sdk/client-ec2";
import { DescribeSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SNSClient } from "@aws-sdk/client-sns";
import { SSMClient } from "@aws-sdk/client-ssm";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { runPreflight } from "../../../../shared/cli/commands/preflight";
import type { OperatorContext } from "../../../../shared/cli/operator";
import { loadReconcileConfig } from "../../../../shared/config";
import { ARN, reconcileEnv } from "../../../support/rollout-fixtures";

const config = loadReconcileConfig(reconcileEnv({ TARGET_GROUPS: "us-east-1:ci-a" }));
const sm = mockClient(SecretsManagerClient);
const sts = mockClient(STSClient);
mockClient(AutoScalingClient);
mockClient(SNSClient);

function context(): OperatorContext {
  const unused = () => {
    throw new Error("not used by this check");
  };
  return {
    config,
    source: "the environment",
    secrets: (region) => new SecretsManagerClient({ region }),
    autoScaling: (region) => new AutoScalingClient({ region }),
    ec2: (region) => new EC2Client({ region }),
    ssm: (region) => new SSMClient({ region }),
    sts: (region) => new STSClient({ region }),
    sns: (region) => new SNSClient({ region }),
    buildkite: {
      accessToken: async () => ({ uuid: "u", scopes: ["read_clusters", "write_clusters"] }),
      listTokens: async () => [],
    } as unknown as OperatorContext["buildkite"],
    statusDeps: unused,
    collect: unused,
    dispose: () => {},
  };
}

beforeEach(() => {
  sm.reset();
  sts.reset();
  sts
    .on(GetCallerIdentityCommand)
    .resolves({ Account: "123456789012", Arn: "arn:aws:iam::123456789012:user/op" });
});

describe("runPreflight", () => {
  it("warns about a replica region Secrets Manager reports but the configuration does not list", async () => {
    sm.on(DescribeSecretCommand).resolves({
      ARN,
      RotationEnabled: true,
      VersionIdsToStages: { v2: ["AWSCURRENT"] },
      ReplicationStatus: [
        { Region: "eu-west-1", Status: "InSync" },
        { Region: "ap-south-1", Status: "InSync" },
      ],
    });
    const result = await runPreflight(context());
    const line = result.checks.find((c) => c.name === "replica regions");
    expect(line?.level).toBe("WARN");
    expect(line?.detail).toContain("ap-south-1");
    expect(line?.detail).not.toContain("eu-west-1");
  });

  it("says nothing when every replica is listed", async () => {
    sm.on(DescribeSecretCommand).resolves({
      ARN,
      RotationEnabled: true,
      VersionIdsToStages: { v2: ["AWSCURRENT"] },
      ReplicationStatus: [{ Region: "eu-west-1", Status: "InSync" }],
    });
    const result = await runPreflight(context());
    expect(result.checks.find((c) => c.name === "replica regions")).toBeUndefined();
  });
});

import {
  AutoScalingClient,
  type AutoScalingGroup,
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
} from "@aws-sdk/client-auto-scaling";
import { CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { GetPolicyCommand, GetPolicyVersionCommand, IAMClient } from "@aws-sdk/client-iam";
import {
  DescribeSecretCommand,
  ListSecretVersionIdsCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { SNSClient } from "@aws-sdk/client-sns";
import {
  DescribeDocumentCommand,
  DescribeInstanceInformationCommand,
  ListCommandsCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import type { OperatorContext } from "../../../../cli/operator/context";
import { runPreflight } from "../../../../cli/operator/preflight";
import { loadReconcileConfig } from "../../../../shared/lib/config";
import { ARN, reconcileEnv } from "../../../support/rollout-fixtures";

const config = loadReconcileConfig(reconcileEnv({ TARGET_GROUPS: "us-east-1:ci-a" }));
const asg = mockClient(AutoScalingClient);
const ssm = mockClient(SSMClient);
const cfn = mockClient(CloudFormationClient);
const iam = mockClient(IAMClient);
const sm = mockClient(SecretsManagerClient);
const sts = mockClient(STSClient);
const ec2 = mockClient(EC2Client);
mockClient(SNSClient);

function context(over: Partial<OperatorContext> = {}): OperatorContext {
  const unused = () => {
    throw new Error("not used by this check");
  };
  const ctx: OperatorContext = {
    config,
    source: "the environment",
    secrets: (region) => new SecretsManagerClient({ region }),
    autoScaling: (region) => new AutoScalingClient({ region }),
    ec2: (region) => new EC2Client({ region }),
    ssm: (region) => new SSMClient({ region }),
    cloudFormation: (region) => new CloudFormationClient({ region }),
    iam: () => new IAMClient({ region: "us-east-1" }),
    sts: (region) => new STSClient({ region }),
    sns: (region) => new SNSClient({ region }),
    buildkite: {
      accessToken: async () => ({ uuid: "u", scopes: ["read_clusters", "write_clusters"] }),
      listTokens: async () => [],
    } as unknown as OperatorContext["buildkite"],
    statusDeps: () => ({
      config: ctx.config,
      secrets: ctx.secrets,
      autoScaling: ctx.autoScaling,
      ec2: ctx.ec2,
      ssm: ctx.ssm,
      buildkite: ctx.buildkite,
      now: () => new Date("2026-11-22T12:00:00Z"),
    }),
    collect: unused,
    dispose: () => {},
    ...over,
  };
  return ctx;
}

beforeEach(() => {
  asg.reset();
  ssm.reset();
  cfn.reset();
  iam.reset();
  sm.reset();
  sts.reset();
  ec2.reset();
  // What the observation reads besides the mocks each test sets: no versions, instances or commands.
  sm.on(ListSecretVersionIdsCommand).resolves({ Versions: [] });
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  ssm.on(ListCommandsCommand).resolves({ Commands: [] });
  asg.on(DescribeInstanceRefreshesCommand).resolves({ InstanceRefreshes: [] });
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

describe("runPreflight: groups and stacks", () => {
  const secretOk = () =>
    sm
      .on(DescribeSecretCommand)
      .resolves({ ARN, RotationEnabled: true, VersionIdsToStages: { v2: ["AWSCURRENT"] } });
  const stockGroup = (name: string, n = 3): AutoScalingGroup => ({
    AutoScalingGroupName: name,
    MinSize: 0,
    MaxSize: 10,
    DesiredCapacity: n,
    DefaultCooldown: 300,
    AvailabilityZones: ["us-east-1a"],
    HealthCheckType: "EC2",
    CreatedTime: new Date(0),
    NewInstancesProtectedFromScaleIn: true,
    Instances: Array.from({ length: n }, (_, i) => ({
      InstanceId: `i-${name}-${i}`,
      AvailabilityZone: "us-east-1a",
      LifecycleState: "InService",
      HealthStatus: "Healthy",
      ProtectedFromScaleIn: true,
    })),
    Tags: [{ Key: "aws:cloudformation:stack-name", Value: "buildkite" }],
  });

  it("FAILs the refresh strategy with Wait on a stock stack's group (every instance protected) and names the choices", async () => {
    secretOk();
    asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [stockGroup("ci-a")] });
    const refresh = {
      ...config,
      strategy: "refresh" as const,
      refresh: { ...config.refresh, scaleInProtectedInstances: "Wait" as const },
    };
    const result = await runPreflight(context({ config: refresh }));
    const line = result.checks.find((c) => c.name === "group us-east-1:ci-a");
    expect(line?.level).toBe("FAIL");
    expect(line?.detail).toMatch(/in-place .*Refresh .*Ignore/);
  });

  it("in-place: checks the install document and each instance's SSM agent", async () => {
    secretOk();
    asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [stockGroup("ci-a")] });
    ssm
      .on(DescribeDocumentCommand)
      .resolves({ Document: { Name: "BuildkiteAgentTokenRotation-InstallAgentToken" } });
    ssm.on(DescribeInstanceInformationCommand).resolves({
      InstanceInformationList: [
        { InstanceId: "i-ci-a-0", PingStatus: "Online" },
        { InstanceId: "i-ci-a-1", PingStatus: "ConnectionLost" },
      ],
    });
    const result = await runPreflight(context());
    expect(result.checks.find((c) => c.name === "group us-east-1:ci-a")?.level).toBe("PASS");
    expect(result.checks.find((c) => c.name === "document us-east-1:ci-a")?.level).toBe("PASS");
    const line = result.checks.find((c) => c.name === "ssm us-east-1:ci-a");
    expect(line?.level).toBe("WARN");
    expect(line?.detail).toMatch(/2 of 3 .*i-ci-a-1, i-ci-a-2/);
  });

  it("checks a target stack's token path, read permission and KMS key", async () => {
    sm.on(DescribeSecretCommand).resolves({
      ARN,
      RotationEnabled: true,
      VersionIdsToStages: { v2: ["AWSCURRENT"] },
      KmsKeyId: "arn:aws:kms:us-east-1:123456789012:key/abc",
    });
    asg
      .on(DescribeAutoScalingGroupsCommand)
      .resolves({ AutoScalingGroups: [stockGroup("buildkite-AgentAutoScaleGroup-X")] });
    cfn.on(DescribeStacksCommand).resolves({
      Stacks: [
        {
          StackName: "buildkite",
          StackStatus: "UPDATE_COMPLETE",
          CreationTime: new Date(0),
          Parameters: [
            { ParameterKey: "BuildkiteAgentTokenParameterStorePath", ParameterValue: "/buildkite/old-token" },
            {
              ParameterKey: "ManagedPolicyARNs",
              ParameterValue: "arn:aws:iam::123456789012:policy/read-token",
            },
            { ParameterKey: "BuildkiteAgentTokenParameterStoreKMSKey", ParameterValue: "" },
          ],
        },
      ],
    });
    iam.on(GetPolicyCommand).resolves({ Policy: { DefaultVersionId: "v3" } });
    iam.on(GetPolicyVersionCommand).resolves({
      PolicyVersion: {
        Document: encodeURIComponent(
          JSON.stringify({
            Statement: [{ Effect: "Allow", Action: "secretsmanager:GetSecretValue", Resource: ARN }],
          }),
        ),
      },
    });
    const stacks = { ...config, targets: [], stacks: [{ region: "us-east-1", stackName: "buildkite" }] };
    const result = await runPreflight(context({ config: stacks }));
    const by = (name: string) => result.checks.find((c) => c.name === `stack us-east-1:buildkite ${name}`);
    expect(by("token path")?.level).toBe("FAIL");
    expect(by("token path")?.detail).toContain("/aws/reference/secretsmanager/bk/agent-token");
    expect(by("read permission")?.level).toBe("PASS");
    expect(by("kms key")?.level).toBe("FAIL");
  });
});

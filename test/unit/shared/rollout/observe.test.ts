import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import {
  DescribeSecretCommand,
  ListSecretVersionIdsCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import {
  DescribeInstanceInformationCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { describeManagedToken } from "../../../../shared/buildkite/description";
import { loadReconcileConfig } from "../../../../shared/lib/config";
import { encodeSync } from "../../../../shared/rollout/markers";
import { RolloutMemory } from "../../../../shared/rollout/memory";
import { observe } from "../../../../shared/rollout/observe";
import { observeCommands } from "../../../../shared/rollout/observe-commands";
import { MARKER_TAG, plan, SYNC_TAG } from "../../../../shared/rollout/plan";
import { planSettings } from "../../../../shared/rollout/settings";
import { ARN, reconcileEnv } from "../../../support/rollout-fixtures";

const config = loadReconcileConfig(reconcileEnv());
const sm = mockClient(SecretsManagerClient);
const asg = mockClient(AutoScalingClient);
const ec2 = mockClient(EC2Client);
const ssm = mockClient(SSMClient);
const LAUNCH = new Date("2026-11-22T10:00:00Z");

beforeEach(() => {
  sm.reset();
  asg.reset();
  ec2.reset();
  ssm.reset();
  ec2.on(DescribeInstancesCommand).callsFake((input: { Filters?: Array<{ Values?: string[] }> }) => ({
    Reservations: [
      {
        Instances: (input.Filters?.[0]?.Values ?? []).map((id) => ({
          InstanceId: id,
          LaunchTime: LAUNCH,
          ...(id.endsWith("-b") ? { Platform: "windows" } : {}),
          State: { Name: "running" },
        })),
      },
    ],
  }));
  ssm.on(DescribeInstanceInformationCommand).resolves({
    InstanceInformationList: [{ InstanceId: "i-ci-a", PingStatus: "Online" }],
  });
  ssm.on(ListCommandsCommand).resolves({
    Commands: [
      {
        CommandId: "c-old",
        Comment: "bk-token-rotation v=v1",
        InstanceIds: ["i-ci-a"],
        RequestedDateTime: new Date(500),
      },
      {
        CommandId: "c-1",
        Comment: "bk-token-rotation v=v2",
        InstanceIds: ["i-ci-a", "i-ci-b"],
        RequestedDateTime: new Date(900),
      },
    ],
  });
  ssm.on(ListCommandInvocationsCommand, { CommandId: "c-1" }).resolves({
    CommandInvocations: [
      {
        CommandId: "c-1",
        InstanceId: "i-ci-a",
        Status: "Success",
        StatusDetails: "Success",
        RequestedDateTime: new Date(900),
        CommandPlugins: [
          {
            Output:
              "noise\nbuildkite-agent-token-rotation result=installed version=v2 sha256=0123456789ab reason=-\n",
          },
        ],
      },
    ],
  });
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
      Tags: [{ Key: MARKER_TAG, Value: "version=v2 intent=1700000000000 refresh=r-1" }],
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
    ec2: (region: string) => new EC2Client({ region }),
    ssm: (region: string) => new SSMClient({ region }),
    buildkite: {
      listAgents: async () => [],
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

  it("reads the replicas after the groups: a replica that caught up meanwhile counts", async () => {
    let groupsRead = false;
    ec2.on(DescribeInstancesCommand).callsFake(() => {
      groupsRead = true;
      return { Reservations: [] };
    });
    // eu-west-1 serves v2 only once the groups' instances have been read.
    const replica = {
      send: async () => ({ VersionIdsToStages: { [groupsRead ? "v2" : "v1"]: ["AWSCURRENT"] } }),
    } as unknown as SecretsManagerClient;
    const base = deps();
    const obs = await observe({
      ...base,
      secrets: (r: string) => (r === "eu-west-1" ? replica : base.secrets(r)),
    });
    expect(groupsRead).toBe(true);
    expect(obs.replicas.find((r) => r.region === "eu-west-1")?.current).toBe("v2");
  });

  it("reads markers, refreshes and managed tokens", async () => {
    const obs = await observe(deps());
    expect(obs.secret.current).toBe("v2");
    expect(
      obs.targets.map((t) => [t.groupName, t.marker?.refreshId, t.refreshes[0]?.status, t.members.length]),
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

describe("observe: instances", () => {
  it("joins EC2 launch times and platforms, SSM reachability, and our commands for the current version", async () => {
    const obs = await observe(deps());
    const [a, b] = obs.targets.map((t) => t.members[0]);
    expect(a).toMatchObject({
      instanceId: "i-ci-a",
      launchedAt: LAUNCH,
      platform: "Linux",
      ssmPing: "Online",
    });
    // SSM does not list i-ci-b: its agent never registered.
    expect(b).toMatchObject({ instanceId: "i-ci-b", platform: "Windows", ssmPing: "Unregistered" });
    // The command for v1 is ignored; c-1's invocation on i-ci-a is parsed; i-ci-b has none visible yet.
    expect(a?.invocations).toEqual([
      {
        commandId: "c-1",
        requestedAt: new Date(900),
        status: "Success",
        statusDetails: "Success",
        result: { result: "installed", version: "v2", sha256Prefix: "0123456789ab", reason: undefined },
      },
    ]);
    expect(b?.invocations.map((i) => i.status)).toEqual(["Sent"]);
  });

  it("asks SSM nothing with the refresh strategy", async () => {
    const obs = await observe({ ...deps(), config: { ...config, strategy: "refresh" } });
    expect(ssm.calls()).toHaveLength(0);
    expect(obs.targets[0]?.members[0]?.ssmPing).toBeUndefined();
  });

  it("finds a stack's groups by their CloudFormation tags, old and new during a replacement", async () => {
    asg
      .on(DescribeAutoScalingGroupsCommand)
      .callsFake((input: { AutoScalingGroupNames?: string[]; Filters?: unknown }) => ({
        AutoScalingGroups: input.Filters
          ? ["buildkite-AgentAutoScaleGroup-OLD", "buildkite-AgentAutoScaleGroup-NEW"].map((name) => ({
              AutoScalingGroupName: name,
              Instances: [],
              Tags: [{ Key: "aws:cloudformation:stack-name", Value: "buildkite" }],
            }))
          : [],
      }));
    const obs = await observe({
      ...deps(),
      config: { ...config, targets: [], stacks: [{ region: "us-east-1", stackName: "buildkite" }] },
    });
    expect(obs.targets.map((t) => [t.groupName, t.stackName])).toEqual([
      ["buildkite-AgentAutoScaleGroup-OLD", "buildkite"],
      ["buildkite-AgentAutoScaleGroup-NEW", "buildkite"],
    ]);
    const filters = asg.commandCalls(DescribeAutoScalingGroupsCommand)[0]?.args[0].input.Filters;
    expect(filters).toEqual([
      { Name: "tag:aws:cloudformation:stack-name", Values: ["buildkite"] },
      { Name: "tag:aws:cloudformation:logical-id", Values: ["AgentAutoScaleGroup"] },
    ]);
  });

  it("describes at most 50 group names per call", async () => {
    const names = Array.from({ length: 120 }, (_, i) => `us-east-1:g${i}`).join(",");
    await observe({ ...deps(), config: loadReconcileConfig(reconcileEnv({ TARGET_GROUPS: names })) });
    const sizes = asg
      .commandCalls(DescribeAutoScalingGroupsCommand)
      .map((c) => c.args[0].input.AutoScalingGroupNames?.length);
    expect(sizes).toEqual([50, 50, 20]);
  });

  it("classifies a throttled Run Command listing as a transient error of the region's groups", async () => {
    ssm
      .on(ListCommandsCommand)
      .rejects(Object.assign(new Error("Rate exceeded"), { name: "ThrottlingException" }));
    const obs = await observe(deps());
    expect(obs.targets[0]?.error).toEqual({
      message: "Run Command: ThrottlingException: Rate exceeded",
      definitive: false,
    });
  });
});

describe("observe: our tags read back", () => {
  it("keeps a valid sync tag of the current version while the next rotation is pending (AWS's dates)", async () => {
    // AWS: the version's CreatedDate is when it was created, LastRotatedDate when a rotation last
    // completed. (moto reports "now" for every CreatedDate and sets LastRotatedDate at RotateSecret.)
    sm.on(DescribeSecretCommand).resolves({
      VersionIdsToStages: { v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"], v3: ["AWSPENDING"] },
      LastRotatedDate: new Date(900),
    });
    sm.on(ListSecretVersionIdsCommand).resolves({
      Versions: [
        { VersionId: "v2", CreatedDate: new Date(100) },
        { VersionId: "v3", CreatedDate: new Date(900) },
      ],
    });
    asg.on(DescribeAutoScalingGroupsCommand).callsFake((input: { AutoScalingGroupNames?: string[] }) => ({
      AutoScalingGroups: (input.AutoScalingGroupNames ?? []).map((name) => ({
        AutoScalingGroupName: name,
        Instances: [],
        Tags: [{ Key: "buildkite-agent-token-rotation:synced", Value: "version=v2 at=000000000500" }],
      })),
    }));
    const obs = await observe(deps());
    expect(obs.targets.map((t) => [t.syncedAt?.getTime(), t.badSyncTag])).toEqual([
      [500, undefined],
      [500, undefined],
    ]);
  });
});

describe("observe: cost", () => {
  it("asks EC2 and SSM once per region for all its groups", async () => {
    const config2 = loadReconcileConfig(
      reconcileEnv({ TARGET_GROUPS: "us-east-1:ci-a,us-east-1:ci-c,eu-west-1:ci-b" }),
    );
    await observe({ ...deps(), config: config2 });
    const regions = ec2
      .commandCalls(DescribeInstancesCommand)
      .map((c) => c.args[0].input.Filters?.[0]?.Values?.length);
    expect(regions.sort()).toEqual([1, 2]);
    expect(ssm.commandCalls(DescribeInstanceInformationCommand)).toHaveLength(2);
  });

  it("reads a group's refresh history only when a decision can use it", async () => {
    asg.on(DescribeAutoScalingGroupsCommand).callsFake((input: { AutoScalingGroupNames?: string[] }) => ({
      AutoScalingGroups: (input.AutoScalingGroupNames ?? []).map((name) => ({
        AutoScalingGroupName: name,
        Instances: [],
      })),
    }));
    await observe(deps());
    // In place, fallback alert, no refresh tag of ours: no DescribeInstanceRefreshes at all.
    expect(asg.commandCalls(DescribeInstanceRefreshesCommand)).toHaveLength(0);
    await observe({ ...deps(), config: { ...config, strategy: "refresh" } });
    expect(asg.commandCalls(DescribeInstanceRefreshesCommand)).toHaveLength(2);
  });

  it("with refreshHistory ours (reconcile), reads only the history our refresh tag for this version points at", async () => {
    const tags: Record<string, string> = {
      "ci-a": "version=v2 intent=1700000000000 refresh=r-1",
      "ci-b": "version=v1 intent=1600000000000 refresh=r-0",
    };
    asg.on(DescribeAutoScalingGroupsCommand).callsFake((input: { AutoScalingGroupNames?: string[] }) => ({
      AutoScalingGroups: (input.AutoScalingGroupNames ?? []).map((name) => ({
        AutoScalingGroupName: name,
        Instances: [{ InstanceId: `i-${name}` }],
        Tags: tags[name] ? [{ Key: MARKER_TAG, Value: tags[name] }] : [],
      })),
    }));
    const obs = await observe(
      { ...deps(), config: { ...config, strategy: "refresh" } },
      { refreshHistory: "ours" },
    );
    const asked = asg
      .commandCalls(DescribeInstanceRefreshesCommand)
      .map((c) => c.args[0].input.AutoScalingGroupName);
    // ci-b's tag is the last version's: a refresh running there makes our start fail, and act waits.
    expect(asked).toEqual(["ci-a"]);
    expect(obs.targets.find((t) => t.groupName === "ci-b")?.refreshes).toEqual([]);
    expect(obs.targets.find((t) => t.groupName === "ci-a")?.refreshes.map((r) => r.id)).toEqual(["r-1"]);
  });

  it("with refreshHistory ours, reads no history where every instance launched after its region served the version", async () => {
    const synced = new Date(1_700_000_100_000);
    asg.on(DescribeAutoScalingGroupsCommand).callsFake((input: { AutoScalingGroupNames?: string[] }) => ({
      AutoScalingGroups: (input.AutoScalingGroupNames ?? []).map((name) => ({
        AutoScalingGroupName: name,
        Instances: [
          { InstanceId: `i-${name}` },
          { InstanceId: `i-${name}-leaving`, LifecycleState: "Terminating" },
        ],
        Tags: [
          { Key: MARKER_TAG, Value: "version=v2 intent=1700000000000 refresh=r-1" },
          { Key: SYNC_TAG, Value: encodeSync("v2", synced) },
        ],
      })),
    }));
    // ci-a's instance launched after the sync (beyond the clock skew), ci-b's before it.
    ec2.on(DescribeInstancesCommand).callsFake((input: { Filters?: Array<{ Values?: string[] }> }) => ({
      Reservations: [
        {
          Instances: (input.Filters?.[0]?.Values ?? []).map((id) => ({
            InstanceId: id,
            LaunchTime: new Date(synced.getTime() + (id.startsWith("i-ci-a") ? 2_500 : -60_000)),
            State: { Name: "running" },
          })),
        },
      ],
    }));
    const refreshConfig = { ...config, strategy: "refresh" as const };
    const now = () => new Date(synced.getTime() + 3_000);
    const obs = await observe({ ...deps(), config: refreshConfig, now }, { refreshHistory: "ours" });
    const asked = asg
      .commandCalls(DescribeInstanceRefreshesCommand)
      .map((c) => c.args[0].input.AutoScalingGroupName);
    expect(asked).toEqual(["ci-b"]);
    // The plan finds ci-a done by its instances, with the refresh our tag names.
    const done = plan(obs, { ...planSettings(config), strategy: "refresh" }).targets.find(
      (t) => t.groupName === "ci-a",
    );
    expect(done).toMatchObject({ phase: "refreshed", refreshId: "r-1" });
  });
});

describe("observe: partial (the groups an event named)", () => {
  const warm = async () => {
    const memory = new RolloutMemory();
    const d = { ...deps(), memory };
    const full = await observe(d);
    memory.afterPlan(full, { ...planOf(full), versionId: "v2" });
    sm.resetHistory();
    asg.resetHistory();
    ec2.resetHistory();
    ssm.resetHistory();
    return d;
  };
  const planOf = (obs: Awaited<ReturnType<typeof observe>>) => plan(obs, planSettings(config));

  it("reads the secret, its group (and the anchor), its region's replica, and nothing of Buildkite", async () => {
    const d = await warm();
    let listed = 0;
    d.buildkite = {
      ...d.buildkite,
      listTokens: async () => {
        listed++;
        return [];
      },
    };
    const obs = await observe(d, { groups: [{ region: "eu-west-1", groupName: "ci-b" }] });
    expect(obs.scope).toBe("partial");
    expect(obs.targets.map((t) => `${t.region}:${t.groupName}`)).toEqual(["eu-west-1:ci-b"]);
    expect(obs.anchor).toEqual({ region: "us-east-1", groupName: "ci-a" });
    expect(obs.replicas.map((r) => r.region)).toEqual(["eu-west-1"]);
    expect(obs.tokens).toEqual([]);
    expect(listed).toBe(0);
    expect(obs.managedVersion).toBe("v2");
    // The version's creation time and the final refresh were already read by this container.
    expect(sm.commandCalls(ListSecretVersionIdsCommand)).toHaveLength(0);
    expect(asg.commandCalls(DescribeInstanceRefreshesCommand)).toHaveLength(0);
    expect(obs.targets[0]?.refreshes.map((r) => r.id)).toEqual(["r-1"]);
  });

  it("in a cold container reads what the memory would have held, and knows no managed version", async () => {
    const obs = await observe(
      { ...deps(), memory: new RolloutMemory() },
      { groups: [{ region: "eu-west-1", groupName: "ci-b" }] },
    );
    expect(sm.commandCalls(ListSecretVersionIdsCommand)).toHaveLength(1);
    expect(asg.commandCalls(DescribeInstanceRefreshesCommand)).toHaveLength(1);
    expect(obs.managedVersion).toBeUndefined();
  });

  it("re-reads a refresh that was not final when last seen", async () => {
    asg.on(DescribeInstanceRefreshesCommand).resolves({
      InstanceRefreshes: [{ InstanceRefreshId: "r-1", Status: "InProgress", StartTime: new Date(1) }],
    });
    const d = await warm();
    await observe(d, { groups: [{ region: "eu-west-1", groupName: "ci-b" }] });
    expect(asg.commandCalls(DescribeInstanceRefreshesCommand)).toHaveLength(1);
  });
});

describe("observeCommands: a poll within a run", () => {
  it("re-reads only the commands still in flight, and counts just-sent instances as Sent", async () => {
    const d = deps();
    const before = await observe(d);
    ssm.resetHistory();
    asg.resetHistory();
    ec2.resetHistory();
    sm.resetHistory();
    ssm.on(ListCommandInvocationsCommand, { CommandId: "c-new" }).resolves({ CommandInvocations: [] });
    const polled = await observeCommands(
      d,
      before,
      [{ region: "us-east-1", commandId: "c-new", instanceIds: ["i-ci-a"] }],
      [],
    );
    expect(polled.scope).toBe("poll");
    // c-1 still has an instance without a visible invocation (i-ci-b, "Sent"); its i-ci-a is final.
    const polledIds = ssm.commandCalls(ListCommandInvocationsCommand).map((c) => c.args[0].input.CommandId);
    expect(polledIds.sort()).toEqual(["c-1", "c-new"]);
    expect(ssm.commandCalls(ListCommandsCommand)).toHaveLength(0);
    expect(asg.calls()).toHaveLength(0);
    expect(ec2.calls()).toHaveLength(0);
    expect(sm.calls()).toHaveLength(0);
    const a = polled.targets.find((t) => t.groupName === "ci-a")?.members[0];
    expect(a?.invocations[0]).toMatchObject({ commandId: "c-new", status: "Sent" });
  });

  it("lists the commands again in a region where a SendCommand failed (it may have created one)", async () => {
    const d = deps();
    const before = await observe(d);
    ssm.resetHistory();
    await observeCommands(d, before, [], ["us-east-1"]);
    expect(ssm.commandCalls(ListCommandsCommand)).toHaveLength(1);
  });
});

/**
 * The stock Elastic CI Stack fleet (sandbox/fakes/autoscaling/fleet.ts) through the real Auto
 * Scaling client: protection on every instance, refreshes under Wait/Refresh/Ignore, idle agents
 * that terminate themselves and are replaced (the replacement reads the token through SSM), agent
 * restarts that register with the token in the cfg file, Windows' restart loop, and
 * TerminateInstanceInAutoScalingGroup.
 */
import { readFile, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import {
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
  type InstanceRefresh,
  StartInstanceRefreshCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { GroupSpec } from "../../../../../sandbox/fakes/autoscaling/index";
import type { RotationStack } from "../../../../../sandbox/world/rotation-stack";
import {
  type FleetFixture,
  putNewToken,
  REGION,
  startBackends,
  startFleet,
  until,
} from "../../../../support/fleet-fixture";

let stack: RotationStack;
let fixture: FleetFixture | undefined;

beforeAll(async () => {
  stack = await startBackends();
}, 60_000);
afterAll(async () => {
  await stack?.stop();
});
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

async function start(
  groups: GroupSpec[],
  options: Parameters<typeof startFleet>[2] = {},
): Promise<FleetFixture> {
  fixture = await startFleet(stack, groups, options);
  const boots = await fixture.autoScaling.fleet.bootInitialInstances();
  expect(boots.map((b) => b.result?.reason)).toEqual(boots.map(() => expect.stringContaining("registered")));
  return fixture;
}

function tokenIdOf(value: string): string | undefined {
  return stack.buildkite.tokens().find((t) => t.value === value)?.id;
}

async function currentToken(): Promise<{ id: string; value: string }> {
  const { GetSecretValueCommand } = await import("@aws-sdk/client-secrets-manager");
  const out = await stack.secrets.send(
    new GetSecretValueCommand({ SecretId: stack.secretArn, VersionStage: "AWSCURRENT" }),
  );
  const value = out.SecretString ?? "";
  return { id: tokenIdOf(value) ?? "", value };
}

async function startRefresh(
  f: FleetFixture,
  group: string,
  mode: "Wait" | "Refresh" | "Ignore",
): Promise<string> {
  const out = await f.asg.send(
    new StartInstanceRefreshCommand({
      AutoScalingGroupName: group,
      Preferences: {
        MinHealthyPercentage: 50,
        InstanceWarmup: 0,
        SkipMatching: false,
        ScaleInProtectedInstances: mode,
      },
    }),
  );
  return out.InstanceRefreshId ?? "";
}

async function refreshStatus(f: FleetFixture, group: string, id: string): Promise<InstanceRefresh> {
  const out = await f.asg.send(
    new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: group, InstanceRefreshIds: [id] }),
  );
  const refresh = out.InstanceRefreshes?.[0];
  if (refresh === undefined) throw new Error("no refresh");
  return refresh;
}

async function untilRefreshEnds(
  f: FleetFixture,
  group: string,
  id: string,
  timeoutMs = 8_000,
): Promise<InstanceRefresh> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const refresh = await refreshStatus(f, group, id);
    if (!["Pending", "InProgress", "Cancelling"].includes(refresh.Status ?? "")) return refresh;
    if (Date.now() > deadline) throw new Error(`refresh still ${refresh.Status}`);
    await sleep(20);
  }
}

describe("scale-in protection as the stock stack sets it", () => {
  it("protects every instance by default, launched ones too, and never removes it", async () => {
    const f = await start([
      { region: REGION, name: "stock", instances: 2, jobs: { busyAtStart: 2, schedule: [50] } },
      { region: REGION, name: "open", instances: 1, newInstancesProtectedFromScaleIn: false },
    ]);
    await until(() => f.autoScaling.fleet.counters().jobsCompleted === 2, 5_000, "jobs done");
    const { AutoScalingGroups } = await f.asg.send(new DescribeAutoScalingGroupsCommand({}));
    const byName = new Map(AutoScalingGroups?.map((g) => [g.AutoScalingGroupName, g]));
    expect(byName.get("stock")?.NewInstancesProtectedFromScaleIn).toBe(true);
    expect(byName.get("stock")?.Instances?.map((i) => i.ProtectedFromScaleIn)).toEqual([true, true]);
    expect(byName.get("open")?.NewInstancesProtectedFromScaleIn).toBe(false);
    expect(byName.get("open")?.Instances?.map((i) => i.ProtectedFromScaleIn)).toEqual([false]);
  });
});

describe("instance refresh on a stock (all protected) group", () => {
  it("Wait: protected instances block the refresh, which fails after the wait with nothing replaced", async () => {
    const f = await start([{ region: REGION, name: "agents", instances: 2 }], { protectedWaitMs: 400 });
    const id = await startRefresh(f, "agents", "Wait");
    await sleep(150);
    expect((await refreshStatus(f, "agents", id)).Status).toBe("InProgress");
    const refresh = await untilRefreshEnds(f, "agents", id);
    expect(refresh.Status).toBe("Failed");
    expect(refresh.StatusReason).toContain("protected from scale in");
    expect(refresh.PercentageComplete).toBe(0);
    expect((refresh.EndTime?.getTime() ?? 0) - (refresh.StartTime?.getTime() ?? 0)).toBeGreaterThanOrEqual(
      400,
    );
    expect(f.autoScaling.fleet.boots()).toEqual([]);
    expect(f.autoScaling.fleet.counters()).toMatchObject({ replacedByRollout: 0, jobsInterrupted: 0 });
  });

  it("the Wait failure reason is configurable (AWS documents the behaviour, not the text)", async () => {
    const f = await start([{ region: REGION, name: "agents", instances: 1 }], {
      protectedWaitMs: 50,
      protectedWaitReason: (ids) => `custom: ${ids.join(",")}`,
    });
    const id = await startRefresh(f, "agents", "Wait");
    const refresh = await untilRefreshEnds(f, "agents", id);
    expect(refresh.StatusReason).toBe(
      `custom: ${f.autoScaling.fleet.instances(REGION, "agents")[0]?.instanceId}`,
    );
  });

  it("Refresh: replaces protected instances and counts their running jobs as interrupted", async () => {
    const f = await start([
      { region: REGION, name: "agents", instances: 4, jobs: { busyAtStart: 2, schedule: [60_000] } },
    ]);
    const fleet = f.autoScaling.fleet;
    const before = fleet.instances(REGION, "agents").map((i) => i.instanceId);
    expect(fleet.instances(REGION, "agents").filter((i) => i.busy)).toHaveLength(2);
    const id = await startRefresh(f, "agents", "Refresh");
    expect((await untilRefreshEnds(f, "agents", id)).Status).toBe("Successful");
    const after = fleet.instances(REGION, "agents").map((i) => i.instanceId);
    expect(after.filter((i) => before.includes(i))).toEqual([]);
    expect(fleet.counters()).toMatchObject({
      replacedByRollout: 4,
      jobsInterrupted: 2,
      selfTerminated: 0,
      churnLaunches: 0,
    });
    expect([...fleet.counters().replacedByRolloutIds].sort()).toEqual([...before].sort());
    // The replacements booted through SSM with the current token and are protected as well.
    const token = await currentToken();
    const boots = new Set(fleet.boots().map((b) => b.instanceId));
    const registered = stack.buildkite.registrations().filter((r) => boots.has(r.name));
    expect(registered.map((r) => r.tokenId)).toEqual([token.id, token.id, token.id, token.id]);
    expect(fleet.instances(REGION, "agents").every((i) => i.protectedFromScaleIn)).toBe(true);
  });

  it("Ignore: skips protected instances and ends Successful with them left", async () => {
    const f = await start([{ region: REGION, name: "agents", instances: 3 }]);
    const before = f.autoScaling.fleet.instances(REGION, "agents").map((i) => i.instanceId);
    const id = await startRefresh(f, "agents", "Ignore");
    const refresh = await untilRefreshEnds(f, "agents", id);
    expect(refresh).toMatchObject({ Status: "Successful", PercentageComplete: 0, InstancesToUpdate: 3 });
    expect(refresh.StatusReason).toContain("3 instance(s) were not replaced");
    expect(f.autoScaling.fleet.instances(REGION, "agents").map((i) => i.instanceId)).toEqual(before);
    expect(f.autoScaling.fleet.counters().replacedByRollout).toBe(0);
  });
});

describe("agents on the instances", () => {
  it("user data reads the token once through SSM into a cfg file; bootFinished follows it", async () => {
    fixture = await startFleet(stack, [
      { region: REGION, name: "linux", instances: 1 },
      { region: REGION, name: "windows", instances: 1, platform: "Windows" },
    ]);
    const f = fixture;
    const directory = f.autoScaling.fleet.instanceDirectory();
    const [linux] = directory.list(REGION).filter((h) => h.platform === "Linux");
    const [windows] = directory.list(REGION).filter((h) => h.platform === "Windows");
    if (linux === undefined || windows === undefined) throw new Error("instances missing");
    expect(linux.bootFinished()).toBe(false);
    await f.autoScaling.fleet.bootInitialInstances();
    expect(linux.bootFinished()).toBe(true);
    expect(linux.running()).toBe(true);
    expect(linux.ssmAgent()).toBe("online");
    const token = await currentToken();
    const linuxCfg = await readFile(linux.configPath, "utf8");
    expect(linuxCfg.split("\n")).toEqual(
      expect.arrayContaining([
        `name="linux-${linux.instanceId}-%spawn"`,
        `token="${token.value}"`,
        "tags-from-ec2-meta-data=true",
        "disconnect-after-idle-timeout=600",
      ]),
    );
    const windowsCfg = await readFile(windows.configPath, "utf8");
    expect(windowsCfg).toContain(`\r\ntoken="${token.value}"\r\n`);
    expect(windowsCfg).toContain("shell=powershell");
    expect(directory.find(REGION, linux.instanceId)?.configPath).toBe(linux.configPath);
    expect(directory.find("eu-west-1", linux.instanceId)).toBeUndefined();
    expect(f.autoScaling.fleet.counters().registrations).toEqual({ ok: 2, failed: 0, failures: [] });
  });

  it("an idle agent terminates its instance; the scaler's replacement boots with the token SSM serves now", async () => {
    const f = await start([
      {
        region: REGION,
        name: "agents",
        instances: 2,
        idlePeriodMs: 150,
        // Replacements pick up a long job at once, so the churn stops after one round.
        jobs: { busyOnBoot: 1, schedule: [60_000] },
      },
    ]);
    const fleet = f.autoScaling.fleet;
    const original = fleet.instances(REGION, "agents").map((i) => i.instanceId);
    const rotated = await putNewToken(stack, "rotated by the test");
    await until(() => fleet.boots().filter((b) => b.result?.ok).length === 2, 8_000, "two replacements");
    const group = fleet.instances(REGION, "agents");
    expect(group.map((i) => i.instanceId).filter((id) => original.includes(id))).toEqual([]);
    expect(group).toHaveLength(2);
    expect(fleet.counters()).toMatchObject({
      selfTerminated: 2,
      churnLaunches: 2,
      replacedByRollout: 0,
      jobsInterrupted: 0,
    });
    for (const instance of group) {
      expect(await readFile(instance.configPath, "utf8")).toContain(`token="${rotated.value}"`);
      // Instance ids repeat across this file's fleets (one Buildkite API for all): the latest is ours.
      expect(stack.buildkite.registrations().findLast((r) => r.name === instance.instanceId)?.tokenId).toBe(
        rotated.id,
      );
      expect(instance.launchTime.getTime()).toBeGreaterThan(Date.now() - 60_000);
    }
    for (const id of original) expect(fleet.instance(REGION, id)?.lifecycleState).toBe("Terminating");
  });

  it("Linux at MinSize: terminate-instance falls back to no decrement and the group replaces the instance", async () => {
    const f = await start([
      {
        region: REGION,
        name: "agents",
        instances: 1,
        minSize: 1,
        idlePeriodMs: 100,
        scaler: false,
        jobs: { busyOnBoot: 1, schedule: [60_000] },
      },
    ]);
    const fleet = f.autoScaling.fleet;
    const [original] = fleet.instances(REGION, "agents").map((i) => i.instanceId);
    await until(() => fleet.boots().some((b) => b.result?.ok), 8_000, "replacement");
    expect(fleet.instances(REGION, "agents").map((i) => i.instanceId)).not.toContain(original);
    expect(fleet.groups()[0]?.desiredCapacity).toBe(1);
    expect(fleet.counters()).toMatchObject({ selfTerminated: 1, churnLaunches: 1 });
  });

  it("a restart registers with the token in the cfg file (rewritten in place), and Linux then terminates", async () => {
    const f = await start([{ region: REGION, name: "agents", instances: 2, scaler: false }]);
    const fleet = f.autoScaling.fleet;
    const [instance] = fleet.instances(REGION, "agents");
    if (instance === undefined) throw new Error("no instance");
    // What the Run Command stand-in does: rewrite the token= line in place. SSM still serves the old one.
    const fresh = stack.buildkite.addToken({ description: "written into the cfg by hand" });
    const cfg = await readFile(instance.configPath, "utf8");
    await writeFile(instance.configPath, cfg.replace(/^token=.*$/m, `token="${fresh.value}"`));

    fleet.restartAgent(REGION, instance.instanceId, "failure");
    await until(() => fleet.registrations().some((r) => r.cause === "restart"), 5_000, "restart");
    const restart = fleet.registrations().find((r) => r.cause === "restart");
    expect(restart).toMatchObject({ instanceId: instance.instanceId, ok: true });
    // Instance ids repeat across this file's fleets (one Buildkite API for all): the last two are ours.
    const atBuildkite = stack.buildkite.registrations().filter((r) => r.name === instance.instanceId);
    expect(atBuildkite.slice(-2).map((r) => r.tokenId)).toEqual([(await currentToken()).id, fresh.id]);
    expect(atBuildkite.at(-1)?.metaData).toEqual([`aws:instance-id=${instance.instanceId}`]);
    // ExecStopPost ran terminate-instance as well: the instance goes, decrementing the group.
    await until(
      () => fleet.instance(REGION, instance.instanceId)?.lifecycleState === "Terminating",
      5_000,
      "terminated",
    );
    expect(fleet.counters()).toMatchObject({ agentRestarts: 1, selfTerminated: 1 });
    expect(fleet.groups()[0]?.desiredCapacity).toBe(1);

    // A clean exit does not restart on Linux.
    const [other] = fleet.instances(REGION, "agents").filter((i) => i.lifecycleState === "InService");
    if (other === undefined) throw new Error("no second instance");
    fleet.restartAgent(REGION, other.instanceId, "clean");
    await until(() => fleet.counters().selfTerminated === 2, 5_000, "clean exit terminates");
    expect(fleet.counters().agentRestarts).toBe(1);
  });

  it("Windows at MinSize: nssm restarts after any exit, so a revoked cfg token loops (bounded) on the instance", async () => {
    const f = await start(
      [{ region: REGION, name: "windows", instances: 1, minSize: 1, platform: "Windows" }],
      { maxAgentRestarts: 3 },
    );
    const fleet = f.autoScaling.fleet;
    const [instance] = fleet.instances(REGION, "windows");
    if (instance === undefined) throw new Error("no instance");
    const revoked = await currentToken();
    stack.buildkite.revokeToken(revoked.id);
    try {
      fleet.restartAgent(REGION, instance.instanceId, "clean");
      await until(() => fleet.counters().agentRestarts === 3, 5_000, "three restarts");
      await sleep(150);
      const counters = fleet.counters();
      expect(counters.agentRestarts).toBe(3);
      expect(counters.registrations.failed).toBe(3);
      expect(
        counters.registrations.failures.every((x) => x.cause === "restart" && x.reason?.includes("HTTP 401")),
      ).toBe(true);
      expect(JSON.stringify(counters)).not.toContain(revoked.value);
      expect(fleet.instance(REGION, instance.instanceId)).toMatchObject({ lifecycleState: "InService" });
      expect(counters.selfTerminated).toBe(0);
    } finally {
      await putNewToken(stack, "replacement for the revoked token");
    }
  });

  it("Windows above MinSize: terminate-instance.ps1 decrements and the instance goes", async () => {
    const f = await start([
      { region: REGION, name: "windows", instances: 2, platform: "Windows", scaler: false },
    ]);
    const fleet = f.autoScaling.fleet;
    const [instance] = fleet.instances(REGION, "windows");
    if (instance === undefined) throw new Error("no instance");
    fleet.restartAgent(REGION, instance.instanceId, "failure");
    await until(() => fleet.counters().selfTerminated === 1, 5_000, "terminated");
    expect(fleet.counters().agentRestarts).toBe(0);
    expect(fleet.groups()[0]?.desiredCapacity).toBe(1);
  });

  it("the SSM agent state is per instance and settable", async () => {
    const f = await start([{ region: REGION, name: "agents", instances: 2, ssmAgent: "connection-lost" }]);
    const fleet = f.autoScaling.fleet;
    const [a, b] = fleet.instances(REGION, "agents");
    if (a === undefined || b === undefined) throw new Error("instances missing");
    const directory = fleet.instanceDirectory();
    expect(directory.find(REGION, a.instanceId)?.ssmAgent()).toBe("connection-lost");
    fleet.setSsmAgent(REGION, a.instanceId, "online");
    fleet.setSsmAgent(REGION, b.instanceId, "unregistered");
    expect(directory.find(REGION, a.instanceId)?.ssmAgent()).toBe("online");
    expect(directory.find(REGION, b.instanceId)?.ssmAgent()).toBe("unregistered");
  });
});

describe("TerminateInstanceInAutoScalingGroup", () => {
  it("decrements or replaces as asked, refuses to go below MinSize, and counts as replaced by the rollout", async () => {
    const f = await start([
      {
        region: REGION,
        name: "agents",
        instances: 3,
        minSize: 1,
        jobs: { busyAtStart: 1, schedule: [60_000] },
      },
    ]);
    const fleet = f.autoScaling.fleet;
    const [busy, second, third] = fleet.instances(REGION, "agents").map((i) => i.instanceId);
    if (busy === undefined || second === undefined || third === undefined)
      throw new Error("instances missing");

    const decremented = await f.asg.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: busy,
        ShouldDecrementDesiredCapacity: true,
      }),
    );
    expect(decremented.Activity).toMatchObject({
      AutoScalingGroupName: "agents",
      Description: `Terminating EC2 instance: ${busy}`,
      StatusCode: "InProgress",
    });
    expect(decremented.Activity?.Cause).toContain("shrinking the capacity from 3 to 2");
    expect(fleet.groups()[0]?.desiredCapacity).toBe(2);

    await f.asg.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: second,
        ShouldDecrementDesiredCapacity: false,
      }),
    );
    expect(fleet.groups()[0]?.desiredCapacity).toBe(2);
    await until(
      () => fleet.boots().some((b) => b.result?.ok),
      5_000,
      "replacement for the non-decrementing termination",
    );
    expect(fleet.instances(REGION, "agents").filter((i) => i.lifecycleState === "InService")).toHaveLength(2);

    // Now at 2 with MinSize 1: one more decrement is fine, the next one is refused.
    await f.asg.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: third,
        ShouldDecrementDesiredCapacity: true,
      }),
    );
    const last =
      fleet.instances(REGION, "agents").find((i) => i.lifecycleState === "InService")?.instanceId ?? "";
    await expect(
      f.asg.send(
        new TerminateInstanceInAutoScalingGroupCommand({
          InstanceId: last,
          ShouldDecrementDesiredCapacity: true,
        }),
      ),
    ).rejects.toMatchObject({
      name: "ValidationError",
      message: expect.stringContaining("Currently, desiredSize equals minSize (1)"),
    });
    await expect(
      f.asg.send(
        new TerminateInstanceInAutoScalingGroupCommand({
          InstanceId: "i-0123456789abcdef0",
          ShouldDecrementDesiredCapacity: false,
        }),
      ),
    ).rejects.toMatchObject({
      name: "ValidationError",
      message: expect.stringContaining("i-0123456789abcdef0"),
    });

    expect(fleet.counters()).toMatchObject({
      replacedByRollout: 3,
      jobsInterrupted: 1,
      selfTerminated: 0,
      churnLaunches: 0,
    });
  });
});

describe("DescribeAutoScalingGroups limits and tag filters", () => {
  it("takes at most 50 names (more with MaxRecords, up to 100) and filters by tag", async () => {
    const f = await start([
      { region: REGION, name: "a", instances: 0, tags: { team: "ci" } },
      { region: REGION, name: "b", instances: 0, tags: { team: "web" } },
    ]);
    const names = (n: number) => Array.from({ length: n }, (_, i) => `g${i}`);
    await expect(
      f.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: names(51) })),
    ).rejects.toMatchObject({
      name: "ValidationError",
    });
    const wider = await f.asg.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: names(51), MaxRecords: 100 }),
    );
    expect(wider.AutoScalingGroups).toEqual([]);
    await expect(
      f.asg.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: names(101), MaxRecords: 100 }),
      ),
    ).rejects.toMatchObject({
      name: "ValidationError",
    });
    const byTag = await f.asg.send(
      new DescribeAutoScalingGroupsCommand({ Filters: [{ Name: "tag:team", Values: ["ci"] }] }),
    );
    expect(byTag.AutoScalingGroups?.map((g) => g.AutoScalingGroupName)).toEqual(["a"]);
    const byKey = await f.asg.send(
      new DescribeAutoScalingGroupsCommand({ Filters: [{ Name: "tag-key", Values: ["team"] }] }),
    );
    expect(byKey.AutoScalingGroups).toHaveLength(2);
    const byValue = await f.asg.send(
      new DescribeAutoScalingGroupsCommand({ Filters: [{ Name: "tag-value", Values: ["web"] }] }),
    );
    expect(byValue.AutoScalingGroups?.map((g) => g.AutoScalingGroupName)).toEqual(["b"]);
  });
});

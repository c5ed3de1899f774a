/**
 * The agents on the stock fleet's instances (sandbox/fakes/autoscaling/agents.ts): idle agents
 * that terminate themselves and are replaced (the replacement reads the token through SSM), agent
 * restarts that register with the token in the cfg file, and Windows' restart loop.
 */
import { readFile, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { putNewToken, REGION, startFleet, until, useStockFleet } from "../../../../support/fleet-fixture";

const sf = useStockFleet();
const { start, currentToken } = sf;

describe("agents on the instances", () => {
  it("user data reads the token once through SSM into a cfg file; bootFinished follows it", async () => {
    sf.fixture = await startFleet(sf.stack, [
      { region: REGION, name: "linux", instances: 1 },
      { region: REGION, name: "windows", instances: 1, platform: "Windows" },
    ]);
    const f = sf.fixture;
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
    const rotated = await putNewToken(sf.stack, "rotated by the test");
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
      expect(
        sf.stack.buildkite.registrations().findLast((r) => r.name === instance.instanceId)?.tokenId,
      ).toBe(rotated.id);
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
    const fresh = sf.stack.buildkite.addToken({ description: "written into the cfg by hand" });
    const cfg = await readFile(instance.configPath, "utf8");
    await writeFile(instance.configPath, cfg.replace(/^token=.*$/m, `token="${fresh.value}"`));

    fleet.restartAgent(REGION, instance.instanceId, "failure");
    await until(() => fleet.registrations().some((r) => r.cause === "restart"), 5_000, "restart");
    const restart = fleet.registrations().find((r) => r.cause === "restart");
    expect(restart).toMatchObject({ instanceId: instance.instanceId, ok: true });
    // Instance ids repeat across this file's fleets (one Buildkite API for all): the last two are ours.
    const atBuildkite = sf.stack.buildkite.registrations().filter((r) => r.name === instance.instanceId);
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
    sf.stack.buildkite.revokeToken(revoked.id);
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
      await putNewToken(sf.stack, "replacement for the revoked token");
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

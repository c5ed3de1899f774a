import { readFileSync, writeFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import {
  type FunctionHandler,
  startWorld,
  type World,
  type WorldOptions,
} from "../../../../sandbox/world/world";
import { invariants } from "../../../support/invariants";
import { freshHandlers } from "../../../support/world-handlers";

/**
 * Whole rollouts on the stock Elastic CI Stack (every instance protected from scale-in, jobs
 * running, Linux and Windows) with the in-place strategy: the real handlers, the Run Command
 * stand-in executing the install document against each instance's cfg file, moto behind it.
 */
let world: World | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

const STACKS: WorldOptions["stacks"] = [
  {
    region: "us-east-1",
    stackName: "buildkite-linux",
    instances: 3,
    jobs: { busyAtStart: 2, durationMs: [300, 900] },
  },
  {
    region: "us-west-2",
    stackName: "buildkite-windows",
    instances: 2,
    platform: "Windows",
    jobs: { busyAtStart: 1 },
  },
];

async function start(
  extra: Partial<WorldOptions> = {},
  handlers?: { rotateToken: FunctionHandler; reconcile: FunctionHandler },
) {
  world = await startWorld({
    replicaRegions: ["us-west-2"],
    groups: [],
    stacks: STACKS,
    replicaLagMs: 300,
    replaceMs: 60,
    jobMs: 300,
    timeoutsMs: { reconcile: 60_000 },
    runCommand: { linuxStep: "mirror", invocationDelayMs: 200, commandLatencyMs: 100 },
    handlers: handlers ?? (await freshHandlers()),
    ...extra,
  });
  return world;
}

const instancesOf = (w: World) =>
  w.fleet.groups().flatMap((g) => g.instances.map((i) => ({ ...i, region: g.region })));
const cfgToken = (path: string) => /^token="([^"]*)"/m.exec(readFileSync(path, "utf8"))?.[1];

// Whole rollouts take tens of seconds, more under a loaded machine: generous bounds per test.
describe("in-place rollout on the stock Elastic CI Stack", { timeout: 240_000 }, () => {
  it("rotates twice: nothing replaced, no job interrupted, every cfg rewritten, one managed token left", async () => {
    // The Linux step runs for real here: bash and the AWS CLI against moto through the SSM endpoint.
    const w = await start({
      runCommand: { linuxStep: "bash", invocationDelayMs: 200, commandLatencyMs: 100 },
    });
    const first = await w.rotate();
    await w.settled(120_000);
    const second = await w.rotate();
    await w.settled(120_000);
    const state = invariants(w);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
    expect(state.tokenFor(first.versionId)?.valid).toBe(false);
    const counters = w.fleet.counters();
    expect(counters.replacedByRollout).toBe(0);
    expect(counters.jobsInterrupted).toBe(0);
    expect(counters.registrations.failed).toBe(0);
    expect(await w.alerts()).toEqual([]);
    // Every cfg holds the current token (the document rewrote it; the agents were not restarted).
    const current = w.buildkite.tokens().find((t) => t.id === state.tokenFor(second.versionId)?.id);
    for (const i of instancesOf(w))
      expect(cfgToken(i.configPath) === current?.value, i.instanceId).toBe(true);
    // No invocation's output carries a token value.
    const values = w.buildkite.tokens().map((t) => t.value);
    for (const out of w.runCommand.outputs()) for (const v of values) expect(out.includes(v)).toBe(false);
    expect(w.runCommand.invocations().length).toBeGreaterThanOrEqual(2 * 5);
  });

  it("a Windows agent restarted after revocation registers with the new token (and a Linux one after a failure exit)", async () => {
    const w = await start();
    await w.rotate();
    await w.settled(60_000);
    const second = await w.rotate();
    await w.settled(60_000);
    const newTokenId = invariants(w).tokenFor(second.versionId)?.id;
    const before = w.buildkite.registrations().length;
    const windows = instancesOf(w).find((i) => i.platform === "Windows");
    const linux = instancesOf(w).find((i) => i.platform === "Linux");
    if (!windows || !linux) throw new Error("fleet has no Windows or Linux instance");
    w.fleet.restartAgent(windows.region, windows.instanceId, "clean");
    w.fleet.restartAgent(linux.region, linux.instanceId, "failure");
    // Restarts happen after the service manager's delay: wait (bounded) for both registrations.
    for (let i = 0; i < 100 && w.buildkite.registrations().length < before + 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await w.settled(30_000);
    const restarts = w.buildkite.registrations().slice(before);
    expect(restarts.length).toBeGreaterThanOrEqual(2);
    expect(restarts.every((r) => r.ok && r.tokenId === newTokenId)).toBe(true);
    expect(w.fleet.counters().registrations.failed).toBe(0);
  });

  it("an instance whose SSM agent is offline blocks revocation with an alert; back online, a retry resolves it", async () => {
    const w = await start({ inPlace: { fallbackAfterSeconds: 2, retrySeconds: 1 } });
    const first = await w.rotate();
    await w.settled(60_000);
    const target = instancesOf(w).find((i) => i.platform === "Linux");
    if (!target) throw new Error("no Linux instance");
    w.fleet.setSsmAgent(target.region, target.instanceId, "connection-lost");
    const second = await w.rotate();
    await w.settled(60_000);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    w.schedule();
    await w.settled(60_000);
    let state = invariants(w);
    expect(state.tokenFor(first.versionId)?.valid).toBe(true);
    const alerts = await w.alerts();
    expect(alerts.map((a) => a.subject)).toEqual([expect.stringContaining("instances not updated in place")]);
    expect(alerts[0]?.message).toContain(target.instanceId);
    expect(alerts[0]?.message).toMatch(/What: .*\nEffect: .*\nTo do: /s);

    w.fleet.setSsmAgent(target.region, target.instanceId, "online");
    w.schedule();
    await w.settled(60_000);
    state = invariants(w);
    expect(state.tokenFor(first.versionId)?.valid).toBe(false);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
    expect(w.fleet.counters().replacedByRollout).toBe(0);
  });

  it("fallback refresh: an unreachable instance's group is refreshed and the rollout completes", async () => {
    const w = await start({
      inPlace: { fallback: "refresh", fallbackAfterSeconds: 1, retrySeconds: 1 },
      refresh: { scaleInProtectedInstances: "Refresh", minHealthyPercentage: 50 },
    });
    const first = await w.rotate();
    await w.settled(60_000);
    const target = instancesOf(w).find((i) => i.platform === "Linux");
    if (!target) throw new Error("no Linux instance");
    w.fleet.setSsmAgent(target.region, target.instanceId, "unregistered");
    const second = await w.rotate();
    await w.settled(60_000);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    w.schedule();
    await w.settled(60_000);
    w.schedule();
    await w.settled(60_000);
    const state = invariants(w);
    expect(state.tokenFor(first.versionId)?.valid).toBe(false);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
    // Only the unreachable instance's group was refreshed.
    const refreshed = w.fleet.groups().filter((g) => w.fleet.refreshes(g.region, g.name).length > 0);
    expect(refreshed.map((g) => g.region)).toEqual([target.region]);
    expect(w.fleet.counters().registrations.failed).toBe(0);
  });

  it("fallback terminate: the unreachable instance's agent is stopped after its job, then the instance leaves", async () => {
    const w = await start({
      inPlace: { fallback: "terminate", fallbackAfterSeconds: 1, retrySeconds: 1 },
      stacks: [{ region: "us-east-1", stackName: "buildkite-linux", instances: 3, minSize: 0 }],
      replicaRegions: [],
    });
    w.buildkite.setScopes(["read_clusters", "write_clusters", "read_agents", "write_agents"]);
    const first = await w.rotate();
    await w.settled(60_000);
    const target = instancesOf(w)[0];
    if (!target) throw new Error("no instance");
    w.fleet.setSsmAgent(target.region, target.instanceId, "unregistered");
    w.fleet.startJob(target.region, target.instanceId, 1_500);
    const second = await w.rotate();
    await w.settled(60_000);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    for (let i = 0; i < 4; i++) {
      w.schedule();
      await w.settled(60_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const state = invariants(w);
    expect(state.tokenFor(first.versionId)?.valid).toBe(false);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
    // Its job was not interrupted: the stop waited for it.
    const counters = w.fleet.counters();
    expect(counters.jobsInterrupted).toBe(0);
    expect(counters.registrations.failed).toBe(0);
    expect(w.fleet.instance(target.region, target.instanceId)?.lifecycleState).not.toBe("InService");
    const stops = w.buildkite.requests().filter((r) => r.method === "PUT" && r.path.endsWith("/stop"));
    expect(stops.length).toBeGreaterThanOrEqual(1);
  });

  it("leaves a cfg holding another cluster's token alone, and blocks revocation with an alert", async () => {
    const w = await start();
    const first = await w.rotate();
    await w.settled(60_000);
    const target = instancesOf(w).find((i) => i.platform === "Linux");
    if (!target) throw new Error("no Linux instance");
    const foreign = "bkct_another-cluster-token-0000000000000000";
    const text = readFileSync(target.configPath, "utf8").replace(/^token="[^"]*"/m, `token="${foreign}"`);
    writeFileSync(target.configPath, text);
    await w.rotate();
    await w.settled(60_000);
    expect(readFileSync(target.configPath, "utf8")).toBe(text);
    expect(invariants(w).tokenFor(first.versionId)?.valid).toBe(true);
    const alerts = await w.alerts();
    expect(alerts.map((a) => a.subject)).toEqual([
      expect.stringContaining("agent configs it must not update"),
    ]);
    expect(alerts[0]?.message).toContain(target.instanceId);
  });

  it("follows a stack whose group CloudFormation replaces mid-rollout: old and new group both covered", async () => {
    const w = await start({
      stacks: [STACKS?.[0] ?? { region: "us-east-1", stackName: "x", instances: 1 }],
      replicaRegions: [],
    });
    const first = await w.rotate();
    await w.settled(60_000);
    const oldGroup = w.stacks.groupName("us-east-1", "buildkite-linux");
    const rotation = w.rotate();
    const replacement = w.stacks.replaceGroup("us-east-1", "buildkite-linux", { timeoutMs: 20_000 });
    const second = await rotation;
    await replacement;
    await w.settled(60_000);
    w.schedule();
    await w.settled(60_000);
    const newGroup = w.stacks.groupName("us-east-1", "buildkite-linux");
    expect(newGroup).not.toBe(oldGroup);
    const state = invariants(w);
    expect(state.tokenFor(first.versionId)?.valid).toBe(false);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(second.versionId)?.id]);
    expect(w.fleet.counters().registrations.failed).toBe(0);
    // Every instance of the new group reads the current token from its cfg.
    const current = w.buildkite.tokens().find((t) => t.id === state.tokenFor(second.versionId)?.id)?.value;
    for (const i of w.fleet.instances("us-east-1", newGroup)) expect(cfgToken(i.configPath)).toBe(current);
  });
});

describe("refresh strategy on the stock Elastic CI Stack", { timeout: 240_000 }, () => {
  it("with Refresh it completes, replacing every instance and reporting the jobs it interrupted", async () => {
    const w = await start({
      strategy: "refresh",
      refresh: { scaleInProtectedInstances: "Refresh", minHealthyPercentage: 50 },
      stacks: [
        {
          region: "us-east-1",
          stackName: "buildkite-linux",
          instances: 3,
          jobs: { busyAtStart: 2, durationMs: [5_000, 5_000] },
        },
      ],
      replicaRegions: [],
    });
    const first = await w.rotate();
    await w.settled(60_000);
    const before = w.fleet.counters();
    await w.rotate();
    await w.settled(60_000);
    const after = w.fleet.counters();
    expect(invariants(w).tokenFor(first.versionId)?.valid).toBe(false);
    expect(after.replacedByRollout - before.replacedByRollout).toBeGreaterThanOrEqual(3);
    expect(after.jobsInterrupted).toBeGreaterThan(0);
    expect(after.registrations.failed).toBe(0);
  });

  it("with Wait the refresh fails on protected instances: revocation blocked, one clear alert", async () => {
    const w = await start({
      strategy: "refresh",
      refresh: { scaleInProtectedInstances: "Wait" },
      protectedWaitMs: 1_000,
      stacks: [{ region: "us-east-1", stackName: "buildkite-linux", instances: 2 }],
      replicaRegions: [],
    });
    const first = await w.rotate();
    await w.settled(60_000);
    expect(invariants(w).tokenFor(first.versionId)).toBeDefined();
    const alerts = await w.alerts();
    expect(alerts.map((a) => a.subject)).toEqual([expect.stringContaining("did not complete")]);
    expect(alerts[0]?.message).toMatch(/ScaleInProtectedInstances=Wait fails after an hour/);
    // The initial (human) token was never revoked; the rotation's own token is the only managed one.
    expect(w.buildkite.tokens().find((t) => t.id === w.stack.initialToken.id)?.valid).toBe(true);
    expect(w.fleet.counters().jobsInterrupted).toBe(0);
  });
});

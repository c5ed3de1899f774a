/**
 * In-place against refresh on the same stock Elastic CI Stack fleet (every instance protected from
 * scale-in, some running jobs), with the real bundles: promotion → revocation against its budget
 * (in-place R + C + 2 s, refresh R + F + 2 s), the ratio of the two, and what each did to the fleet
 * (instances replaced by the rollout, jobs interrupted). R is the replica lag, C the longest time
 * from SendCommand to the result being visible, F the longest refresh.
 */
import type { WorldStack } from "../../sandbox/world/world";
import { managedVersionOf } from "../../shared/buildkite/description";
import { quietly, startBenchWorld } from "./rollout";

const REGIONS = ["us-east-1", "us-west-2", "eu-west-1"];

interface StrategyRun {
  strategy: "in-place" | "refresh";
  lagMs: number;
  /** In-place: longest SendCommand → visible result of the measured rotation. */
  commandMs: number;
  /** Refresh: longest refresh of the measured rotation. */
  refreshMs: number;
  promotionToRevocationMs: number;
  replacedByRollout: number;
  jobsInterrupted: number;
  failedRegistrations: number;
}

async function run(strategy: StrategyRun["strategy"], lagMs: number): Promise<StrategyRun> {
  const stacks: WorldStack[] = REGIONS.map((region, i) => ({
    region,
    stackName: `buildkite-${i + 1}`,
    instances: 3,
    // Busy agents, at the start and on every new instance, with jobs longer than a refresh batch:
    // a Refresh refresh interrupts them.
    jobs: { busyAtStart: 2, busyOnBoot: 0.7, durationMs: [6_000, 9_000] },
    ...(i === 2 ? { platform: "Windows" as const } : {}),
  }));
  const world = await startBenchWorld({
    primaryRegion: REGIONS[0],
    replicaRegions: REGIONS.slice(1),
    groups: [],
    stacks,
    strategy,
    replicaLagMs: lagMs,
    // Launch and boot of one instance, scaled down (minutes in AWS); the command latency below is
    // scaled the same way (seconds in AWS).
    replaceMs: 1_500,
    refresh: { minHealthyPercentage: 50, scaleInProtectedInstances: "Refresh" },
    // The TypeScript mirror of the Linux step (parity-tested against bash) keeps C a property of the
    // stand-in's modelled latencies, not of how fast this machine starts the AWS CLI.
    runCommand: { linuxStep: "mirror", commandLatencyMs: 300, invocationDelayMs: 500 },
    timeoutsMs: { reconcile: 120_000 },
  });
  try {
    await world.rotate();
    await world.settled(300_000);
    const before = world.fleet.counters();
    const invocationsBefore = world.runCommand.invocations().length;
    const { versionId, promotedAt } = await world.rotate();
    await world.settled(300_000);
    const after = world.fleet.counters();
    const previous = world.buildkite.tokens().filter((t) => {
      const version = managedVersionOf(t.description, world.secretArn);
      return version !== undefined && version !== versionId;
    });
    const revokedAt = Math.max(...previous.map((t) => t.revokedAt?.getTime() ?? Number.NaN));
    const commands = world.runCommand.invocations().slice(invocationsBefore);
    const commandMs = Math.max(
      0,
      ...commands.map((i) => Math.max(i.visibleAt, ...i.plugins.map((p) => p.endedAt ?? 0)) - i.requestedAt),
    );
    const refreshMs = Math.max(
      0,
      ...world.fleet.groups().map((g) => {
        const r = world.fleet.refreshes(g.region, g.name)[0];
        return r?.endTime && r.startTime.getTime() >= promotedAt.getTime() - 60_000
          ? r.endTime.getTime() - r.startTime.getTime()
          : 0;
      }),
    );
    return {
      strategy,
      lagMs,
      commandMs,
      refreshMs,
      promotionToRevocationMs: revokedAt - promotedAt.getTime(),
      replacedByRollout: after.replacedByRollout - before.replacedByRollout,
      jobsInterrupted: after.jobsInterrupted - before.jobsInterrupted,
      failedRegistrations: after.registrations.failed,
    };
  } finally {
    await world.stop();
  }
}

export async function benchStrategies(): Promise<Array<Record<string, number | string>>> {
  process.env.LOG_LEVEL = "error";
  const rows: Array<Record<string, number | string>> = [];
  for (const lagMs of [1_000, 3_000]) {
    const inPlace = await quietly(() => run("in-place", lagMs));
    const refresh = await quietly(() => run("refresh", lagMs));
    for (const r of [inPlace, refresh]) {
      const variable = r.strategy === "in-place" ? r.commandMs : r.refreshMs;
      const budget = r.lagMs + variable + 2_000;
      rows.push({
        strategy: r.strategy,
        "R ms": r.lagMs,
        "C or F ms": variable,
        "promotion→revocation ms": r.promotionToRevocationMs,
        target: `R+${r.strategy === "in-place" ? "C" : "F"}+2s = ${budget}`,
        verdict: r.promotionToRevocationMs <= budget ? "within target" : "OVER TARGET",
        "refresh ÷ in-place":
          r.strategy === "refresh"
            ? +(refresh.promotionToRevocationMs / inPlace.promotionToRevocationMs).toFixed(2)
            : "",
        "instances replaced by the rollout": r.replacedByRollout,
        "jobs interrupted": r.jobsInterrupted,
        "failed registrations": r.failedRegistrations,
      });
    }
  }
  return rows;
}

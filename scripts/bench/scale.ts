/**
 * `npm run bench -- scale`: the cost of one rotation against the size of the fleet (issue 11), on
 * the local stack with the real bundles. For each (regions R, groups G), each strategy and each
 * modelled Lambda overhead: rotate once (to get a managed old token), then meter a second rotation
 * until the world is settled: reconcile runs, the handlers' AWS calls per service:action, their
 * Buildkite calls per route, the longest wait of a trigger before a reconcile handler started on
 * it, and promotion → revocation against R + F + 2 s (refresh) or R + C + 2 s (in-place), with the
 * cores busy meanwhile (cpu-sampler.ts). Then a throttled run: 16 × 256 under an Auto Scaling
 * bucket of 10/s (burst 20) shared with other callers.
 *
 * Nothing asserts: targets and verdicts are printed next to the figures. Sizes are selectable
 * (`-- scale 16x256 20x1000`; default: all). Each settle is capped so the whole section stays
 * within its time budget; a run that hits its cap is reported as such, with what it counted.
 */

import { totalCalls } from "../../sandbox/fakes/aws/call-meter";
import type { ThrottleProfile } from "../../sandbox/fakes/aws/throttle";
import type { World, WorldGroup } from "../../sandbox/world/world";
import { managedVersionOf } from "../../shared/buildkite/description";
import { type CoresBusy, coresBusy, startCpuSampler } from "./cpu-sampler";
import { growthExponent } from "./growth";
import { quietly, REGIONS, startBenchWorld } from "./rollout";

export const SCALE_SIZES: ReadonlyArray<{ regions: number; groups: number }> = [
  { regions: 1, groups: 1 },
  { regions: 3, groups: 12 },
  { regions: 16, groups: 64 },
  { regions: 16, groups: 256 },
  { regions: 20, groups: 1000 },
];
const OVERHEADS_MS = [5, 25];
const STRATEGIES = ["refresh", "in-place"] as const;
type Strategy = (typeof STRATEGIES)[number];

/** Whole scale section (the brief: under 10 minutes). */
const SECTION_BUDGET_MS = 9 * 60_000;
/** The most one settle may take, whatever the budget left. */
const SETTLE_CAP_MS = 120_000;
/** The least a settle is worth running with. */
const MIN_SETTLE_MS = 5_000;
/** Measured on this stack: starting and stopping a world costs about 5 s plus ~25 ms per group. */
const worldCostMs = (groups: number) => 5_000 + 25 * groups;
const LAG_MS = 500;
const REPLACE_MS = 100;
const COMMAND_LATENCY_MS = 100;
const INVOCATION_DELAY_MS = 100;
/** EventBridge delivers concurrently, in no set order (event-bus.ts): one at a time lagged 1.4 s at 20 × 1,000. */
const BUS_DELIVERIES_IN_FLIGHT = 4;

export interface ScaleRun {
  regions: number;
  groups: number;
  strategy: Strategy;
  overheadMs: number;
  delivery: string;
  /** Reconcile invocations during the measured rotation. */
  runs: number;
  aws: Record<string, number>;
  buildkite: Record<string, number>;
  /** The longest a trigger from outside (an event, the rotation's message) waited for its run. */
  maxEventWaitMs: number;
  /** Handovers in the measured rotation, and the longest a run's continuation waited behind the triggers it let through. */
  handovers: number;
  maxContinuationWaitMs: number;
  /** NaN when the old token was not revoked within the cap. */
  promotionToRevocationMs: number;
  /** F (refresh: longest refresh) or C (in-place: longest command) of the measured rotation. */
  variableMs: number;
  /** When the last refresh or command started, and from the last one's end to the revocation (ms). */
  lastStartMs: number;
  tailMs: number;
  /** Cores busy on average from promotion to revocation (to the settle when nothing was revoked). */
  coresBusy: CoresBusy;
  /** Tokens in the cluster when the measured rotation started (T) and old tokens revoked (K). */
  tokens: number;
  revoked: number;
  throttled: { autoScaling: number; ssm: number };
  alerts: number;
  /** False when a settle hit its cap (the counts are those until then). */
  settled: boolean;
  /** False when the rollout before the measured one hit its cap (the measured one started mid-rollout). */
  firstSettled: boolean;
  wallMs: number;
}

interface WorldRunOptions {
  regions: number;
  groups: number;
  strategy: Strategy;
  /** One measured rotation per overhead, in this order, in the same world. */
  overheadsMs: readonly number[];
  capMs: number;
  throttle?: { autoScaling?: ThrottleProfile };
}

/** G groups spread round-robin over R regions, 1 or 2 instances each, plain (unprotected) groups. */
function fleet(regions: string[], groups: number): WorldGroup[] {
  return Array.from({ length: groups }, (_, i) => ({
    region: regions[i % regions.length] ?? "us-east-1",
    name: `ci-${i + 1}`,
    instances: 1 + (i % 2),
    newInstancesProtectedFromScaleIn: false,
  }));
}

const settle = (world: World, capMs: number): Promise<boolean> =>
  world.settled(capMs).then(
    () => true,
    () => false,
  );

/**
 * One world per size and strategy (starting 1,500 simulated instances costs more than a rotation):
 * a first rotation gives a managed old token, then one measured rotation per overhead. A settle
 * that hits its cap ends the world's measurements (the next rotation would start mid-rollout).
 */
export async function scaleWorld(options: WorldRunOptions): Promise<ScaleRun[]> {
  const regions = REGIONS.slice(0, options.regions);
  const worldStarted = Date.now();
  const world = await startBenchWorld({
    primaryRegion: regions[0],
    replicaRegions: regions.slice(1),
    groups: fleet(regions, options.groups),
    strategy: options.strategy,
    replicaLagMs: LAG_MS,
    replaceMs: REPLACE_MS,
    refresh: { minHealthyPercentage: 50 },
    runCommand: {
      linuxStep: "mirror",
      commandLatencyMs: COMMAND_LATENCY_MS,
      invocationDelayMs: INVOCATION_DELAY_MS,
      // Real seconds for the step's 120 s timeout (at 100 ms, 294 of 1,500 steps timed out here).
      msPerAwsSecond: 1_000,
    },
    lambdaOverheadMs: options.overheadsMs[0] ?? 0,
    busDeliveriesInFlight: BUS_DELIVERIES_IN_FLIGHT,
    ...(options.throttle ? { throttle: options.throttle } : {}),
    timeoutsMs: { reconcile: 120_000 },
  });
  const runs: ScaleRun[] = [];
  const cpu = startCpuSampler(world.motoPid);
  try {
    await world.rotate();
    let settled = await settle(world, options.capMs);
    for (const overheadMs of options.overheadsMs) {
      const started = runs.length === 0 ? worldStarted : Date.now();
      world.lambda.setOverheadMs(overheadMs);
      const tokens = world.buildkite.tokens().filter((t) => t.valid).length;
      const throttledBefore = world.throttled();
      const alertsBefore = settled ? (await world.alerts()).length : 0;
      world.resetMeter();
      const measuredFrom = Date.now();
      const { versionId, promotedAt } = await world.rotate();
      const measuredSettled = settled && (await settle(world, options.capMs));
      const settledAt = Date.now();
      const counts = world.meter();
      const previous = world.buildkite.tokens().filter((t) => {
        const version = managedVersionOf(t.description, world.secretArn);
        return version !== undefined && version !== versionId;
      });
      const revokedNow = previous.filter((t) => (t.revokedAt?.getTime() ?? 0) >= measuredFrom);
      const revokedAt =
        revokedNow.length > 0 ? Math.max(...revokedNow.map((t) => t.revokedAt?.getTime() ?? 0)) : Number.NaN;
      const measured = world.eventWaits().filter((w) => w.startedAt.getTime() >= measuredFrom);
      const waits = measured.filter((w) => !w.continuation);
      const continuations = measured.filter((w) => w.continuation);
      // A trigger no handler started on yet has waited at least until now (a cap hit leaves some).
      const startedIds = new Set(world.eventWaits().flatMap((w) => (w.eventId ? [w.eventId] : [])));
      const now = Date.now();
      const unstarted = world.bus
        .events()
        .filter((e) => e.putAt.getTime() >= measuredFrom && !e.unmatched)
        .filter((e) => !startedIds.has(String((e.event as { id?: unknown }).id)))
        .map((e) => now - e.putAt.getTime());
      const throttled = world.throttled();
      runs.push({
        regions: options.regions,
        groups: options.groups,
        strategy: options.strategy,
        overheadMs,
        delivery: world.delivery,
        runs: world.lambda
          .invocations()
          .filter((r) => r.name === "reconcile" && r.queuedAt.getTime() >= measuredFrom).length,
        aws: counts.aws,
        buildkite: counts.buildkite,
        maxEventWaitMs: Math.max(0, ...waits.map((w) => w.waitMs), ...unstarted),
        handovers: continuations.length,
        maxContinuationWaitMs: Math.max(0, ...continuations.map((w) => w.waitMs)),
        promotionToRevocationMs: revokedAt - promotedAt.getTime(),
        ...(({ longest, lastStart, lastEnd }) => ({
          variableMs: longest,
          lastStartMs: lastStart,
          tailMs: revokedAt - promotedAt.getTime() - lastEnd,
        }))(spans(world, options.strategy, measuredFrom, promotedAt.getTime())),
        coresBusy: cpu.busyBetween(promotedAt.getTime(), Number.isNaN(revokedAt) ? settledAt : revokedAt),
        tokens,
        revoked: revokedNow.length,
        throttled: {
          autoScaling: throttled.autoScaling - throttledBefore.autoScaling,
          ssm: throttled.ssm - throttledBefore.ssm,
        },
        alerts: measuredSettled ? (await world.alerts()).length - alertsBefore : Number.NaN,
        settled: measuredSettled,
        firstSettled: settled,
        wallMs: Date.now() - started,
      });
      settled = measuredSettled;
      if (!settled) break;
    }
  } finally {
    cpu.stop();
    await world.stop();
  }
  return runs;
}

/** F (refresh) or C (command), and when the last one started and ended, in ms after `from`. */
function spans(world: World, strategy: Strategy, since: number, from: number) {
  const pairs =
    strategy === "refresh"
      ? world.fleet
          .groups()
          .flatMap((g) => world.fleet.refreshes(g.region, g.name))
          .filter((r) => r.startTime.getTime() >= since && r.endTime)
          .map((r) => [r.startTime.getTime(), r.endTime?.getTime() ?? 0] as const)
      : world.runCommand
          .invocations()
          .filter((i) => i.requestedAt >= since)
          .map(
            (i) => [i.requestedAt, Math.max(i.visibleAt, ...i.plugins.map((p) => p.endedAt ?? 0))] as const,
          );
  return {
    longest: Math.max(0, ...pairs.map(([start, end]) => end - start)),
    lastStart: Math.max(0, ...pairs.map(([start]) => start)) - from,
    lastEnd: Math.max(0, ...pairs.map(([, end]) => end)) - from,
  };
}

/** Targets of issue 11 for one run. */
function targets(run: ScaleRun) {
  const aws = totalCalls(run.aws);
  const buildkite = totalCalls(run.buildkite);
  const awsTarget = 10 * run.groups + 20 * run.regions + 50;
  const pages = Math.ceil(run.tokens / 100);
  const listCalls = run.buildkite["GET /v2/organizations/{org}/clusters/{cluster}/tokens"] ?? 0;
  // Full observations a rotation needs: the first run after promotion and the one that revokes.
  const buildkiteTarget = 6 + run.revoked + pages * 2;
  const budget = LAG_MS * (run.regions > 1 ? 1 : 0) + run.variableMs + 2_000;
  return {
    aws,
    buildkite,
    awsTarget,
    buildkiteTarget,
    fullObservations: pages > 0 ? +(listCalls / pages).toFixed(1) : 0,
    latencyBudget: budget,
  };
}

/** Counts and waits of a run that hit its cap are lower bounds: over is over, under proves nothing. */
const verdictFor = (run: ScaleRun) => (ok: boolean) => (!ok ? "OVER" : run.settled ? "ok" : "n/a (cap hit)");

function row(run: ScaleRun): Record<string, string | number> {
  const t = targets(run);
  const verdict = verdictFor(run);
  return {
    size: `${run.regions}x${run.groups}`,
    strategy: run.strategy,
    "overhead ms": run.overheadMs,
    runs: run.runs,
    "AWS calls": t.aws,
    "AWS target": `${t.awsTarget} ${verdict(t.aws <= t.awsTarget)}`,
    "AWS calls/G": +(t.aws / run.groups).toFixed(1),
    "Buildkite calls": t.buildkite,
    "Buildkite target": `${t.buildkiteTarget} ${verdict(t.buildkite <= t.buildkiteTarget)}`,
    "full observations": t.fullObservations,
    "max event wait ms": run.maxEventWaitMs,
    "event wait ≤ 10 s": verdict(run.maxEventWaitMs <= 10_000),
    handovers: run.handovers,
    "max continuation wait ms": run.maxContinuationWaitMs,
    "promotion→revocation ms": Number.isNaN(run.promotionToRevocationMs)
      ? "not revoked"
      : run.promotionToRevocationMs,
    "target R+F|C+2s ms": `${t.latencyBudget} ${verdict(run.promotionToRevocationMs <= t.latencyBudget)}`,
    "last start ms": run.lastStartMs,
    "last end→revocation ms": Number.isNaN(run.tailMs) ? "-" : run.tailMs,
    "cores busy": coresBusy(run.coresBusy),
    settled: run.settled ? "yes" : run.firstSettled ? "CAP HIT" : "CAP HIT (first rollout)",
    "wall s": +(run.wallMs / 1000).toFixed(1),
  };
}

/** `16x256` → {regions: 16, groups: 256}; unknown words are ignored (they name other sections). */
export function parseSizes(args: readonly string[]): Array<{ regions: number; groups: number }> {
  const picked = args
    .map((a) => /^(\d+)x(\d+)$/.exec(a))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ regions: Number(m[1]), groups: Number(m[2]) }))
    .filter((s) => s.regions >= 1 && s.regions <= REGIONS.length && s.groups >= s.regions);
  return picked.length > 0 ? picked : [...SCALE_SIZES];
}

export async function benchScale(args: readonly string[] = []): Promise<void> {
  process.env.LOG_LEVEL = "error";
  const sizes = parseSizes(args);
  const deadline = Date.now() + SECTION_BUDGET_MS;
  const plan = sizes.flatMap((size) => STRATEGIES.map((strategy) => ({ ...size, strategy })));
  const throttledWanted = sizes.some((s) => s.regions === 16 && s.groups === 256);
  const runs: ScaleRun[] = [];
  const skipped: string[] = [];
  for (const [index, item] of plan.entries()) {
    // What the worlds after this one (and the throttled run) need at the least, kept back so the
    // section ends within its budget; this world's settles share the rest.
    const later = plan.slice(index + 1).map((p) => p.groups);
    if (throttledWanted) later.push(256);
    const reserve = later.reduce((sum, g) => sum + worldCostMs(g) + 3 * MIN_SETTLE_MS, 0);
    const left = deadline - Date.now() - reserve - worldCostMs(item.groups);
    const capMs = Math.min(SETTLE_CAP_MS, Math.floor(left / 3));
    if (capMs < MIN_SETTLE_MS) {
      skipped.push(`${item.regions}x${item.groups} ${item.strategy}`);
      continue;
    }
    process.stderr.write(
      `scale: ${item.regions}x${item.groups} ${item.strategy} (settle cap ${Math.round(capMs / 1000)} s)\n`,
    );
    runs.push(...(await quietly(() => scaleWorld({ ...item, overheadsMs: OVERHEADS_MS, capMs }))));
  }

  console.log(
    `\nTargets: AWS ≤ 10·G + 20·R + 50; Buildkite ≤ 6 + K + ⌈T/100⌉ per full observation (2 assumed: the first` +
      ` run after promotion and the revoking one); event wait ≤ 10 s; promotion→revocation ≤ R + F + 2 s (refresh)` +
      ` or R + C + 2 s (in-place), R = ${LAG_MS} ms replica lag. Delivery: ${runs[0]?.delivery ?? "?"}.`,
  );
  console.table(runs.map(row));

  console.log("\nAWS calls per service:action (overhead %d ms):", OVERHEADS_MS[0]);
  for (const run of runs.filter((r) => r.overheadMs === OVERHEADS_MS[0])) {
    const actions = Object.entries(run.aws)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k}=${n}`)
      .join(" ");
    const bk = Object.entries(run.buildkite)
      .map(([k, n]) => `${k}=${n}`)
      .join(" ");
    console.log(
      `  ${run.regions}x${run.groups} ${run.strategy}: ${actions || "none"} | Buildkite: ${bk || "none"}`,
    );
  }

  for (const strategy of STRATEGIES) {
    const points = runs
      .filter((r) => r.strategy === strategy && r.overheadMs === OVERHEADS_MS[0] && r.settled)
      .map((r) => ({ g: r.groups, calls: totalCalls(r.aws) }));
    const b = growthExponent(points);
    console.log(
      `fitted growth ${strategy}: AWS calls ∝ G^${Number.isNaN(b) ? "?" : b.toFixed(2)} (target: linear, ≤ 1.0)`,
    );
  }

  const throttleLeft = deadline - Date.now();
  if (throttledWanted && throttleLeft > worldCostMs(256) + 2 * MIN_SETTLE_MS) {
    process.stderr.write("scale: throttled 16x256 refresh\n");
    const [throttled] = await quietly(() =>
      scaleWorld({
        regions: 16,
        groups: 256,
        strategy: "refresh",
        overheadsMs: [OVERHEADS_MS[0] ?? 5],
        capMs: Math.min(SETTLE_CAP_MS, Math.floor((throttleLeft - worldCostMs(256)) / 2)),
        // The Elastic CI Stack scalers of the account poll the same bucket: 4/s of the 10/s.
        throttle: { autoScaling: { ratePerSecond: 10, burst: 20, otherCallersPerSecond: 4 } },
      }),
    );
    if (throttled) {
      const completed = throttled.firstSettled && throttled.revoked > 0;
      console.log(
        `\nthrottled 16x256 refresh (Auto Scaling 10/s per region, burst 20, other callers 4/s):` +
          ` first rollout ${throttled.firstSettled ? "settled" : "DID NOT SETTLE within the cap"},` +
          ` measured rollout ${completed ? "completed (old token revoked)" : "DID NOT COMPLETE"};` +
          ` ${throttled.throttled.autoScaling} Auto Scaling calls throttled in the measured rotation,` +
          ` ${totalCalls(throttled.aws)} AWS calls, runs=${throttled.runs},` +
          ` alerts=${Number.isNaN(throttled.alerts) ? "?" : throttled.alerts},` +
          ` promotion→revocation ${Number.isNaN(throttled.promotionToRevocationMs) ? "n/a" : `${throttled.promotionToRevocationMs} ms`}`,
      );
    }
  } else if (throttledWanted) {
    console.log("\nthrottled 16x256 run: not run (time budget spent)");
  }
  if (skipped.length > 0) console.log(`\nnot run (time budget spent): ${skipped.join("; ")}`);

  console.log("");
  for (const run of runs) {
    const t = targets(run);
    const verdict = verdictFor(run);
    console.log(
      `scale ${run.regions}x${run.groups} strategy=${run.strategy} runs=${run.runs} aws=${t.aws} buildkite=${t.buildkite} max-event-wait-ms=${run.maxEventWaitMs} handovers=${run.handovers} max-continuation-wait-ms=${run.maxContinuationWaitMs}` +
        `  (overhead ${run.overheadMs} ms; targets aws≤${t.awsTarget} ${verdict(t.aws <= t.awsTarget)}, buildkite≤${t.buildkiteTarget} ${verdict(t.buildkite <= t.buildkiteTarget)}, wait≤10000 ${verdict(run.maxEventWaitMs <= 10_000)}, cores busy ${coresBusy(run.coresBusy)}${run.settled ? "" : "; CAP HIT, counts until then"})`,
    );
  }
}

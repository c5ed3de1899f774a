/**
 * Rollout timing on the local stack (the real bundles, moto, the Auto Scaling stand-in):
 * 1. promotion → revocation against replica lag R and refresh duration F (target ≤ R + F + 2 s);
 * 2. wall time of a whole rollout, 1 region × 1 group versus 16 regions × 4 groups (target ≤ 1.5).
 * Each world gets new handlers from dist/rotate-token and dist/reconcile (each bundle exports its
 * handler factory; a new handler is a new container, with its own configuration and clients).
 */
import { pathToFileURL } from "node:url";
import { startWorkerHandler } from "../../sandbox/fakes/lambda/worker-handler";
import {
  type FunctionHandler,
  startWorld,
  type World,
  type WorldGroup,
  type WorldOptions,
} from "../../sandbox/world/world";
import { managedVersionOf } from "../../shared/buildkite/description";

const root = new URL("../..", import.meta.url).pathname;
/** Regions the rollout benches spread their worlds over (the scale bench takes all twenty). */
export const REGIONS = [
  "us-east-1",
  "us-east-2",
  "us-west-1",
  "us-west-2",
  "ca-central-1",
  "eu-west-1",
  "eu-west-2",
  "eu-west-3",
  "eu-central-1",
  "eu-north-1",
  "ap-south-1",
  "ap-northeast-1",
  "ap-northeast-2",
  "ap-southeast-1",
  "ap-southeast-2",
  "sa-east-1",
  "ap-northeast-3",
  "eu-south-1",
  "me-south-1",
  "af-south-1",
];
export interface BenchHandlers {
  rotateToken: FunctionHandler;
  reconcile: FunctionHandler;
  /** Ends both containers. */
  close(): Promise<void>;
}

/**
 * Fresh handlers from the built bundles, each in a container of its own: a worker thread
 * (worker-handler.ts), as a deployed function runs on CPU of its own, not the stand-ins'. Each call
 * is a new pair of containers, with its own configuration and clients.
 */
export async function benchHandlers(): Promise<BenchHandlers> {
  const start = (name: string, factory: string) =>
    startWorkerHandler(pathToFileURL(`${root}/dist/${name}/index.mjs`).href, factory);
  const rotateToken = start("rotate-token", "createRotateTokenHandler");
  const reconcile = start("reconcile", "createReconcileHandler");
  return {
    rotateToken: rotateToken.handler,
    reconcile: reconcile.handler,
    close: async () => {
      await Promise.all([rotateToken.close(), reconcile.close()]);
    },
  };
}

/** A world running benchHandlers(); its `stop` ends their containers too. */
export async function startBenchWorld(options: Omit<WorldOptions, "handlers">): Promise<World> {
  const handlers = await benchHandlers();
  try {
    const world = await startWorld({ ...options, handlers });
    const stopWorld = world.stop.bind(world);
    world.stop = async () => {
      try {
        await stopWorld();
      } finally {
        await handlers.close();
      }
    };
    return world;
  } catch (error) {
    await handlers.close();
    throw error;
  }
}

interface RolloutRun {
  regions: number;
  groups: number;
  lagMs: number;
  /** Longest instance refresh of the measured rotation. */
  refreshMs: number;
  promotionToRevocationMs: number;
  wallMs: number;
}

/** Rotate once to get a managed old token, then measure a second rotation until it is revoked. */
async function rollout(
  regionCount: number,
  groupsPerRegion: number,
  lagMs: number,
  instances: number,
  replaceMs: number,
): Promise<RolloutRun> {
  const regions = REGIONS.slice(0, regionCount);
  const groups: WorldGroup[] = regions.flatMap((region) =>
    // Unprotected: a Wait refresh of stock (all protected) groups can only fail after the wait.
    Array.from({ length: groupsPerRegion }, (_, i) => ({
      region,
      name: `ci-${i + 1}`,
      instances,
      newInstancesProtectedFromScaleIn: false,
    })),
  );
  const world = await startBenchWorld({
    primaryRegion: regions[0],
    replicaRegions: regions.slice(1),
    groups,
    strategy: "refresh",
    replicaLagMs: lagMs,
    replaceMs,
    refresh: { minHealthyPercentage: 50 },
    timeoutsMs: { reconcile: 120_000 },
  });
  try {
    await world.rotate();
    await world.settled(300_000);
    const started = Date.now();
    const { versionId, promotedAt } = await world.rotate();
    await world.settled(300_000);
    const previous = world.buildkite.tokens().filter((t) => {
      const version = managedVersionOf(t.description, world.secretArn);
      return version !== undefined && version !== versionId;
    });
    const revokedAt = Math.max(...previous.map((t) => t.revokedAt?.getTime() ?? Number.NaN));
    const refreshMs = Math.max(
      ...groups.map((g) => {
        const r = world.fleet.refreshes(g.region, g.name)[0];
        return (r?.endTime?.getTime() ?? Number.NaN) - (r?.startTime.getTime() ?? Number.NaN);
      }),
    );
    return {
      regions: regionCount,
      groups: groups.length,
      lagMs,
      refreshMs,
      promotionToRevocationMs: revokedAt - promotedAt.getTime(),
      // The rollout ends when the old token is revoked; later queued runs find nothing to do.
      wallMs: revokedAt - started,
    };
  } finally {
    await world.stop();
  }
}

/** The handlers log JSON lines (and EMF metrics) to stdout; keep the bench output readable. */
export async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) =>
    typeof chunk === "string" && chunk.startsWith("{")
      ? true
      : write(chunk, ...rest)) as typeof process.stdout.write;
  try {
    return await fn();
  } finally {
    process.stdout.write = write;
  }
}

export async function benchRollout(): Promise<{
  latency: Array<Record<string, number | string>>;
  scale: Array<Record<string, number | string>>;
}> {
  process.env.LOG_LEVEL = "error";
  const latency: Array<Record<string, number | string>> = [];
  for (const lagMs of [1_000, 3_000]) {
    const run = await quietly(() => rollout(3, 2, lagMs, 3, 400));
    const budget = run.lagMs + run.refreshMs + 2_000;
    latency.push({
      "R (replica lag) ms": run.lagMs,
      "F (longest refresh) ms": run.refreshMs,
      "promotion→revocation ms": run.promotionToRevocationMs,
      "overhead ms (total − R − F)": run.promotionToRevocationMs - run.lagMs - run.refreshMs,
      "target R+F+2s ms": budget,
      verdict: run.promotionToRevocationMs <= budget ? "within target" : "OVER TARGET",
    });
  }
  // Same replica lag and per-group refresh work at both sizes; only the fan-out differs. Two
  // refresh lengths show that the fan-out cost is a constant, not a share of the refresh (real
  // refreshes take minutes; 1 × 1 has no replica region, so it never waits for R).
  const scale: Array<Record<string, number | string>> = [];
  for (const replaceMs of [500, 2_000]) {
    const small = await quietly(() => rollout(1, 1, 500, 2, replaceMs));
    const large = await quietly(() => rollout(16, 4, 500, 2, replaceMs));
    for (const r of [small, large]) {
      scale.push({
        "regions × groups": `${r.regions} × ${r.groups / r.regions}`,
        "R ms": r.regions > 1 ? r.lagMs : 0,
        "F (longest refresh) ms": r.refreshMs,
        "rotation start→revocation ms": r.wallMs,
        "overhead ms (− R − F)": r.wallMs - (r.regions > 1 ? r.lagMs : 0) - r.refreshMs,
        "ratio to 1 × 1": +(r.wallMs / small.wallMs).toFixed(2),
      });
    }
  }
  return { latency, scale };
}

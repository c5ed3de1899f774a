/**
 * The run profiles of `npm run sandbox` (sizes and timings: the default one and `--quick`), the
 * scenario's options, and the check of those options before anything starts.
 */
import type { RunCommandStandInOptions } from "../fakes/ssm/index";
import type { Strategy } from "../verdict/facts";
import type { FunctionHandler, WorldStack } from "../world/world";

/** Sizes and timings of one sandbox run. */
export interface Profile {
  name: string;
  primaryRegion: string;
  replicaRegions: string[];
  /**
   * Stock Elastic CI Stacks (every instance protected from scale-in, the stack's
   * InstanceScaleInProtection default), Linux and Windows, some agents running a job.
   */
  stacks: WorldStack[];
  /** Replication lag to every replica region. */
  replicaLagMs: number;
  /** Time to launch and boot one instance (refresh, churn). */
  replaceMs: number;
  /** Default job length of the fleet (stacks give their own ranges). */
  jobMs: number;
  minHealthyPercentage: number;
  /** The reconcile function's timeout: its per-run wait for replicas and commands is this minus 20 s. */
  reconcileTimeoutMs: number;
  /** How often the sandbox fires the safety-net schedule while a rollout is under way. */
  scheduleEveryMs: number;
  /** How often the live view is refreshed. */
  tickMs: number;
  /** Outside a terminal: the shortest time between two printed progress updates. */
  progressIntervalMs: number;
  /** Longest wait for one rotation's rollout (plus three times the replica lag). */
  rotationTimeoutMs: number;
  /**
   * The Run Command stand-in: `linuxStep: "bash"` runs the install document's Linux script for
   * real (bash and the AWS CLI against moto); `"mirror"` runs its TypeScript mirror (faster).
   */
  runCommand: Pick<
    RunCommandStandInOptions,
    "linuxStep" | "invocationDelayMs" | "commandLatencyMs" | "msPerAwsSecond"
  >;
  /** In the last rotation, one instance's SSM agent is connection-lost from the rotation's start until this long after promotion. */
  ssmOutageMs: number;
  /** IN_PLACE_RETRY_SECONDS and IN_PLACE_FALLBACK_AFTER_SECONDS, small so the retry shows in seconds. */
  inPlace: { retrySeconds: number; fallbackAfterSeconds: number };
  /** With `churn`: how long an agent stays idle before it terminates itself. */
  churnIdleMs: number;
}

/** Jobs long enough that a refresh with ScaleInProtectedInstances=Refresh catches some running. */
const JOBS = { durationMs: [15_000, 40_000], busyOnBoot: 0.5 } as const;

export const PROFILES = {
  default: {
    name: "default",
    primaryRegion: "us-east-1",
    replicaRegions: ["us-west-2", "eu-west-1"],
    stacks: [
      { region: "us-east-1", stackName: "buildkite-linux", instances: 6, jobs: { ...JOBS, busyAtStart: 2 } },
      {
        region: "us-east-1",
        stackName: "buildkite-windows",
        instances: 3,
        platform: "Windows",
        jobs: { ...JOBS, busyAtStart: 1 },
      },
      { region: "us-west-2", stackName: "buildkite-linux", instances: 5, jobs: { ...JOBS, busyAtStart: 2 } },
      {
        region: "eu-west-1",
        stackName: "buildkite-windows",
        instances: 3,
        platform: "Windows",
        jobs: { ...JOBS, busyAtStart: 1 },
      },
    ],
    replicaLagMs: 800,
    replaceMs: 450,
    jobMs: 1_500,
    minHealthyPercentage: 75,
    reconcileTimeoutMs: 45_000,
    scheduleEveryMs: 5_000,
    tickMs: 250,
    progressIntervalMs: 1_000,
    rotationTimeoutMs: 120_000,
    // The Linux step runs for real (bash, the AWS CLI: about 1–3 s a call on a loaded machine), so
    // its document's 120 s execution timeout is counted in real seconds: at the world's 100 ms per
    // AWS second (12 s) every Linux step timed out on a slow machine and the rotation never ended.
    runCommand: { linuxStep: "bash", invocationDelayMs: 300, commandLatencyMs: 200, msPerAwsSecond: 1_000 },
    ssmOutageMs: 4_000,
    inPlace: { retrySeconds: 1, fallbackAfterSeconds: 12 },
    churnIdleMs: 8_000,
  },
  quick: {
    name: "quick",
    primaryRegion: "us-east-1",
    replicaRegions: ["us-west-2", "eu-west-1"],
    stacks: [
      { region: "us-east-1", stackName: "buildkite-linux", instances: 3, jobs: { ...JOBS, busyAtStart: 1 } },
      {
        region: "us-east-1",
        stackName: "buildkite-windows",
        instances: 2,
        platform: "Windows",
        jobs: { ...JOBS, busyAtStart: 1 },
      },
      { region: "us-west-2", stackName: "buildkite-linux", instances: 3, jobs: { ...JOBS, busyAtStart: 1 } },
      {
        region: "eu-west-1",
        stackName: "buildkite-windows",
        instances: 2,
        platform: "Windows",
        jobs: { ...JOBS, busyAtStart: 1 },
      },
    ],
    replicaLagMs: 300,
    replaceMs: 80,
    jobMs: 300,
    minHealthyPercentage: 75,
    reconcileTimeoutMs: 45_000,
    scheduleEveryMs: 2_000,
    tickMs: 200,
    progressIntervalMs: 1_000,
    rotationTimeoutMs: 60_000,
    // The TypeScript mirror of the Linux step: no bash/AWS CLI start-up per instance (the banner says so).
    runCommand: { linuxStep: "mirror", invocationDelayMs: 200, commandLatencyMs: 100 },
    ssmOutageMs: 2_500,
    inPlace: { retrySeconds: 1, fallbackAfterSeconds: 8 },
    churnIdleMs: 4_000,
  },
} satisfies Record<string, Profile>;

export interface ScenarioOptions {
  /** Default `PROFILES.default`. */
  profile?: Profile;
  /** Default 2: the second one shows the first one's token being revoked. */
  rotations?: number;
  /** ROLLOUT_STRATEGY (default in-place; `failRefreshRegion` selects refresh). */
  strategy?: Strategy;
  /**
   * Make every instance refresh in this region fail, from the last rotation on. Selects the refresh
   * strategy (an in-place rollout starts no refresh to fail).
   */
  failRefreshRegion?: string;
  /**
   * In the last rotation, keep the one instance's SSM agent connection-lost instead of bringing it
   * back: the rollout must block with one alert naming the instance (IN_PLACE_FALLBACK=alert).
   */
  ssmOffline?: boolean;
  /**
   * Light natural churn: the agents of the replica regions' stacks terminate themselves after
   * `Profile.churnIdleMs` idle (the stack's ScaleInIdlePeriod, scaled) and the scaler launches
   * replacements; counted apart from what the rollout replaces.
   */
  churn?: boolean;
  /** Replication lag to every replica region, replacing the profile's. */
  replicaLagSeconds?: number;
  /** The Buildkite API fails a share of requests (502/429). */
  buildkiteFlaky?: boolean;
  /** The real handlers (one world per module instance of them). */
  handlers: { rotateToken: FunctionHandler; reconcile: FunctionHandler };
  /** Where the handlers' JSON log lines go (always kept in memory for the token check). */
  logFile?: string;
  color?: boolean;
  /** Aborting stops the run: everything started is stopped, the result is "interrupted". */
  signal?: AbortSignal;
  /**
   * Keep the world running after the scenario (until `signal` aborts) for the operator CLI: its
   * environment is written to this file, rotations started outside are driven as Secrets Manager
   * would, and the safety-net schedule keeps firing.
   */
  keepEnvFile?: string;
}

const MAX_ROTATIONS = 5;
const MAX_LAG_SECONDS = 300;

/** Why these options cannot run, or undefined. */
export function validateScenario(options: Omit<ScenarioOptions, "handlers">): string | undefined {
  const profile = options.profile ?? PROFILES.default;
  const rotations = options.rotations ?? 2;
  if (!Number.isInteger(rotations) || rotations < 1 || rotations > MAX_ROTATIONS) {
    return `--rotations must be a whole number from 1 to ${MAX_ROTATIONS}, got ${rotations}`;
  }
  const regions = [...new Set(profile.stacks.map((g) => g.region))];
  if (options.strategy !== undefined && options.strategy !== "in-place" && options.strategy !== "refresh") {
    return `--strategy must be in-place or refresh, got "${String(options.strategy)}"`;
  }
  if (options.failRefreshRegion !== undefined && options.strategy === "in-place") {
    return "--fail-refresh makes instance refreshes fail, so it runs the refresh strategy: it cannot be combined with --strategy in-place";
  }
  if (options.ssmOffline && (options.strategy === "refresh" || options.failRefreshRegion !== undefined)) {
    return "--ssm-offline shows the in-place strategy blocking on an unreachable instance: it cannot be combined with --strategy refresh or --fail-refresh";
  }
  if (options.failRefreshRegion !== undefined && !regions.includes(options.failRefreshRegion)) {
    return `--fail-refresh needs a region with Auto Scaling groups (${regions.join(", ")}), got "${options.failRefreshRegion}"`;
  }
  const lag = options.replicaLagSeconds;
  if (lag !== undefined && (!Number.isFinite(lag) || lag < 0 || lag > MAX_LAG_SECONDS)) {
    return `--replica-lag must be a number of seconds from 0 to ${MAX_LAG_SECONDS}, got ${lag}`;
  }
  return undefined;
}

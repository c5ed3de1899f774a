/**
 * The scenario behind `npm run sandbox`, as a function the tests call in-process: start the local
 * world (moto, the Buildkite API, the Auto Scaling fleet, the local Lambda running the real
 * handlers), run rotations through the real triggers while showing live progress, then check the
 * safety invariants from what the local servers recorded and print a summary.
 *
 * Exit codes (also in `npm run sandbox -- --help`):
 *   0  every rotation rolled out completely and every safety invariant held
 *   1  a safety invariant was broken, or the sandbox could not run (moto missing, crash)
 *   2  the rollout did not complete (e.g. `--fail-refresh`, `--ssm-offline`), with every invariant intact
 *   130/143  interrupted (SIGINT/SIGTERM), after stopping everything it started
 */
import { createWriteStream, readFileSync, rmSync, type WriteStream, writeFileSync } from "node:fs";
import { GetSecretValueCommand, ListSecretVersionIdsCommand } from "@aws-sdk/client-secrets-manager";
import { renderProgress } from "../../cli/operator/render/progress";
import { apiTokenLoader } from "../../shared/buildkite/api-token";
import { BuildkiteClient } from "../../shared/buildkite/client";
import { managedVersionOf } from "../../shared/buildkite/description";
import { autoScalingClients } from "../../shared/lib/aws/auto-scaling";
import { ec2Clients } from "../../shared/lib/aws/ec2";
import { secretsManagerClients } from "../../shared/lib/aws/secrets-manager";
import { ssmClients } from "../../shared/lib/aws/ssm";
import { loadReconcileConfig } from "../../shared/lib/config";
import { redactSecrets, setLogSink } from "../../shared/lib/log";
import { collectStatus, type StatusReport } from "../../shared/rollout/status";
import { parseAgentToken } from "../fakes/autoscaling/agent-config";
import type { FleetCounters } from "../fakes/autoscaling/index";
import { motoAvailable } from "../fakes/aws/moto";
import type { InvocationPhase, InvocationRecord } from "../fakes/lambda/local-lambda";
import type { RunCommandStandInOptions } from "../fakes/ssm/index";
import type {
  CfgFacts,
  FleetDelta,
  RevocationFacts,
  RotationFacts,
  RunFacts,
  Strategy,
} from "../verdict/facts";
import {
  checkInvariants,
  countTokenLeaks,
  type InvariantResult,
  type Violation,
  violationsOf,
} from "../verdict/invariants";
import { decideOutcome, EXIT, type SummaryNumbers, summaryNumbers } from "../verdict/outcome";
import { renderSummary } from "../verdict/render";
import { STEP_ORDER } from "../world/rotation-driver";
import {
  type FunctionHandler,
  RotationStepError,
  startWorld,
  type World,
  type WorldStack,
} from "../world/world";
import { createLiveView, type LiveViewIo } from "./live-view";

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
    runCommand: { linuxStep: "bash", invocationDelayMs: 300, commandLatencyMs: 200 },
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

export interface ScenarioIo extends LiveViewIo {}

export interface ScenarioSummary {
  facts: RunFacts;
  invariants: InvariantResult[];
  numbers: SummaryNumbers;
  text: string;
}

export interface ScenarioResult {
  exitCode: number;
  outcome: "complete" | "blocked" | "degraded" | "violations" | "error" | "interrupted";
  /** The last line printed. */
  headline: string;
  summary: ScenarioSummary | undefined;
  violations: Violation[];
}

export const MOTO_MISSING =
  'moto server is not installed (the sandbox runs it as its local AWS: Secrets Manager, SSM, SNS, SQS). Install it with: pip install "moto[server]"';

/** The reason a run was aborted with, e.g. `new Interrupted("SIGINT")`. */
export class Interrupted extends Error {
  override name = "Interrupted";
  constructor(readonly signalName: string) {
    super(`interrupted by ${signalName}`);
  }
}

const ROTATE_ATTEMPTS = 3;
/** Messages of the handlers' logs that the live view shows (shared/buildkite, shared/rollout/reconcile). */
const RETRY_MESSAGE = "retrying Buildkite API call";
const REPLICA_BUDGET_MESSAGE =
  "replicas still behind at the end of this run's budget; the next trigger continues";
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

const short = (id: string | undefined | null): string => (id ? id.slice(0, 8) : "?");
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const paint = (on: boolean | undefined, code: string, text: string) =>
  on ? `\x1b[${code}m${text}\x1b[0m` : text;

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

const sleep = (ms: number, signal?: AbortSignal) =>
  abortable(new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms))), signal);

/** Run Command invocation statuses that end an invocation (SSM "Understanding command statuses"). */
const TERMINAL_INVOCATION: ReadonlySet<string> = new Set(["Success", "Failed", "Cancelled", "TimedOut"]);
/** The install document's one result line (README "Strategies"): only the result word is shown. */
const RESULT_WORD = /buildkite-agent-token-rotation result=([a-z-]+)/;

/**
 * Every live instance's agent cfg as it is on disk right now, each token named by the id of the
 * Buildkite token whose value it holds (values are compared here and never kept). Synchronous,
 * so a revocation hook records the instant of the revocation.
 */
export function readCfgs(world: World): CfgFacts[] {
  const ids = new Map(world.buildkite.tokens().map((t) => [t.value, t.id]));
  return world.fleet.groups().flatMap((g) =>
    g.instances.map((i): CfgFacts => {
      let value: string | undefined;
      try {
        value = parseAgentToken(readFileSync(i.configPath, "utf8"));
      } catch {
        value = undefined; // not written yet (user data still running) or already cleaned up
      }
      return {
        region: g.region,
        groupName: g.name,
        instanceId: i.instanceId,
        platform: i.platform,
        lifecycleState: i.lifecycleState,
        bootFinished: i.bootFinished,
        launchTime: i.launchTime,
        cfgTokenId: value === undefined || value === "" ? null : (ids.get(value) ?? "foreign"),
      };
    }),
  );
}

/** The instance whose SSM agent drops out: a booted Linux instance in a replica region if there is one. */
function ssmOutageTarget(world: World): { region: string; instanceId: string } | undefined {
  const live = world.fleet
    .groups()
    .flatMap((g) =>
      g.instances
        .filter((i) => i.lifecycleState === "InService" && i.bootFinished)
        .map((i) => ({ region: g.region, instanceId: i.instanceId, platform: i.platform })),
    );
  const pick =
    live.find((i) => i.platform === "Linux" && i.region !== world.primaryRegion) ??
    live.find((i) => i.platform === "Linux") ??
    live[0];
  return pick ? { region: pick.region, instanceId: pick.instanceId } : undefined;
}

/** What the fleet and the Run Command stand-in recorded between two instants of a rotation. */
function fleetDelta(world: World, before: FleetCounters, from: Date, to: Date): FleetDelta {
  const after = world.fleet.counters();
  const installs = world.runCommand
    .invocations()
    .filter((i) => i.requestedAt >= from.getTime() && i.requestedAt <= to.getTime());
  return {
    replacedByRollout: after.replacedByRollout - before.replacedByRollout,
    jobsInterrupted: after.jobsInterrupted - before.jobsInterrupted,
    selfTerminated: after.selfTerminated - before.selfTerminated,
    churnLaunches: after.churnLaunches - before.churnLaunches,
    failedRegistrations: after.registrations.failed - before.registrations.failed,
    agentRestarts: after.agentRestarts - before.agentRestarts,
    installInvocations: installs.length,
    installFailures: installs.filter((i) => TERMINAL_INVOCATION.has(i.status) && i.status !== "Success")
      .length,
  };
}

/** Status as the operator CLI sees it, built against the world's endpoints. */
function statusReader(world: World) {
  const config = loadReconcileConfig(world.env);
  const clients = new Set<{ destroy(): void }>();
  const tracked =
    <T extends { destroy(): void }>(factory: (region: string) => T) =>
    (region: string): T => {
      const client = factory(region);
      clients.add(client);
      return client;
    };
  const secrets = tracked(secretsManagerClients());
  const autoScaling = tracked(autoScalingClients());
  const ec2 = tracked(ec2Clients());
  const ssm = tracked(ssmClients());
  const buildkite = new BuildkiteClient({
    ...config.buildkite,
    apiToken: apiTokenLoader(secrets(config.secret.region), config.buildkite.apiTokenSecretArn),
    timeoutMs: 5_000,
    maxAttempts: 4,
    baseDelayMs: 50,
    maxDelayMs: 500,
  });
  return {
    read: (): Promise<StatusReport> =>
      collectStatus({ config, secrets, autoScaling, ec2, ssm, buildkite, now: () => new Date() }),
    close() {
      for (const client of clients) client.destroy();
      clients.clear();
    },
  };
}

export async function runScenario(options: ScenarioOptions, io: ScenarioIo): Promise<ScenarioResult> {
  const profile = options.profile ?? PROFILES.default;
  const problem = validateScenario(options);
  if (problem) throw new RangeError(problem);
  const rotationsWanted = options.rotations ?? 2;
  const lagMs =
    options.replicaLagSeconds === undefined
      ? profile.replicaLagMs
      : Math.round(options.replicaLagSeconds * 1000);
  const { color, signal } = options;
  const expect = options.failRefreshRegion || options.ssmOffline ? "blocked" : "complete";
  const strategy: Strategy = options.failRefreshRegion ? "refresh" : (options.strategy ?? "in-place");
  const revocations: RevocationFacts[] = [];
  let blockedOn: RunFacts["blockedOn"] = options.failRefreshRegion
    ? { kind: "region", name: options.failRefreshRegion }
    : undefined;

  const written: string[] = [];
  const write = (text: string) => {
    written.push(text);
    io.write(text);
  };
  const startedAt = new Date();
  const view = createLiveView(
    { write, isTTY: io.isTTY, columns: io.columns, rows: io.rows },
    { minIntervalMs: profile.progressIntervalMs },
  );
  const stamp = () => paint(color, "2", `[${secs(Date.now() - startedAt.getTime()).padStart(7)}]`);
  const log = (message: string) => view.event(`${stamp()} ${message}`);

  if (!motoAvailable()) {
    write(`${MOTO_MISSING}\n`);
    return {
      exitCode: EXIT.violation,
      outcome: "error",
      headline: MOTO_MISSING,
      summary: undefined,
      violations: [],
    };
  }

  // The handlers' structured logs would drown the live view: they go to memory (for the token
  // check) and to the log file.
  const logLines: string[] = [];
  const logFile: WriteStream | undefined = options.logFile
    ? createWriteStream(options.logFile, { flags: "w" })
    : undefined;
  logFile?.on("error", () => {}); // a log file that cannot be written must not end the run
  const previousSink = setLogSink((line) => {
    logLines.push(line);
    logFile?.write(`${line}\n`);
    noteHandlerLog(line);
  });

  /** A few handler log lines are worth an event line: retries and a replica wait that ran out. */
  function noteHandlerLog(line: string) {
    if (!line.includes(RETRY_MESSAGE) && !line.includes(REPLICA_BUDGET_MESSAGE)) return;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.message === RETRY_MESSAGE) {
        const path = String(entry.path ?? "").replace(/^\/v2\/organizations\/[^/]+\/clusters\/[^/]+/, "…");
        const status = Number(entry.status) === 0 ? "no response" : `HTTP ${String(entry.status)}`;
        log(
          paint(
            color,
            "33",
            `${String(entry.service)}: Buildkite API ${String(entry.method)} ${path} answered ${status}; retry in ${String(entry.delayMs)} ms`,
          ),
        );
      } else if (entry.message === REPLICA_BUDGET_MESSAGE) {
        const regions = Array.isArray(entry.regionsLagging) ? entry.regionsLagging.join(", ") : "replicas";
        log(
          `reconcile: ${regions} still behind when this run's wait budget ran out; the next trigger (label event, refresh notification or schedule) continues`,
        );
      }
    } catch {
      // not JSON: nothing to show
    }
  }

  const rotations: RotationFacts[] = [];
  const ctx = {
    world: undefined as World | undefined,
    rotation: undefined as RotationFacts | undefined,
    steps: [] as string[],
    tokens: new Map<string, { revoked: boolean }>(),
    alertsSeen: 0,
  };

  const trackTokens = () => {
    const world = ctx.world;
    if (!world) return;
    // Commands that ended first: a revocation is shown after the confirmations it rests on.
    trackInvocations(world);
    for (const t of world.buildkite.tokens()) {
      const version = managedVersionOf(t.description, world.secretArn);
      const what = version ? `version ${short(version)}` : `"${t.description}"`;
      let seen = ctx.tokens.get(t.id);
      if (!seen) {
        seen = { revoked: false };
        ctx.tokens.set(t.id, seen);
        log(`Buildkite: token ${short(t.id)} created for ${what}`);
      }
      if (t.revokedAt && !seen.revoked) {
        seen.revoked = true;
        const promoted = ctx.rotation?.promotedAt;
        log(
          paint(
            color,
            "36",
            `Buildkite: token ${short(t.id)} (${what}) revoked${promoted ? `, ${secs(t.revokedAt.getTime() - promoted.getTime())} after promotion of version ${short(ctx.rotation?.versionId)}` : ""}`,
          ),
        );
      }
    }
  };

  const onInvoke = (record: InvocationRecord, phase: InvocationPhase) => {
    try {
      if (phase !== "ended") return;
      const took =
        record.startedAt && record.endedAt
          ? `${record.endedAt.getTime() - record.startedAt.getTime()} ms`
          : "";
      if (record.name === "rotate-token") {
        const step = ctx.steps.shift() ?? "a step";
        log(
          record.ok
            ? `rotate-token ${step}: ok (${took})`
            : paint(color, "33", `rotate-token ${step}: failed (${record.errorName ?? "error"}, ${took})`),
        );
      } else if (record.name === "reconcile" && ctx.rotation) {
        ctx.rotation.reconcileRuns++;
        if (!record.ok) {
          ctx.rotation.reconcileFailures++;
          log(
            paint(
              color,
              "33",
              `reconcile run failed (${record.errorName ?? "error"}); the next trigger retries`,
            ),
          );
        }
      }
      trackTokens();
    } catch {
      // an observer must never break the world
    }
  };

  const onEvent = (event: unknown) => {
    try {
      const e = event as { "detail-type"?: string; region?: string; detail?: Record<string, unknown> };
      const type = e["detail-type"] ?? "";
      if (type === "Scheduled Event") {
        if (ctx.rotation) ctx.rotation.schedulesFired++;
        return;
      }
      if (type === "Secret Label Updated") {
        log(
          `event: Secret Label Updated (AWSCURRENT → version ${short(String(e.detail?.versionId ?? ""))}) → reconcile`,
        );
        return;
      }
      const group = String(e.detail?.AutoScalingGroupName ?? "");
      const id = String(e.detail?.InstanceRefreshId ?? "");
      const region = e.region ?? "";
      if (!type.startsWith("EC2 Auto Scaling Instance Refresh") || !ctx.world) return;
      const refresh = ctx.world.fleet.refreshes(region, group).find((r) => r.instanceRefreshId === id);
      const where = `${region}/${group}`;
      if (type.endsWith("Started")) {
        log(`${where}: instance refresh started (${refresh?.instancesToUpdate ?? "?"} instances to replace)`);
      } else if (type.endsWith("Succeeded")) {
        const took = refresh?.endTime ? secs(refresh.endTime.getTime() - refresh.startTime.getTime()) : "?";
        log(paint(color, "32", `${where}: instance refresh succeeded in ${took}`));
      } else if (type.endsWith("Failed")) {
        log(paint(color, "31", `${where}: instance refresh FAILED: ${refresh?.statusReason ?? "no reason"}`));
      } else {
        log(
          `${where}: ${type.replace("EC2 Auto Scaling Instance Refresh ", "instance refresh ").toLowerCase()}`,
        );
      }
    } catch {
      // an observer must never break the world
    }
  };

  let world: World | undefined;
  /** Kept so that a world still starting when the run is interrupted is stopped too. */
  let starting: Promise<World> | undefined;
  let status: ReturnType<typeof statusReader> | undefined;
  let result: ScenarioResult = {
    exitCode: EXIT.violation,
    outcome: "error",
    headline: "sandbox: FAILED (exit 1)",
    summary: undefined,
    violations: [],
  };
  let cleanupError: string | undefined;
  let unhookRevoke: (() => void) | undefined;

  const pollAlerts = async () => {
    if (!world) return;
    const alerts = await world.alerts().catch(() => undefined);
    if (!alerts) return;
    for (const alert of alerts.slice(ctx.alertsSeen)) {
      log(paint(color, "33", `ALERT (SNS → SQS): ${alert.subject ?? "(no subject)"}`));
      for (const line of alert.message.split("\n")) view.event(`           ${line}`);
    }
    ctx.alertsSeen = Math.max(ctx.alertsSeen, alerts.length);
  };

  /** Plays Secrets Manager: rotate-secret, the four steps, and a retry with the same version on failure. */
  const rotateLikeSecretsManager = async (w: World, rotation: RotationFacts) => {
    for (let attempt = 1; ; attempt++) {
      rotation.attempts = attempt;
      ctx.steps = [...STEP_ORDER];
      try {
        if (attempt === 1) {
          const r = await abortable(w.rotate(), signal);
          rotation.versionId = r.versionId;
          rotation.promotedAt = r.promotedAt;
          return;
        }
        const versionId = rotation.versionId ?? "";
        for (const step of STEP_ORDER) {
          const out = await abortable(
            w.lambda.invoke("rotate-token", {
              Step: step,
              SecretId: w.secretArn,
              ClientRequestToken: versionId,
            }),
            signal,
          );
          if (!out.ok) throw new RotationStepError(step, versionId, `${out.errorType}: ${out.errorMessage}`);
        }
        rotation.promotedAt = new Date();
        const label = w.bus.labelUpdated({ secretArn: w.secretArn, region: w.primaryRegion, versionId });
        onEvent(label);
        w.bus.put(label);
        return;
      } catch (error) {
        if (!(error instanceof RotationStepError)) throw error;
        rotation.versionId = error.versionId;
        if (attempt >= ROTATE_ATTEMPTS) {
          rotation.error = redactSecrets(error.message);
          return;
        }
        log(
          paint(
            color,
            "33",
            `${error.step} failed; Secrets Manager retries the rotation with the same version id (attempt ${attempt + 1} of ${ROTATE_ATTEMPTS})`,
          ),
        );
        await sleep(300 * attempt, signal);
      }
    }
  };

  const runRotation = async (w: World, index: number) => {
    const rotation: RotationFacts = {
      index,
      versionId: undefined,
      startedAt: new Date(),
      promotedAt: undefined,
      replicasInSyncAt: {},
      attempts: 0,
      error: undefined,
      failRefreshRegion: undefined,
      ssmOutage: undefined,
      reconcileRuns: 0,
      reconcileFailures: 0,
      schedulesFired: 0,
      timedOut: false,
      endedAt: undefined,
      fleet: undefined,
    };
    rotations.push(rotation);
    const countersBefore = w.fleet.counters();
    const lastRotation = index === rotationsWanted;
    ctx.rotation = rotation;
    view.event("");
    view.event(paint(color, "1", `── rotation ${index} of ${rotationsWanted} ──`));
    if (options.failRefreshRegion && index === rotationsWanted) {
      w.fleet.failRefreshes({ region: options.failRefreshRegion });
      rotation.failRefreshRegion = options.failRefreshRegion;
      log(
        paint(
          color,
          "33",
          `--fail-refresh: every instance refresh in ${options.failRefreshRegion} will fail from now on`,
        ),
      );
    }
    if (strategy === "in-place" && lastRotation) {
      // One instance's SSM agent loses its connection (PingStatus ConnectionLost) as the rotation
      // starts: Run Command cannot reach it until it is back, so the rollout must retry it.
      const target = ssmOutageTarget(w);
      if (target) {
        w.fleet.setSsmAgent(target.region, target.instanceId, "connection-lost");
        rotation.ssmOutage = { ...target, restoredAt: undefined };
        if (options.ssmOffline) blockedOn = { kind: "instance", name: target.instanceId };
        log(
          paint(
            color,
            "33",
            options.ssmOffline
              ? `--ssm-offline: the SSM agent of ${target.region}/${target.instanceId} is connection-lost and stays so`
              : `the SSM agent of ${target.region}/${target.instanceId} is connection-lost; it comes back ${secs(profile.ssmOutageMs)} after promotion`,
          ),
        );
      }
    }
    log("aws secretsmanager rotate-secret → Secrets Manager invokes rotate-token for each of the four steps");
    await rotateLikeSecretsManager(w, rotation);
    if (rotation.error || !rotation.versionId || !rotation.promotedAt) {
      log(paint(color, "31", `rotation ${index} failed: ${rotation.error ?? "no version"}`));
      rotation.endedAt = new Date();
      rotation.fleet = fleetDelta(w, countersBefore, rotation.startedAt, rotation.endedAt);
      return;
    }
    const versionId = rotation.versionId;
    const promotedAt = rotation.promotedAt;
    log(
      `AWSCURRENT → version ${short(versionId)} (${secs(promotedAt.getTime() - rotation.startedAt.getTime())} after rotate-secret${rotation.attempts > 1 ? `, ${rotation.attempts} attempts` : ""})`,
    );

    // Each replica region is asked directly and often, so "in sync" times are accurate to ~50 ms.
    let watching = true;
    const replicaWatch = (async () => {
      while (watching && Object.keys(rotation.replicasInSyncAt).length < w.replicaRegions.length) {
        const served = await w.replicator
          .currentVersions()
          .catch(() => ({}) as Record<string, string | undefined>);
        const at = new Date();
        for (const [region, current] of Object.entries(served)) {
          if (current !== versionId || rotation.replicasInSyncAt[region]) continue;
          rotation.replicasInSyncAt[region] = at;
          log(
            `replica ${region} serves version ${short(versionId)} (${secs(Math.max(0, at.getTime() - promotedAt.getTime()))} after promotion)`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const deadline = Date.now() + profile.rotationTimeoutMs + 3 * lagMs;
    const alertsAtStart = ctx.alertsSeen;
    let lastSchedule = Date.now();
    let lastAlertPoll = 0;
    let statusError: string | undefined;
    let blocked = false;
    let baseline: StatusReport | undefined;
    const progress = (report: StatusReport) => {
      baseline ??= report;
      view.progress(renderProgress(report, { color: color ?? false, width: io.columns ?? 100, baseline }));
    };
    try {
      for (;;) {
        const tickStart = Date.now();
        let report: StatusReport | undefined;
        try {
          report = await abortable(status?.read() ?? Promise.reject(new Error("no status")), signal);
          statusError = undefined;
        } catch (error) {
          if (signal?.aborted) throw error;
          const message = redactSecrets(error instanceof Error ? error.message : String(error));
          if (message !== statusError) log(paint(color, "2", `(status not available this tick: ${message})`));
          statusError = message;
        }
        if (report) {
          progress(report);
        }
        const outage = rotation.ssmOutage;
        if (
          outage &&
          !options.ssmOffline &&
          !outage.restoredAt &&
          Date.now() - promotedAt.getTime() >= profile.ssmOutageMs
        ) {
          w.fleet.setSsmAgent(outage.region, outage.instanceId, "online");
          outage.restoredAt = new Date();
          log(
            `the SSM agent of ${outage.region}/${outage.instanceId} is online again: the next retry reaches it`,
          );
        }
        trackInvocations(w);
        trackTokens();
        if (Date.now() - lastAlertPoll >= 1_000) {
          lastAlertPoll = Date.now();
          await pollAlerts();
        }
        const idle = w.lambda.isIdle() && w.bus.isIdle();
        if (report && report.secret.currentVersionId === versionId && idle) {
          const done = report.complete && report.managedTokensValid.every((t) => t.versionId === versionId);
          blocked =
            report.waitingFor.includes("operator") &&
            !report.waitingFor.includes("refreshes") &&
            !report.waitingFor.includes("replicas") &&
            ctx.alertsSeen > alertsAtStart;
          if (done || blocked) break;
        }
        if (Date.now() >= deadline) {
          rotation.timedOut = true;
          log(
            paint(
              color,
              "31",
              `rotation ${index}: rollout not finished after ${secs(Date.now() - promotedAt.getTime())}; giving up waiting`,
            ),
          );
          break;
        }
        if (Date.now() - lastSchedule >= profile.scheduleEveryMs) {
          lastSchedule = Date.now();
          w.schedule();
        }
        await sleep(profile.tickMs - (Date.now() - tickStart), signal);
      }
    } finally {
      watching = false;
      await replicaWatch;
    }
    if (blocked) {
      log("rollout blocked: reconcile revokes nothing and waits for an operator; the schedule keeps firing:");
      for (let i = 0; i < 2; i++) {
        w.schedule();
        await abortable(w.settled(30_000 + lagMs), signal).catch((error: unknown) => {
          if (signal?.aborted) throw error;
        });
      }
      await pollAlerts();
      log(`  ${ctx.alertsSeen - alertsAtStart} alert(s) in total: level-triggered runs do not alert again`);
    }
    await abortable(w.settled(30_000 + lagMs), signal).catch((error: unknown) => {
      if (signal?.aborted) throw error;
      log(
        paint(
          color,
          "33",
          `the world did not settle: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
    });
    trackTokens();
    await pollAlerts();
    const last = await status?.read().catch(() => undefined);
    if (last) progress(last);
    trackInvocations(w);
    view.flush();
    rotation.endedAt = new Date();
    rotation.fleet = fleetDelta(w, countersBefore, rotation.startedAt, rotation.endedAt);
  };

  /** One event line per install-document invocation that ended (its result word, never output). */
  const invocationsSeen = new Set<string>();
  const trackInvocations = (w: World) => {
    for (const i of w.runCommand.invocations()) {
      const key = `${i.commandId}/${i.instanceId}`;
      if (invocationsSeen.has(key) || !TERMINAL_INVOCATION.has(i.status)) continue;
      invocationsSeen.add(key);
      const result = i.plugins.map((p) => RESULT_WORD.exec(p.stdout)?.[1]).find((r) => r !== undefined);
      const text = `Run Command: ${i.region}/${i.instanceId} (${i.platform ?? "?"}) ${i.status}${result ? ` result=${result}` : i.statusDetails ? ` (${i.statusDetails})` : ""}`;
      log(i.status === "Success" ? text : paint(color, "33", text));
    }
  };

  try {
    log(
      `starting moto server, the Buildkite API, the Auto Scaling, EC2, CloudFormation and Run Command stand-ins (${profile.stacks.reduce((n, g) => n + g.instances, 0)} instances) and the local Lambda…`,
    );
    starting = startWorld({
      primaryRegion: profile.primaryRegion,
      replicaRegions: profile.replicaRegions,
      groups: [],
      stacks: options.churn
        ? profile.stacks.map((stack) =>
            stack.region === profile.primaryRegion ? stack : { ...stack, idlePeriodMs: profile.churnIdleMs },
          )
        : profile.stacks,
      strategy,
      inPlace: {
        fallback: "alert",
        retrySeconds: profile.inPlace.retrySeconds,
        fallbackAfterSeconds: profile.inPlace.fallbackAfterSeconds,
      },
      runCommand: profile.runCommand,
      replicaLagMs: profile.replicaLagMs,
      replaceMs: profile.replaceMs,
      jobMs: profile.jobMs,
      ...(options.buildkiteFlaky ? { buildkiteFlaky: true } : {}),
      // The fleet protects every instance from scale-in, as the stock Elastic CI Stack does, so a
      // Wait refresh could only fail after the wait: this scenario refreshes with Refresh.
      refresh: { minHealthyPercentage: profile.minHealthyPercentage, scaleInProtectedInstances: "Refresh" },
      timeoutsMs: { reconcile: profile.reconcileTimeoutMs },
      handlers: options.handlers,
      onInvoke,
      onEvent,
    });
    world = await abortable(starting, signal);
    ctx.world = world;
    const observed = world;
    // The cfg of every live instance at the instant of each revocation (ids, never values).
    unhookRevoke = world.buildkite.onRevoke((tokenId) => {
      revocations.push({ tokenId, at: new Date(), instances: readCfgs(observed) });
    });
    // A replica lag given on the command line applies once the world is up (so start-up stays fast).
    for (const region of world.replicaRegions) world.replicator.setLag(region, lagMs);
    for (const t of world.buildkite.tokens()) ctx.tokens.set(t.id, { revoked: t.revokedAt !== null });
    status = statusReader(world);
    const worldReadyAt = new Date();
    printBanner(view.event, world, profile, {
      strategy,
      ssmOffline: options.ssmOffline === true,
      lagMs,
      rotations: rotationsWanted,
      failRefreshRegion: options.failRefreshRegion,
      buildkiteFlaky: options.buildkiteFlaky === true,
      logFile: options.logFile,
      color,
      startupMs: worldReadyAt.getTime() - startedAt.getTime(),
    });

    for (let i = 1; i <= rotationsWanted; i++) {
      await runRotation(world, i);
      if (rotations[i - 1]?.error) break;
    }
    view.close();

    const gathered = await gatherFacts(world, {
      expect,
      strategy,
      blockedOn,
      revocations,
      failRefreshRegion: options.failRefreshRegion,
      profile,
      startedAt,
      worldReadyAt,
      rotations,
    });
    const logStats = {
      total: logLines.length,
      warn: logLines.filter((l) => l.includes('"level":"WARN"')).length,
      error: logLines.filter((l) => l.includes('"level":"ERROR"')).length,
    };
    let facts: RunFacts = {
      ...gathered.facts,
      injected: {
        replicaLagSeconds: options.replicaLagSeconds,
        buildkiteFlaky: options.buildkiteFlaky === true,
      },
      tokenLeaks: countTokenLeaks(
        [...written, ...logLines, ...world.runCommand.outputs(), ...world.runCommand.logs()],
        gathered.secretValues,
      ),
      logLines: logStats,
    };
    let invariants = checkInvariants(facts);
    let outcome = decideOutcome(facts, invariants);
    let text = renderSummary(facts, invariants, outcome, { color });
    // What is about to be printed is checked too (it holds no value by construction).
    const late = countTokenLeaks([text, outcome.headline], gathered.secretValues);
    if (late > 0) {
      facts = { ...facts, tokenLeaks: facts.tokenLeaks + late };
      invariants = checkInvariants(facts);
      outcome = decideOutcome(facts, invariants);
      text = redactSecrets(renderSummary(facts, invariants, outcome, { color }));
    }
    write(text);
    result = {
      exitCode: outcome.exitCode,
      outcome: outcome.kind,
      headline: outcome.headline,
      summary: { facts, invariants, numbers: summaryNumbers(facts, invariants), text },
      violations: violationsOf(invariants),
    };
    if (options.keepEnvFile && signal) {
      write(`${result.headline}\n`);
      await keepServing(world, options.keepEnvFile, write, signal, profile.scheduleEveryMs);
    }
  } catch (error) {
    view.close();
    if (signal?.aborted) {
      const name = signal.reason instanceof Interrupted ? signal.reason.signalName : "abort";
      result = {
        exitCode: name === "SIGTERM" ? 143 : EXIT.interrupted,
        outcome: "interrupted",
        headline: `sandbox: interrupted (${name}); stopped every process it started`,
        summary: undefined,
        violations: [],
      };
    } else {
      const message = redactSecrets(
        error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      );
      write(`sandbox: error: ${message}\n`);
      result = {
        exitCode: EXIT.violation,
        outcome: "error",
        headline: `sandbox: FAILED — the sandbox could not complete its run (exit 1)`,
        summary: undefined,
        violations: [],
      };
    }
  } finally {
    unhookRevoke?.();
    status?.close();
    world ??= await starting?.catch(() => undefined);
    cleanupError = await (world?.stop() ?? Promise.resolve()).then(
      () => undefined,
      (error: unknown) => (error instanceof Error ? error.message : String(error)),
    );
    setLogSink(previousSink);
    if (logFile) await new Promise<void>((resolve) => logFile.end(() => resolve()));
  }
  if (cleanupError !== undefined) {
    result = {
      ...result,
      exitCode: EXIT.violation,
      headline: `sandbox: FAILED — cleanup failed, some processes may be left running: ${redactSecrets(cleanupError)}`,
    };
  }
  write(`${result.headline}\n`);
  return result;
}

/**
 * Leaves the world up for the operator CLI until the signal aborts. The environment file holds
 * endpoints, ARNs and the fake AWS credentials only; no token is in it.
 */
async function keepServing(
  world: World,
  envFile: string,
  write: (text: string) => void,
  signal: AbortSignal,
  scheduleMs: number,
): Promise<void> {
  const env = { ...world.env, BUILDKITE_AGENT_TOKEN_SECRET_ID: world.secretArn };
  writeFileSync(
    envFile,
    `${Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n")}\n`,
    { mode: 0o600 },
  );
  const watcher = world.watchRotations();
  const timer = setInterval(() => world.schedule(), scheduleMs);
  write(
    [
      "",
      "The sandbox keeps running (Ctrl-C stops it). In another terminal, point the operator CLI at it:",
      "  npm run build",
      `  set -a; . ${envFile}; set +a`,
      "  node dist/cli/index.mjs status",
      "  node dist/cli/index.mjs preflight",
      "  node dist/cli/index.mjs rotate --interval 1",
      "  node dist/cli/index.mjs rotate --emergency --interval 1",
      '  aws --endpoint-url "$AWS_ENDPOINT_URL" secretsmanager rotate-secret --secret-id "$ROTATION_SECRET_ARN"',
      "Rotations started there are driven as Secrets Manager would (the four steps, then the label event).",
      "",
    ].join("\n"),
  );
  if (!signal.aborted)
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  clearInterval(timer);
  await watcher.stop();
  rmSync(envFile, { force: true });
}

function printBanner(
  line: (text: string) => void,
  world: World,
  profile: Profile,
  o: {
    strategy: Strategy;
    ssmOffline: boolean;
    lagMs: number;
    rotations: number;
    failRefreshRegion: string | undefined;
    buildkiteFlaky: boolean;
    logFile: string | undefined;
    color: boolean | undefined;
    startupMs: number;
  },
) {
  const instances = profile.stacks.reduce((n, g) => n + g.instances, 0);
  const busy = profile.stacks.reduce((n, g) => n + (g.jobs?.busyAtStart ?? 0), 0);
  const services: Array<[string, string]> = [
    ["moto server (Secrets Manager, SSM, SNS, SQS)", world.motoUrl],
    ["Buildkite REST + agent API stand-in", world.buildkite.url],
    ["EC2 Auto Scaling stand-in", world.autoScalingUrl],
    ["EC2 / CloudFormation stand-ins", `${world.ec2Url} ${world.cloudFormationUrl}`],
    ["SSM Run Command stand-in (+ Parameter Store)", world.runCommand.url],
    ["Lambda endpoint (rotate-token, reconcile)", world.lambda.url],
  ];
  const width = Math.max(...services.map(([name]) => name.length));
  const stackWidth = Math.max(...profile.stacks.map((g) => g.stackName.length));
  const regionWidth = Math.max(...profile.stacks.map((g) => g.region.length));
  const linuxStep =
    profile.runCommand.linuxStep === "mirror"
      ? "the Linux step runs the install script's TypeScript mirror (faster; the default profile runs it with real bash and the AWS CLI)"
      : "the Linux step runs the install script with real bash and the AWS CLI against moto";
  const lines = [
    "",
    paint(o.color, "1", `Buildkite agent token rotation: local sandbox (profile ${profile.name})`),
    `started in ${secs(o.startupMs)}, all on loopback, no AWS account involved:`,
    ...services.map(([name, url]) => `  ${name.padEnd(width)}  ${url}`),
    `secret ${world.secretName} in ${world.primaryRegion}, replicated to ${world.replicaRegions.join(", ")} (replication lag ${secs(o.lagMs)})`,
    `Elastic CI Stacks: ${instances} instances, all protected from scale-in (the stack's default), ${busy} running a job at the start:`,
    ...profile.stacks.map(
      (g) =>
        `  ${g.region.padEnd(regionWidth)}  ${g.stackName.padEnd(stackWidth)}  ${(g.platform ?? "Linux").padEnd(7)}  ${String(g.instances).padStart(2)} instances${g.jobs?.busyAtStart ? `, ${g.jobs.busyAtStart} busy` : ""}  (group ${world.stacks.groupName(g.region, g.stackName)})`,
    ),
    `initial token ${short(world.stack.initialToken.id)}: made by a human, every agent registered with it; this tool never revokes it`,
    o.strategy === "in-place"
      ? `strategy in-place (ROLLOUT_STRATEGY): Run Command rewrites each cfg's token line, nothing is replaced or restarted; ${linuxStep}`
      : `strategy refresh (ROLLOUT_STRATEGY): instance refresh, MinHealthyPercentage ${profile.minHealthyPercentage}, ScaleInProtectedInstances Refresh (jobs on replaced instances are interrupted), SkipMatching false`,
    ...(o.strategy === "in-place"
      ? [
          `in-place: IN_PLACE_RETRY_SECONDS ${profile.inPlace.retrySeconds}, IN_PLACE_FALLBACK alert after ${profile.inPlace.fallbackAfterSeconds} s (small for the sandbox)`,
        ]
      : []),
    `reconcile: timeout ${secs(profile.reconcileTimeoutMs)} (waits up to ${secs(Math.max(0, profile.reconcileTimeoutMs - 20_000))} per run for replicas and commands); safety-net schedule every ${secs(profile.scheduleEveryMs)}`,
    `scenario: ${o.rotations} rotation(s)${
      o.strategy === "in-place"
        ? o.ssmOffline
          ? `; rotation ${o.rotations}: one instance's SSM agent is offline and stays so (--ssm-offline)`
          : `; rotation ${o.rotations}: one instance's SSM agent is offline at first and back ${secs(profile.ssmOutageMs)} after promotion`
        : ""
    }${o.failRefreshRegion ? `; refreshes in ${o.failRefreshRegion} fail during rotation ${o.rotations}` : ""}${o.buildkiteFlaky ? "; Buildkite API flaky (15% of requests answer 502 or 429)" : ""}`,
    ...(o.logFile ? [`handler logs (JSON lines): ${o.logFile}`] : []),
  ];
  for (const l of lines) line(l);
}

async function gatherFacts(
  world: World,
  o: {
    expect: RunFacts["expect"];
    strategy: Strategy;
    blockedOn: RunFacts["blockedOn"];
    revocations: RevocationFacts[];
    failRefreshRegion: string | undefined;
    profile: Profile;
    startedAt: Date;
    worldReadyAt: Date;
    rotations: RotationFacts[];
  },
): Promise<{ facts: Omit<RunFacts, "tokenLeaks" | "logLines" | "injected">; secretValues: string[] }> {
  const tokens = world.buildkite.tokens();
  // Which values some version of the secret held: only those could have reached an instance.
  let stored: Set<string> | undefined;
  try {
    const versions = await world.secrets.send(
      new ListSecretVersionIdsCommand({
        SecretId: world.secretArn,
        IncludeDeprecated: true,
        MaxResults: 100,
      }),
    );
    stored = new Set<string>();
    for (const v of versions.Versions ?? []) {
      if (!v.VersionId) continue;
      const out = await world.secrets
        .send(new GetSecretValueCommand({ SecretId: world.secretArn, VersionId: v.VersionId }))
        .catch(() => undefined);
      if (out?.SecretString) stored.add(out.SecretString);
    }
  } catch {
    stored = undefined; // unknown: every token counts as stored (the stricter check)
  }
  const apiToken = await world.secrets
    .send(new GetSecretValueCommand({ SecretId: world.stack.apiTokenSecretArn, VersionStage: "AWSCURRENT" }))
    .then((out) => out.SecretString)
    .catch(() => undefined);
  const alerts = await world.alerts().catch(() => []);
  const groups = world.fleet.groups();
  const requests = world.buildkite.requests();
  const facts: Omit<RunFacts, "tokenLeaks" | "logLines" | "injected"> = {
    expect: o.expect,
    failRefreshRegion: o.failRefreshRegion,
    primaryRegion: world.primaryRegion,
    replicaRegions: world.replicaRegions,
    strategy: o.strategy,
    blockedOn: o.blockedOn,
    groups: o.profile.stacks.map((g) => ({
      region: g.region,
      name: world.stacks.groupName(g.region, g.stackName),
      stackName: g.stackName,
      platform: g.platform ?? "Linux",
      instances: g.instances,
      busyAtStart: g.jobs?.busyAtStart ?? 0,
    })),
    startedAt: o.startedAt,
    worldReadyAt: o.worldReadyAt,
    endedAt: new Date(),
    rotations: o.rotations,
    tokens: tokens.map((t) => {
      return {
        id: t.id,
        description: t.description,
        versionId: managedVersionOf(t.description, world.secretArn),
        createdAt: t.createdAt,
        revokedAt: t.revokedAt,
        valid: t.valid,
        initial: t.id === world.stack.initialToken.id,
        storedInSecret: stored ? stored.has(t.value) : true,
      };
    }),
    refreshes: groups.flatMap((g) =>
      world.fleet.refreshes(g.region, g.name).map((r) => ({
        region: r.region,
        groupName: r.autoScalingGroupName,
        id: r.instanceRefreshId,
        status: r.status,
        statusReason: r.statusReason,
        startTime: r.startTime,
        endTime: r.endTime,
      })),
    ),
    registrations: world.buildkite.registrations(),
    buildkiteRequests: {
      total: requests.length,
      failed: requests.filter((r) => r.status === 0 || r.status === 429 || r.status >= 500).length,
    },
    revocations: o.revocations,
    finalCfgs: readCfgs(world),
    alerts,
  };
  return {
    facts,
    secretValues: [...tokens.map((t) => t.value), ...(apiToken ? [apiToken] : [])],
  };
}

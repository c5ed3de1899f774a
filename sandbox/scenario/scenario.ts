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
import { createWriteStream, type WriteStream } from "node:fs";
import { redactSecrets, setLogSink } from "../../shared/lib/log";
import { painter, secondsText as secs } from "../../shared/lib/terminal";
import { motoAvailable } from "../fakes/aws/moto";
import type { InvocationPhase, InvocationRecord } from "../fakes/lambda/local-lambda";
import { abortable } from "../lib/abortable";
import type { RevocationFacts, RotationFacts, RunFacts, Strategy } from "../verdict/facts";
import {
  checkInvariants,
  countTokenLeaks,
  type InvariantResult,
  type Violation,
  violationsOf,
} from "../verdict/invariants";
import { decideOutcome, EXIT, type SummaryNumbers, summaryNumbers } from "../verdict/outcome";
import { renderSummary } from "../verdict/render";
import { startWorld, type World } from "../world/world";
import { printBanner } from "./banner";
import { countBusEvent, countReconcileRun, gatherFacts, logStats, readCfgs } from "./facts";
import { keepServing } from "./keep-serving";
import { createLiveView, type LiveViewIo } from "./live-view";
import { Narrator } from "./narrator";
import { PROFILES, type ScenarioOptions, validateScenario } from "./profiles";
import { runRotation } from "./rotation-loop";
import { type StatusReader, statusReader } from "./status-reader";

export { readCfgs } from "./facts";
export { PROFILES, type Profile, type ScenarioOptions, validateScenario } from "./profiles";

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
  const paint = painter(color === true);
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
  const stamp = () => paint(`[${secs(Date.now() - startedAt.getTime()).padStart(7)}]`, "dim");
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
  // check and the counts) and to the log file; the event lines come from typed hooks (narrator.ts).
  const logLines: string[] = [];
  const logFile: WriteStream | undefined = options.logFile
    ? createWriteStream(options.logFile, { flags: "w" })
    : undefined;
  logFile?.on("error", () => {}); // a log file that cannot be written must not end the run
  const previousSink = setLogSink((line) => {
    logLines.push(line);
    logFile?.write(`${line}\n`);
  });

  const narrator = new Narrator({ log, line: (text) => view.event(text) }, paint);
  const rotations: RotationFacts[] = [];
  /** Observers: each must never break the world, so each swallows its own failure. */
  const guarded =
    <A extends unknown[]>(f: (...args: A) => void) =>
    (...args: A) => {
      try {
        f(...args);
      } catch {
        // an observer must never break the world
      }
    };
  const onInvoke = guarded((record: InvocationRecord, phase: InvocationPhase) => {
    if (phase !== "ended") return;
    if (record.name === "reconcile" && narrator.rotation) countReconcileRun(narrator.rotation, record);
    narrator.invocationEnded(record);
  });
  const onEvent = guarded((event: unknown) => {
    if (narrator.rotation) countBusEvent(narrator.rotation, event);
    narrator.busEvent(event);
  });

  let world: World | undefined;
  /** Kept so that a world still starting when the run is interrupted is stopped too. */
  let starting: Promise<World> | undefined;
  let status: StatusReader | undefined;
  let result: ScenarioResult = {
    exitCode: EXIT.violation,
    outcome: "error",
    headline: "sandbox: FAILED (exit 1)",
    summary: undefined,
    violations: [],
  };
  let cleanupError: string | undefined;
  let unhookRevoke: (() => void) | undefined;

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
      onRotation: guarded((event) => narrator.rotationEvent(event)),
      onReconcileEnded: guarded((summary) => narrator.reconcileEnded(summary)),
    });
    world = await abortable(starting, signal);
    const observed = world;
    // The cfg of every live instance at the instant of each revocation (ids, never values).
    unhookRevoke = world.buildkite.onRevoke((tokenId) => {
      revocations.push({ tokenId, at: new Date(), instances: readCfgs(observed) });
    });
    // A replica lag given on the command line applies once the world is up (so start-up stays fast).
    for (const region of world.replicaRegions) world.replicator.setLag(region, lagMs);
    status = statusReader(world);
    narrator.attach(world, status.claimOwnFailure);
    const worldReadyAt = new Date();
    printBanner(view.event, world, profile, {
      strategy,
      ssmOffline: options.ssmOffline === true,
      lagMs,
      rotations: rotationsWanted,
      failRefreshRegion: options.failRefreshRegion,
      buildkiteFlaky: options.buildkiteFlaky === true,
      logFile: options.logFile,
      paint,
      startupMs: worldReadyAt.getTime() - startedAt.getTime(),
    });

    const loop = {
      world,
      profile,
      lagMs,
      strategy,
      failRefreshRegion: options.failRefreshRegion,
      ssmOffline: options.ssmOffline === true,
      rotations: rotationsWanted,
      narrator,
      view,
      status,
      paint,
      color: color ?? false,
      width: io.columns ?? 100,
      log,
      signal,
    };
    for (let i = 1; i <= rotationsWanted; i++) {
      const run = await runRotation(loop, i);
      rotations.push(run.rotation);
      blockedOn = run.blockedOn ?? blockedOn;
      if (run.rotation.error) break;
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
    const facts: RunFacts = {
      ...gathered.facts,
      injected: {
        replicaLagSeconds: options.replicaLagSeconds,
        buildkiteFlaky: options.buildkiteFlaky === true,
      },
      tokenLeaks: countTokenLeaks(
        [...written, ...logLines, ...world.runCommand.outputs(), ...world.runCommand.logs()],
        gathered.secretValues,
      ),
      logLines: logStats(logLines),
    };
    const verdict = judge(facts, gathered.secretValues, color);
    write(verdict.text);
    result = {
      exitCode: verdict.outcome.exitCode,
      outcome: verdict.outcome.kind,
      headline: verdict.outcome.headline,
      summary: {
        facts: verdict.facts,
        invariants: verdict.invariants,
        numbers: summaryNumbers(verdict.facts, verdict.invariants),
        text: verdict.text,
      },
      violations: violationsOf(verdict.invariants),
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
 * The verdict on the facts: invariants, outcome, summary. What is about to be printed is checked
 * for token values too (it holds none by construction); a leak there counts, and is redacted.
 */
function judge(facts: RunFacts, secretValues: string[], color: boolean | undefined) {
  const once = (f: RunFacts) => {
    const invariants = checkInvariants(f);
    const outcome = decideOutcome(f, invariants);
    return {
      facts: f,
      invariants,
      outcome,
      text: renderSummary(f, invariants, outcome, { color: color === true }),
    };
  };
  const first = once(facts);
  const late = countTokenLeaks([first.text, first.outcome.headline], secretValues);
  if (late === 0) return first;
  const again = once({ ...facts, tokenLeaks: facts.tokenLeaks + late });
  return { ...again, text: redactSecrets(again.text) };
}

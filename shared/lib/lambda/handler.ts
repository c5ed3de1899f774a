/**
 * The one composition root of every Lambda function, on @middy/core:
 *
 * - dependencies (configuration, SDK clients, caches) are built once per container by a memoised
 *   `build`, on the first invocation, and rebuilt only after a failed build;
 * - each invocation gets its own context: middy's abort signal (the handler's third argument),
 *   fired `timeoutMarginMs` before the Lambda deadline, the time left, a logger carrying
 *   `awsRequestId` and the function name, and a metrics sink flushed when the invocation ends;
 * - on the early timeout the function's own `onTimeout` answer is returned instead of middy's
 *   default, which throws a TimeoutError (for reconcile that would be an invocation error, two
 *   asynchronous retries and an alarm for a run that merely ran out of time);
 * - a failure is logged and rethrown through `sanitizeForRuntime`, so the error the runtime
 *   records (and ships to CloudWatch and async destinations) carries no token and no `cause`.
 *
 * Nothing here is module-level mutable state: `createLambdaHandler` returns a fresh handler with
 * its own memoised dependencies, so tests create one per case instead of resetting modules.
 *
 * middy: https://middy.js.org/docs/intro/early-interruption (timeoutEarlyInMillis,
 * timeoutEarlyResponse, the abort signal) and node_modules/@middy/core/index.js (runRequest).
 */
import { randomUUID } from "node:crypto";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { describeError } from "../errors";
import { createLogger, type Logger, redactSecrets } from "../log";
import { createMetrics, type MetricsSink, type MetricUnit } from "../metrics";
import { sanitizeForRuntime } from "../runtime-error";
import { once } from "./once";

/** What one invocation hands to the function's code. */
export interface Invocation {
  readonly requestId: string;
  readonly functionName: string;
  /** Aborted `timeoutMarginMs` before the Lambda deadline (never, for a direct call without a budget). */
  readonly signal: AbortSignal;
  /** Milliseconds until the Lambda deadline (not the margin): Infinity for a direct call without a budget. */
  remainingMs(): number;
  readonly logger: Logger;
  /** Buffered for this invocation and written when it ends, success or failure. */
  readonly metrics: MetricsSink;
}

export interface FunctionDefinition<Deps, Result> {
  /** The logger's `service` and the metrics' Service dimension. */
  service: string;
  /** Once per container; may throw (a ConfigError names the bad setting), then the next invocation retries. */
  build(logger: Logger): Deps;
  run(event: unknown, deps: Deps, invocation: Invocation): Promise<Result>;
  /**
   * Checks the event before the container's dependencies are built, so a malformed event fails
   * with its own error (an InputError) before any configuration is read or any client is made.
   */
  validate?(event: unknown): void;
  /** How long before the deadline middy aborts the signal and the function must answer. */
  timeoutMarginMs: number;
  /**
   * The answer once the margin is reached and the run has not produced one within the grace
   * period left before the deadline (the run itself is given the rest of the margin to finish).
   */
  onTimeout(invocation: Invocation): Result;
  /** The message logged when an invocation fails. */
  failureMessage: string;
  /** Budget for a direct call without a Lambda context (tests, the CLI); default: none. */
  directCallBudgetMs?: number;
}

/** What a Lambda runtime, the local Lambda stand-in, tests and the CLI call. */
export type LambdaHandler<Result> = (event: unknown, context?: Partial<Context>) => Promise<Result>;

/** Kept out of the run's grace period: time to log, flush and return before the hard deadline. */
const FINAL_RESERVE_MS = 1_000;
const TIMED_OUT: unique symbol = Symbol("timed out");

interface InvocationState<Result> {
  logger: Logger;
  metrics: BufferedMetrics;
  invocation?: Invocation;
  running?: Promise<Result>;
}

export function createLambdaHandler<Deps, Result>(
  definition: FunctionDefinition<Deps, Result>,
): LambdaHandler<Result> {
  const { service } = definition;
  const containerLogger = createLogger(service);
  const deps = once(() => definition.build(containerLogger));
  // Per-invocation state, keyed by the invocation's own context object (made fresh in requestStart).
  const states = new WeakMap<object, InvocationState<Result>>();
  const stateOf = (context: object): InvocationState<Result> => {
    const state = states.get(context);
    if (!state) throw new Error("invocation state missing (requestStart did not run)");
    return state;
  };

  const wrapped = middy<unknown, Result | typeof TIMED_OUT>(
    (event: unknown, context: Context, { signal }: { signal: AbortSignal }) => {
      const state = stateOf(context);
      const invocation: Invocation = {
        requestId: context.awsRequestId,
        functionName: context.functionName,
        signal,
        remainingMs: () =>
          context.getRemainingTimeInMillis ? context.getRemainingTimeInMillis() : Number.POSITIVE_INFINITY,
        logger: state.logger,
        metrics: state.metrics,
      };
      state.invocation = invocation;
      state.running = (async () => {
        definition.validate?.(event);
        return definition.run(event, deps(), invocation);
      })();
      return state.running;
    },
    {
      timeoutEarlyInMillis: definition.timeoutMarginMs,
      // A value, not a throw: the `after` middleware below turns it into the function's answer.
      timeoutEarlyResponse: () => TIMED_OUT,
      // Before middy reads getRemainingTimeInMillis: give every invocation a complete context of its own.
      requestStart: (request) => {
        const context = invocationContext(request.context, service, definition.directCallBudgetMs);
        request.context = context;
        const logger = createLogger(service, {
          awsRequestId: context.awsRequestId,
          functionName: context.functionName,
        });
        states.set(context, { logger, metrics: bufferedMetrics(service) });
      },
    },
  ).use({
    name: "answer-at-timeout-and-flush",
    after: async (request) => {
      const state = stateOf(request.context);
      if (request.response === TIMED_OUT) {
        request.response = await answerAfterTimeout(definition, state, request.context);
      }
      state.metrics.flush();
    },
    onError: (request) => {
      const state = stateOf(request.context);
      const safe = sanitizeForRuntime(request.error, redactSecrets);
      state.logger.error(definition.failureMessage, { error: describeError(request.error) });
      state.metrics.flush();
      // Returning nothing makes middy throw request.error as it is; throwing here instead would
      // make middy attach the original (unsanitised) error as the new error's cause.
      request.error = safe;
    },
  });

  return async (event, context) => (await wrapped(event, context as Context)) as Result;
}

/** The run was aborted at the margin: give it the grace left to return its own answer, else onTimeout's. */
async function answerAfterTimeout<Deps, Result>(
  definition: FunctionDefinition<Deps, Result>,
  state: InvocationState<Result>,
  context: Context,
): Promise<Result> {
  const invocation = state.invocation;
  if (!invocation || !state.running) throw new Error("timed out before the run started");
  const graceMs = Math.max(0, invocation.remainingMs() - FINAL_RESERVE_MS);
  let timer: NodeJS.Timeout | undefined;
  type Answer = { finished: true; value: Result } | { finished: false };
  const late = new Promise<Answer>((resolve) => {
    timer = setTimeout(() => resolve({ finished: false }), graceMs);
  });
  try {
    const answer = await Promise.race([
      state.running.then(
        (value): Answer => ({ finished: true, value }),
        (error: unknown): Answer => {
          state.logger.warn("run failed after the early-timeout signal", {
            error: describeError(sanitizeForRuntime(error, redactSecrets)),
          });
          return { finished: false };
        },
      ),
      late,
    ]);
    if (answer.finished) {
      state.logger.warn("stopped at the early-timeout margin; returning what the run finished", {
        marginMs: definition.timeoutMarginMs,
        function: context.functionName,
      });
      return answer.value;
    }
    state.logger.warn("no answer before the deadline; returning the timeout response", {
      marginMs: definition.timeoutMarginMs,
    });
    return definition.onTimeout(invocation);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A fresh context per invocation: the runtime's fields, with a request id and function name for
 * direct calls (the local Lambda stand-in and tests pass only getRemainingTimeInMillis), and a
 * budget for direct calls when the function has one. Without a deadline, getRemainingTimeInMillis
 * stays absent so middy arms no early-timeout timer.
 */
function invocationContext(given: Partial<Context> | undefined, service: string, budgetMs?: number): Context {
  const started = Date.now();
  const base: Partial<Context> = given ?? {};
  const remaining =
    typeof base.getRemainingTimeInMillis === "function"
      ? base.getRemainingTimeInMillis.bind(base)
      : budgetMs !== undefined
        ? () => budgetMs - (Date.now() - started)
        : undefined;
  const context: Partial<Context> = {
    ...base,
    awsRequestId: base.awsRequestId ?? `direct-${randomUUID()}`,
    functionName: base.functionName ?? process.env.AWS_LAMBDA_FUNCTION_NAME ?? service,
    ...(remaining ? { getRemainingTimeInMillis: remaining } : {}),
  };
  // The runtime's Context also has callback-era members (done, fail, succeed) nobody here uses.
  return context as Context;
}

interface BufferedMetrics extends MetricsSink {
  flush(): void;
}

/** Collects an invocation's metrics and writes them (embedded metric format) when it ends. */
function bufferedMetrics(service: string): BufferedMetrics {
  const sink = createMetrics(service);
  const pending: Array<[string, number, MetricUnit, Record<string, string> | undefined]> = [];
  return {
    put(name, value, unit, dimensions) {
      pending.push([name, value, unit, dimensions]);
    },
    flush() {
      for (const [name, value, unit, dimensions] of pending.splice(0))
        sink.put(name, value, unit, dimensions);
    },
  };
}

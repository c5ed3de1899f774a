/**
 * A local stand-in for the Lambda service: an HTTP server on loopback that speaks as much of the
 * Invoke REST API as the real `@aws-sdk/client-lambda` client needs, and runs in-process handlers.
 * Point a client at it with `AWS_ENDPOINT_URL_LAMBDA=<url>` (or `endpoint: url`).
 *
 * - `POST /2015-03-31/functions/{FunctionName}/invocations`; FunctionName may be a name, a partial
 *   ARN (`123456789012:function:NAME`) or a full ARN, optionally with a qualifier (ignored).
 * - `X-Amz-Invocation-Type: Event` → 202 at once, the handler runs later; `RequestResponse`
 *   (the default) → 200 with the JSON result; `DryRun` → 204.
 * - Unknown function → 404 `ResourceNotFoundException`; a handler that throws (or times out) →
 *   200 with `X-Amz-Function-Error: Unhandled` and `{errorType, errorMessage, trace}`, as Lambda
 *   does, the report built as the Node.js runtime builds it (runtime-error.ts). The runtime also
 *   writes that report to CloudWatch Logs, so every report is kept (`errorReports()`) for tests to
 *   scan, as CloudWatch would show it. The HTTP side is invoke-http.ts.
 *
 * Invocations of one function are serialized through a per-function queue: the deployed reconcile
 * function has reserved concurrency 1, and the handlers keep module-level state that two
 * overlapping runs in one process would share (real Lambda would give each its own environment).
 * Asynchronous invocations are not retried on error (Lambda retries twice); the record shows the
 * failure instead, so a test sees it rather than a delayed duplicate.
 *
 * Nothing here logs; payloads and results are never recorded (they are the handlers' business).
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import { listen } from "../../lib/listen";
import { handleInvoke } from "./invoke-http";
import { type RuntimeErrorReport, runtimeErrorReport } from "./runtime-error";

export { type RuntimeErrorReport, runtimeErrorReport } from "./runtime-error";

export interface LambdaContext {
  getRemainingTimeInMillis(): number;
  functionName: string;
  awsRequestId: string;
}

export type LambdaHandler = (event: unknown, context: LambdaContext) => Promise<unknown>;

export interface FunctionSpec {
  handler: LambdaHandler;
  /** The function's configured timeout (default 900 s, Lambda's maximum). */
  timeoutMs?: number;
}

export type InvocationType = "Event" | "RequestResponse";

export interface InvocationRecord {
  requestId: string;
  name: string;
  invocationType: InvocationType;
  queuedAt: Date;
  /** Undefined while queued behind another invocation of the same function. */
  startedAt?: Date;
  /** Undefined while queued or running. */
  endedAt?: Date;
  /** Undefined until the invocation ended. */
  ok?: boolean;
  /** The error's `name` when the handler threw; `Sandbox.Timedout` when it ran out of time. */
  errorName?: string;
}

export type InvocationPhase = "queued" | "started" | "ended";

export interface LocalLambdaOptions {
  functions: Record<string, LambdaHandler | FunctionSpec>;
  /**
   * Modelled invoke/dispatch overhead, waited before each handler starts (default 0): Lambda's own
   * time between accepting an invocation and running the handler in a warm environment (routing,
   * placement, the runtime API hand-off; https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html,
   * "Invoke phase"). It counts in the queued → started wait and delays the next queued invocation of
   * the same function, as it would on a function with reserved concurrency 1.
   */
  overheadMs?: number;
  /** Called on every phase change of every invocation, with a copy of its record. Must not throw. */
  onInvoke?: (record: InvocationRecord, phase: InvocationPhase) => void;
  /** Default 127.0.0.1. */
  host?: string;
  port?: number;
}

export type InvokeResult =
  | { ok: true; result: unknown }
  | { ok: false; errorType: string; errorMessage: string; trace?: string[] };

export interface LocalLambda {
  /** Base URL, e.g. `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Queue an asynchronous invocation, as `InvocationType: Event` does; resolves once queued. */
  invokeAsync(name: string, event: unknown): Promise<void>;
  /** A synchronous invocation through the same queue; never rejects for a handler error. */
  invoke(name: string, event: unknown): Promise<InvokeResult>;
  /** Every invocation so far, oldest first (copies). */
  invocations(): InvocationRecord[];
  /** Changes the modelled per-invocation overhead for invocations that start from now on. */
  setOverheadMs(ms: number): void;
  /** Queued → started wait of every started invocation (of `name`, when given), oldest first, in ms. */
  waits(name?: string): number[];
  /** Every runtime error report so far (what CloudWatch and synchronous callers would see). */
  errorReports(): RuntimeErrorReport[];
  /** True when no invocation is queued or running. */
  isIdle(): boolean;
  /** Resolves when no invocation is queued or running; rejects after `timeoutMs` (default 60 s). */
  idle(timeoutMs?: number): Promise<void>;
  /**
   * Stops listening and drops invocations still queued (their records end with errorName
   * `Sandbox.Dropped`); waits up to `graceMs` (default 5 s) for running handlers. Idempotent.
   */
  close(graceMs?: number): Promise<void>;
}

export const DEFAULT_TIMEOUT_MS = 900_000;

export class FunctionNotFoundError extends Error {
  override name = "ResourceNotFoundException";
}

export async function startLocalLambda(options: LocalLambdaOptions): Promise<LocalLambda> {
  const lambda = new LocalLambdaServer(options);
  await lambda.listen(options.host ?? "127.0.0.1", options.port ?? 0);
  return lambda;
}

/** `NAME`, `NAME:qualifier`, `123456789012:function:NAME[:qualifier]` or a full ARN → `NAME`. */
export function functionNameOf(functionName: string): string {
  const parts = functionName.split(":");
  const marker = parts.indexOf("function");
  if (marker >= 0) return parts[marker + 1] ?? "";
  return parts[0] ?? "";
}

interface Job {
  record: InvocationRecord;
  event: unknown;
  settle: (result: InvokeResult) => void;
}

interface FunctionState {
  name: string;
  handler: LambdaHandler;
  timeoutMs: number;
  queue: Job[];
  running: Promise<void> | undefined;
}

class LocalLambdaServer implements LocalLambda {
  private readonly server: Server;
  private readonly functions = new Map<string, FunctionState>();
  private readonly records: InvocationRecord[] = [];
  private readonly reports: RuntimeErrorReport[] = [];
  private readonly idleWaiters = new Set<() => void>();
  private readonly onInvoke: LocalLambdaOptions["onInvoke"];
  private overheadMs: number;
  private address = "";
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(options: LocalLambdaOptions) {
    this.onInvoke = options.onInvoke;
    this.overheadMs = 0;
    this.setOverheadMs(options.overheadMs ?? 0);
    for (const [name, spec] of Object.entries(options.functions)) {
      const { handler, timeoutMs } =
        typeof spec === "function" ? { handler: spec, timeoutMs: undefined } : spec;
      const timeout = timeoutMs ?? DEFAULT_TIMEOUT_MS;
      if (!Number.isFinite(timeout) || timeout <= 0) throw new RangeError(`${name}: timeoutMs must be > 0`);
      this.functions.set(name, { name, handler, timeoutMs: timeout, queue: [], running: undefined });
    }
    this.server = createServer(
      (req, res) =>
        void handleInvoke(
          {
            find: (name) => this.functions.get(name),
            closed: () => this.closed,
            enqueue: (fn, type, event) => this.enqueue(fn, type, event),
          },
          req,
          res,
        ),
    );
  }

  get url(): string {
    return this.address;
  }

  async listen(host: string, port: number): Promise<void> {
    this.address = await listen(this.server, host, port);
  }

  // ---- In-process API -------------------------------------------------------------------------

  async invokeAsync(name: string, event: unknown): Promise<void> {
    void this.enqueue(this.requireFunction(name), "Event", event);
  }

  invoke(name: string, event: unknown): Promise<InvokeResult> {
    return this.enqueue(this.requireFunction(name), "RequestResponse", event);
  }

  invocations(): InvocationRecord[] {
    return this.records.map((r) => ({ ...r }));
  }

  setOverheadMs(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError("overheadMs must be a finite number >= 0");
    this.overheadMs = ms;
  }

  waits(name?: string): number[] {
    return this.records
      .filter((r) => r.startedAt !== undefined && (name === undefined || r.name === name))
      .map((r) => (r.startedAt?.getTime() ?? 0) - r.queuedAt.getTime());
  }

  errorReports(): RuntimeErrorReport[] {
    return this.reports.map((r) => ({ ...r, trace: [...r.trace] }));
  }

  isIdle(): boolean {
    for (const fn of this.functions.values()) if (fn.running || fn.queue.length > 0) return false;
    return true;
  }

  idle(timeoutMs = 60_000): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.idleWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.idleWaiters.delete(done);
        const busy = [...this.functions.values()]
          .filter((fn) => fn.running || fn.queue.length > 0)
          .map((fn) => `${fn.name} (${fn.running ? "running" : "idle"}, ${fn.queue.length} queued)`);
        reject(new Error(`local Lambda not idle after ${timeoutMs} ms: ${busy.join(", ")}`));
      }, timeoutMs);
      this.idleWaiters.add(done);
    });
  }

  close(graceMs = 5_000): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
      for (const fn of this.functions.values()) {
        for (const job of fn.queue.splice(0)) {
          this.finish(job, { ok: false, errorType: "Sandbox.Dropped", errorMessage: "local Lambda closed" });
        }
      }
      const running = [...this.functions.values()].flatMap((fn) => (fn.running ? [fn.running] : []));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled(running),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
      await stopped;
      this.notifyIdle();
    })();
    return this.closing;
  }

  // ---- Queue ----------------------------------------------------------------------------------

  private requireFunction(name: string): FunctionState {
    const fn = this.functions.get(functionNameOf(name));
    if (!fn) throw new FunctionNotFoundError(`Function not found: ${name}`);
    return fn;
  }

  private enqueue(fn: FunctionState, invocationType: InvocationType, event: unknown): Promise<InvokeResult> {
    return new Promise<InvokeResult>((settle) => {
      const record: InvocationRecord = {
        requestId: randomUUID(),
        name: fn.name,
        invocationType,
        queuedAt: new Date(),
      };
      this.records.push(record);
      if (this.closed) {
        settle({ ok: false, errorType: "Sandbox.Dropped", errorMessage: "local Lambda closed" });
        record.endedAt = new Date();
        record.ok = false;
        record.errorName = "Sandbox.Dropped";
        return;
      }
      fn.queue.push({ record, event, settle });
      this.emit(record, "queued");
      this.pump(fn);
    });
  }

  private pump(fn: FunctionState): void {
    if (fn.running || this.closed) return;
    const job = fn.queue.shift();
    if (!job) {
      this.notifyIdle();
      return;
    }
    fn.running = this.run(fn, job).finally(() => {
      fn.running = undefined;
      this.pump(fn);
      this.notifyIdle();
    });
  }

  /**
   * Runs one invocation. On timeout the invocation is reported failed at once, but the queue waits
   * for the abandoned handler to settle: in-process it cannot be killed, and letting the next run
   * overlap it would break the one-at-a-time guarantee the handlers rely on.
   */
  private async run(fn: FunctionState, job: Job): Promise<void> {
    if (this.overheadMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, this.overheadMs));
      if (this.closed) {
        this.finish(job, { ok: false, errorType: "Sandbox.Dropped", errorMessage: "local Lambda closed" });
        return;
      }
    }
    const started = Date.now();
    job.record.startedAt = new Date(started);
    this.emit(job.record, "started");
    const context: LambdaContext = {
      functionName: fn.name,
      awsRequestId: job.record.requestId,
      getRemainingTimeInMillis: () => Math.max(0, started + fn.timeoutMs - Date.now()),
    };
    let timer: NodeJS.Timeout | undefined;
    const handlerRun = (async () => fn.handler(job.event, context))().then(
      (result): InvokeResult => ({ ok: true, result }),
      (error: unknown): InvokeResult => {
        const report = runtimeErrorReport(error);
        this.reports.push({ requestId: job.record.requestId, name: fn.name, ...report });
        return { ok: false, ...report };
      },
    );
    const timedOut = new Promise<InvokeResult>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            ok: false,
            errorType: "Sandbox.Timedout",
            errorMessage: `Task timed out after ${(fn.timeoutMs / 1000).toFixed(2)} seconds`,
            trace: [],
          }),
        fn.timeoutMs,
      );
    });
    const outcome = await Promise.race([handlerRun, timedOut]);
    clearTimeout(timer);
    this.finish(job, outcome);
    await handlerRun;
  }

  private finish(job: Job, outcome: InvokeResult): void {
    job.record.endedAt = new Date();
    job.record.ok = outcome.ok;
    if (!outcome.ok) job.record.errorName = outcome.errorType;
    this.emit(job.record, "ended");
    job.settle(outcome);
  }

  private emit(record: InvocationRecord, phase: InvocationPhase): void {
    try {
      this.onInvoke?.({ ...record }, phase);
    } catch {
      // An observer's bug must not break the invocation it observes.
    }
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    for (const waiter of [...this.idleWaiters]) waiter();
  }
}

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
 *   does. The report is built as the Node.js runtime builds it (aws-lambda-nodejs-runtime-
 *   interface-client, `src/Errors.js` `toRapidResponse`): for an Error, `name`, `message` and
 *   `stack` split into lines; for anything else, `typeof`, `toString()` and no trace. The runtime
 *   also writes that report to CloudWatch Logs, so every report is kept (`errorReports()`) for
 *   tests to scan, as CloudWatch would show it.
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
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { listen, readTextOrUndefined } from "../../lib/listen";

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

/** What the runtime reported for one failed invocation (and wrote to the function's log). */
export interface RuntimeErrorReport {
  requestId: string;
  name: string;
  errorType: string;
  errorMessage: string;
  trace: string[];
}

/** The Node.js runtime's error document for a thrown value (see the header comment). */
export function runtimeErrorReport(error: unknown): {
  errorType: string;
  errorMessage: string;
  trace: string[];
} {
  try {
    const e = error as { name?: unknown; message?: unknown; stack?: unknown };
    const isError =
      error instanceof Error ||
      (typeof e?.name === "string" &&
        typeof e.message === "string" &&
        typeof e.stack === "string" &&
        !!e.name);
    if (isError) {
      return {
        errorType: String(e.name),
        errorMessage: String(e.message),
        trace: typeof e.stack === "string" ? e.stack.split("\n") : [],
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    return {
      errorType: "handled",
      errorMessage:
        "callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack",
      trace: [],
    };
  }
}

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
const MAX_BODY_BYTES = 6 * 1024 * 1024; // Lambda's synchronous payload limit
const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations\/?$/;

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
    this.server = createServer((req, res) => void this.handle(req, res));
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

  // ---- HTTP -----------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = new URL(req.url ?? "/", "http://lambda.invalid").pathname;
      const match = INVOKE_PATH.exec(path);
      if (req.method !== "POST" || !match?.[1]) {
        await drain(req);
        return sendError(res, 404, "UnknownOperationException", `Unknown operation ${req.method} ${path}`);
      }
      let requested: string;
      try {
        requested = decodeURIComponent(match[1]);
      } catch {
        return sendError(res, 400, "InvalidParameterValueException", "FunctionName is not valid");
      }
      const body = await readBody(req);
      if (body === undefined) {
        return sendError(res, 413, "RequestTooLargeException", "Request must be smaller than 6291456 bytes");
      }
      const fn = this.functions.get(functionNameOf(requested));
      if (!fn) {
        return sendError(res, 404, "ResourceNotFoundException", `Function not found: ${requested}`);
      }
      let event: unknown = {};
      if (body.trim() !== "") {
        try {
          event = JSON.parse(body) as unknown;
        } catch {
          return sendError(
            res,
            400,
            "InvalidRequestContentException",
            "Could not parse request body into json",
          );
        }
      }
      const type = String(req.headers["x-amz-invocation-type"] ?? "RequestResponse");
      if (type === "DryRun") return send(res, 204, undefined);
      if (type !== "Event" && type !== "RequestResponse") {
        return sendError(res, 400, "InvalidParameterValueException", `Unsupported invocation type: ${type}`);
      }
      if (this.closed) return sendError(res, 503, "ServiceException", "local Lambda is closing");
      if (type === "Event") {
        void this.enqueue(fn, "Event", event);
        return send(res, 202, undefined);
      }
      const outcome = await this.enqueue(fn, "RequestResponse", event);
      if (outcome.ok) {
        return send(res, 200, JSON.stringify(outcome.result ?? null), {
          "X-Amz-Executed-Version": "$LATEST",
        });
      }
      return send(
        res,
        200,
        JSON.stringify({
          errorType: outcome.errorType,
          errorMessage: outcome.errorMessage,
          trace: outcome.trace ?? [],
        }),
        {
          "X-Amz-Executed-Version": "$LATEST",
          "X-Amz-Function-Error": "Unhandled",
        },
      );
    } catch {
      if (!res.headersSent)
        sendError(res, 500, "ServiceException", "local Lambda failed to handle the request");
    }
  }
}

const readBody = (req: IncomingMessage) => readTextOrUndefined(req, MAX_BODY_BYTES);

async function drain(req: IncomingMessage): Promise<void> {
  for await (const _ of req) {
    // discard
  }
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  send(res, status, JSON.stringify({ Type: "User", message }), { "x-amzn-errortype": type });
}

function send(
  res: ServerResponse,
  status: number,
  body: string | undefined,
  headers: Record<string, string> = {},
) {
  if (res.destroyed) return;
  res.writeHead(status, {
    ...headers,
    "x-amzn-RequestId": randomUUID(),
    ...(body === undefined ? { "content-length": "0" } : { "content-type": "application/json" }),
  });
  res.end(body);
}

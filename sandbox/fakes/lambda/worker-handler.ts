/**
 * A built handler bundle run on its own thread: one worker is one function container.
 *
 * Lambda runs each function instance in its own execution environment, with its own CPU
 * ("Lambda allocates CPU power in proportion to the amount of memory configured",
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html), never on the CPU of
 * the services it calls. In-process handlers share the sandbox's one event loop with every
 * stand-in, so at 1,000 groups a run's own work (signing, serializing, planning) queues behind the
 * stand-ins' and theirs behind it. A worker gives the handler a thread of its own, as a deployed
 * function has; the local Lambda still serializes invocations (reserved concurrency 1).
 *
 * - The bundle's handler factory is called once in the worker (handler-worker.mjs), so the
 *   container's dependencies are built once, as in a warm Lambda instance.
 * - The worker shares `process.env` with this thread (`SHARE_ENV`): the configuration the world
 *   applies reaches it as it reaches an in-process handler.
 * - Each invocation carries its deadline, so `getRemainingTimeInMillis` counts down the same way.
 * - A thrown Error comes back with its name, message and stack, which is all the runtime's error
 *   report reads (runtime-error.ts); anything else comes back as its type and text.
 * - The handler's stdout and stderr (its log lines and EMF metrics) are written to this process's,
 *   a line at a time, as CloudWatch Logs would receive them.
 */
import { SHARE_ENV, Worker } from "node:worker_threads";
import type { LambdaContext } from "./local-lambda";

/** A handler callable as the world calls one: the local Lambda passes a whole context, a direct call may pass less. */
export type ContainerHandler = (
  event: unknown,
  context?: Pick<LambdaContext, "getRemainingTimeInMillis"> & Partial<LambdaContext>,
) => Promise<unknown>;

export interface WorkerHandler {
  handler: ContainerHandler;
  /** Ends the container; invocations still running fail. */
  close(): Promise<void>;
}

/** An object's own name, message and stack, where they are strings (what the runtime's report reads). */
type ErrorFields = { name?: string; message?: string; stack?: string };
type Thrown =
  | { isError: true; name: string; message: string; stack?: string }
  | { isError: false; type: string; text: string; fields?: ErrorFields };
type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: Thrown };

/** With no context (a direct call), the handler gets Lambda's longest timeout. */
const DEFAULT_REMAINING_MS = 900_000;

/** The thrown value as the handler threw it, as far as the runtime's report can tell. */
function rethrown(error: Thrown): unknown {
  if (!error.isError) {
    if (error.type === "string") return error.text;
    if (error.type === "number") return Number(error.text);
    if (error.type === "boolean") return error.text === "true";
    if (error.type === "undefined") return undefined;
    return Object.assign(new ThrownValue(error.text), error.fields);
  }
  const e = new Error(error.message);
  e.name = error.name;
  e.stack = error.stack ?? `${error.name}: ${error.message}`;
  return e;
}

/**
 * A thrown object that is not an Error: its text, and the fields it had, so that runtime-error.ts
 * applies its own rule (an object with a name, message and stack is reported as an Error).
 */
class ThrownValue {
  constructor(private readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** Writes a stream's text to `write` one whole line at a time. */
function relayLines(stream: NodeJS.ReadableStream, write: (line: string) => void): void {
  let pending = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    pending += chunk;
    let newline = pending.indexOf("\n");
    while (newline >= 0) {
      write(pending.slice(0, newline + 1));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
  });
  stream.on("end", () => {
    if (pending !== "") write(pending);
  });
}

/** Starts a container for the bundle at `bundleUrl` (a file URL) whose handler `factory()` makes. */
export function startWorkerHandler(bundleUrl: string, factory: string): WorkerHandler {
  const worker = new Worker(new URL("./handler-worker.mjs", import.meta.url), {
    workerData: { bundle: bundleUrl, factory },
    env: SHARE_ENV,
    stdout: true,
    stderr: true,
  });
  // A forgotten close must not keep the process alive.
  worker.unref();
  relayLines(worker.stdout, (line) => process.stdout.write(line));
  relayLines(worker.stderr, (line) => process.stderr.write(line));
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: unknown): void }>();
  let nextId = 0;
  let gone: Error | undefined;
  const failAll = (error: Error) => {
    gone ??= error;
    for (const p of pending.values()) p.reject(error);
    pending.clear();
  };
  worker.on("message", (reply: Reply) => {
    const p = pending.get(reply.id);
    if (!p) return;
    pending.delete(reply.id);
    if (reply.ok) p.resolve(reply.result);
    else p.reject(rethrown(reply.error));
  });
  worker.on("error", (error) => failAll(new Error(`handler container failed: ${error.message}`)));
  worker.on("exit", (code) => failAll(new Error(`handler container exited (code ${code})`)));

  return {
    handler: (event, context) => {
      if (gone) return Promise.reject(gone);
      nextId += 1;
      const id = nextId;
      const remaining = context?.getRemainingTimeInMillis() ?? DEFAULT_REMAINING_MS;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({
          id,
          event,
          deadline: Date.now() + remaining,
          functionName: context?.functionName ?? factory,
          awsRequestId: context?.awsRequestId ?? `worker-${id}`,
        });
      });
    },
    close: async () => {
      failAll(new Error("handler container exited (closed)"));
      await worker.terminate();
    },
  };
}

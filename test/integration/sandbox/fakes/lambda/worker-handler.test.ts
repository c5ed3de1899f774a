/**
 * A bundle's handler in a container of its own (a worker thread): called like an in-process handler,
 * it answers the same, throws what the runtime's error report needs, counts its remaining time down
 * from the invocation's deadline, reads the configuration the world applies, and builds its
 * dependencies once per container.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { runtimeErrorReport } from "../../../../../sandbox/fakes/lambda/runtime-error";
import { startWorkerHandler, type WorkerHandler } from "../../../../../sandbox/fakes/lambda/worker-handler";

// A stand-in bundle: plain ESM exporting a handler factory, as dist/<function>/index.mjs does.
const dir = mkdtempSync(join(tmpdir(), "worker-handler-"));
const bundle = join(dir, "index.mjs");
writeFileSync(
  bundle,
  `
import { threadId } from "node:worker_threads";
let containers = 0;
export function createHandler() {
  containers += 1;
  let runs = 0;
  return async (event, context) => {
    runs += 1;
    if (event.throw === "error") { const e = new Error("it broke"); e.name = "BrokeError"; throw e; }
    if (event.throw === "string") throw "a plain string";
    if (event.throw === "object") throw { code: 7 };
    if (event.throw === "error-like") throw { name: "OddError", message: "odd", stack: "OddError: odd\\n    at elsewhere" };
    if (event.log) console.log(JSON.stringify({ message: event.log }));
    return {
      echo: event,
      runs,
      containers,
      threadId,
      remaining: context.getRemainingTimeInMillis(),
      requestId: context.awsRequestId,
      setting: process.env.WORKER_HANDLER_TEST_SETTING ?? null,
    };
  };
}
`,
);

const started: WorkerHandler[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((w) => w.close()));
  delete process.env.WORKER_HANDLER_TEST_SETTING;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function start(): WorkerHandler {
  const w = startWorkerHandler(pathToFileURL(bundle).href, "createHandler");
  started.push(w);
  return w;
}

const context = (remainingMs: number, awsRequestId = "req-1") => ({
  getRemainingTimeInMillis: () => remainingMs,
  functionName: "reconcile",
  awsRequestId,
});

describe("sandbox/fakes/lambda/worker-handler", () => {
  it("runs the handler on another thread, one container: the factory once, its state kept between runs", async () => {
    const { handler } = start();
    const first = (await handler({ n: 1 }, context(60_000))) as Record<string, unknown>;
    const second = (await handler({ n: 2 }, context(60_000, "req-2"))) as Record<string, unknown>;
    expect(first).toMatchObject({ echo: { n: 1 }, runs: 1, containers: 1, requestId: "req-1" });
    expect(second).toMatchObject({ echo: { n: 2 }, runs: 2, containers: 1, requestId: "req-2" });
    expect(first.threadId).not.toBe(0);
  });

  it("counts the remaining time down from the invocation's deadline", async () => {
    const { handler } = start();
    const out = (await handler({}, context(5_000))) as { remaining: number };
    expect(out.remaining).toBeLessThanOrEqual(5_000);
    expect(out.remaining).toBeGreaterThan(0);
  });

  it("reads the configuration applied to process.env, also after the container started", async () => {
    const { handler } = start();
    expect(((await handler({}, context(1_000))) as { setting: unknown }).setting).toBeNull();
    process.env.WORKER_HANDLER_TEST_SETTING = "applied";
    expect(((await handler({}, context(1_000))) as { setting: unknown }).setting).toBe("applied");
  });

  it("throws what the runtime reports: an Error's name, message and stack; other values by type and text", async () => {
    const { handler } = start();
    const error = await handler({ throw: "error" }, context(1_000)).catch((e: unknown) => e);
    const report = runtimeErrorReport(error);
    expect(report.errorType).toBe("BrokeError");
    expect(report.errorMessage).toBe("it broke");
    expect(report.trace[0]).toBe("BrokeError: it broke");
    expect(report.trace.some((line) => line.includes("index.mjs"))).toBe(true);
    const text = await handler({ throw: "string" }, context(1_000)).catch((e: unknown) => e);
    expect(runtimeErrorReport(text)).toEqual({
      errorType: "string",
      errorMessage: "a plain string",
      trace: [],
    });
    const object = await handler({ throw: "object" }, context(1_000)).catch((e: unknown) => e);
    expect(runtimeErrorReport(object)).toEqual({
      errorType: "object",
      errorMessage: "[object Object]",
      trace: [],
    });
    // Not an Error, but with a name, message and stack: the runtime reports it as one, in-process or not.
    const errorLike = await handler({ throw: "error-like" }, context(1_000)).catch((e: unknown) => e);
    expect(runtimeErrorReport(errorLike)).toEqual(
      runtimeErrorReport({ name: "OddError", message: "odd", stack: "OddError: odd\n    at elsewhere" }),
    );
    expect(runtimeErrorReport(errorLike).errorType).toBe("OddError");
  });

  it("writes the handler's log lines to this process's stdout, a whole line at a time", async () => {
    const { handler } = start();
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stdout.write;
    try {
      await handler({ log: "hello" }, context(1_000));
      const deadline = Date.now() + 5_000;
      while (!lines.some((l) => l.includes("hello")) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 10));
    } finally {
      process.stdout.write = write;
    }
    expect(lines.filter((l) => l.includes("hello"))).toEqual(['{"message":"hello"}\n']);
  });

  it("fails its invocations once the container is closed", async () => {
    const w = start();
    await w.close();
    await expect(w.handler({}, context(1_000))).rejects.toThrow(/handler container exited/);
  });
});

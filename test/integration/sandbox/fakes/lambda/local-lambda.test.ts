/**
 * The local Lambda endpoint, driven through the real `@aws-sdk/client-lambda` client over loopback
 * HTTP, the way rotate-token's async invoke and the world's rotation driver use it.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { InvokeCommand, LambdaClient, ResourceNotFoundException } from "@aws-sdk/client-lambda";
import { afterEach, describe, expect, it } from "vitest";
import {
  type LambdaContext,
  type LocalLambda,
  type LocalLambdaOptions,
  startLocalLambda,
} from "../../../../../sandbox/fakes/lambda/local-lambda";

const credentials = { accessKeyId: "test", secretAccessKey: "test" };
const started: LocalLambda[] = [];
const clients: LambdaClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await Promise.all(started.splice(0).map((lambda) => lambda.close()));
});

async function start(options: LocalLambdaOptions): Promise<{ lambda: LocalLambda; client: LambdaClient }> {
  const lambda = await startLocalLambda(options);
  started.push(lambda);
  const client = new LambdaClient({ region: "us-east-1", endpoint: lambda.url, credentials, maxAttempts: 1 });
  clients.push(client);
  return { lambda, client };
}

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const decode = (payload: Uint8Array | undefined) =>
  payload === undefined || payload.length === 0
    ? undefined
    : (JSON.parse(new TextDecoder().decode(payload)) as unknown);

/** A handler that records how many of its runs overlap. */
function tracked(ms: number) {
  const state = { active: 0, maxActive: 0, events: [] as unknown[] };
  const handler = async (event: unknown) => {
    state.active += 1;
    state.maxActive = Math.max(state.maxActive, state.active);
    state.events.push(event);
    await sleep(ms);
    state.active -= 1;
    return { seen: event };
  };
  return { state, handler };
}

describe("local Lambda endpoint", () => {
  it("answers RequestResponse with the handler's JSON result and a Lambda context", async () => {
    let context: LambdaContext | undefined;
    const { client, lambda } = await start({
      functions: {
        echo: {
          timeoutMs: 30_000,
          handler: async (event, ctx) => {
            context = ctx;
            return { echoed: event, remaining: ctx.getRemainingTimeInMillis() };
          },
        },
      },
    });
    const out = await client.send(
      new InvokeCommand({
        FunctionName: "echo",
        InvocationType: "RequestResponse",
        Payload: encode({ a: 1 }),
      }),
    );
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBeUndefined();
    const result = decode(out.Payload) as { echoed: unknown; remaining: number };
    expect(result.echoed).toEqual({ a: 1 });
    expect(result.remaining).toBeGreaterThan(29_000);
    expect(result.remaining).toBeLessThanOrEqual(30_000);
    expect(context?.functionName).toBe("echo");
    const [record] = lambda.invocations();
    expect(record).toMatchObject({ name: "echo", invocationType: "RequestResponse", ok: true });
    expect(record?.endedAt?.getTime()).toBeGreaterThanOrEqual(record?.startedAt?.getTime() ?? Number.NaN);
  });

  it("accepts Event invocations with 202 and runs the handler later", async () => {
    const { state, handler } = tracked(100);
    const { client, lambda } = await start({ functions: { worker: handler } });
    const out = await client.send(
      new InvokeCommand({ FunctionName: "worker", InvocationType: "Event", Payload: encode({ n: 1 }) }),
    );
    expect(out.StatusCode).toBe(202);
    expect(lambda.isIdle()).toBe(false);
    await lambda.idle(5_000);
    expect(state.events).toEqual([{ n: 1 }]);
    expect(lambda.invocations()).toMatchObject([{ name: "worker", invocationType: "Event", ok: true }]);
  });

  it("resolves function ARNs, partial ARNs and qualified names to the function", async () => {
    const { client } = await start({ functions: { reconcile: async () => "ok" } });
    for (const FunctionName of [
      "arn:aws:lambda:us-east-1:123456789012:function:reconcile",
      "arn:aws:lambda:us-east-1:123456789012:function:reconcile:$LATEST",
      "123456789012:function:reconcile",
      "reconcile:live",
    ]) {
      const out = await client.send(new InvokeCommand({ FunctionName }));
      expect(decode(out.Payload)).toBe("ok");
    }
  });

  it("answers an unknown function with ResourceNotFoundException", async () => {
    const { client } = await start({ functions: {} });
    const failure = await client.send(new InvokeCommand({ FunctionName: "nope" })).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ResourceNotFoundException);
    expect((failure as Error).message).toBe("Function not found: nope");
    expect((failure as { $metadata: { httpStatusCode?: number } }).$metadata.httpStatusCode).toBe(404);
  });

  it("reports a throwing handler as an Unhandled function error", async () => {
    class StepError extends Error {
      override name = "StepError";
    }
    const { client, lambda } = await start({
      functions: {
        broken: async () => {
          throw new StepError("step failed: HTTP 502");
        },
      },
    });
    const out = await client.send(new InvokeCommand({ FunctionName: "broken" }));
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBe("Unhandled");
    // As the Node.js runtime reports it: name, message, and the stack split into lines.
    const payload = decode(out.Payload) as { errorType: string; errorMessage: string; trace: string[] };
    expect(payload).toMatchObject({ errorType: "StepError", errorMessage: "step failed: HTTP 502" });
    expect(payload.trace[0]).toBe("StepError: step failed: HTTP 502");
    expect(payload.trace.length).toBeGreaterThan(1);
    expect(lambda.invocations()).toMatchObject([{ ok: false, errorName: "StepError" }]);
    // The in-process API reports the same outcome without throwing.
    await expect(lambda.invoke("broken", {})).resolves.toMatchObject({
      ok: false,
      errorType: "StepError",
      errorMessage: "step failed: HTTP 502",
    });
    // Every report is kept, as CloudWatch would keep it.
    expect(lambda.errorReports()).toHaveLength(2);
    expect(lambda.errorReports()[0]).toMatchObject({ name: "broken", errorType: "StepError" });
  });

  it("reports a thrown non-Error as the runtime does: its type, its text, no trace", async () => {
    const { client } = await start({
      functions: {
        stringly: async () => {
          throw "plain text failure";
        },
      },
    });
    const out = await client.send(new InvokeCommand({ FunctionName: "stringly" }));
    expect(decode(out.Payload)).toEqual({
      errorType: "string",
      errorMessage: "plain text failure",
      trace: [],
    });
  });

  it("serializes invocations of one function, but not of different functions", async () => {
    const a = tracked(60);
    const b = tracked(60);
    const { client, lambda } = await start({ functions: { a: a.handler, b: b.handler } });
    const t0 = Date.now();
    await Promise.all([
      ...[1, 2, 3].map((n) =>
        client.send(
          new InvokeCommand({ FunctionName: "a", InvocationType: "Event", Payload: encode({ n }) }),
        ),
      ),
      client.send(new InvokeCommand({ FunctionName: "a", Payload: encode({ n: 4 }) })),
      lambda.invokeAsync("a", { n: 5 }),
      client.send(
        new InvokeCommand({ FunctionName: "b", InvocationType: "Event", Payload: encode({ n: 1 }) }),
      ),
      client.send(
        new InvokeCommand({ FunctionName: "b", InvocationType: "Event", Payload: encode({ n: 2 }) }),
      ),
    ]);
    await lambda.idle(10_000);
    expect(a.state.events).toHaveLength(5);
    expect(a.state.maxActive).toBe(1);
    expect(b.state.maxActive).toBe(1);
    const records = lambda.invocations();
    const runsOfA = records
      .filter((r) => r.name === "a")
      .sort((x, y) => (x.startedAt?.getTime() ?? 0) - (y.startedAt?.getTime() ?? 0));
    for (let i = 1; i < runsOfA.length; i++) {
      expect(runsOfA[i]?.startedAt?.getTime()).toBeGreaterThanOrEqual(
        runsOfA[i - 1]?.endedAt?.getTime() ?? Number.NaN,
      );
    }
    // a's five runs take ~300 ms in a row; b's two ran alongside them.
    const lastB = Math.max(...records.filter((r) => r.name === "b").map((r) => r.endedAt?.getTime() ?? 0));
    const lastA = Math.max(...runsOfA.map((r) => r.endedAt?.getTime() ?? 0));
    expect(lastA - t0).toBeGreaterThanOrEqual(5 * 60 - 10);
    expect(lastB).toBeLessThan(lastA);
  });

  it("times an invocation out at the function's timeout without letting the next one overlap it", async () => {
    const slow = tracked(300);
    const seen: number[] = [];
    const { client, lambda } = await start({
      functions: {
        slow: {
          timeoutMs: 100,
          handler: async (event, ctx) => {
            seen.push(ctx.getRemainingTimeInMillis());
            return slow.handler(event);
          },
        },
      },
    });
    const out = await client.send(new InvokeCommand({ FunctionName: "slow" }));
    expect(out.FunctionError).toBe("Unhandled");
    expect(decode(out.Payload)).toEqual({
      errorType: "Sandbox.Timedout",
      errorMessage: "Task timed out after 0.10 seconds",
      trace: [],
    });
    await lambda.invokeAsync("slow", {});
    await lambda.idle(5_000);
    expect(slow.state.maxActive).toBe(1);
    expect(seen.every((ms) => ms <= 100 && ms > 50)).toBe(true);
    expect(lambda.invocations().map((r) => r.errorName)).toEqual(["Sandbox.Timedout", "Sandbox.Timedout"]);
  });

  it("calls onInvoke on every phase and idle() is bounded", async () => {
    const phases: string[] = [];
    const { lambda } = await start({
      functions: { hang: () => new Promise(() => {}), quick: async () => 1 },
      onInvoke: (record, phase) => phases.push(`${record.name}:${phase}`),
    });
    await lambda.invoke("quick", {});
    expect(phases).toEqual(["quick:queued", "quick:started", "quick:ended"]);
    await lambda.invokeAsync("hang", {});
    await expect(lambda.idle(100)).rejects.toThrow(/not idle after 100 ms: hang \(running, 0 queued\)/);
    await expect(lambda.invokeAsync("missing", {})).rejects.toThrow("Function not found: missing");
    await lambda.close(50);
  });

  it("is reachable through AWS_ENDPOINT_URL_LAMBDA, as rotate-token's async invoke uses it", async () => {
    const received: unknown[] = [];
    const { lambda } = await start({
      functions: {
        reconcile: async (event) => {
          received.push(event);
        },
      },
    });
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_LAMBDA: lambda.url,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
    });
    try {
      const { InvokeCommand, LambdaClient } = await import("@aws-sdk/client-lambda");
      const client = new LambdaClient({ region: "us-east-1" });
      await client.send(
        new InvokeCommand({
          FunctionName: "reconcile",
          InvocationType: "Event",
          Payload: new TextEncoder().encode(JSON.stringify({ source: "rotate-token", versionId: "v1" })),
        }),
      );
      client.destroy();
      await lambda.idle(5_000);
      expect(received).toEqual([{ source: "rotate-token", versionId: "v1" }]);
    } finally {
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    }
  });

  it("stops listening on close and drops what was still queued", async () => {
    const { lambda, client } = await start({ functions: { slow: tracked(100).handler } });
    await lambda.invokeAsync("slow", { n: 1 });
    await lambda.invokeAsync("slow", { n: 2 });
    await lambda.close();
    await lambda.close(); // idempotent
    expect(lambda.invocations().map((r) => [r.ok, r.errorName])).toEqual([
      [true, undefined],
      [false, "Sandbox.Dropped"],
    ]);
    await expect(client.send(new InvokeCommand({ FunctionName: "slow" }))).rejects.toThrow(/ECONNREFUSED/);
  });

  it("waits the modelled per-invocation overhead before each handler start and records the waits", async () => {
    const starts: number[] = [];
    const { lambda } = await start({
      overheadMs: 60,
      functions: {
        fn: async () => {
          starts.push(Date.now());
        },
      },
    });
    const queuedAt = Date.now();
    await Promise.all([lambda.invoke("fn", {}), lambda.invoke("fn", {})]);
    expect(starts).toHaveLength(2);
    // Each start pays the overhead, and the second also waits behind the first (serialized).
    expect((starts[0] ?? 0) - queuedAt).toBeGreaterThanOrEqual(55);
    expect((starts[1] ?? 0) - (starts[0] ?? 0)).toBeGreaterThanOrEqual(55);
    const waits = lambda.waits("fn");
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBeGreaterThanOrEqual(55);
    expect(waits[1]).toBeGreaterThanOrEqual(115);
    expect(lambda.waits("other")).toEqual([]);
  });

  it("starts handlers at once without overhead, and refuses a negative one", async () => {
    const { lambda } = await start({ functions: { fn: async () => "ok" } });
    await lambda.invoke("fn", {});
    expect(lambda.waits()[0]).toBeLessThan(50);
    // Changed at run time, it applies to the next start.
    lambda.setOverheadMs(80);
    await lambda.invoke("fn", {});
    expect(lambda.waits()[1]).toBeGreaterThanOrEqual(75);
    expect(() => lambda.setOverheadMs(Number.NaN)).toThrow(/overheadMs/);
    await expect(startLocalLambda({ overheadMs: -1, functions: {} })).rejects.toThrow(/overheadMs/);
  });
});

import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createLambdaHandler, type FunctionDefinition } from "../../../../../shared/lib/lambda/handler";
import { registerSecret } from "../../../../../shared/lib/log";
import { captureOutput } from "../../../../support/capture-output";

const output = captureOutput();
afterEach(() => {
  output.lines.length = 0;
});
afterAll(() => output.restore());

const SECRET = "bkct_wrapperunit00000000000000000000001";
registerSecret(SECRET);

const lines = () => output.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
const deadlineIn = (ms: number) => {
  const started = Date.now();
  return { getRemainingTimeInMillis: () => ms - (Date.now() - started) };
};

function definition(
  overrides: Partial<FunctionDefinition<{ id: number }, string>> = {},
): FunctionDefinition<{ id: number }, string> & { builds: number } {
  const def: FunctionDefinition<{ id: number }, string> & { builds: number } = {
    builds: 0,
    service: "unit-fn",
    timeoutMarginMs: 1_000,
    failureMessage: "unit-fn failed",
    build(): { id: number } {
      def.builds++;
      return { id: def.builds };
    },
    run: async (_event: unknown, deps: { id: number }) => `deps#${deps.id}`,
    onTimeout: () => "timeout-answer",
    ...overrides,
  };
  return def;
}

describe("createLambdaHandler", () => {
  it("builds dependencies once per handler (container), and a new handler builds its own", async () => {
    const def = definition();
    const handler = createLambdaHandler(def);
    expect(await handler({})).toBe("deps#1");
    expect(await handler({})).toBe("deps#1");
    expect(await createLambdaHandler(def)({})).toBe("deps#2");
    expect(def.builds).toBe(2);
  });

  it("retries a build that failed instead of caching the failure", async () => {
    let attempts = 0;
    const handler = createLambdaHandler(
      definition({
        build: () => {
          attempts++;
          if (attempts === 1) throw new Error("transient");
          return { id: attempts };
        },
      }),
    );
    await expect(handler({})).rejects.toThrow("transient");
    expect(await handler({})).toBe("deps#2");
  });

  it("logs with awsRequestId and function name, and flushes metrics when the invocation ends", async () => {
    const handler = createLambdaHandler(
      definition({
        run: async (_e, _d, invocation) => {
          invocation.metrics.put("Things", 3, "Count");
          // Buffered: nothing written yet while the run is in progress.
          expect(output.lines.some((l) => l.includes('"Things"'))).toBe(false);
          invocation.logger.info("working");
          return "ok";
        },
      }),
    );
    await handler({}, { awsRequestId: "req-1", functionName: "stack-Fn-1", ...deadlineIn(30_000) });
    const [log, metric] = lines();
    expect(log).toMatchObject({ message: "working", awsRequestId: "req-1", functionName: "stack-Fn-1" });
    expect(metric).toMatchObject({ Things: 3, Service: "unit-fn" });
  });

  it("logs and rethrows a sanitised error: token redacted, same name, no cause; metrics still flushed", async () => {
    const handler = createLambdaHandler(
      definition({
        run: async (_e, _d, invocation) => {
          invocation.metrics.put("Attempts", 1, "Count");
          const error = new TypeError(`bad response containing ${SECRET}`, { cause: { raw: SECRET } });
          throw error;
        },
      }),
    );
    const error = (await handler({}).catch((e: unknown) => e)) as Error;
    expect(error.name).toBe("TypeError");
    expect(error.message).toContain("[REDACTED]");
    expect(`${error.message}${error.stack}`).not.toContain(SECRET);
    expect(error.cause).toBeUndefined();
    expect(output.text()).not.toContain(SECRET);
    expect(lines().map((l) => l.message ?? l.Attempts)).toEqual(["unit-fn failed", 1]);
  });

  it("at the early-timeout margin, returns what the run answers once its signal is aborted", async () => {
    const handler = createLambdaHandler(
      definition({
        run: (_e, _d, invocation) =>
          new Promise((resolve) => {
            invocation.signal.addEventListener("abort", () => resolve("partial summary"));
          }),
      }),
    );
    const started = Date.now();
    expect(await handler({}, deadlineIn(1_300))).toBe("partial summary");
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("returns onTimeout's answer (not middy's TimeoutError) when the run does not answer in the grace", async () => {
    const handler = createLambdaHandler(definition({ run: () => new Promise(() => {}) }));
    const started = Date.now();
    expect(await handler({}, deadlineIn(1_500))).toBe("timeout-answer");
    // Aborted at 0.5 s, answered 1 s (the final reserve) before the deadline.
    expect(Date.now() - started).toBeLessThan(1_300);
  });

  it("arms no timer for a direct call without a deadline, and uses the direct-call budget when given", async () => {
    const remaining: number[] = [];
    const run: FunctionDefinition<{ id: number }, string>["run"] = async (_e, _d, invocation) => {
      remaining.push(invocation.remainingMs());
      return invocation.signal.aborted ? "aborted" : "ran";
    };
    expect(await createLambdaHandler(definition({ run }))({})).toBe("ran");
    expect(await createLambdaHandler(definition({ run, directCallBudgetMs: 60_000 }))({})).toBe("ran");
    expect(remaining[0]).toBe(Number.POSITIVE_INFINITY);
    expect(remaining[1]).toBeGreaterThan(59_000);
    expect(remaining[1]).toBeLessThanOrEqual(60_000);
  });
});

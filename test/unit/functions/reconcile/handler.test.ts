import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { captureOutput } from "../../../support/capture-output";

/**
 * The handler parses its event before anything else: a malformed event fails with an InputError
 * before configuration is even read, so nothing can be observed or written. (This environment
 * has no configuration at all: a run that got past parsing would fail with a ConfigError.)
 */
const output = captureOutput();
const saved = { ...process.env };
let handler: (event: unknown) => Promise<unknown>;

beforeAll(async () => {
  for (const key of Object.keys(process.env))
    if (/^(ROTATION_|TARGET_|BUILDKITE_)/.test(key)) delete process.env[key];
  ({ handler } = await import("../../../../functions/reconcile/handler"));
});
afterAll(() => {
  output.restore();
  process.env = saved;
});

describe("reconcile handler", () => {
  it.each([
    undefined,
    null,
    [],
    {},
    { source: "aws.autoscaling", "detail-type": "EC2 Auto Scaling Instance Refresh Failed", detail: "x" },
  ])("refuses %j with an InputError before reading any configuration", async (event) => {
    await expect(handler(event)).rejects.toMatchObject({ name: "InputError" });
  });

  it("gets past parsing for the documented manual form (and then needs its configuration)", async () => {
    await expect(handler({ source: "manual" })).rejects.toMatchObject({ name: "ConfigError" });
  });
});

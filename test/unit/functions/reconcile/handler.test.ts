import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createReconcileHandler } from "../../../../functions/reconcile/handler";
import { captureOutput } from "../../../support/capture-output";

/**
 * The handler parses its event before anything else: a malformed event fails with an InputError
 * before configuration is even read, so nothing can be observed or written. (This environment
 * has no configuration at all: a run that got past parsing would fail with a ConfigError.)
 *
 * SQS batches (the event source mapping of the FIFO queue): malformed records are refused on their
 * own and counted; records that need no run (a refresh start, a group that is not a target) cost no
 * AWS call. No test here reaches the network: every batch below ends before reconcile is called
 * (the runs themselves are exercised against moto in test/integration).
 */
const output = captureOutput();
const saved = { ...process.env };
let handler: (event: unknown) => Promise<unknown>;

const CONFIGURED = {
  ROTATION_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbC123",
  BUILDKITE_ORGANIZATION: "acme",
  BUILDKITE_CLUSTER_ID: "e4f44564-d3ea-45eb-87c2-6506643b852a",
  BUILDKITE_API_TOKEN_SECRET_ARN:
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/api-token-XyZ789",
  TARGET_GROUPS: "us-east-1:ci-a",
  TARGET_STACKS: "us-east-1:buildkite",
};

const refresh = (kind: string, group: string) =>
  JSON.stringify({
    version: "0",
    id: "12345678-1234-1234-1234-123456789012",
    "detail-type": `EC2 Auto Scaling Instance Refresh ${kind}`,
    source: "aws.autoscaling",
    account: "123456789012",
    time: "2026-12-01T10:00:00Z",
    region: "us-east-1",
    resources: [],
    detail: { InstanceRefreshId: "r-1", AutoScalingGroupName: group },
  });
const sqsBatch = (...bodies: string[]) => ({
  Records: bodies.map((body, i) => ({
    messageId: `00000000-0000-4000-8000-00000000000${i}`,
    receiptHandle: "AQEB...",
    body,
    attributes: { ApproximateReceiveCount: "1", MessageGroupId: "reconcile" },
    messageAttributes: {},
    eventSource: "aws:sqs",
    eventSourceARN: "arn:aws:sqs:us-east-1:123456789012:q.fifo",
    awsRegion: "us-east-1",
  })),
});

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
    { Records: [] },
    { Records: [{ eventSource: "aws:sqs" }] },
  ])("refuses %j with an InputError before reading any configuration", async (event) => {
    await expect(handler(event)).rejects.toMatchObject({ name: "InputError" });
  });

  it("gets past parsing for the documented manual form (and then needs its configuration)", async () => {
    await expect(handler({ source: "manual" })).rejects.toMatchObject({ name: "ConfigError" });
    await expect(handler(sqsBatch('{"source":"manual"}'))).rejects.toMatchObject({ name: "ConfigError" });
  });

  it("refuses malformed records of a batch without their content, counts them, and runs nothing for the rest when none needs a run", async () => {
    const configured = createReconcileHandler(CONFIGURED);
    const mark = output.lines.length;
    const secretLooking = "bkct_0123456789abcdefABCDEF0123456789abcdef";
    const result = await configured(
      sqsBatch(
        refresh("Succeeded", "someone-elses-group"),
        `{"source":"manual","reason":"${secretLooking}`,
        refresh("Started", "ci-a"),
        JSON.stringify({ source: "rotate-token", versionId: secretLooking }),
      ),
    );
    expect(result).toEqual({ trigger: "instance-refresh", triggers: 2, refused: 2, skipped: true });
    const lines = output.lines.slice(mark).join("\n");
    expect(lines).toContain("refused a malformed trigger; it is not retried");
    expect(lines).toContain("00000000-0000-4000-8000-000000000001");
    expect(lines).toContain("body-not-json");
    expect(lines).toContain("not-a-trigger");
    expect(lines).not.toContain(secretLooking);
    const metric = output.lines
      .slice(mark)
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      })
      .find((m) => m && "RefusedTriggers" in m);
    expect(metric?.RefusedTriggers).toBe(2);
  });

  it("drops non-target refresh records before any AWS call, and a batch of them is skipped", async () => {
    const configured = createReconcileHandler(CONFIGURED);
    const result = await configured(
      sqsBatch(refresh("Succeeded", "other"), refresh("Failed", "buildkite-other-AgentAutoScaleGroup-1")),
    );
    expect(result).toEqual({ trigger: "instance-refresh", triggers: 2, refused: 0, skipped: true });
  });

  it("a batch of only malformed records runs nothing", async () => {
    const configured = createReconcileHandler(CONFIGURED);
    expect(await configured(sqsBatch("[]", "null"))).toEqual({
      trigger: "none",
      triggers: 0,
      refused: 2,
      skipped: true,
    });
  });

  it("still accepts one bare trigger (a direct call is one trigger)", async () => {
    const configured = createReconcileHandler(CONFIGURED);
    expect(await configured(JSON.parse(refresh("Started", "ci-a")))).toEqual({
      trigger: "instance-refresh",
      triggers: 1,
      refused: 0,
      skipped: true,
    });
  });
});

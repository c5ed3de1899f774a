import { describe, expect, it } from "vitest";
import {
  isSqsBatch,
  MAX_BODY_CHARS,
  MAX_RECORDS,
  parseInvocation,
} from "../../../../functions/reconcile/batch";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/agent-token-AbC123";

/** One record as the event source mapping delivers it from a FIFO queue (with-sqs.html, FIFO example). */
const record = (body: string, messageId = "11d6ee51-4cc7-4302-9e22-7cd8afdaadf5") => ({
  messageId,
  receiptHandle: "AQEBBX8nesZEXmkhsmZeyIE8iQAMig7qw...",
  body,
  attributes: {
    ApproximateReceiveCount: "1",
    SentTimestamp: "1573251510774",
    SequenceNumber: "18849496460467696128",
    MessageGroupId: "reconcile",
    SenderId: "AIDAIO23YVJENQZJOL4VO",
    MessageDeduplicationId: "1",
    ApproximateFirstReceiveTimestamp: "1573251510774",
  },
  messageAttributes: {},
  md5OfBody: "e4e68fb7bd0e697a0ae8f1bb342846b3",
  eventSource: "aws:sqs",
  eventSourceARN: "arn:aws:sqs:us-east-1:123456789012:bk-rotation-ReconcileQueue-AbC123.fifo",
  awsRegion: "us-east-1",
});
const batch = (...bodies: string[]) => ({ Records: bodies.map((b, i) => record(b, `m-${i}`)) });

const refreshSucceeded = (group: string, time = "2026-12-01T10:00:00Z") =>
  JSON.stringify({
    version: "0",
    id: "12345678-1234-1234-1234-123456789012",
    "detail-type": "EC2 Auto Scaling Instance Refresh Succeeded",
    source: "aws.autoscaling",
    account: "123456789012",
    time,
    region: "us-east-1",
    resources: [],
    detail: { InstanceRefreshId: "r-1", AutoScalingGroupName: group },
  });
const schedule = JSON.stringify({
  version: "0",
  id: "89d1a02d-5ec7-412e-82f5-13505f849b41",
  "detail-type": "Scheduled Event",
  source: "aws.events",
  account: "123456789012",
  time: "2026-12-01T10:10:00Z",
  region: "us-east-1",
  resources: ["arn:aws:events:us-east-1:123456789012:rule/bk-rotation-ReconcileScheduleRule-1"],
  detail: {},
});
const rotation = JSON.stringify({
  source: "rotate-token",
  secretArn: ARN,
  versionId: "v3",
  time: "2026-12-01T09:59:59.123Z",
});

describe("parseInvocation", () => {
  it("parses every record of a good batch in order, with each envelope's time", () => {
    const parsed = parseInvocation(batch(rotation, refreshSucceeded("ci"), schedule, '{"source":"manual"}'));
    expect(parsed.refused).toEqual([]);
    expect(parsed.triggers).toEqual([
      { kind: "rotation", versionId: "v3", at: new Date("2026-12-01T09:59:59.123Z") },
      {
        kind: "instance-refresh",
        region: "us-east-1",
        group: "ci",
        refreshId: "r-1",
        event: "Succeeded",
        at: new Date("2026-12-01T10:00:00Z"),
      },
      { kind: "schedule", at: new Date("2026-12-01T10:10:00Z") },
      { kind: "manual", reason: undefined, at: undefined },
    ]);
  });

  it("refuses a malformed record on its own, by id and reason, and keeps the rest", () => {
    const parsed = parseInvocation(
      batch(schedule, "{not json", '{"source":"someone.else"}', refreshSucceeded("ci")),
    );
    expect(parsed.triggers.map((t) => t.kind)).toEqual(["schedule", "instance-refresh"]);
    expect(parsed.refused).toEqual([
      { messageId: "m-1", reason: "body-not-json" },
      { messageId: "m-2", reason: "not-a-trigger" },
    ]);
  });

  it("keeps every record's receipt handle and receive count, refused ones included (a failed run retries the whole batch)", () => {
    const second = { ...record("{"), attributes: { ApproximateReceiveCount: "3" }, receiptHandle: "h-2" };
    const parsed = parseInvocation({
      Records: [record(schedule), second, { ...record(schedule), attributes: {} }],
    });
    expect(parsed.received.map((r) => r.receiveCount)).toEqual([1, 3, 1]);
    expect(parsed.received[1]?.receiptHandle).toBe("h-2");
  });

  it("refuses an oversized body without parsing it", () => {
    const padded = JSON.stringify({ source: "manual", reason: "x".repeat(MAX_BODY_CHARS) });
    const parsed = parseInvocation(batch(padded, '{"source":"manual"}'));
    expect(parsed.refused).toEqual([{ messageId: "m-0", reason: "body-too-large" }]);
    expect(parsed.triggers).toHaveLength(1);
    // Just under the cap is accepted.
    const event = JSON.parse(schedule) as Record<string, unknown>;
    const fits = JSON.stringify({ ...event, resources: ["x".repeat(MAX_BODY_CHARS - schedule.length - 10)] });
    expect(fits.length).toBeLessThanOrEqual(MAX_BODY_CHARS);
    expect(parseInvocation(batch(fits)).refused).toEqual([]);
  });

  it("refuses a record whose time is not an ISO-8601 UTC time (coalescing relies on it)", () => {
    const parsed = parseInvocation(batch(refreshSucceeded("ci", "yesterday")));
    expect(parsed).toEqual({
      triggers: [],
      refused: [{ messageId: "m-0", reason: "not-a-trigger" }],
      received: [{ receiptHandle: "AQEBBX8nesZEXmkhsmZeyIE8iQAMig7qw...", receiveCount: 1 }],
    });
  });

  it("never echoes a message id that is not an id", () => {
    const parsed = parseInvocation({ Records: [record("{", "tok en=secret value")] });
    expect(parsed.refused).toEqual([{ messageId: "Records[0]", reason: "body-not-json" }]);
  });

  it("accepts one bare trigger (tests, the CLI) and still refuses a malformed one with an InputError", () => {
    expect(parseInvocation({ source: "manual", reason: "by hand" })).toEqual({
      triggers: [{ kind: "manual", reason: "by hand", at: undefined }],
      refused: [],
      received: [],
    });
    expect(() => parseInvocation({ source: "nope" })).toThrow(
      expect.objectContaining({ name: "InputError" }),
    );
    expect(isSqsBatch({ source: "manual" })).toBe(false);
  });

  it.each([
    ["no records", { Records: [] }],
    ["records that are not a list", { Records: {} }],
    ["more records than a FIFO batch holds", batch(...Array(MAX_RECORDS + 1).fill(schedule))],
    [
      "a record from another event source",
      { Records: [{ ...record(schedule), eventSource: "aws:kinesis" }] },
    ],
    ["a record without a body", { Records: [{ messageId: "m", eventSource: "aws:sqs" }] }],
  ])("refuses a batch with %s as a whole (InputError)", (_, event) => {
    expect(() => parseInvocation(event)).toThrow(expect.objectContaining({ name: "InputError" }));
  });
});

/**
 * The world in "queue" delivery: bus events go to the SQS FIFO trigger queue and reach reconcile
 * (a stub that records its events) in SQS batches through the event source mapping stand-in;
 * with a modelled Lambda overhead, an Auto Scaling throttling profile, and the call meter.
 */
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handler as rotateToken } from "../../../../functions/rotate-token/handler";
import type { SqsEvent } from "../../../../sandbox/fakes/lambda/sqs-event-source";
import { startWorld, type World } from "../../../../sandbox/world/world";
import { captureOutput } from "../../../support/capture-output";

const OVERHEAD_MS = 40;
const output = captureOutput();
const batches: SqsEvent[] = [];
const others: unknown[] = [];
let failNext = 0;
let world: World;

beforeAll(async () => {
  world = await startWorld({
    replicaRegions: ["us-west-2"],
    groups: [{ region: "us-east-1", name: "agents", instances: 1, newInstancesProtectedFromScaleIn: false }],
    replicaLagMs: 100,
    delivery: "queue",
    queueVisibilityTimeoutSeconds: 1,
    lambdaOverheadMs: OVERHEAD_MS,
    throttle: { autoScaling: { ratePerSecond: 0.01, burst: 3 } },
    handlers: {
      rotateToken,
      reconcile: async (event) => {
        const records = (event as { Records?: unknown }).Records;
        if (!Array.isArray(records)) {
          others.push(event);
          return null;
        }
        batches.push(event as SqsEvent);
        if (failNext > 0) {
          failNext--;
          throw new Error("reconcile failed");
        }
        return { batchItemFailures: [] };
      },
    },
  });
}, 120_000);

afterAll(async () => {
  try {
    await world?.stop();
  } finally {
    output.restore();
  }
});

const bodies = () => batches.flatMap((b) => b.Records.map((r) => JSON.parse(r.body) as { id: string }));

describe("the world in queue delivery", () => {
  it("names the FIFO trigger queue in the env and runs an event source mapping", () => {
    expect(world.delivery).toBe("queue");
    expect(world.env.RECONCILE_QUEUE_URL).toBe(world.reconcileQueueUrl);
    expect(world.reconcileQueueUrl).toMatch(/\.fifo$/);
    expect(world.eventSource).toBeDefined();
  });

  it("delivers bus events in order as SQS batches of at most 10, and records each one's wait", async () => {
    const before = batches.length;
    for (let i = 0; i < 12; i++) world.schedule();
    await world.settled(30_000);
    const ids = world.bus
      .events()
      .slice(-12)
      .map((e) => (e.event as { id: string }).id);
    const delivered = bodies().map((b) => b.id);
    expect(delivered.slice(-12)).toEqual(ids);
    const mine = batches.slice(before);
    expect(mine.every((b) => b.Records.length <= 10)).toBe(true);
    expect(mine.length).toBeGreaterThanOrEqual(2);
    expect(mine[0]?.Records[0]).toMatchObject({
      eventSource: "aws:sqs",
      awsRegion: "us-east-1",
      attributes: { MessageGroupId: "reconcile" },
    });
    expect(mine[0]?.Records[0]?.eventSourceARN).toMatch(/^arn:aws:sqs:us-east-1:\d{12}:.*\.fifo$/);
    // One wait per message; each includes the modelled Lambda overhead.
    const waits = world.eventWaits().filter((w) => w.receiveCount === 1);
    expect(waits.length).toBeGreaterThanOrEqual(12);
    for (const w of waits.slice(-12)) expect(w.waitMs).toBeGreaterThanOrEqual(OVERHEAD_MS - 5);
    // Each wait names the bus event it carried (read from the message body).
    expect(waits.slice(-12).map((w) => w.eventId)).toEqual(ids);
    expect(world.lambda.waits("reconcile").every((ms) => ms >= OVERHEAD_MS - 5)).toBe(true);
  });

  it("leaves a failed batch on the queue and retries it after the visibility timeout; settled() waits for it", async () => {
    const before = batches.length;
    failNext = 1;
    world.schedule();
    await world.settled(30_000);
    const mine = batches.slice(before);
    expect(mine).toHaveLength(2);
    expect(mine[0]?.Records[0]?.messageId).toBe(mine[1]?.Records[0]?.messageId);
    expect(mine[1]?.Records[0]?.attributes.ApproximateReceiveCount).toBe("2");
    const retried = world.eventWaits().filter((w) => w.id === mine[0]?.Records[0]?.messageId);
    expect(retried.map((w) => w.receiveCount)).toEqual([1, 2]);
    expect((retried[1]?.waitMs ?? 0) - (retried[0]?.waitMs ?? 0)).toBeGreaterThanOrEqual(900);
  });

  it("meters the handlers' calls but not the event source mapping's or the harness's", async () => {
    world.resetMeter();
    await world.rotate();
    await world.settled(30_000);
    const { aws } = world.meter();
    expect(aws["secretsmanager:PutSecretValue"]).toBe(1);
    // The bus's SendMessage and the mapping's ReceiveMessage/DeleteMessageBatch are Lambda's and
    // EventBridge's calls, not the handlers': the one SQS call counted is rotate-token's rotation
    // message (finishSecret starts the reconciler through the queue).
    expect(Object.entries(aws).filter(([k]) => k.startsWith("sqs:"))).toEqual([["sqs:SendMessage", 1]]);
    // The label event reached reconcile through the queue.
    expect(
      bodies().some((b) => (b as { "detail-type"?: string })["detail-type"] === "Secret Label Updated"),
    ).toBe(true);
  });

  it("counts a handler's SendMessage to RECONCILE_QUEUE_URL, and the mapping delivers it", async () => {
    const { SQSClient, SendMessageCommand } = await import("@aws-sdk/client-sqs");
    // As rotate-token will send: a client configured from the env, addressing the env's queue URL.
    const sqs = new SQSClient({
      region: "us-east-1",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    try {
      world.resetMeter();
      const before = batches.length;
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: world.env.RECONCILE_QUEUE_URL,
          MessageBody: JSON.stringify({ id: "from-a-handler", source: "rotate-token" }),
          MessageGroupId: "reconcile",
          MessageDeduplicationId: "from-a-handler",
        }),
      );
      await world.settled(30_000);
      expect(world.meter().aws["sqs:SendMessage"]).toBe(1);
      expect(batches.slice(before).flatMap((b) => b.Records.map((r) => JSON.parse(r.body).id))).toEqual([
        "from-a-handler",
      ]);
    } finally {
      sqs.destroy();
    }
  });

  it("throttles Auto Scaling calls per its profile and counts them", async () => {
    const asg = new AutoScalingClient({
      region: "us-east-1",
      endpoint: world.env.AWS_ENDPOINT_URL_AUTO_SCALING,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      maxAttempts: 1,
    });
    try {
      world.resetMeter();
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () =>
          asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["agents"] })),
        ),
      );
      const refused = results.filter((r) => r.status === "rejected");
      expect(refused.length).toBeGreaterThanOrEqual(2);
      expect(world.throttled().autoScaling).toBeGreaterThanOrEqual(2);
      // Through the handlers' endpoint, every attempt is metered, throttled ones included.
      expect(world.meter().aws["autoscaling:DescribeAutoScalingGroups"]).toBe(5);
    } finally {
      asg.destroy();
    }
  });
});

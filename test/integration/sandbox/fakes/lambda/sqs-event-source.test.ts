/**
 * The SQS FIFO event source mapping stand-in against moto's FIFO queue, through the real
 * `@aws-sdk/client-sqs` client: batches, deletes, visibility-timeout retries, partial batch responses.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type MotoServer, startMoto } from "../../../../../sandbox/fakes/aws/moto";
import type { InvokeResult } from "../../../../../sandbox/fakes/lambda/local-lambda";
import {
  type SqsEvent,
  type SqsEventSource,
  startSqsEventSource,
} from "../../../../../sandbox/fakes/lambda/sqs-event-source";

const REGION = "us-east-1";
let moto: MotoServer;
let sqs: SQSClient;
const sources: SqsEventSource[] = [];
let queueNumber = 0;

beforeAll(async () => {
  moto = await startMoto();
  sqs = new SQSClient({
    region: REGION,
    endpoint: moto.url,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    requestHandler: { requestTimeout: 10_000 },
  });
}, 60_000);

afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.stop()));
});

afterAll(async () => {
  sqs?.destroy();
  await moto?.stop();
});

async function fifoQueue(visibilityTimeoutSeconds = 1): Promise<{ url: string; arn: string }> {
  const created = await sqs.send(
    new CreateQueueCommand({
      QueueName: `reconcile-${++queueNumber}.fifo`,
      Attributes: { FifoQueue: "true", VisibilityTimeout: String(visibilityTimeoutSeconds) },
    }),
  );
  const url = created.QueueUrl ?? "";
  const attrs = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] }),
  );
  return { url, arn: attrs.Attributes?.QueueArn ?? "" };
}

async function send(url: string, bodies: string[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += 10) {
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: url,
        Entries: bodies.slice(i, i + 10).map((body, j) => ({
          Id: String(j),
          MessageBody: body,
          MessageGroupId: "reconcile",
          MessageDeduplicationId: body,
        })),
      }),
    );
  }
}

async function queued(url: string): Promise<number> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return (
    Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}

function recorder(respond: (event: SqsEvent, call: number) => InvokeResult | Promise<InvokeResult>) {
  const state = { events: [] as SqsEvent[], active: 0, maxActive: 0 };
  const invoke = async (event: SqsEvent): Promise<InvokeResult> => {
    state.active++;
    state.maxActive = Math.max(state.maxActive, state.active);
    state.events.push(event);
    try {
      await sleep(10);
      return await respond(event, state.events.length);
    } finally {
      state.active--;
    }
  };
  return { state, invoke };
}

const bodiesOf = (events: SqsEvent[]) => events.flatMap((e) => e.Records.map((r) => r.body));

describe("SQS FIFO event source mapping stand-in", () => {
  it("delivers every message once, in order, in batches of at most 10, one batch at a time, then deletes them", async () => {
    const queue = await fifoQueue();
    const { state, invoke } = recorder(() => ({ ok: true, result: null }));
    const bodies = Array.from({ length: 25 }, (_, i) => `event-${String(i).padStart(2, "0")}`);
    await send(queue.url, bodies);
    const source = startSqsEventSource({
      sqs,
      queueUrl: queue.url,
      queueArn: queue.arn,
      region: REGION,
      visibilityTimeoutSeconds: 1,
      invoke,
    });
    sources.push(source);
    await until(() => bodiesOf(state.events).length >= 25);
    await until(async () => (await queued(queue.url)) === 0);
    // The queue is empty once moto has applied the last delete, a moment before the stand-in,
    // awaiting that DeleteMessageBatch answer, records the batch's outcome.
    await until(() => source.batches().every((b) => b.outcome !== undefined));
    expect(bodiesOf(state.events)).toEqual(bodies);
    expect(Math.max(...state.events.map((e) => e.Records.length))).toBeLessThanOrEqual(10);
    expect(state.maxActive).toBe(1);
    const record = state.events[0]?.Records[0];
    expect(record).toMatchObject({
      eventSource: "aws:sqs",
      eventSourceARN: queue.arn,
      awsRegion: REGION,
      attributes: { MessageGroupId: "reconcile", ApproximateReceiveCount: "1" },
    });
    expect(Number(record?.attributes.SentTimestamp)).toBeGreaterThan(Date.now() - 60_000);
    expect(record?.receiptHandle).not.toBe("");
    expect(source.batches().every((b) => b.outcome === "deleted")).toBe(true);
  }, 30_000);

  it("leaves a failed batch on the queue: it reappears after the visibility timeout and is retried", async () => {
    const queue = await fifoQueue(1);
    const { state, invoke } = recorder((_, call) =>
      call === 1 ? { ok: false, errorType: "Error", errorMessage: "boom" } : { ok: true, result: null },
    );
    await send(queue.url, ["a", "b"]);
    const source = startSqsEventSource({
      sqs,
      queueUrl: queue.url,
      queueArn: queue.arn,
      region: REGION,
      visibilityTimeoutSeconds: 1,
      invoke,
    });
    sources.push(source);
    await until(() => state.events.length >= 2);
    const [first, second] = state.events;
    expect(first?.Records.map((r) => r.body)).toEqual(["a", "b"]);
    expect(second?.Records.map((r) => r.body)).toEqual(["a", "b"]);
    expect(second?.Records[0]?.attributes.ApproximateReceiveCount).toBe("2");
    // Not before the visibility timeout: the retry's first receive is at least ~1 s later.
    const batches = source.batches();
    expect(
      (batches[1]?.receivedAt.getTime() ?? 0) - (batches[0]?.receivedAt.getTime() ?? 0),
    ).toBeGreaterThanOrEqual(900);
    await until(async () => (await queued(queue.url)) === 0);
    expect(batches[0]?.outcome).toBe("failed");
  }, 30_000);

  it("keeps only the messages a partial batch response lists, and treats an unknown id as a full failure", async () => {
    const queue = await fifoQueue(1);
    const { state, invoke } = recorder((event, call) => {
      if (call === 1) {
        // Fail the second message of the first batch (and, FIFO-style, everything after it).
        const failed = event.Records.slice(1).map((r) => ({ itemIdentifier: r.messageId }));
        return { ok: true, result: { batchItemFailures: failed } };
      }
      if (call === 2) return { ok: true, result: { batchItemFailures: [{ itemIdentifier: "no-such-id" }] } };
      return { ok: true, result: { batchItemFailures: [] } };
    });
    await send(queue.url, ["x", "y", "z"]);
    const source = startSqsEventSource({
      sqs,
      queueUrl: queue.url,
      queueArn: queue.arn,
      region: REGION,
      visibilityTimeoutSeconds: 1,
      invoke,
    });
    sources.push(source);
    await until(() => state.events.length >= 3);
    await until(async () => (await queued(queue.url)) === 0);
    expect(state.events.map((e) => e.Records.map((r) => r.body))).toEqual([
      ["x", "y", "z"],
      ["y", "z"], // x was deleted
      ["y", "z"], // the unknown id failed the whole batch
    ]);
    await until(() => source.batches().every((b) => b.outcome !== undefined));
    expect(source.batches().map((b) => b.outcome)).toEqual(["partial", "failed", "deleted"]);
  }, 30_000);

  it("relies on FIFO deduplication: the same deduplication id is delivered once", async () => {
    const queue = await fifoQueue();
    const { state, invoke } = recorder(() => ({ ok: true, result: null }));
    for (let i = 0; i < 2; i++) {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: queue.url,
          MessageBody: "same",
          MessageGroupId: "reconcile",
          MessageDeduplicationId: "event-1",
        }),
      );
    }
    const source = startSqsEventSource({
      sqs,
      queueUrl: queue.url,
      queueArn: queue.arn,
      region: REGION,
      visibilityTimeoutSeconds: 1,
      invoke,
    });
    sources.push(source);
    await until(() => state.events.length >= 1);
    await until(async () => (await queued(queue.url)) === 0);
    await sleep(200);
    expect(bodiesOf(state.events)).toEqual(["same"]);
  }, 30_000);

  it("refuses a batch size a FIFO mapping does not take", () => {
    const invoke = async (): Promise<InvokeResult> => ({ ok: true, result: null });
    expect(() =>
      startSqsEventSource({
        sqs,
        queueUrl: "q",
        queueArn: "a",
        region: REGION,
        visibilityTimeoutSeconds: 1,
        invoke,
        batchSize: 11,
      }),
    ).toThrow(/batch size/);
  });
});

/**
 * A stand-in for a Lambda event source mapping on an SQS FIFO queue (moto serves the queue; moto
 * runs no event source mappings), modelled on https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
 * and https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html:
 *
 * - Lambda polls the queue and invokes the function synchronously with a batch of up to BatchSize
 *   (here 10, the FIFO maximum) records in the SQS event shape (`Records[]` with `messageId`,
 *   `receiptHandle`, `body`, `attributes`, `eventSource: "aws:sqs"`, `eventSourceARN`, `awsRegion`).
 * - FIFO: "Lambda processes messages in the order that it receives them", one batch per message
 *   group at a time: the queue itself keeps a group's later messages back while earlier ones are in
 *   flight (moto models that), and this poller runs one batch at a time, so with a single message
 *   group every batch is in order and no two overlap (the single-writer guarantee reserved
 *   concurrency 1 cannot give an event source mapping).
 * - Success: Lambda deletes the batch. A function error: nothing is deleted, the messages become
 *   visible again after the queue's visibility timeout and are retried (ApproximateReceiveCount
 *   grows). With `ReportBatchItemFailures` on, a response `{batchItemFailures: [{itemIdentifier}]}`
 *   keeps only the listed messages; an empty list is a full success; an identifier that is empty or
 *   names no message of the batch makes Lambda treat the whole batch as failed.
 *
 * moto 5.2.1 divergence: when a failed FIFO batch's visibility expires, moto's ReceiveMessage
 * takes the expired messages out of its in-flight set one at a time while it scans, so the group
 * still looks in flight through the batch's other messages and the batch comes back split and out
 * of order (moto/sqs/models.py `receive_message`). AWS returns it whole, in order. So after a
 * failure this stand-in waits out the queue's visibility timeout itself (nothing else of the group
 * could be delivered meanwhile on AWS either) and then releases the kept messages together with
 * ChangeMessageVisibilityBatch(0), which clears moto's in-flight marks before the next poll.
 *
 * The poller long-polls (WaitTimeSeconds `waitSeconds`, default 1 s, so a stop is quick), and each
 * poll is bounded by the SDK client's timeout and an abort on stop. Its calls are Lambda's, not the
 * function's: give it a client that does not go through the call meter.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { InvokeResult } from "./local-lambda";

export interface SqsRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: Record<string, string>;
  messageAttributes: Record<string, never>;
  md5OfBody: string;
  eventSource: "aws:sqs";
  eventSourceARN: string;
  awsRegion: string;
}

export interface SqsEvent {
  Records: SqsRecord[];
}

export interface SqsEventSourceOptions {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  region: string;
  /** The queue's VisibilityTimeout attribute, in seconds (how long a failed batch stays hidden). */
  visibilityTimeoutSeconds: number;
  /** Runs the function synchronously (e.g. the local Lambda's `invoke`). */
  invoke: (event: SqsEvent) => Promise<InvokeResult>;
  /** Default 10 (the most a FIFO event source mapping takes). */
  batchSize?: number;
  /** FunctionResponseTypes ReportBatchItemFailures (default true). */
  reportBatchItemFailures?: boolean;
  /** Long-poll wait per ReceiveMessage, in whole seconds (default 1). */
  waitSeconds?: number;
  /** Pause after a failed poll or a failed batch before polling again (default 100 ms). */
  retryPauseMs?: number;
}

export interface BatchRecord {
  messageIds: string[];
  receivedAt: Date;
  endedAt?: Date;
  outcome?: "deleted" | "partial" | "failed";
  /** Messages left on the queue for a retry. */
  retried?: string[];
}

export interface SqsEventSource {
  /** Every batch handed to the function so far, oldest first. */
  batches(): BatchRecord[];
  /** True while a batch is being received, run or deleted. */
  busy(): boolean;
  /** Polls that failed (the poller pauses and polls again). */
  pollErrors(): number;
  /** Stops polling; waits for the batch in flight. Idempotent. */
  stop(): Promise<void>;
}

export function startSqsEventSource(options: SqsEventSourceOptions): SqsEventSource {
  const batchSize = options.batchSize ?? 10;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10) {
    throw new RangeError("a FIFO event source mapping takes a batch size of 1 to 10");
  }
  const waitSeconds = options.waitSeconds ?? 1;
  const retryPauseMs = options.retryPauseMs ?? 100;
  const reportFailures = options.reportBatchItemFailures ?? true;
  const batches: BatchRecord[] = [];
  const abort = new AbortController();
  let stopped = false;
  let running = false;
  let errors = 0;

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const onAbort = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        abort.signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      abort.signal.addEventListener("abort", onAbort, { once: true });
    });

  const runBatch = async (messages: Message[]): Promise<void> => {
    const records = messages.map((m) => toRecord(m, options.queueArn, options.region));
    const batch: BatchRecord = { messageIds: records.map((r) => r.messageId), receivedAt: new Date() };
    batches.push(batch);
    const result = await options.invoke({ Records: records });
    const keep = result.ok ? failedItems(result.result, records, reportFailures) : "all";
    const toDelete = keep === "all" ? [] : records.filter((r) => !keep.has(r.messageId));
    if (toDelete.length > 0) {
      // An entry that fails to delete reappears after the visibility timeout and runs again, as
      // on AWS (delivery is at least once): the function must be idempotent anyway.
      await options.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: options.queueUrl,
          Entries: toDelete.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
        }),
      );
    }
    batch.endedAt = new Date();
    batch.outcome = keep === "all" ? "failed" : keep.size === 0 ? "deleted" : "partial";
    batch.retried = keep === "all" ? [...batch.messageIds] : [...keep];
    if (keep !== "all" && keep.size === 0) return;
    const kept = keep === "all" ? records : records.filter((r) => keep.has(r.messageId));
    // The kept messages come back after the visibility timeout (see the moto note above).
    await pause(options.visibilityTimeoutSeconds * 1000);
    if (stopped) return;
    await options.sqs.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: options.queueUrl,
        Entries: kept.map((r, i) => ({
          Id: String(i),
          ReceiptHandle: r.receiptHandle,
          VisibilityTimeout: 0,
        })),
      }),
    );
  };

  const loop = (async () => {
    // Bounded by stop(): every iteration is one long poll of at most waitSeconds (+ the SDK timeout).
    while (!stopped) {
      try {
        const out = await options.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: options.queueUrl,
            MaxNumberOfMessages: batchSize,
            WaitTimeSeconds: waitSeconds,
            MessageSystemAttributeNames: ["All"],
          }),
          { abortSignal: abort.signal },
        );
        const messages = out.Messages ?? [];
        if (messages.length > 0 && !stopped) {
          running = true;
          try {
            await runBatch(messages);
          } finally {
            running = false;
          }
        }
      } catch {
        if (stopped) break;
        errors++;
        await pause(retryPauseMs);
      }
    }
  })();

  return {
    batches: () => batches.map((b) => ({ ...b, messageIds: [...b.messageIds] })),
    // A long poll that has not returned anything yet is not work: only a received batch is.
    busy: () => running,
    pollErrors: () => errors,
    async stop() {
      stopped = true;
      abort.abort();
      await loop;
    },
  };
}

/** The messages to keep (retry) after a successful invocation, or "all" for a full failure. */
function failedItems(result: unknown, records: SqsRecord[], reportFailures: boolean): Set<string> | "all" {
  if (!reportFailures) return new Set();
  const failures = (result as { batchItemFailures?: unknown } | null | undefined)?.batchItemFailures;
  if (failures === undefined || failures === null) return new Set();
  if (!Array.isArray(failures)) return "all";
  const ids = new Set(records.map((r) => r.messageId));
  const keep = new Set<string>();
  for (const failure of failures) {
    const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    // "If the batchItemFailures contains an empty or null itemIdentifier, or an invalid message
    // ID, Lambda treats the whole batch as a failure" (services-sqs-errorhandling.html).
    if (typeof id !== "string" || id === "" || !ids.has(id)) return "all";
    keep.add(id);
  }
  return keep;
}

function toRecord(message: Message, queueArn: string, region: string): SqsRecord {
  return {
    messageId: message.MessageId ?? "",
    receiptHandle: message.ReceiptHandle ?? "",
    body: message.Body ?? "",
    attributes: { ...(message.Attributes ?? {}) },
    messageAttributes: {},
    md5OfBody: message.MD5OfBody ?? "",
    eventSource: "aws:sqs",
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

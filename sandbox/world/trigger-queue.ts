/**
 * The SQS FIFO queue in front of reconcile ("queue" delivery), as the EventBridge rule's SQS target
 * fills it, and its depth (for `world.settled()`).
 */
import { randomUUID } from "node:crypto";
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";

const TRIGGER_QUEUE = "buildkite-agent-token-reconcile.fifo";
const TRIGGER_GROUP = "reconcile";

/** The FIFO queue in front of reconcile: one message group, deduplicated by event id. */
export async function createTriggerQueue(
  sqs: SQSClient,
  visibilityTimeoutSeconds: number,
): Promise<{ url: string; arn: string }> {
  const created = await sqs.send(
    new CreateQueueCommand({
      QueueName: TRIGGER_QUEUE,
      Attributes: { FifoQueue: "true", VisibilityTimeout: String(visibilityTimeoutSeconds) },
    }),
  );
  const url = created.QueueUrl;
  const arn = url
    ? (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] })))
        .Attributes?.QueueArn
    : undefined;
  if (!url || !arn) throw new Error("moto returned no trigger queue");
  return { url, arn };
}

/**
 * What an EventBridge rule with an SQS FIFO target does with an event: SendMessage with the event
 * as the body, the rule's MessageGroupId, and (no content-based deduplication) the event id as
 * MessageDeduplicationId, so a redelivered event is dropped within SQS's five-minute
 * deduplication interval (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/using-messagededuplicationid-property.html).
 */
export async function sendTrigger(sqs: SQSClient, queueUrl: string, event: unknown): Promise<void> {
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, ...triggerMessage(event) }));
}

/** The message the rule's target makes of an event (see sendTrigger). */
function triggerMessage(event: unknown) {
  const id = (event as { id?: unknown } | null)?.id;
  return {
    MessageBody: JSON.stringify(event),
    MessageGroupId: TRIGGER_GROUP,
    MessageDeduplicationId: typeof id === "string" && id !== "" ? id : randomUUID(),
  };
}

/**
 * Several events at once, in order: "For FIFO queues, multiple messages within a single batch are
 * enqueued in the order they are sent" (SendMessageBatch, Amazon SQS API Reference). Each message
 * is what `sendTrigger` sends. Resolves to each event's failure (undefined: enqueued).
 */
export async function sendTriggers(
  sqs: SQSClient,
  queueUrl: string,
  events: unknown[],
): Promise<Array<string | undefined>> {
  const out = await sqs.send(
    new SendMessageBatchCommand({
      QueueUrl: queueUrl,
      Entries: events.map((event, i) => ({ Id: String(i), ...triggerMessage(event) })),
    }),
  );
  const failed = new Map((out.Failed ?? []).map((f) => [f.Id, `${f.Code ?? "Failed"}: ${f.Message ?? ""}`]));
  return events.map((_, i) => failed.get(String(i)));
}

export async function queueDepth(sqs: SQSClient, queueUrl: string): Promise<number> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return (
    Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

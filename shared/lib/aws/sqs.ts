import {
  ChangeMessageVisibilityCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { awsClientOptions, perRegion } from "./client-options";

export type { SQSClient };

/** Factory by region, so each test can point anywhere (AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL). */
export const sqsClients = () => perRegion((region) => new SQSClient(awsClientOptions(region)));

/**
 * The one message group of the reconciler's FIFO queue: every trigger, from every sender, is in
 * it, so the event source mapping runs one batch at a time, in order (see ReconcileQueue in
 * template.yaml). The EventBridge targets use the same literal.
 */
export const RECONCILE_MESSAGE_GROUP = "reconcile";

/** MessageDeduplicationId: 1-128 characters of alphanumerics and punctuation (API_SendMessage). */
const DEDUPLICATION_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * Sends one message to a FIFO queue in the reconciler's message group. The deduplication id makes
 * the send idempotent for SQS's five-minute deduplication interval ("any messages sent with the
 * same message deduplication ID are accepted successfully but aren't delivered",
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html),
 * which is what lets the SDK's retries (awsClientOptions: bounded attempts, request timeout)
 * repeat it safely.
 */
export async function sendToQueue(
  clients: (region: string) => SQSClient,
  region: string,
  queueUrl: string,
  body: unknown,
  deduplicationId: string,
): Promise<void> {
  if (!DEDUPLICATION_ID.test(deduplicationId)) {
    throw new Error("sendToQueue: the deduplication id must be 1-128 printable ASCII characters");
  }
  await clients(region).send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: JSON.stringify(body),
      MessageGroupId: RECONCILE_MESSAGE_GROUP,
      MessageDeduplicationId: deduplicationId,
    }),
  );
}

/** The longest a failed batch waits before its next try (then the dead-letter queue decides). */
export const MAX_RETRY_DELAY_SECONDS = 900;

/**
 * How long a failed batch stays invisible before its next try: `base` seconds after the first
 * receive, doubling with each receive (ApproximateReceiveCount), at most 15 minutes. With one
 * message group the failed batch holds back every later trigger meanwhile, so this replaces the
 * queue's visibility timeout (six times the function's timeout, 90 minutes) for a run that failed.
 */
export function retryDelaySeconds(receiveCount: number, base: number): number {
  const attempt = Number.isFinite(receiveCount) && receiveCount >= 1 ? Math.floor(receiveCount) : 1;
  return Math.min(MAX_RETRY_DELAY_SECONDS, base * 2 ** Math.min(attempt - 1, 20));
}

/**
 * Makes received messages visible again after `seconds` (ChangeMessageVisibility: "the new value
 * is counted from the time of the call", on a message still in flight,
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html).
 * Idempotent; settles every message and reports how many could not be changed (those come back
 * after the queue's visibility timeout instead).
 */
export async function deferRedelivery(
  clients: (region: string) => SQSClient,
  region: string,
  queueUrl: string,
  receiptHandles: string[],
  seconds: number,
): Promise<{ failed: number }> {
  const results = await Promise.allSettled(
    receiptHandles.map((ReceiptHandle) =>
      clients(region).send(
        new ChangeMessageVisibilityCommand({ QueueUrl: queueUrl, ReceiptHandle, VisibilityTimeout: seconds }),
      ),
    ),
  );
  return { failed: results.filter((r) => r.status === "rejected").length };
}

/**
 * Messages waiting in the queue (ApproximateNumberOfMessages: "the approximate number of messages
 * available for retrieval", i.e. not in flight,
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html).
 * A read: retried by the SDK like any other.
 */
export async function queueDepth(
  clients: (region: string) => SQSClient,
  region: string,
  queueUrl: string,
): Promise<number> {
  const out = await clients(region).send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages"] }),
  );
  const n = Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
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

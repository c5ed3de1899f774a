import {
  CreateQueueCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createReconcileHandler } from "../../../../functions/reconcile/handler";
import { type MotoServer, startMoto } from "../../../../sandbox/fakes/aws/moto";
import { captureOutput } from "../../../support/capture-output";

/**
 * The reconcile handler and its FIFO queue (moto server, real SDK client): a run that fails
 * returns its batch to the queue with the handler's short backoff instead of the queue's 90-minute
 * visibility timeout, so the one message group is not held back for that long. The failure is
 * real: the configured secret does not exist, so observing it fails (ResourceNotFoundException).
 */
const REGION = "us-east-1";
const output = captureOutput();
let moto: MotoServer;
let sqs: SQSClient;
const saved = { ...process.env };

beforeAll(async () => {
  moto = await startMoto();
  // The SDK clients read their endpoint and credentials from the process environment.
  Object.assign(process.env, {
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_ENDPOINT_URL: moto.url,
  });
  sqs = new SQSClient({
    region: REGION,
    endpoint: moto.url,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
});
afterAll(async () => {
  process.env = saved;
  output.restore();
  sqs?.destroy();
  await moto?.stop();
});

async function queueWithOneTrigger(name: string): Promise<{ url: string; message: Message }> {
  const { QueueUrl: url } = await sqs.send(
    new CreateQueueCommand({
      QueueName: `${name}.fifo`,
      Attributes: { FifoQueue: "true", ContentBasedDeduplication: "true", VisibilityTimeout: "5400" },
    }),
  );
  if (!url) throw new Error("moto returned no queue URL");
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: url,
      MessageGroupId: "reconcile",
      MessageDeduplicationId: "manual-1",
      MessageBody: '{"source":"manual","reason":"test"}',
    }),
  );
  const message = await receiveOne(url);
  if (!message) throw new Error("the trigger was not received");
  return { url, message };
}

async function receiveOne(url: string): Promise<Message | undefined> {
  const out = await sqs.send(
    new ReceiveMessageCommand({
      QueueUrl: url,
      MaxNumberOfMessages: 10,
      MessageSystemAttributeNames: ["All"],
      WaitTimeSeconds: 0,
    }),
  );
  return out.Messages?.[0];
}

/** The message as the event source mapping hands it to the function. */
const batchOf = (message: Message, queueName: string) => ({
  Records: [
    {
      messageId: message.MessageId,
      receiptHandle: message.ReceiptHandle,
      body: message.Body,
      attributes: message.Attributes ?? {},
      messageAttributes: {},
      eventSource: "aws:sqs",
      eventSourceARN: `arn:aws:sqs:${REGION}:123456789012:${queueName}.fifo`,
      awsRegion: REGION,
    },
  ],
});

const env = (extra: Record<string, string>) => ({
  ROTATION_SECRET_ARN: `arn:aws:secretsmanager:${REGION}:123456789012:secret:missing/agent-token-AbC123`,
  BUILDKITE_ORGANIZATION: "acme",
  BUILDKITE_CLUSTER_ID: "e4f44564-d3ea-45eb-87c2-6506643b852a",
  BUILDKITE_API_TOKEN_SECRET_ARN: `arn:aws:secretsmanager:${REGION}:123456789012:secret:missing/api-token-XyZ789`,
  // Unroutable: no Buildkite call can succeed either.
  BUILDKITE_API_URL: "http://127.0.0.1:9",
  TARGET_GROUPS: `${REGION}:ci-a`,
  ...extra,
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("reconcile handler with its FIFO queue", () => {
  it("brings a failed batch's next try forward (TRIGGER_RETRY_SECONDS), counted as a new receive", async () => {
    const { url, message } = await queueWithOneTrigger("retried");
    expect(message.Attributes?.ApproximateReceiveCount).toBe("1");
    const handler = createReconcileHandler(env({ RECONCILE_QUEUE_URL: url, TRIGGER_RETRY_SECONDS: "1" }));
    await expect(handler(batchOf(message, "retried"))).rejects.toThrow();
    // Not at once: the group is not spun on a failure.
    expect(await receiveOne(url)).toBeUndefined();
    await sleep(1_600);
    const again = await receiveOne(url);
    expect(again?.MessageId).toBe(message.MessageId);
    expect(again?.Attributes?.ApproximateReceiveCount).toBe("2");
    expect(output.text()).toContain("the failed batch is retried later");
    // The run failed for the reason it should (the secret is missing), not for lack of credentials.
    expect(output.text()).toContain("ResourceNotFoundException");
  });

  it("without the queue's URL the batch waits out the visibility timeout (what the backoff replaces)", async () => {
    const { url, message } = await queueWithOneTrigger("waits");
    const handler = createReconcileHandler(env({ TRIGGER_RETRY_SECONDS: "1" }));
    await expect(handler(batchOf(message, "waits"))).rejects.toThrow();
    await sleep(1_600);
    expect(await receiveOne(url)).toBeUndefined();
  });
});

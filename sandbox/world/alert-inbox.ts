/**
 * The alert topic and an SQS queue subscribed to it, so the sandbox can read back every alert the
 * handlers published (SNS → SQS, raw message delivery off).
 */
import { CreateTopicCommand, type SNSClient, SubscribeCommand } from "@aws-sdk/client-sns";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";

export interface Alert {
  subject: string | undefined;
  message: string;
}

export interface AlertInbox {
  topicArn: string;
  /** Every alert received on the topic so far, oldest first. */
  alerts(): Promise<Alert[]>;
}

const ALERTS = "buildkite-agent-token-alerts";
/** Receive rounds per read: a bound, far above what a sandbox run publishes between two reads. */
const MAX_ROUNDS = 50;

export async function createAlertInbox(sns: SNSClient, sqs: SQSClient): Promise<AlertInbox> {
  const topic = await sns.send(new CreateTopicCommand({ Name: ALERTS }));
  const queue = await sqs.send(new CreateQueueCommand({ QueueName: ALERTS }));
  const queueUrl = queue.QueueUrl;
  const queueArn = (
    await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }))
  ).Attributes?.QueueArn;
  const topicArn = topic.TopicArn;
  if (!topicArn || !queueUrl || !queueArn) throw new Error("moto returned no topic or queue");
  await sns.send(new SubscribeCommand({ TopicArn: topicArn, Protocol: "sqs", Endpoint: queueArn }));

  const received: Alert[] = [];
  const drain = async (): Promise<void> => {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const out = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 0,
          VisibilityTimeout: 30,
        }),
      );
      const messages = out.Messages ?? [];
      if (messages.length === 0) return;
      for (const message of messages) received.push(parseAlert(message.Body));
      await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
    }
  };
  // One read at a time: two overlapping drains would each see only part of the messages.
  let draining: Promise<void> = Promise.resolve();
  return {
    topicArn,
    alerts() {
      const run = draining.then(drain);
      draining = run.catch(() => {});
      return run.then(() => [...received]);
    },
  };
}

/** SNS delivers to SQS as a JSON envelope (raw delivery off) with Subject and Message. */
function parseAlert(body: string | undefined): Alert {
  try {
    const envelope = JSON.parse(body ?? "") as { Subject?: unknown; Message?: unknown };
    return {
      subject: typeof envelope.Subject === "string" ? envelope.Subject : undefined,
      message: typeof envelope.Message === "string" ? envelope.Message : String(envelope.Message),
    };
  } catch {
    return { subject: undefined, message: body ?? "" };
  }
}

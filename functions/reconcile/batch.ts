import { InputError } from "../../shared/lib/errors";
import { parseTrigger, type Trigger } from "./trigger";

/**
 * What one invocation of reconcile carries. In AWS every trigger arrives through the FIFO queue's
 * event source mapping as an SQS batch, `{"Records": [{messageId, body, attributes,
 * eventSource: "aws:sqs", ...}]}` (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html,
 * "Example standard queue message event" / "Example FIFO queue message event"), each body one
 * trigger: an EventBridge event, the rotation's message or the manual form. Tests and the CLI may
 * still call the handler with one bare trigger.
 */
export interface ParsedInvocation {
  /** Well-formed triggers, in the batch's (the message group's) order. */
  triggers: Trigger[];
  /** Records refused as malformed: logged by id and reason, never by content, and not retried. */
  refused: Refusal[];
  /**
   * Every record's receipt handle and receive count (ApproximateReceiveCount), so a failed run can
   * schedule the batch's next try; empty for a bare trigger.
   */
  received: Array<{ receiptHandle: string; receiveCount: number }>;
}

export interface Refusal {
  messageId: string;
  /** Why, in a fixed phrase (never the body or a value from it). */
  reason: "body-too-large" | "body-not-json" | "not-a-trigger";
}

/**
 * The largest body accepted. Every trigger we route is far smaller (an Auto Scaling refresh event is
 * about 1 KB; the rotation's message a few hundred bytes); SQS allows 256 KiB, which no trigger
 * needs, and JSON.parse of that much is work spent on something that cannot be ours.
 */
export const MAX_BODY_CHARS = 16_384;

/** BatchSize 10 is the FIFO maximum (services-sqs-parameters.html); more means the mapping is not ours. */
export const MAX_RECORDS = 10;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Whether the event is an SQS batch (as opposed to one bare trigger). */
export function isSqsBatch(event: unknown): event is { Records: unknown[] } {
  return isRecord(event) && "Records" in event;
}

/**
 * Parses an invocation into its triggers. A batch whose envelope is not an SQS batch, and a bare
 * event that is not a trigger, are InputErrors (nothing is observed or written). Within a well-formed
 * batch a malformed record is refused on its own: retrying cannot fix it, and the rest of the batch
 * still runs.
 */
export function parseInvocation(event: unknown): ParsedInvocation {
  if (!isSqsBatch(event)) return { triggers: [parseTrigger(event)], refused: [], received: [] };
  const records = event.Records;
  if (!Array.isArray(records) || records.length === 0 || records.length > MAX_RECORDS) {
    throw new InputError(`reconcile: Records must be an array of 1 to ${MAX_RECORDS} SQS messages`);
  }
  const triggers: Trigger[] = [];
  const refused: Refusal[] = [];
  const received: ParsedInvocation["received"] = [];
  for (const [index, record] of records.entries()) {
    if (!isRecord(record) || record.eventSource !== "aws:sqs" || typeof record.body !== "string") {
      throw new InputError(
        `reconcile: Records[${index}] is not an SQS message (eventSource aws:sqs with a body)`,
      );
    }
    // Message ids are UUIDs; anything else is shown as its index only.
    const messageId =
      typeof record.messageId === "string" && /^[A-Za-z0-9-]{1,100}$/.test(record.messageId)
        ? record.messageId
        : `Records[${index}]`;
    if (typeof record.receiptHandle === "string" && record.receiptHandle.length > 0) {
      const attributes = isRecord(record.attributes) ? record.attributes : {};
      const count = Number(attributes.ApproximateReceiveCount);
      received.push({
        receiptHandle: record.receiptHandle,
        receiveCount: Number.isInteger(count) ? count : 1,
      });
    }
    const outcome = parseBody(record.body);
    if (typeof outcome === "string") refused.push({ messageId, reason: outcome });
    else triggers.push(outcome);
  }
  return { triggers, refused, received };
}

function parseBody(body: string): Trigger | Refusal["reason"] {
  if (body.length > MAX_BODY_CHARS) return "body-too-large";
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return "body-not-json";
  }
  try {
    return parseTrigger(value);
  } catch (error) {
    if (error instanceof InputError) return "not-a-trigger";
    throw error;
  }
}

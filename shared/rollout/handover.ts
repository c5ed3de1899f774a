import { randomUUID } from "node:crypto";
import { queueDepth, type SQSClient, sendToQueue } from "../lib/aws/sqs";
import { CONTINUATION_SOURCE } from "./trigger";

/**
 * Handing the queue over (issue 11: no trigger waits behind a long run).
 *
 * Every trigger reaches reconcile through one FIFO message group, so while a run holds its batch
 * no later trigger is delivered ("Inflight messages block delivery of available messages within the
 * same message group", https://repost.aws/knowledge-center/sqs-fifo-messages-not-returned). A run
 * that only waits — for a replica to catch up, for install commands to report, for a transient
 * error to pass — would hold every trigger back for as long as it waits (at 1,000 groups, tens of
 * seconds). So at each wait, once it has held the queue for HANDOVER_AFTER_MS, the run asks how many
 * triggers are waiting (GetQueueAttributes ApproximateNumberOfMessages: messages not in flight,
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html)
 * and, if any are, sends its own continuation to the back of the group and ends. In the container
 * that sent it, the continuation observes the groups the run had left (its suspension in
 * memory.ts); anywhere else it is a trigger like the schedule, a full observation. A full
 * observation that began after it was sent has covered it, and it is skipped (scope.ts).
 *
 * Only runs delivered by the queue hand over; if the continuation cannot be sent, the run keeps
 * waiting as before (it never ends with nobody to continue).
 */
/**
 * How long a run holds the queue before it looks for waiting triggers (and between two looks):
 * shorter than a round of refresh starts (settings.ts MAX_STARTS_PER_ROUND), so that every such
 * round may be followed by a handover.
 */
export const HANDOVER_AFTER_MS = 2_000;
/**
 * The same, for a run carrying on with the refresh starts of one recent look (rounds.ts
 * ONE_LOOK_MS): a continuation would wait behind every report queued meanwhile and look
 * at the groups left again, and the revocation waits for the last start, while the triggers waiting
 * are mostly our own refreshes' reports, which cost nothing. Measured at 20 × 1,000 in the sandbox
 * (npm run bench -- scale): starting 1,000 refreshes took about 5.5 s, so at 5 s the last round went
 * to the back of the queue and revoked about 3 s later; at 7 s no event waited over 7.6 s (five runs) of the 10
 * s an event may wait (issue 11).
 */
export const HANDOVER_WHILE_STARTING_AFTER_MS = 7_000;

export interface Handover {
  /** Triggers waiting behind this run (approximate: SQS's own count). */
  waiting(): Promise<number>;
  /** Sends the continuation of this run to the back of the queue. */
  continueLater(continuation: Continuation): Promise<void>;
}

export interface Continuation {
  id: string;
  versionId: string | undefined;
  at: Date;
}

/** The continuation's message body, as functions/reconcile/trigger.ts parses it. */
export function continuationBody(c: Continuation): Record<string, string> {
  return {
    source: CONTINUATION_SOURCE,
    continuation: c.id,
    ...(c.versionId ? { versionId: c.versionId } : {}),
    time: c.at.toISOString(),
  };
}

export function newContinuation(versionId: string | undefined, at: Date): Continuation {
  return { id: randomUUID(), versionId, at };
}

/** Whether a run that has held the queue since `heldSince` should look for waiting triggers now. */
export function dueToLook(heldSince: Date, now: Date, afterMs = HANDOVER_AFTER_MS): boolean {
  return now.getTime() - heldSince.getTime() >= afterMs;
}

/**
 * The handover through the reconciler's own FIFO queue. The continuation's deduplication id is its
 * id, so the SDK's retries of the send are idempotent; a duplicate that got through anyway is
 * one more observation, never a second decision.
 */
export function queueHandover(
  sqs: (region: string) => SQSClient,
  region: string,
  queueUrl: string,
): Handover {
  return {
    waiting: () => queueDepth(sqs, region, queueUrl),
    continueLater: (c) => sendToQueue(sqs, region, queueUrl, continuationBody(c), `continuation-${c.id}`),
  };
}

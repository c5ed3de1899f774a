/**
 * The "event wait" of every trigger a reconcile handler started on: from being sent (the bus put in
 * "async" delivery, SQS's SentTimestamp in "queue") to the handler's start.
 */
import { CONTINUATION_SOURCE } from "../../shared/rollout/trigger";

export interface EventWait {
  /** The bus event's id ("async") or the SQS message id ("queue"). */
  id: string;
  /** The bus event's id in both modes ("queue": read from the message body), when there is one. */
  eventId?: string;
  sentAt: Date;
  startedAt: Date;
  waitMs: number;
  /** 1 for the first delivery; more when a failed batch was retried ("queue" only). */
  receiveCount: number;
  /** A run's own continuation after a handover (shared/rollout/handover.ts), not a trigger from outside. */
  continuation: boolean;
}

/** Records, at a reconcile handler's start, how long each trigger in its event waited. */
export function noteEventWaits(event: unknown, putAt: Map<string, number>, waits: EventWait[]): void {
  const now = Date.now();
  const records = (event as { Records?: unknown } | null)?.Records;
  if (Array.isArray(records)) {
    for (const record of records as Array<{
      messageId?: unknown;
      eventSource?: unknown;
      body?: unknown;
      attributes?: Record<string, unknown>;
    }>) {
      if (record?.eventSource !== "aws:sqs") continue;
      const sent = Number(record.attributes?.SentTimestamp);
      if (!Number.isFinite(sent)) continue;
      const body = parsedBody(record.body);
      const eventId = typeof body?.id === "string" ? body.id : undefined;
      waits.push({
        id: String(record.messageId),
        ...(eventId === undefined ? {} : { eventId }),
        sentAt: new Date(sent),
        startedAt: new Date(now),
        waitMs: now - sent,
        receiveCount: Number(record.attributes?.ApproximateReceiveCount ?? 1),
        continuation: body?.source === CONTINUATION_SOURCE,
      });
    }
    return;
  }
  const id = (event as { id?: unknown } | null)?.id;
  const sent = typeof id === "string" ? putAt.get(id) : undefined;
  if (typeof id === "string" && sent !== undefined) {
    waits.push({
      id,
      eventId: id,
      sentAt: new Date(sent),
      startedAt: new Date(now),
      waitMs: now - sent,
      receiveCount: 1,
      continuation: false,
    });
  }
}

function parsedBody(body: unknown): { id?: unknown; source?: unknown } | undefined {
  if (typeof body !== "string") return undefined;
  try {
    const parsed = JSON.parse(body) as unknown;
    return typeof parsed === "object" && parsed !== null
      ? (parsed as { id?: unknown; source?: unknown })
      : undefined;
  } catch {
    return undefined;
  }
}

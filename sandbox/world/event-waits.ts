/**
 * The "event wait" of every trigger a reconcile handler started on: from being sent (the bus put in
 * "async" delivery, SQS's SentTimestamp in "queue") to the handler's start.
 */

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
      const eventId = bodyEventId(record.body);
      waits.push({
        id: String(record.messageId),
        ...(eventId === undefined ? {} : { eventId }),
        sentAt: new Date(sent),
        startedAt: new Date(now),
        waitMs: now - sent,
        receiveCount: Number(record.attributes?.ApproximateReceiveCount ?? 1),
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
    });
  }
}

function bodyEventId(body: unknown): string | undefined {
  if (typeof body !== "string") return undefined;
  try {
    const id = (JSON.parse(body) as { id?: unknown } | null)?.id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A local stand-in for the EventBridge rules that trigger reconcile: the Secrets Manager label
 * rule, the Auto Scaling instance refresh rule (with the replica regions' forwarders) and the
 * schedule. Every event put on the bus is recorded and, when one of the rules matches it (rules.ts),
 * handed to one target, in put order; the
 * target is normally the local Lambda's `reconcile` function, whose per-function queue provides the
 * serialization the deployed function gets from reserved concurrency 1.
 *
 * Delivery failures are recorded, not retried (EventBridge retries for up to 24 hours; here a
 * failure a test did not expect should stay visible).
 */
import { randomUUID } from "node:crypto";
import { secretArnSetting as parseSecretArn } from "../../../shared/lib/config";
import { ACCOUNT_ID } from "../autoscaling/fleet";
import { anyRuleMatches, type EventPattern } from "./rules";

/** The envelope every EventBridge event has. */
export interface BusEvent<D = unknown> {
  version: "0";
  id: string;
  "detail-type": string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: D;
}

export interface SecretLabelUpdatedDetail {
  name: string;
  labelUpdated: string;
  versionId: string;
}

export interface RecordedEvent {
  event: unknown;
  putAt: Date;
  deliveredAt?: Date;
  /** Set when the target refused the event; a short reason. */
  error?: string;
  /** No rule matched the event: EventBridge delivers it nowhere. */
  unmatched?: boolean;
}

export interface EventBus {
  /** Queue an event for delivery; never throws (a failed delivery is recorded on the event). */
  put(event: unknown): void;
  /** Every event put so far, oldest first, with its delivery outcome. */
  events(): RecordedEvent[];
  /** Builds (does not put) the native Secrets Manager `Secret Label Updated` event. */
  labelUpdated(input: LabelUpdatedInput): BusEvent<SecretLabelUpdatedDetail>;
  /** Builds (does not put) the `Scheduled Event` a schedule rule sends. */
  schedule(input?: ScheduleInput): BusEvent<Record<string, never>>;
  isIdle(): boolean;
  /** Resolves once every event put so far has been handed to the target; bounded (default 30 s). */
  idle(timeoutMs?: number): Promise<void>;
  /** Stops delivering: events put from now on, and those not yet delivered, are recorded as dropped. */
  close(): void;
}

export interface EventBusOptions {
  /** Hands one event to the target, e.g. `(event) => lambda.invokeAsync("reconcile", event)`. */
  deliver: (event: unknown) => Promise<void>;
  /**
   * Hands several events, in put order, to the target at once (the queue target: SendMessageBatch,
   * which keeps a FIFO batch's order). EventBridge delivers to its targets concurrently and at a rate
   * far above one send at a time (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html,
   * invocations per second); a serial send per event made the bus, not the function, the bottleneck
   * of a burst of 1,000 refresh events. Resolves to each event's failure reason (undefined:
   * delivered). Without it, events go one by one through `deliver`.
   */
  deliverBatch?: (events: unknown[]) => Promise<Array<string | undefined>>;
  /** Most events per `deliverBatch` call (default and SendMessageBatch's maximum: 10). */
  batchSize?: number;
  /**
   * Deliveries in flight at once (default 1: one at a time, in put order). EventBridge does not
   * guarantee the order in which a rule's events reach its target (https://repost.aws/questions/QUDxAa0fS4TNus4mLxZpUjEw,
   * an AWS expert's accepted answer: "Amazon EventBridge does not guarantee the order of the
   * events"), and delivers concurrently; how many at once is not documented, so it is a setting.
   * Above 1, batches put later may reach the target first.
   */
  maxInFlight?: number;
  /** The rules' patterns (rules.ts): an event none matches is recorded as unmatched and not delivered. */
  rules?: readonly EventPattern[];
}

export interface LabelUpdatedInput {
  secretArn: string;
  /** The region whose Secrets Manager emits the event: the secret's primary region. */
  region: string;
  versionId: string;
  /** Default AWSCURRENT (Secrets Manager sends no event for AWSPENDING and AWSPREVIOUS). */
  label?: string;
  time?: Date;
}

export interface ScheduleInput {
  region?: string;
  ruleName?: string;
  time?: Date;
}

/** EventBridge timestamps have no fractional seconds. */
export function eventTime(at: Date = new Date()): string {
  return at.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * The native event Secrets Manager sends to the default bus when a staging label other than
 * AWSPENDING / AWSPREVIOUS moves, per "Secret Label Updated event" in the Secrets Manager user
 * guide: `detail` holds the secret's friendly name, the label and the version it now marks.
 */
export function secretLabelUpdatedEvent(input: LabelUpdatedInput): BusEvent<SecretLabelUpdatedDetail> {
  const label = input.label ?? "AWSCURRENT";
  if (label === "AWSPENDING" || label === "AWSPREVIOUS") {
    throw new Error(`Secrets Manager sends no Secret Label Updated event for ${label}`);
  }
  const secret = parseSecretArn("secretArn", input.secretArn);
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Secret Label Updated",
    source: "aws.secretsmanager",
    account: secret.account,
    time: eventTime(input.time),
    region: input.region,
    resources: [input.secretArn],
    detail: { name: secret.name, labelUpdated: label, versionId: input.versionId },
  };
}

/** What an EventBridge schedule rule (`rate(...)`/`cron(...)`) delivers to its target. */
export function scheduledEvent(input: ScheduleInput = {}): BusEvent<Record<string, never>> {
  const region = input.region ?? "us-east-1";
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: ACCOUNT_ID,
    time: eventTime(input.time),
    region,
    resources: [`arn:aws:events:${region}:${ACCOUNT_ID}:rule/${input.ruleName ?? "reconcile-schedule"}`],
    detail: {},
  };
}

export function createEventBus(options: EventBusOptions): EventBus {
  const recorded: RecordedEvent[] = [];
  const waiters = new Set<() => void>();
  /** Matched events not yet handed to the target, in put order. */
  const queue: RecordedEvent[] = [];
  let pending = 0;
  let pumping = 0;
  const maxInFlight = Math.max(1, Math.floor(options.maxInFlight ?? 1));
  let closed = false;
  const batchSize = options.deliverBatch ? Math.min(Math.max(1, options.batchSize ?? 10), 10) : 1;

  const notify = () => {
    if (pending === 0) for (const waiter of [...waiters]) waiter();
  };

  const deliver = async (entries: RecordedEvent[]): Promise<void> => {
    if (closed) {
      for (const entry of entries) entry.error = "dropped: event bus closed";
      return;
    }
    try {
      if (options.deliverBatch && entries.length > 1) {
        const failures = await options.deliverBatch(entries.map((e) => e.event));
        const at = new Date();
        entries.forEach((entry, i) => {
          const failure = failures[i];
          if (failure === undefined) entry.deliveredAt = at;
          else entry.error = failure;
        });
        return;
      }
      for (const entry of entries) {
        await options.deliver(entry.event);
        entry.deliveredAt = new Date();
      }
    } catch (error) {
      const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      for (const entry of entries) entry.error = reason;
    }
  };

  // Up to maxInFlight deliveries at a time (one by default, in put order): whatever was put
  // meanwhile goes in the next batch.
  const pump = async (): Promise<void> => {
    if (pumping >= maxInFlight) return;
    pumping++;
    try {
      while (queue.length > 0) {
        const entries = queue.splice(0, batchSize);
        await deliver(entries);
        pending -= entries.length;
        notify();
      }
    } finally {
      pumping--;
    }
  };

  return {
    put(event) {
      const entry: RecordedEvent = { event, putAt: new Date() };
      recorded.push(entry);
      if (closed) {
        entry.error = "dropped: event bus closed";
        return;
      }
      if (options.rules && !anyRuleMatches(options.rules, event)) {
        entry.unmatched = true;
        return;
      }
      pending += 1;
      queue.push(entry);
      // Delivered from a fresh task, so every event put in this one can share the batch.
      setImmediate(() => void pump());
    },
    events: () => recorded.map((entry) => ({ ...entry })),
    labelUpdated: secretLabelUpdatedEvent,
    schedule: scheduledEvent,
    isIdle: () => pending === 0,
    idle(timeoutMs = 30_000) {
      if (pending === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(done);
          reject(new Error(`event bus still delivering ${pending} event(s) after ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(done);
      });
    },
    close() {
      closed = true;
    },
  };
}

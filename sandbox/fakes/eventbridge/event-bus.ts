/**
 * A local stand-in for the EventBridge rules that trigger reconcile: the Secrets Manager label
 * rule, the Auto Scaling instance refresh rule (with the replica regions' forwarders) and the
 * schedule. Every event put on the bus is recorded and handed to one target, in put order; the
 * target is normally the local Lambda's `reconcile` function, whose per-function queue provides the
 * serialization the deployed function gets from reserved concurrency 1.
 *
 * Delivery failures are recorded, not retried (EventBridge retries for up to 24 hours; here a
 * failure a test did not expect should stay visible).
 */
import { randomUUID } from "node:crypto";
import { secretArnSetting as parseSecretArn } from "../../../shared/lib/config";
import { ACCOUNT_ID } from "../autoscaling/fleet";

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
  let chain: Promise<void> = Promise.resolve();
  let pending = 0;
  let closed = false;

  const notify = () => {
    if (pending === 0) for (const waiter of [...waiters]) waiter();
  };

  const deliverOne = async (entry: RecordedEvent): Promise<void> => {
    if (closed) {
      entry.error = "dropped: event bus closed";
      return;
    }
    try {
      await options.deliver(entry.event);
      entry.deliveredAt = new Date();
    } catch (error) {
      entry.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
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
      pending += 1;
      chain = chain
        .then(() => deliverOne(entry))
        .finally(() => {
          pending -= 1;
          notify();
        });
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

import type { ReconcileConfig } from "../../shared/lib/config";
import { InputError } from "../../shared/lib/errors";
import { truncate } from "../../shared/lib/redact";
import { CONTINUATION_SOURCE, REFRESH_EVENTS, type Trigger } from "../../shared/rollout/trigger";

export type { RefreshEvent, Trigger } from "../../shared/rollout/trigger";

/**
 * The one manual form: `{"source": "manual"}`, optionally with `"reason"` (logged), sent to the
 * reconciler's FIFO queue (never invoked directly: see ReconcileQueue in template.yaml), e.g.
 * `aws sqs send-message --queue-url <ReconcileQueueUrl> --message-group-id reconcile
 * --message-deduplication-id <unique> --message-body '{"source":"manual","reason":"after fixing a group"}'`.
 */
export const MANUAL_SOURCE = "manual";

/** A continuation names itself with randomUUID() (lowercase hexadecimal). */
const CONTINUATION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The detail-type prefix of Auto Scaling's instance refresh events (see REFRESH_EVENTS). */
const REFRESH_PREFIX = "EC2 Auto Scaling Instance Refresh ";

/**
 * Run Command's native events (source `aws.ssm`,
 * https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-ssm.html; detail fields
 * `command-id`, `instance-id` (invocation events only), `document-name`, `status`, as in the
 * examples of https://docs.aws.amazon.com/systems-manager/latest/userguide/monitoring-systems-manager-event-examples.html).
 */
const RUN_COMMAND_INVOCATION = "EC2 Command Invocation Status-change Notification";
const RUN_COMMAND = "EC2 Command Status-change Notification";

/** Longest string field we accept: ids, names and regions are far shorter. */
const MAX_FIELD = 2_048;
const MAX_KEYS = 64;

type Record_ = Record<string, unknown>;

function isRecord(value: unknown): value is Record_ {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A short, printable rendering of a value for an error message (never the whole of it). */
function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(truncate(value, 60));
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

function field(record: Record_, key: string, where: string, required: true): string;
function field(record: Record_, key: string, where: string, required: false): string | undefined;
function field(record: Record_, key: string, where: string, required: boolean): string | undefined {
  const value = record[key];
  if (value === undefined && !required) return undefined;
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_FIELD) {
    throw new InputError(
      `reconcile: ${where}${key} must be a non-empty string of at most ${MAX_FIELD} characters, got ${shown(value)}`,
    );
  }
  return value;
}

function detailOf(e: Record_, kind: string): Record_ {
  if (!isRecord(e.detail))
    throw new InputError(`reconcile: a ${kind} event needs an object detail, got ${shown(e.detail)}`);
  if (Object.keys(e.detail).length > MAX_KEYS)
    throw new InputError(`reconcile: a ${kind} event's detail has too many fields`);
  return e.detail;
}

/**
 * When the event happened: the envelope's `time` (ISO-8601, whole seconds in EventBridge's events).
 * Optional for the rotation and manual forms; present but not a time is an InputError, since
 * coalescing relies on it.
 */
function timeOf(event: Record_): Date | undefined {
  const time = field(event, "time", "", false);
  if (time === undefined) return undefined;
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/.test(time) ? Date.parse(time) : Number.NaN;
  if (!Number.isFinite(ms))
    throw new InputError(`reconcile: the event's time is not an ISO-8601 UTC time: ${shown(time)}`);
  return new Date(ms);
}

export function parseTrigger(event: unknown): Trigger {
  if (!isRecord(event)) {
    throw new InputError(
      `reconcile expects an object event (an EventBridge event, the rotate-token invoke, or {"source":"${MANUAL_SOURCE}"}), got ${shown(event)}`,
    );
  }
  if (Object.keys(event).length > MAX_KEYS) throw new InputError("reconcile: the event has too many fields");
  const source = field(event, "source", "", true);
  const detailType = event["detail-type"];
  const at = timeOf(event);

  if (source === "aws.secretsmanager" && detailType === "Secret Label Updated") {
    const detail = detailOf(event, "Secret Label Updated");
    return { kind: "secret-label-updated", versionId: field(detail, "versionId", "detail.", false), at };
  }
  if (
    source === "aws.autoscaling" &&
    typeof detailType === "string" &&
    detailType.startsWith(REFRESH_PREFIX)
  ) {
    const name = detailType.slice(REFRESH_PREFIX.length);
    const refreshEvent = REFRESH_EVENTS.find((e) => e === name);
    if (!refreshEvent) throw new InputError(`reconcile: unknown instance refresh event ${shown(detailType)}`);
    const detail = detailOf(event, "instance refresh");
    return {
      kind: "instance-refresh",
      region: field(event, "region", "", true),
      group: field(detail, "AutoScalingGroupName", "detail.", true),
      refreshId: field(detail, "InstanceRefreshId", "detail.", true),
      event: refreshEvent,
      at,
    };
  }
  if (source === "aws.events" && detailType === "Scheduled Event") return { kind: "schedule", at };
  if (source === "aws.ssm" && (detailType === RUN_COMMAND_INVOCATION || detailType === RUN_COMMAND)) {
    const detail = detailOf(event, "Run Command");
    return {
      kind: "run-command",
      region: field(event, "region", "", true),
      commandId: field(detail, "command-id", "detail.", true),
      instanceId:
        detailType === RUN_COMMAND_INVOCATION ? field(detail, "instance-id", "detail.", true) : undefined,
      status: field(detail, "status", "detail.", true),
      at,
    };
  }
  if (source === "rotate-token") {
    field(event, "secretArn", "", true);
    return { kind: "rotation", versionId: field(event, "versionId", "", true), at };
  }
  if (source === CONTINUATION_SOURCE) {
    // Our own message (handover.ts), but input all the same: it can only ask for a run.
    const id = field(event, "continuation", "", true);
    if (!CONTINUATION_ID.test(id))
      throw new InputError(`reconcile: a continuation's id must be a UUID, got ${shown(id)}`);
    return { kind: "continuation", id, versionId: field(event, "versionId", "", false), at };
  }
  if (source === MANUAL_SOURCE) {
    const reason = field(event, "reason", "", false);
    return { kind: "manual", reason: reason === undefined ? undefined : truncate(reason, 200), at };
  }
  throw new InputError(
    `reconcile: unrecognised event (source ${shown(source)}, detail-type ${shown(detailType)}); nothing was changed`,
  );
}

/**
 * A refresh that just started changes nothing the reconciler would decide (it started it, or it
 * will see it as running on its next run): only terminal refresh events are worth a run. Skipping
 * them keeps a batch made only of them from costing a run.
 */
export function isNoOpTrigger(trigger: Trigger): boolean {
  return (
    trigger.kind === "instance-refresh" &&
    (trigger.event === "Started" ||
      trigger.event === "Rollback Started" ||
      trigger.event === "Checkpoint Reached")
  );
}

/**
 * Whether a refresh event names a group this deployment targets: one of TARGET_GROUPS, or a group
 * named the way CloudFormation names a target stack's agent group (`<stack>-AgentAutoScaleGroup-…`).
 * The refresh rule matches every group of the account (an EventBridge pattern cannot hold a
 * thousand names), so the others are dropped here, before any AWS call.
 */
export function concernsTargets(
  trigger: Trigger,
  config: Pick<ReconcileConfig, "targets" | "stacks">,
): boolean {
  if (trigger.kind !== "instance-refresh") return true;
  const { region, group } = trigger;
  return (
    config.targets.some((t) => t.region === region && t.groupName === group) ||
    config.stacks.some((s) => s.region === region && group.startsWith(`${s.stackName}-AgentAutoScaleGroup-`))
  );
}

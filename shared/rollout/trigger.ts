/**
 * Auto Scaling's instance refresh events (detail-type `EC2 Auto Scaling Instance Refresh <event>`,
 * https://docs.aws.amazon.com/autoscaling/ec2/userguide/monitor-events-eventbridge-sns.html).
 */
export const REFRESH_EVENTS = [
  "Started",
  "Succeeded",
  "Failed",
  "Cancelled",
  "Checkpoint Reached",
  "Rollback Started",
  "Rollback Succeeded",
  "Rollback Failed",
] as const;
export type RefreshEvent = (typeof REFRESH_EVENTS)[number];

/** The source of the message a run sends its own queue when it hands over (handover.ts). */
export const CONTINUATION_SOURCE = "reconcile";

/**
 * What woke the reconciler. It is level-triggered, so a trigger changes no decision; but only the
 * events we route to it (and one documented manual form) may start a run. Anything else is an
 * InputError before anything is observed or written: a malformed or foreign event must not start
 * refreshes or write tags.
 */
export type Trigger =
  | { kind: "secret-label-updated"; versionId: string | undefined; at: Date | undefined }
  | {
      kind: "instance-refresh";
      region: string;
      group: string;
      refreshId: string;
      event: RefreshEvent;
      at: Date | undefined;
    }
  | { kind: "schedule"; at: Date | undefined }
  | { kind: "rotation"; versionId: string; at: Date | undefined }
  | {
      kind: "run-command";
      region: string;
      commandId: string;
      /** Set for an invocation event (one instance); unset for a command event. */
      instanceId: string | undefined;
      status: string;
      at: Date | undefined;
    }
  | { kind: "manual"; reason: string | undefined; at: Date | undefined }
  /**
   * A run that handed the queue over to triggers waiting behind it (handover.ts) continues here:
   * `at` is when it handed over, so a full observation that began later has already covered it.
   */
  | { kind: "continuation"; id: string; versionId: string | undefined; at: Date | undefined };

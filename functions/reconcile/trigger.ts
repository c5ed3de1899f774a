import { InputError } from "../../shared/errors";

/** What woke the reconciler. It is level-triggered, so this is only for logs and metrics. */
export type Trigger =
  | { kind: "secret-label-updated"; versionId: string | undefined }
  | {
      kind: "instance-refresh";
      region: string | undefined;
      group: string | undefined;
      refreshId: string | undefined;
      event: string;
    }
  | { kind: "schedule" }
  | { kind: "rotation"; versionId: string | undefined }
  | { kind: "manual" };

export function parseTrigger(event: unknown): Trigger {
  if (event === null || event === undefined) return { kind: "manual" };
  if (typeof event !== "object" || Array.isArray(event))
    throw new InputError("reconcile expects an object event");
  const e = event as Record<string, unknown>;
  const detail = (e.detail && typeof e.detail === "object" ? e.detail : {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" && v ? v : undefined);
  const detailType = str(e["detail-type"]);
  if (e.source === "aws.secretsmanager" && detailType === "Secret Label Updated") {
    return { kind: "secret-label-updated", versionId: str(detail.versionId) ?? str(detail.VersionId) };
  }
  if (e.source === "aws.autoscaling" && detailType?.startsWith("EC2 Auto Scaling Instance Refresh")) {
    return {
      kind: "instance-refresh",
      region: str(e.region),
      group: str(detail.AutoScalingGroupName),
      refreshId: str(detail.InstanceRefreshId),
      event: detailType.replace("EC2 Auto Scaling Instance Refresh ", ""),
    };
  }
  if (e.source === "aws.events" || detailType === "Scheduled Event") return { kind: "schedule" };
  if (e.source === "rotate-token") return { kind: "rotation", versionId: str(e.versionId) };
  return { kind: "manual" };
}

/**
 * A refresh that just started changes nothing the reconciler would decide (it started it, or it
 * will see it as running on its next run): only terminal refresh events are worth a run. With
 * reserved concurrency 1, skipping them keeps the runs that matter from queueing behind them.
 */
export function isNoOpTrigger(trigger: Trigger): boolean {
  return (
    trigger.kind === "instance-refresh" &&
    (trigger.event === "Started" || trigger.event === "Rollback Started")
  );
}

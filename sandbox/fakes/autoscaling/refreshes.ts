/**
 * Driving instance refreshes: starting one (refused while another is active), its status
 * transitions and the EventBridge events they send, cancel and rollback, and the injected
 * failures. The replacement algorithm itself is refresh.ts; this file gives it its `RefreshEnv`.
 *
 * Events: "EC2 Auto Scaling Instance Refresh Started/Succeeded/Failed/Cancelled/…" from source
 * `aws.autoscaling` with `InstanceRefreshId` and `AutoScalingGroupName` in the detail
 * (https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-eventbridge-events.html).
 */
import { randomUUID } from "node:crypto";
import { AutoScalingError } from "./errors";
import { ACCOUNT_ID, errorMessage, type FleetState } from "./fleet-state";
import type { InstanceLifecycle } from "./lifecycle";
import { normalizePreferences } from "./preferences";
import { planRefresh, type RefreshEnv, runRefresh } from "./refresh";
import { type GroupState, isActive, type RefreshState } from "./state";
import type {
  FailureRule,
  RefreshEvent,
  RefreshEventDetailType,
  RefreshPreferencesInput,
  RefreshStatus,
} from "./types";

const EVENT_FOR_STATUS: Partial<Record<RefreshStatus, RefreshEventDetailType>> = {
  InProgress: "EC2 Auto Scaling Instance Refresh Started",
  Successful: "EC2 Auto Scaling Instance Refresh Succeeded",
  Failed: "EC2 Auto Scaling Instance Refresh Failed",
  Cancelled: "EC2 Auto Scaling Instance Refresh Cancelled",
  RollbackSuccessful: "EC2 Auto Scaling Instance Refresh Rollback Succeeded",
};

export class RefreshDriver {
  readonly #failureRules: FailureRule[] = [];
  readonly #env: RefreshEnv;

  constructor(
    private readonly state: FleetState,
    lifecycle: InstanceLifecycle,
    private readonly onEvent: ((event: RefreshEvent) => void) | undefined,
  ) {
    const { settings } = state;
    this.#env = {
      timers: state.timers,
      replaceMs: () => settings.replaceMs,
      launch: (group) => lifecycle.launch(group),
      boot: async (refresh, group, instance) =>
        (await lifecycle.bootLaunched(refresh.id, group, instance)).result ?? { ok: false },
      terminate: (group, instance, cause) => lifecycle.terminate(group, instance, cause),
      protectedWaitMs: () => settings.protectedWaitMs,
      protectedWaitReason: (ids) => settings.protectedWaitReason(ids),
      takeInjectedFailure: (group) => this.#takeInjectedFailure(group),
      transition: (refresh, status, reason) => this.transition(refresh, status, reason),
    };
  }

  start(
    region: string,
    groupName: string,
    input: RefreshPreferencesInput | undefined,
    origin: RefreshState["origin"],
  ): string {
    const group = this.state.requireGroup(region, groupName);
    const preferences = normalizePreferences(input);
    if (this.state.activeRefresh(region, groupName) !== undefined) {
      throw new AutoScalingError(
        "InstanceRefreshInProgress",
        "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.",
      );
    }
    const refresh: RefreshState = {
      id: randomUUID(),
      region,
      groupName,
      origin,
      status: "Pending",
      startTime: new Date(this.state.timers.now()),
      preferences,
      total: 0,
      updated: 0,
      controller: new AbortController(),
    };
    const plan = planRefresh(group, refresh);
    refresh.total = plan.targets.length + plan.ignored.length;
    this.state.addRefresh(refresh);
    runRefresh(refresh, group, plan, this.#env).catch((error: unknown) => {
      this.transition(refresh, "Failed", `stand-in error: ${errorMessage(error)}`);
    });
    return refresh.id;
  }

  transition(refresh: RefreshState, status: RefreshStatus, reason?: string): void {
    // Terminal states stick: a late batch result must not overwrite a cancel or rollback.
    if (!isActive(refresh.status)) return;
    refresh.status = status;
    if (reason !== undefined) refresh.statusReason = reason;
    if (!isActive(status)) refresh.endTime = new Date(this.state.timers.now());
    // Anything but InProgress ends interruptible waits (Pending tick, waiting on protected instances).
    if (status !== "InProgress") refresh.controller.abort();
    const detailType = EVENT_FOR_STATUS[status];
    if (detailType !== undefined) this.#emit(refresh, detailType);
  }

  cancel(region: string, groupName: string): string {
    const refresh = this.requireActive(region, groupName);
    // The runner moves Cancelling to Cancelled once the replacements already in flight finish.
    if (refresh.status !== "Cancelling") this.transition(refresh, "Cancelling");
    return refresh.id;
  }

  /** Ends the group's active refresh as RollbackSuccessful, as a completed rollback would. */
  rollback(region: string, groupName: string): string {
    const refresh = this.requireActive(region, groupName);
    this.transition(refresh, "RollbackSuccessful", "Instance refresh was rolled back.");
    return refresh.id;
  }

  /**
   * Makes refreshes of matching groups fail on their first batch with StatusReason
   * "simulated failure" (the launched instances never reach `boot`). Returns an undo.
   */
  failRefreshes(rule: FailureRule): () => void {
    const entry = { ...rule };
    this.#failureRules.push(entry);
    return () => {
      const index = this.#failureRules.indexOf(entry);
      if (index >= 0) this.#failureRules.splice(index, 1);
    };
  }

  #emit(refresh: RefreshState, detailType: RefreshEventDetailType): void {
    if (this.onEvent === undefined || this.state.timers.closed) return;
    const group = this.state.groups.get(refresh.region)?.get(refresh.groupName);
    const arn =
      group?.arn ??
      `arn:aws:autoscaling:${refresh.region}:${ACCOUNT_ID}:autoScalingGroup:deleted:autoScalingGroupName/${refresh.groupName}`;
    this.onEvent({
      version: "0",
      id: randomUUID(),
      "detail-type": detailType,
      source: "aws.autoscaling",
      account: ACCOUNT_ID,
      // EventBridge timestamps carry no fractional seconds.
      time: new Date(this.state.timers.now()).toISOString().replace(/\.\d{3}Z$/, "Z"),
      region: refresh.region,
      resources: [arn],
      detail: { InstanceRefreshId: refresh.id, AutoScalingGroupName: refresh.groupName },
    });
  }

  #takeInjectedFailure(group: GroupState): boolean {
    const rule = this.#failureRules.find(
      (candidate) =>
        (candidate.region === undefined || candidate.region === group.region) &&
        (candidate.groupName === undefined || candidate.groupName === group.name) &&
        (candidate.count === undefined || candidate.count > 0),
    );
    if (rule === undefined) return false;
    if (rule.count !== undefined) rule.count -= 1;
    return true;
  }

  requireActive(region: string, groupName: string): RefreshState {
    this.state.requireGroup(region, groupName);
    const refresh = this.state.activeRefresh(region, groupName);
    if (refresh === undefined) {
      throw new AutoScalingError(
        "ActiveInstanceRefreshNotFound",
        `No in progress or pending Instance Refresh found for Auto Scaling group ${groupName}`,
      );
    }
    return refresh;
  }
}

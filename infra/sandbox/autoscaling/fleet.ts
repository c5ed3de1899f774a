/**
 * The simulated EC2 Auto Scaling fleet: groups per region, their instances and tags, and instance
 * refreshes that really replace instances (calling the `boot` hook for each new one). No HTTP here;
 * given its clock it is deterministic apart from the random refresh and event ids.
 */
import { createHash, randomUUID } from "node:crypto";
import { type Clock, systemClock, Timers } from "./clock";
import { AutoScalingError, groupNotFound } from "./errors";
import { normalizePreferences } from "./preferences";
import { planRefresh, type RefreshEnv, runRefresh } from "./refresh";
import { type GroupState, type InstanceState, isActive, type RefreshState, refreshView } from "./state";
import type {
  BootContext,
  BootRecord,
  BootResult,
  FailureRule,
  GroupSpec,
  GroupView,
  InstanceView,
  RefreshEvent,
  RefreshEventDetailType,
  RefreshPreferencesInput,
  RefreshStatus,
  RefreshView,
  TagView,
} from "./types";

export const ACCOUNT_ID = "123456789012";

export interface FleetOptions {
  groups: GroupSpec[];
  /** Time to launch and boot one instance before `boot` is called (default 200 ms). */
  replaceMs?: number;
  /** How long a busy protected instance keeps its job once a Wait refresh needs it (default 500 ms). */
  jobMs?: number;
  /** Called once per launched instance; `ok: false` fails the refresh. Defaults to always ok. */
  boot?: (context: BootContext) => Promise<BootResult>;
  onEvent?: (event: RefreshEvent) => void;
  clock?: Clock;
}

const EVENT_FOR_STATUS: Partial<Record<RefreshStatus, RefreshEventDetailType>> = {
  InProgress: "EC2 Auto Scaling Instance Refresh Started",
  Successful: "EC2 Auto Scaling Instance Refresh Succeeded",
  Failed: "EC2 Auto Scaling Instance Refresh Failed",
  Cancelled: "EC2 Auto Scaling Instance Refresh Cancelled",
  RollbackSuccessful: "EC2 Auto Scaling Instance Refresh Rollback Succeeded",
};

export class Fleet {
  readonly #groups = new Map<string, Map<string, GroupState>>();
  /** Every refresh ever started, oldest first. */
  readonly #refreshes: RefreshState[] = [];
  readonly #boots: BootRecord[] = [];
  readonly #failureRules: FailureRule[] = [];
  readonly #timers: Timers;
  readonly #env: RefreshEnv;
  readonly #boot: (context: BootContext) => Promise<BootResult>;
  readonly #onEvent: ((event: RefreshEvent) => void) | undefined;
  readonly #jobMs: number;
  #replaceMs: number;
  #instanceCount = 0;

  constructor(options: FleetOptions) {
    this.#timers = new Timers(options.clock ?? systemClock);
    this.#boot = options.boot ?? (async () => ({ ok: true }));
    this.#onEvent = options.onEvent;
    this.#replaceMs = nonNegative("replaceMs", options.replaceMs ?? 200);
    this.#jobMs = nonNegative("jobMs", options.jobMs ?? 500);
    this.#env = {
      timers: this.#timers,
      replaceMs: () => this.#replaceMs,
      launch: (group) => this.#launch(group),
      boot: (refresh, group, instance) => this.#runBoot(refresh, group, instance),
      terminate: (group, instance) => this.#terminate(group, instance),
      startJobCountdown: (instance) => this.#startJobCountdown(instance),
      takeInjectedFailure: (group) => this.#takeInjectedFailure(group),
      transition: (refresh, status, reason) => this.#transition(refresh, status, reason),
    };
    for (const spec of options.groups) this.#addGroup(spec);
  }

  // ---- Inspection -------------------------------------------------------------------------------

  /** Every group in every region, sorted by region then name. */
  groups(): GroupView[] {
    return [...this.#groups.keys()].sort().flatMap((region) => this.describeGroups(region));
  }

  instances(region: string, groupName: string): InstanceView[] {
    return this.#requireGroup(region, groupName).instances.map(instanceView);
  }

  /** Refreshes of one group, newest first (the order DescribeInstanceRefreshes uses). */
  refreshes(region: string, groupName: string): RefreshView[] {
    return this.#refreshes
      .filter((refresh) => refresh.region === region && refresh.groupName === groupName)
      .reverse()
      .map(refreshView);
  }

  /** Every boot attempt, oldest first; `result` is undefined while the hook is still running. */
  boots(): BootRecord[] {
    return this.#boots.map((record) => ({
      ...record,
      ...(record.result ? { result: { ...record.result } } : {}),
    }));
  }

  // ---- Operations behind the API ----------------------------------------------------------------

  /** Groups of one region sorted by name, optionally only those named. */
  describeGroups(region: string, names?: readonly string[]): GroupView[] {
    const inRegion = [...(this.#groups.get(region)?.values() ?? [])];
    const wanted = names === undefined || names.length === 0 ? undefined : new Set(names);
    return inRegion
      .filter((group) => wanted === undefined || wanted.has(group.name))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map(groupView);
  }

  setTag(region: string, groupName: string, tag: TagView): void {
    this.#requireGroup(region, groupName).tags.set(tag.key, { ...tag });
  }

  /** Deletes the tag with `key`; when `value` is given, only if the tag still has that value. */
  deleteTag(region: string, groupName: string, key: string, value?: string): void {
    const tags = this.#requireGroup(region, groupName).tags;
    const existing = tags.get(key);
    if (existing !== undefined && (value === undefined || existing.value === value)) tags.delete(key);
  }

  startInstanceRefresh(region: string, groupName: string, preferences?: RefreshPreferencesInput): string {
    return this.#start(region, groupName, preferences, "api");
  }

  cancelInstanceRefresh(region: string, groupName: string): string {
    const refresh = this.#requireActiveRefresh(region, groupName);
    // The runner moves Cancelling to Cancelled once the replacements already in flight finish.
    if (refresh.status !== "Cancelling") this.#transition(refresh, "Cancelling");
    return refresh.id;
  }

  // ---- Knobs ------------------------------------------------------------------------------------

  /**
   * Makes refreshes of matching groups fail on their first batch with StatusReason
   * "simulated failure" (the launched instances never reach `boot`). Returns an undo.
   */
  failRefreshes(rule: FailureRule = {}): () => void {
    const entry = { ...rule };
    this.#failureRules.push(entry);
    return () => {
      const index = this.#failureRules.indexOf(entry);
      if (index >= 0) this.#failureRules.splice(index, 1);
    };
  }

  setReplaceMs(ms: number): void {
    this.#replaceMs = nonNegative("replaceMs", ms);
  }

  /**
   * Points the group at another launch template version, as a template update would; instances
   * launched before then stop matching, which is what SkipMatching compares.
   */
  setLaunchTemplateVersion(region: string, groupName: string, version: string): void {
    this.#requireGroup(region, groupName).launchTemplate.version = version;
  }

  /** A refresh started outside the API (say, by a human in the console); otherwise ordinary. */
  startExternalRefresh(region: string, groupName: string, preferences?: RefreshPreferencesInput): string {
    return this.#start(region, groupName, preferences, "external");
  }

  /** Ends the group's active refresh as RollbackSuccessful, as a completed rollback would. */
  rollback(region: string, groupName: string): string {
    const refresh = this.#requireActiveRefresh(region, groupName);
    this.#transition(refresh, "RollbackSuccessful", "Instance refresh was rolled back.");
    return refresh.id;
  }

  /** Stops every timer; refreshes in flight freeze where they are. Idempotent. */
  close(): void {
    this.#timers.close();
  }

  // ---- Internals --------------------------------------------------------------------------------

  #start(
    region: string,
    groupName: string,
    input: RefreshPreferencesInput | undefined,
    origin: RefreshState["origin"],
  ): string {
    const group = this.#requireGroup(region, groupName);
    const preferences = normalizePreferences(input);
    if (this.#activeRefresh(region, groupName) !== undefined) {
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
      startTime: new Date(this.#timers.now()),
      preferences,
      total: 0,
      updated: 0,
      controller: new AbortController(),
    };
    const plan = planRefresh(group, refresh);
    refresh.total = plan.targets.length + plan.ignored.length;
    this.#refreshes.push(refresh);
    runRefresh(refresh, group, plan, this.#env).catch((error: unknown) => {
      this.#transition(refresh, "Failed", `stand-in error: ${errorMessage(error)}`);
    });
    return refresh.id;
  }

  #transition(refresh: RefreshState, status: RefreshStatus, reason?: string): void {
    // Terminal states stick: a late batch result must not overwrite a cancel or rollback.
    if (!isActive(refresh.status)) return;
    refresh.status = status;
    if (reason !== undefined) refresh.statusReason = reason;
    if (!isActive(status)) refresh.endTime = new Date(this.#timers.now());
    // Anything but InProgress ends interruptible waits (Pending tick, waiting on protected instances).
    if (status !== "InProgress") refresh.controller.abort();
    const detailType = EVENT_FOR_STATUS[status];
    if (detailType !== undefined) this.#emit(refresh, detailType);
  }

  #emit(refresh: RefreshState, detailType: RefreshEventDetailType): void {
    if (this.#onEvent === undefined || this.#timers.closed) return;
    const group = this.#requireGroup(refresh.region, refresh.groupName);
    this.#onEvent({
      version: "0",
      id: randomUUID(),
      "detail-type": detailType,
      source: "aws.autoscaling",
      account: ACCOUNT_ID,
      // EventBridge timestamps carry no fractional seconds.
      time: new Date(this.#timers.now()).toISOString().replace(/\.\d{3}Z$/, "Z"),
      region: refresh.region,
      resources: [group.arn],
      detail: { InstanceRefreshId: refresh.id, AutoScalingGroupName: refresh.groupName },
    });
  }

  #launch(group: GroupState): InstanceState {
    const instance = this.#newInstance(group, "Pending", group.newInstancesProtectedFromScaleIn);
    group.instances.push(instance);
    return instance;
  }

  async #terminate(group: GroupState, instance: InstanceState): Promise<void> {
    instance.state = "Terminating";
    // Shutting down is quicker than booting; a quarter of replaceMs keeps Terminating observable.
    await this.#timers.sleep(Math.ceil(this.#replaceMs / 4));
    const index = group.instances.indexOf(instance);
    if (index >= 0) group.instances.splice(index, 1);
  }

  async #runBoot(refresh: RefreshState, group: GroupState, instance: InstanceState): Promise<BootResult> {
    const context: BootContext = {
      region: group.region,
      groupName: group.name,
      instanceId: instance.id,
      instanceRefreshId: refresh.id,
    };
    const record: BootRecord = { ...context, startedAt: new Date(this.#timers.now()) };
    this.#boots.push(record);
    let result: BootResult;
    try {
      const outcome = await this.#boot({ ...context });
      result = { ok: outcome.ok, ...(outcome.reason === undefined ? {} : { reason: outcome.reason }) };
    } catch (error) {
      // A throwing hook is a failed boot, not a crashed simulation.
      result = { ok: false, reason: errorMessage(error) };
    }
    record.result = result;
    record.finishedAt = new Date(this.#timers.now());
    return result;
  }

  /**
   * A busy protected instance finishes its job `jobMs` after a Wait refresh starts needing it and
   * then drops its protection, as a Buildkite agent does when it completes its job and stops.
   */
  #startJobCountdown(instance: InstanceState): void {
    if (!instance.protectedFromScaleIn || instance.jobEndsAt !== undefined) return;
    instance.jobEndsAt = this.#timers.now() + this.#jobMs;
    this.#timers.after(this.#jobMs, () => {
      instance.protectedFromScaleIn = false;
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

  #activeRefresh(region: string, groupName: string): RefreshState | undefined {
    return this.#refreshes.find(
      (refresh) => refresh.region === region && refresh.groupName === groupName && isActive(refresh.status),
    );
  }

  #requireActiveRefresh(region: string, groupName: string): RefreshState {
    this.#requireGroup(region, groupName);
    const refresh = this.#activeRefresh(region, groupName);
    if (refresh === undefined) {
      throw new AutoScalingError(
        "ActiveInstanceRefreshNotFound",
        `No in progress or pending Instance Refresh found for Auto Scaling group ${groupName}`,
      );
    }
    return refresh;
  }

  #requireGroup(region: string, groupName: string): GroupState {
    const group = this.#groups.get(region)?.get(groupName);
    if (group === undefined) throw groupNotFound(groupName);
    return group;
  }

  #addGroup(spec: GroupSpec): void {
    const { region, name, instances } = spec;
    const protectedCount = spec.protectedInstances ?? 0;
    const minSize = spec.minSize ?? 0;
    const maxSize = spec.maxSize ?? Math.max(instances, 1);
    if (!Number.isInteger(instances) || instances < 0) throw new Error(`${name}: instances must be >= 0`);
    if (protectedCount > instances) throw new Error(`${name}: protectedInstances exceeds instances`);
    if (minSize > instances || instances > maxSize) {
      throw new Error(`${name}: need minSize <= instances <= maxSize`);
    }
    const regionGroups = this.#groups.get(region) ?? new Map<string, GroupState>();
    if (regionGroups.has(name)) throw new Error(`duplicate group ${name} in ${region}`);
    this.#groups.set(region, regionGroups);

    // Ids derive from region and name so that repeated runs describe the same fleet.
    const digest = createHash("sha256").update(`${region}/${name}`).digest("hex");
    const group: GroupState = {
      region,
      name,
      arn: `arn:aws:autoscaling:${region}:${ACCOUNT_ID}:autoScalingGroup:${asUuid(digest)}:autoScalingGroupName/${name}`,
      minSize,
      maxSize,
      desiredCapacity: instances,
      createdTime: new Date(this.#timers.now()),
      launchTemplate: {
        launchTemplateId: `lt-${digest.slice(0, 17)}`,
        launchTemplateName: name,
        version: "1",
      },
      newInstancesProtectedFromScaleIn: false,
      instances: [],
      tags: new Map(
        Object.entries(spec.tags ?? {}).map(([key, value]) => [key, { key, value, propagateAtLaunch: true }]),
      ),
    };
    for (let index = 0; index < instances; index += 1) {
      group.instances.push(this.#newInstance(group, "InService", index < protectedCount));
    }
    regionGroups.set(name, group);
  }

  #newInstance(
    group: GroupState,
    state: InstanceState["state"],
    protectedFromScaleIn: boolean,
  ): InstanceState {
    this.#instanceCount += 1;
    const zones = ["a", "b", "c"];
    return {
      id: `i-${this.#instanceCount.toString(16).padStart(17, "0")}`,
      availabilityZone: `${group.region}${zones[this.#instanceCount % zones.length] ?? "a"}`,
      state,
      protectedFromScaleIn,
      launchTemplateVersion: group.launchTemplate.version,
    };
  }
}

function groupView(group: GroupState): GroupView {
  return {
    region: group.region,
    name: group.name,
    arn: group.arn,
    minSize: group.minSize,
    maxSize: group.maxSize,
    desiredCapacity: group.desiredCapacity,
    createdTime: group.createdTime,
    launchTemplate: { ...group.launchTemplate },
    newInstancesProtectedFromScaleIn: group.newInstancesProtectedFromScaleIn,
    instances: group.instances.map(instanceView),
    tags: [...group.tags.values()].sort((a, b) => a.key.localeCompare(b.key)).map((tag) => ({ ...tag })),
  };
}

function instanceView(instance: InstanceState): InstanceView {
  return {
    instanceId: instance.id,
    availabilityZone: instance.availabilityZone,
    lifecycleState: instance.state,
    healthStatus: "Healthy",
    protectedFromScaleIn: instance.protectedFromScaleIn,
    launchTemplateVersion: instance.launchTemplateVersion,
  };
}

function asUuid(hex: string): string {
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20, 32)].join(
    "-",
  );
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number`);
  return value;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

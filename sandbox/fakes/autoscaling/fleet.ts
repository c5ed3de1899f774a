/**
 * The simulated EC2 Auto Scaling fleet of Elastic CI Stack agents: groups per region, their
 * instances and tags, instance refreshes that really replace instances, and the agents' own life
 * (jobs, idle self-termination, restarts) as the stock stack (buildkite/elastic-ci-stack-for-aws
 * v6.71) runs it. No HTTP here; given its clock it is deterministic apart from random ids.
 *
 * This class is the fleet's public face; its parts are groups.ts (groups and their views),
 * lifecycle.ts (launch, boot, shutdown, scale-in protection), agents.ts (jobs, exits, restarts,
 * the scaler: what the stock stack does, and where it says so), refreshes.ts (starting and
 * driving instance refreshes; the replacement algorithm is refresh.ts) over one FleetState.
 */
import { rmSync } from "node:fs";
import type { InstanceDirectory, InstanceHost } from "../instances/instance-host";
import { AgentLife, defaultStartAgent, drawBusyOnBoot } from "./agents";
import { systemClock, Timers } from "./clock";
import { validationError } from "./errors";
import {
  type AddGroupOptions,
  type FleetOptions,
  type FleetSettings,
  fleetSettings,
  nonNegative,
} from "./fleet-options";
import { FleetState } from "./fleet-state";
import { createGroup, groupView, instanceView } from "./groups";
import { defaultBoot, InstanceLifecycle, type TerminateActivity } from "./lifecycle";
import { RefreshDriver } from "./refreshes";
import { type InstanceState, isActive, refreshView } from "./state";
import type {
  BootRecord,
  Ec2InstanceView,
  FailureRule,
  FleetCounters,
  GroupSpec,
  GroupView,
  InstanceView,
  RefreshPreferencesInput,
  RefreshView,
  RegistrationRecord,
  SsmAgentState,
  TagView,
} from "./types";

export type { AddGroupOptions, FleetOptions } from "./fleet-options";
export { ACCOUNT_ID } from "./fleet-state";

export class Fleet {
  readonly #state: FleetState;
  readonly #settings: FleetSettings;
  readonly #lifecycle: InstanceLifecycle;
  readonly #agents: AgentLife;
  readonly #refreshes: RefreshDriver;

  constructor(options: FleetOptions) {
    this.#settings = fleetSettings(options);
    this.#state = new FleetState(new Timers(options.clock ?? systemClock), this.#settings);
    this.#lifecycle = new InstanceLifecycle(
      this.#state,
      options.boot ?? defaultBoot,
      (group, instance, initial) =>
        this.#agents.started(group, instance, initial ? instance.busyAtBoot : drawBusyOnBoot(group)),
    );
    this.#agents = new AgentLife(this.#state, options.startAgent ?? defaultStartAgent, this.#lifecycle);
    this.#refreshes = new RefreshDriver(this.#state, this.#lifecycle, options.onEvent);
    for (const spec of options.groups) createGroup(this.#state, spec, false);
  }

  // ---- Inspection -------------------------------------------------------------------------------

  /** Every group in every region, sorted by region then name. */
  groups(): GroupView[] {
    return [...this.#state.groups.keys()].sort().flatMap((region) => this.describeGroups(region));
  }

  instances(region: string, groupName: string): InstanceView[] {
    return this.#state.requireGroup(region, groupName).instances.map(instanceView);
  }

  /** One instance by id in any region (deleted groups too), terminated ones included. */
  findInstance(instanceId: string): { region: string; instance: InstanceView } | undefined {
    const found = this.#state.instances.get(instanceId);
    return found ? { region: found.region, instance: instanceView(found) } : undefined;
  }

  /** One instance by id (any group of the region, deleted groups too), terminated ones included. */
  instance(region: string, instanceId: string): InstanceView | undefined {
    const found = this.#state.instances.get(instanceId);
    return found?.region === region ? instanceView(found) : undefined;
  }

  /** Refreshes of one group, newest first (the order DescribeInstanceRefreshes uses). */
  refreshes(region: string, groupName: string): RefreshView[] {
    return [...this.#state.refreshesOf(region, groupName)].reverse().map(refreshView);
  }

  /** Every Pending or InProgress (or otherwise active) refresh, in every region, oldest first. */
  activeRefreshes(): RefreshView[] {
    return this.#state.refreshes.filter((refresh) => isActive(refresh.status)).map(refreshView);
  }

  /** Instances launching (lifecycle Pending) in any group, in every region. */
  launchingInstances(): Array<{ region: string; instanceId: string }> {
    const out: Array<{ region: string; instanceId: string }> = [];
    for (const instance of this.#state.instances.values()) {
      if (instance.state === "Pending") out.push({ region: instance.region, instanceId: instance.id });
    }
    return out;
  }

  /**
   * Every boot of a launched instance (refresh replacements, capacity launches, new groups), oldest
   * first; `result` is undefined while the hook is still running. The fleet's initial boots are in
   * `initialBoots()`.
   */
  boots(): BootRecord[] {
    return this.#state.boots.map(copyBoot);
  }

  initialBoots(): BootRecord[] {
    return this.#state.initialBoots.map(copyBoot);
  }

  /** Every registration attempt an agent made (boot, initial boot, restart), oldest first. */
  registrations(): RegistrationRecord[] {
    return this.#state.registrations.map((record) => ({ ...record, at: new Date(record.at) }));
  }

  /** The figures a rotation is judged by. */
  counters(): FleetCounters {
    const { counts, registrations } = this.#state;
    const failures = registrations.filter((record) => !record.ok);
    return {
      replacedByRollout: counts.replacedByRolloutIds.length,
      replacedByRolloutIds: [...counts.replacedByRolloutIds],
      selfTerminated: counts.selfTerminated,
      churnLaunches: counts.churnLaunches,
      terminatedByStackUpdate: counts.terminatedByStackUpdate,
      jobsStarted: counts.jobsStarted,
      jobsCompleted: counts.jobsCompleted,
      jobsInterrupted: counts.jobsInterrupted,
      registrations: {
        ok: registrations.length - failures.length,
        failed: failures.length,
        failures: failures.map((record) => ({
          region: record.region,
          instanceId: record.instanceId,
          cause: record.cause,
          ...(record.reason === undefined ? {} : { reason: record.reason }),
        })),
      },
      agentRestarts: counts.agentRestarts,
    };
  }

  /** What EC2 DescribeInstances shows in `region`: live instances and recently terminated ones, by launch order. */
  ec2Instances(region: string): Ec2InstanceView[] {
    const now = this.#state.timers.now();
    const visible: Ec2InstanceView[] = [];
    for (const instance of this.#state.instancesByRegion.get(region) ?? []) {
      if (
        instance.terminatedAt !== undefined &&
        now - instance.terminatedAt > this.#settings.terminatedVisibleMs
      )
        continue;
      visible.push({
        instanceId: instance.id,
        region: instance.region,
        availabilityZone: instance.availabilityZone,
        launchTime: new Date(instance.launchTime),
        state: instance.ec2State,
        platform: instance.platform,
        launchTemplateVersion: instance.launchTemplateVersion,
        tags: instance.tags.map((tag) => ({ ...tag })),
      });
    }
    return visible;
  }

  /** The fleet as the Run Command stand-in sees it (see sandbox/fakes/instances/instance-host.ts). */
  instanceDirectory(): InstanceDirectory {
    const host = (instance: InstanceState): InstanceHost => ({
      instanceId: instance.id,
      region: instance.region,
      platform: instance.platform,
      configPath: instance.configPath,
      running: () => instance.ec2State === "pending" || instance.ec2State === "running",
      ssmAgent: () => instance.ssmAgent,
      bootFinished: () => instance.bootFinished,
    });
    return {
      find: (region, instanceId) => {
        const instance = this.#state.instances.get(instanceId);
        return instance?.region === region ? host(instance) : undefined;
      },
      list: (region) =>
        (this.#state.instancesByRegion.get(region) ?? [])
          .filter((instance) => instance.ec2State !== "terminated")
          .map(host),
    };
  }

  // ---- Operations behind the API ----------------------------------------------------------------

  /** Groups of one region sorted by name, optionally only those named. */
  describeGroups(region: string, names?: readonly string[]): GroupView[] {
    const inRegion = [...(this.#state.groups.get(region)?.values() ?? [])];
    const wanted = names === undefined || names.length === 0 ? undefined : new Set(names);
    return inRegion
      .filter((group) => wanted === undefined || wanted.has(group.name))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map(groupView);
  }

  setTag(region: string, groupName: string, tag: TagView): void {
    this.#state.requireGroup(region, groupName).tags.set(tag.key, { ...tag });
  }

  /** Deletes the tag with `key`; when `value` is given, only if the tag still has that value. */
  deleteTag(region: string, groupName: string, key: string, value?: string): void {
    const tags = this.#state.requireGroup(region, groupName).tags;
    const existing = tags.get(key);
    if (existing !== undefined && (value === undefined || existing.value === value)) tags.delete(key);
  }

  startInstanceRefresh(region: string, groupName: string, preferences?: RefreshPreferencesInput): string {
    return this.#refreshes.start(region, groupName, preferences, "api");
  }

  cancelInstanceRefresh(region: string, groupName: string): string {
    return this.#refreshes.cancel(region, groupName);
  }

  /** TerminateInstanceInAutoScalingGroup from outside the instance: see lifecycle.ts. */
  terminateInstanceInAutoScalingGroup(
    region: string,
    instanceId: string,
    shouldDecrementDesiredCapacity: boolean,
  ): TerminateActivity {
    return this.#lifecycle.terminateFromApi(region, instanceId, shouldDecrementDesiredCapacity);
  }

  /** SetInstanceProtection: the only way protection goes away (nothing in the stock stack calls it). */
  setInstanceProtection(
    region: string,
    groupName: string,
    instanceIds: readonly string[],
    protect: boolean,
  ): void {
    const group = this.#state.requireGroup(region, groupName);
    for (const id of instanceIds) {
      const instance = group.instances.find((candidate) => candidate.id === id);
      if (instance === undefined) {
        throw validationError(`The instance ${id} is not part of Auto Scaling group ${groupName}.`);
      }
      instance.protectedFromScaleIn = protect;
    }
  }

  // ---- Knobs ------------------------------------------------------------------------------------

  /**
   * Boots every instance that was already running when the fleet was created: user data reads the
   * token, writes the cfg, starts the agent. Their records go to `initialBoots()`, not `boots()`.
   */
  bootInitialInstances(): Promise<BootRecord[]> {
    return this.#lifecycle.bootInitialInstances();
  }

  /**
   * Adds a group (e.g. one CloudFormation creates). With `launch: true` its instances launch and
   * boot now, like any new group's; `groupFilled` tells when they all run.
   */
  addGroup(spec: GroupSpec, options: AddGroupOptions = {}): GroupView {
    const launch = options.launch ?? false;
    const group = createGroup(this.#state, spec, launch);
    if (launch) this.#lifecycle.fillCapacity(group, "stack");
    return groupView(group);
  }

  /** Every desired instance of the group is InService and its agent started. */
  groupFilled(region: string, groupName: string): boolean {
    const group = this.#state.requireGroup(region, groupName);
    const ready = group.instances.filter(
      (instance) => instance.state === "InService" && instance.bootFinished,
    );
    return ready.length >= group.desiredCapacity;
  }

  /** Deletes a group as CloudFormation does: its instances terminate, then the group is gone. */
  async deleteGroup(region: string, groupName: string, cause: "stack" = "stack"): Promise<void> {
    const group = this.#state.requireGroup(region, groupName);
    const active = this.#state.activeRefresh(region, groupName);
    if (active !== undefined)
      this.#refreshes.transition(active, "Cancelled", "The Auto Scaling group was deleted.");
    group.desiredCapacity = 0;
    await Promise.all(group.instances.map((instance) => this.#lifecycle.terminate(group, instance, cause)));
    this.#state.groups.get(region)?.delete(groupName);
  }

  /** The instance's agent process exits: `failure` (non-zero) or `clean` (as after the idle timeout). */
  restartAgent(region: string, instanceId: string, kind: "failure" | "clean"): void {
    const { group, instance } = this.#state.requireLiveInstance(region, instanceId);
    if (!instance.agentRunning) throw new Error(`${instanceId}: the agent is not running`);
    this.#agents.exit(group, instance, kind);
  }

  /** Starts a job on an idle agent (`durationMs` defaults to the group's next drawn length). */
  startJob(region: string, instanceId: string, durationMs?: number): void {
    const { group, instance } = this.#state.requireLiveInstance(region, instanceId);
    if (!instance.agentRunning || instance.job !== undefined) {
      throw new Error(`${instanceId}: the agent is not idle`);
    }
    this.#agents.startJob(group, instance, durationMs ?? this.#agents.drawJobMs(group));
  }

  setSsmAgent(region: string, instanceId: string, state: SsmAgentState): void {
    const instance = this.#state.instances.get(instanceId);
    if (instance?.region !== region) throw new Error(`no instance ${instanceId} in ${region}`);
    instance.ssmAgent = state;
  }

  setProtectedWaitMs(ms: number): void {
    this.#settings.protectedWaitMs = nonNegative("protectedWaitMs", ms);
  }

  /**
   * Makes refreshes of matching groups fail on their first batch with StatusReason
   * "simulated failure" (the launched instances never reach `boot`). Returns an undo.
   */
  failRefreshes(rule: FailureRule = {}): () => void {
    return this.#refreshes.failRefreshes(rule);
  }

  setReplaceMs(ms: number): void {
    this.#settings.replaceMs = nonNegative("replaceMs", ms);
  }

  /**
   * Points the group at another launch template version, as a template update would; instances
   * launched before then stop matching, which is what SkipMatching compares.
   */
  setLaunchTemplateVersion(region: string, groupName: string, version: string): void {
    this.#state.requireGroup(region, groupName).launchTemplate.version = version;
  }

  /** A refresh started outside the API (say, by a human in the console); otherwise ordinary. */
  startExternalRefresh(region: string, groupName: string, preferences?: RefreshPreferencesInput): string {
    return this.#refreshes.start(region, groupName, preferences, "external");
  }

  /** Ends the group's active refresh as RollbackSuccessful, as a completed rollback would. */
  rollback(region: string, groupName: string): string {
    return this.#refreshes.rollback(region, groupName);
  }

  /** Stops every timer (refreshes and agents freeze where they are) and removes an owned cfg dir. Idempotent. */
  close(): void {
    this.#state.timers.close();
    if (this.#settings.ownsConfigDir) rmSync(this.#settings.configDir, { recursive: true, force: true });
  }
}

function copyBoot(record: BootRecord): BootRecord {
  return { ...record, ...(record.result ? { result: { ...record.result } } : {}) };
}

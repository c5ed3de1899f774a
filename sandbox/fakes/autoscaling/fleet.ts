/**
 * The simulated EC2 Auto Scaling fleet of Elastic CI Stack agents: groups per region, their
 * instances and tags, instance refreshes that really replace instances, and the agents' own life
 * (jobs, idle self-termination, restarts) as the stock stack (buildkite/elastic-ci-stack-for-aws
 * v6.71) runs it. No HTTP here; given its clock it is deterministic apart from random ids.
 *
 * What the stock stack does, and where it says so:
 * - Every instance is protected from scale in: `InstanceScaleInProtection` defaults to "true" and
 *   feeds the group's `NewInstancesProtectedFromScaleIn` (templates/aws-stack.yml). Nothing in the
 *   stack removes it; instances leave by terminating themselves.
 * - An idle agent exits cleanly after `ScaleInIdlePeriod` (`disconnect-after-idle-timeout` in the
 *   cfg, packer/linux/stack/conf/bin/bk-install-elastic-stack.sh).
 * - Linux: the systemd unit (packer/linux/stack/conf/buildkite-agent/systemd/buildkite-agent.service)
 *   has `Restart=on-failure`, `RestartSec=5` and `ExecStopPost=/usr/local/bin/terminate-instance`,
 *   so ANY exit runs terminate-instance and a failure exit also restarts the agent (re-reading the
 *   cfg) while that script sleeps 10 s before acting. terminate-instance
 *   (packer/linux/stack/conf/buildkite-agent/scripts/terminate-instance) calls
 *   TerminateInstanceInAutoScalingGroup with `--should-decrement-desired-capacity`, and when that
 *   fails (desired == min) again without it, so the group launches a replacement.
 * - Windows: nssm runs the agent with `AppExit Default Restart`, `AppRestartDelay 10000` and
 *   `AppEvents Exit/Post terminate-instance.ps1` (packer/windows/stack/conf/bin/bk-install-elastic-stack.ps1).
 *   terminate-instance.ps1 (packer/windows/stack/conf/buildkite-agent/scripts/terminate-instance.ps1)
 *   only tries the decrementing call; when it fails ("already at minSize") it runs
 *   `nssm start buildkite-agent`: the agent starts again with the cfg token, over and over.
 * - The scaler Lambda raises the desired capacity for pending jobs; `scaler` models that much.
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { seededRandom } from "../../lib/seeded-random";
import type { InstanceDirectory, InstanceHost } from "../instances/instance-host";
import { readAgentToken, writeAgentConfigSync } from "./agent-config";
import { type Clock, systemClock, Timers } from "./clock";
import { AutoScalingError, groupNotFound, validationError } from "./errors";
import { normalizePreferences } from "./preferences";
import { planRefresh, type RefreshEnv, runRefresh } from "./refresh";
import { type GroupState, type InstanceState, isActive, type RefreshState, refreshView } from "./state";
import type {
  AgentStartContext,
  BootContext,
  BootRecord,
  BootResult,
  Ec2InstanceView,
  FailureRule,
  FleetCounters,
  GroupSpec,
  GroupView,
  InstanceView,
  RefreshEvent,
  RefreshEventDetailType,
  RefreshPreferencesInput,
  RefreshStatus,
  RefreshView,
  RegistrationRecord,
  SsmAgentState,
  TagView,
  TerminationCause,
} from "./types";

export const ACCOUNT_ID = "123456789012";

export interface FleetOptions {
  groups: GroupSpec[];
  /** Time to launch and boot one instance before `boot` is called (default 200 ms). */
  replaceMs?: number;
  /** Default job length when a group's jobs give none (default 500 ms). */
  jobMs?: number;
  /**
   * User data of a launched instance: read the token, write the cfg at `configPath`, start the
   * agent (register). `ok: false` fails the refresh that launched it. Defaults to writing a cfg with
   * an empty token and succeeding.
   */
  boot?: (context: BootContext) => Promise<BootResult>;
  /** `buildkite-agent start` on a live instance (token from the cfg). Default: ok when the cfg has a non-empty token. */
  startAgent?: (context: AgentStartContext) => Promise<BootResult>;
  onEvent?: (event: RefreshEvent) => void;
  clock?: Clock;
  /** Where instances' cfg files live; default a fresh temp directory that close() removes. */
  configDir?: string;
  /** A Wait refresh fails after this long blocked on protected instances (AWS: one hour). Default 2000 ms. */
  protectedWaitMs?: number;
  /**
   * StatusReason of such a failure. AWS documents the behaviour, not the wording, so the default
   * text is ours and this makes it replaceable.
   */
  protectedWaitReason?: (instanceIds: readonly string[]) => string;
  /** Terminated instances stay visible to EC2 DescribeInstances this long (AWS: "usually less than one hour"). Default 60 s. */
  terminatedVisibleMs?: number;
  /** systemd `RestartSec=5`, scaled (default 50 ms). */
  linuxRestartDelayMs?: number;
  /** nssm `AppRestartDelay 10000`, scaled (default 100 ms). */
  windowsRestartDelayMs?: number;
  /** terminate-instance's `sleep 10` before it calls Auto Scaling, scaled (default 100 ms). */
  terminateDelayMs?: number;
  /** Bound on agent restarts per instance (AWS loops forever; the simulation must not). Default 5. */
  maxAgentRestarts?: number;
}

export interface AddGroupOptions {
  /**
   * `true`: the group is new, its instances launch and boot now (as when CloudFormation creates
   * it). `false` (default): they already run, launched an hour ago; `bootInitialInstances` boots them.
   */
  launch?: boolean;
}

const EVENT_FOR_STATUS: Partial<Record<RefreshStatus, RefreshEventDetailType>> = {
  InProgress: "EC2 Auto Scaling Instance Refresh Started",
  Successful: "EC2 Auto Scaling Instance Refresh Succeeded",
  Failed: "EC2 Auto Scaling Instance Refresh Failed",
  Cancelled: "EC2 Auto Scaling Instance Refresh Cancelled",
  RollbackSuccessful: "EC2 Auto Scaling Instance Refresh Rollback Succeeded",
};

function groupKey(region: string, groupName: string): string {
  return `${region}\0${groupName}`;
}

/** Initial boots in flight at once (see bootInitialInstances). */
const INITIAL_BOOT_CONCURRENCY = 16;

/** Instances that were already running when the fleet started were launched this long before. */
const INITIAL_AGE_MS = 60 * 60 * 1000;

function defaultWaitReason(instanceIds: readonly string[]): string {
  return (
    `Instance refresh failed: ${instanceIds.length} instance(s) (${instanceIds.join(", ")}) are protected ` +
    "from scale in, and scale-in protection was not removed within the wait period."
  );
}

export class Fleet {
  readonly #groups = new Map<string, Map<string, GroupState>>();
  /** Every refresh ever started, oldest first. */
  readonly #refreshes: RefreshState[] = [];
  /** The same refreshes by `region\0group`, so per-group lookups do not scan every refresh ever. */
  readonly #refreshesByGroup = new Map<string, RefreshState[]>();
  readonly #boots: BootRecord[] = [];
  readonly #initialBoots: BootRecord[] = [];
  readonly #registrations: RegistrationRecord[] = [];
  readonly #failureRules: FailureRule[] = [];
  /** Every instance ever launched, by id (terminated ones are pruned from EC2's view later). */
  readonly #instances = new Map<string, InstanceState>();
  /** The same instances by region, in launch order: EC2 calls are per region, fleets span twenty. */
  readonly #instancesByRegion = new Map<string, InstanceState[]>();
  readonly #timers: Timers;
  readonly #env: RefreshEnv;
  readonly #boot: (context: BootContext) => Promise<BootResult>;
  readonly #startAgent: (context: AgentStartContext) => Promise<BootResult>;
  readonly #onEvent: ((event: RefreshEvent) => void) | undefined;
  readonly #jobMs: number;
  readonly #configDir: string;
  readonly #ownsConfigDir: boolean;
  readonly #protectedWaitReason: (instanceIds: readonly string[]) => string;
  readonly #terminatedVisibleMs: number;
  readonly #linuxRestartDelayMs: number;
  readonly #windowsRestartDelayMs: number;
  readonly #terminateDelayMs: number;
  readonly #maxAgentRestarts: number;
  #protectedWaitMs: number;
  #replaceMs: number;
  #instanceCount = 0;
  #jobSeq = 0;
  readonly #counts = {
    replacedByRolloutIds: [] as string[],
    selfTerminated: 0,
    churnLaunches: 0,
    terminatedByStackUpdate: 0,
    jobsStarted: 0,
    jobsCompleted: 0,
    jobsInterrupted: 0,
    agentRestarts: 0,
  };

  constructor(options: FleetOptions) {
    this.#timers = new Timers(options.clock ?? systemClock);
    this.#boot = options.boot ?? defaultBoot;
    this.#startAgent = options.startAgent ?? defaultStartAgent;
    this.#onEvent = options.onEvent;
    this.#replaceMs = nonNegative("replaceMs", options.replaceMs ?? 200);
    this.#jobMs = nonNegative("jobMs", options.jobMs ?? 500);
    this.#protectedWaitMs = nonNegative("protectedWaitMs", options.protectedWaitMs ?? 2_000);
    this.#protectedWaitReason = options.protectedWaitReason ?? defaultWaitReason;
    this.#terminatedVisibleMs = nonNegative("terminatedVisibleMs", options.terminatedVisibleMs ?? 60_000);
    this.#linuxRestartDelayMs = nonNegative("linuxRestartDelayMs", options.linuxRestartDelayMs ?? 50);
    this.#windowsRestartDelayMs = nonNegative("windowsRestartDelayMs", options.windowsRestartDelayMs ?? 100);
    this.#terminateDelayMs = nonNegative("terminateDelayMs", options.terminateDelayMs ?? 100);
    this.#maxAgentRestarts = nonNegative("maxAgentRestarts", options.maxAgentRestarts ?? 5);
    this.#ownsConfigDir = options.configDir === undefined;
    this.#configDir = options.configDir ?? mkdtempSync(join(tmpdir(), "bk-fleet-"));
    this.#env = {
      timers: this.#timers,
      replaceMs: () => this.#replaceMs,
      launch: (group) => this.#launch(group),
      boot: async (refresh, group, instance) =>
        (await this.#bootLaunched(refresh.id, group, instance)).result ?? { ok: false },
      terminate: (group, instance, cause) => this.#terminate(group, instance, cause),
      protectedWaitMs: () => this.#protectedWaitMs,
      protectedWaitReason: (ids) => this.#protectedWaitReason(ids),
      takeInjectedFailure: (group) => this.#takeInjectedFailure(group),
      transition: (refresh, status, reason) => this.#transition(refresh, status, reason),
    };
    for (const spec of options.groups) this.#addGroup(spec, false);
  }

  // ---- Inspection -------------------------------------------------------------------------------

  /** Every group in every region, sorted by region then name. */
  groups(): GroupView[] {
    return [...this.#groups.keys()].sort().flatMap((region) => this.describeGroups(region));
  }

  instances(region: string, groupName: string): InstanceView[] {
    return this.#requireGroup(region, groupName).instances.map(instanceView);
  }

  /** One instance by id in any region (deleted groups too), terminated ones included. */
  findInstance(instanceId: string): { region: string; instance: InstanceView } | undefined {
    const found = this.#instances.get(instanceId);
    return found ? { region: found.region, instance: instanceView(found) } : undefined;
  }

  /** One instance by id (any group of the region, deleted groups too), terminated ones included. */
  instance(region: string, instanceId: string): InstanceView | undefined {
    const found = this.#instances.get(instanceId);
    return found?.region === region ? instanceView(found) : undefined;
  }

  /** Refreshes of one group, newest first (the order DescribeInstanceRefreshes uses). */
  refreshes(region: string, groupName: string): RefreshView[] {
    return [...(this.#refreshesByGroup.get(groupKey(region, groupName)) ?? [])].reverse().map(refreshView);
  }

  /** Every Pending or InProgress (or otherwise active) refresh, in every region, oldest first. */
  activeRefreshes(): RefreshView[] {
    return this.#refreshes.filter((refresh) => isActive(refresh.status)).map(refreshView);
  }

  /** Instances launching (lifecycle Pending) in any group, in every region. */
  launchingInstances(): Array<{ region: string; instanceId: string }> {
    const out: Array<{ region: string; instanceId: string }> = [];
    for (const instance of this.#instances.values()) {
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
    return this.#boots.map(copyBoot);
  }

  initialBoots(): BootRecord[] {
    return this.#initialBoots.map(copyBoot);
  }

  /** Every registration attempt an agent made (boot, initial boot, restart), oldest first. */
  registrations(): RegistrationRecord[] {
    return this.#registrations.map((record) => ({ ...record, at: new Date(record.at) }));
  }

  /** The figures a rotation is judged by. */
  counters(): FleetCounters {
    const failures = this.#registrations.filter((record) => !record.ok);
    return {
      replacedByRollout: this.#counts.replacedByRolloutIds.length,
      replacedByRolloutIds: [...this.#counts.replacedByRolloutIds],
      selfTerminated: this.#counts.selfTerminated,
      churnLaunches: this.#counts.churnLaunches,
      terminatedByStackUpdate: this.#counts.terminatedByStackUpdate,
      jobsStarted: this.#counts.jobsStarted,
      jobsCompleted: this.#counts.jobsCompleted,
      jobsInterrupted: this.#counts.jobsInterrupted,
      registrations: {
        ok: this.#registrations.length - failures.length,
        failed: failures.length,
        failures: failures.map((record) => ({
          region: record.region,
          instanceId: record.instanceId,
          cause: record.cause,
          ...(record.reason === undefined ? {} : { reason: record.reason }),
        })),
      },
      agentRestarts: this.#counts.agentRestarts,
    };
  }

  /** What EC2 DescribeInstances shows in `region`: live instances and recently terminated ones, by launch order. */
  ec2Instances(region: string): Ec2InstanceView[] {
    const now = this.#timers.now();
    const visible: Ec2InstanceView[] = [];
    for (const instance of this.#instancesByRegion.get(region) ?? []) {
      if (instance.terminatedAt !== undefined && now - instance.terminatedAt > this.#terminatedVisibleMs)
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
        const instance = this.#instances.get(instanceId);
        return instance?.region === region ? host(instance) : undefined;
      },
      list: (region) =>
        (this.#instancesByRegion.get(region) ?? [])
          .filter((instance) => instance.ec2State !== "terminated")
          .map(host),
    };
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

  /**
   * TerminateInstanceInAutoScalingGroup from outside the instance (the API): counted as replaced
   * by the rollout. AWS refuses to decrement below MinSize with a ValidationError; without the
   * decrement the group launches a replacement
   * (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_TerminateInstanceInAutoScalingGroup.html).
   */
  terminateInstanceInAutoScalingGroup(
    region: string,
    instanceId: string,
    shouldDecrementDesiredCapacity: boolean,
  ): { activityId: string; groupName: string; description: string; cause: string; startTime: Date } {
    const instance = this.#instances.get(instanceId);
    const group = instance?.region === region ? this.#groups.get(region)?.get(instance.groupName) : undefined;
    if (instance === undefined || group === undefined || !group.instances.includes(instance)) {
      throw validationError(
        `Instance Id not found - No managed instance found for instance ID: ${instanceId}`,
      );
    }
    const before = group.desiredCapacity;
    if (shouldDecrementDesiredCapacity && instance.state !== "Terminating") {
      if (group.desiredCapacity <= group.minSize) {
        throw validationError(
          `Currently, desiredSize equals minSize (${group.minSize}). Terminating instance without replacement will ` +
            "violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower " +
            "group's min size.",
        );
      }
      group.desiredCapacity -= 1;
    }
    const startTime = new Date(this.#timers.now());
    if (instance.state !== "Terminating") {
      this.#counts.replacedByRolloutIds.push(instance.id);
      void this.#terminate(group, instance, "api").then(() => {
        if (!shouldDecrementDesiredCapacity) this.#fillCapacity(group, "api");
      });
    }
    const shrink = shouldDecrementDesiredCapacity
      ? `, shrinking the capacity from ${before} to ${group.desiredCapacity}`
      : "";
    return {
      activityId: randomUUID(),
      groupName: group.name,
      description: `Terminating EC2 instance: ${instanceId}`,
      cause: `At ${startTime.toISOString().replace(/\.\d{3}Z$/, "Z")} instance ${instanceId} was taken out of service in response to a user request${shrink}.`,
      startTime,
    };
  }

  /** SetInstanceProtection: the only way protection goes away (nothing in the stock stack calls it). */
  setInstanceProtection(
    region: string,
    groupName: string,
    instanceIds: readonly string[],
    protect: boolean,
  ): void {
    const group = this.#requireGroup(region, groupName);
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
  async bootInitialInstances(): Promise<BootRecord[]> {
    const pending = [...this.#instances.values()].filter(
      (instance) => !instance.bootFinished && instance.state === "InService" && instance.epoch === 0,
    );
    // A bounded number at a time: a fleet of thousands booting at once would time out its own
    // SSM reads against one moto server (the real fleet booted over hours, not in one instant).
    const results: BootRecord[] = new Array(pending.length);
    let next = 0;
    const worker = async () => {
      while (next < pending.length) {
        const index = next++;
        const instance = pending[index];
        if (!instance) continue;
        const group = this.#requireGroup(instance.region, instance.groupName);
        instance.epoch += 1;
        results[index] = await this.#runUserData(
          "initial-boot",
          group,
          instance,
          this.#initialBoots,
          "initial",
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(INITIAL_BOOT_CONCURRENCY, pending.length) }, worker));
    return results;
  }

  /**
   * Adds a group (e.g. one CloudFormation creates). With `launch: true` its instances launch and
   * boot now, like any new group's; `groupFilled` tells when they all run.
   */
  addGroup(spec: GroupSpec, options: AddGroupOptions = {}): GroupView {
    const group = this.#addGroup(spec, options.launch ?? false);
    return groupView(group);
  }

  /** Every desired instance of the group is InService and its agent started. */
  groupFilled(region: string, groupName: string): boolean {
    const group = this.#requireGroup(region, groupName);
    const ready = group.instances.filter(
      (instance) => instance.state === "InService" && instance.bootFinished,
    );
    return ready.length >= group.desiredCapacity;
  }

  /** Deletes a group as CloudFormation does: its instances terminate, then the group is gone. */
  async deleteGroup(region: string, groupName: string, cause: "stack" = "stack"): Promise<void> {
    const group = this.#requireGroup(region, groupName);
    const active = this.#activeRefresh(region, groupName);
    if (active !== undefined) this.#transition(active, "Cancelled", "The Auto Scaling group was deleted.");
    group.desiredCapacity = 0;
    await Promise.all(group.instances.map((instance) => this.#terminate(group, instance, cause)));
    this.#groups.get(region)?.delete(groupName);
  }

  /** The instance's agent process exits: `failure` (non-zero) or `clean` (as after the idle timeout). */
  restartAgent(region: string, instanceId: string, kind: "failure" | "clean"): void {
    const { group, instance } = this.#requireLiveInstance(region, instanceId);
    if (!instance.agentRunning) throw new Error(`${instanceId}: the agent is not running`);
    this.#agentExit(group, instance, kind);
  }

  /** Starts a job on an idle agent (`durationMs` defaults to the group's next drawn length). */
  startJob(region: string, instanceId: string, durationMs?: number): void {
    const { group, instance } = this.#requireLiveInstance(region, instanceId);
    if (!instance.agentRunning || instance.job !== undefined) {
      throw new Error(`${instanceId}: the agent is not idle`);
    }
    this.#startJob(group, instance, durationMs ?? this.#drawJobMs(group));
  }

  setSsmAgent(region: string, instanceId: string, state: SsmAgentState): void {
    const instance = this.#instances.get(instanceId);
    if (instance?.region !== region) throw new Error(`no instance ${instanceId} in ${region}`);
    instance.ssmAgent = state;
  }

  setProtectedWaitMs(ms: number): void {
    this.#protectedWaitMs = nonNegative("protectedWaitMs", ms);
  }

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

  /** Stops every timer (refreshes and agents freeze where they are) and removes an owned cfg dir. Idempotent. */
  close(): void {
    this.#timers.close();
    if (this.#ownsConfigDir) rmSync(this.#configDir, { recursive: true, force: true });
  }

  // ---- Refreshes --------------------------------------------------------------------------------

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
    const key = groupKey(region, groupName);
    const ofGroup = this.#refreshesByGroup.get(key) ?? [];
    ofGroup.push(refresh);
    this.#refreshesByGroup.set(key, ofGroup);
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
    const group = this.#groups.get(refresh.region)?.get(refresh.groupName);
    const arn =
      group?.arn ??
      `arn:aws:autoscaling:${refresh.region}:${ACCOUNT_ID}:autoScalingGroup:deleted:autoScalingGroupName/${refresh.groupName}`;
    this.#onEvent({
      version: "0",
      id: randomUUID(),
      "detail-type": detailType,
      source: "aws.autoscaling",
      account: ACCOUNT_ID,
      // EventBridge timestamps carry no fractional seconds.
      time: new Date(this.#timers.now()).toISOString().replace(/\.\d{3}Z$/, "Z"),
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

  #activeRefresh(region: string, groupName: string): RefreshState | undefined {
    return this.#refreshesByGroup
      .get(groupKey(region, groupName))
      ?.find((refresh) => isActive(refresh.status));
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

  // ---- Instances: launch, boot, terminate -------------------------------------------------------

  #launch(group: GroupState): InstanceState {
    const instance = this.#newInstance(group, "Pending", group.newInstancesProtectedFromScaleIn, false);
    group.instances.push(instance);
    return instance;
  }

  /** A launched instance's boot: pending, then running while user data runs, then the agent starts. */
  async #bootLaunched(launchedBy: string, group: GroupState, instance: InstanceState): Promise<BootRecord> {
    instance.ec2State = "running";
    return this.#runUserData(launchedBy, group, instance, this.#boots, "boot");
  }

  async #runUserData(
    launchedBy: string,
    group: GroupState,
    instance: InstanceState,
    log: BootRecord[],
    cause: "initial" | "boot",
  ): Promise<BootRecord> {
    const context: BootContext = {
      region: group.region,
      groupName: group.name,
      instanceId: instance.id,
      instanceRefreshId: launchedBy,
      configPath: instance.configPath,
      platform: instance.platform,
      stackName: group.stackName,
    };
    const record: BootRecord = {
      region: context.region,
      groupName: context.groupName,
      instanceId: context.instanceId,
      instanceRefreshId: launchedBy,
      startedAt: new Date(this.#timers.now()),
    };
    log.push(record);
    const result = await this.#callHook(() => this.#boot({ ...context }));
    record.result = result;
    record.finishedAt = new Date(this.#timers.now());
    this.#record(group, instance, cause, result);
    if (result.ok && instance.state !== "Terminating" && instance.ec2State !== "terminated") {
      this.#agentStarted(
        group,
        instance,
        cause === "initial" ? instance.busyAtBoot : this.#drawBusyOnBoot(group),
      );
    }
    return record;
  }

  async #callHook(hook: () => Promise<BootResult>): Promise<BootResult> {
    try {
      const outcome = await hook();
      return { ok: outcome.ok, ...(outcome.reason === undefined ? {} : { reason: outcome.reason }) };
    } catch (error) {
      // A throwing hook is a failed boot, not a crashed simulation.
      return { ok: false, reason: errorMessage(error) };
    }
  }

  #record(
    group: GroupState,
    instance: InstanceState,
    cause: RegistrationRecord["cause"],
    result: BootResult,
  ): void {
    this.#registrations.push({
      at: new Date(this.#timers.now()),
      region: group.region,
      groupName: group.name,
      instanceId: instance.id,
      cause,
      ok: result.ok,
      ...(result.reason === undefined ? {} : { reason: result.reason }),
    });
  }

  async #terminate(group: GroupState, instance: InstanceState, cause: TerminationCause): Promise<void> {
    if (instance.state === "Terminating" || instance.ec2State === "terminated") return;
    instance.state = "Terminating";
    instance.ec2State = "shutting-down";
    instance.epoch += 1;
    // No terminating lifecycle hook in the stack's template: whatever job runs there dies with it.
    if (instance.job !== undefined) {
      this.#counts.jobsInterrupted += 1;
      instance.job = undefined;
    }
    instance.agentRunning = false;
    if (cause === "refresh") this.#counts.replacedByRolloutIds.push(instance.id);
    if (cause === "stack") this.#counts.terminatedByStackUpdate += 1;
    // Shutting down is quicker than booting; a quarter of replaceMs keeps Terminating observable.
    await this.#timers.sleep(Math.ceil(this.#replaceMs / 4));
    const index = group.instances.indexOf(instance);
    if (index >= 0) group.instances.splice(index, 1);
    instance.ec2State = "terminated";
    instance.terminatedAt = this.#timers.now();
  }

  /** Launches instances until the group has its desired capacity (a launch for `cause`). */
  #fillCapacity(group: GroupState, cause: "churn" | "api" | "stack"): void {
    if (this.#timers.closed || !this.#groups.get(group.region)?.has(group.name)) return;
    const live = group.instances.filter((instance) => instance.state !== "Terminating").length;
    for (let missing = group.desiredCapacity - live; missing > 0; missing -= 1) {
      if (cause === "churn") this.#counts.churnLaunches += 1;
      const instance = this.#launch(group);
      void this.#launchAndBoot(group, instance);
    }
  }

  async #launchAndBoot(group: GroupState, instance: InstanceState): Promise<void> {
    await this.#timers.sleep(this.#replaceMs);
    if (instance.state === "Terminating") return;
    const record = await this.#bootLaunched("capacity", group, instance);
    if (record.result?.ok) {
      instance.state = "InService";
    } else {
      // cloud-init failure powers the instance off (10-power-off-on-failure.conf in the stack's
      // systemd drop-ins). The group would launch another; the simulation does not, to stay bounded.
      await this.#terminate(group, instance, "boot-failure");
    }
  }

  // ---- Agents -----------------------------------------------------------------------------------

  #agentStarted(group: GroupState, instance: InstanceState, busy: boolean): void {
    instance.bootFinished = true;
    instance.agentRunning = true;
    instance.epoch += 1;
    if (busy) this.#startJob(group, instance, this.#drawJobMs(group));
    else this.#startIdle(group, instance);
  }

  #startJob(group: GroupState, instance: InstanceState, ms: number): void {
    this.#jobSeq += 1;
    const seq = this.#jobSeq;
    instance.epoch += 1;
    instance.job = { seq, endsAt: this.#timers.now() + ms };
    this.#counts.jobsStarted += 1;
    if (!Number.isFinite(ms)) return; // a job that never ends
    this.#timers.after(ms, () => {
      if (instance.job?.seq !== seq) return;
      instance.job = undefined;
      this.#counts.jobsCompleted += 1;
      this.#startIdle(group, instance);
    });
  }

  #startIdle(group: GroupState, instance: InstanceState): void {
    instance.epoch += 1;
    const epoch = instance.epoch;
    if (!Number.isFinite(group.idlePeriodMs)) return;
    this.#timers.after(group.idlePeriodMs, () => {
      if (instance.epoch !== epoch || !instance.agentRunning || instance.job !== undefined) return;
      this.#agentExit(group, instance, "clean");
    });
  }

  /** The agent process ended; what happens next is the service manager's and terminate-instance's business. */
  #agentExit(group: GroupState, instance: InstanceState, kind: "failure" | "clean"): void {
    if (instance.state === "Terminating") return;
    instance.agentRunning = false;
    instance.epoch += 1;
    if (instance.job !== undefined) {
      this.#counts.jobsInterrupted += 1;
      instance.job = undefined;
    }
    if (instance.platform === "Windows") {
      // nssm's Exit/Post hook runs terminate-instance.ps1 as the service exits, whatever the exit code.
      this.#windowsTerminateInstance(group, instance);
      return;
    }
    // systemd: ExecStopPost runs terminate-instance after every stop; Restart=on-failure restarts
    // the agent only after a failure, RestartSec (5 s) before terminate-instance's 10 s sleep ends.
    if (kind === "failure")
      this.#timers.after(this.#linuxRestartDelayMs, () => void this.#restart(group, instance));
    if (!instance.terminationScheduled) {
      instance.terminationScheduled = true;
      this.#timers.after(this.#terminateDelayMs, () => this.#linuxTerminateInstance(group, instance));
    }
  }

  /** packer/linux/stack/conf/buildkite-agent/scripts/terminate-instance: decrement, else without decrement. */
  #linuxTerminateInstance(group: GroupState, instance: InstanceState): void {
    if (instance.state === "Terminating") return;
    const decrement = group.desiredCapacity > group.minSize;
    if (decrement) group.desiredCapacity -= 1;
    this.#counts.selfTerminated += 1;
    void this.#terminate(group, instance, "self").then(() => {
      if (decrement) this.#scalerTick(group);
      else this.#fillCapacity(group, "churn");
    });
  }

  /** packer/windows/stack/conf/buildkite-agent/scripts/terminate-instance.ps1: decrement, else restart the agent. */
  #windowsTerminateInstance(group: GroupState, instance: InstanceState): void {
    if (group.desiredCapacity > group.minSize) {
      group.desiredCapacity -= 1;
      this.#counts.selfTerminated += 1;
      void this.#terminate(group, instance, "self").then(() => this.#scalerTick(group));
      return;
    }
    this.#timers.after(this.#windowsRestartDelayMs, () => void this.#restart(group, instance));
  }

  /** `buildkite-agent start` again on a live instance: the token comes from the cfg file. */
  async #restart(group: GroupState, instance: InstanceState): Promise<void> {
    if (instance.state === "Terminating" || instance.agentRunning) return;
    if (instance.restarts >= this.#maxAgentRestarts) return;
    instance.restarts += 1;
    this.#counts.agentRestarts += 1;
    const epoch = instance.epoch;
    const result = await this.#callHook(() =>
      this.#startAgent({
        region: group.region,
        groupName: group.name,
        instanceId: instance.id,
        configPath: instance.configPath,
        platform: instance.platform,
      }),
    );
    this.#record(group, instance, "restart", result);
    // Re-read through a function: the state may have changed while the agent was registering.
    if (isGone(instance) || instance.epoch !== epoch) return;
    if (result.ok) {
      instance.agentRunning = true;
      this.#startIdle(group, instance);
    } else {
      // `buildkite-agent start` exits non-zero when registration is refused.
      this.#agentExit(group, instance, "failure");
    }
  }

  /** The stack's scaler puts the desired capacity back to the demand it sees, one tick later. */
  #scalerTick(group: GroupState): void {
    const scaler = group.scaler;
    if (scaler === false) return;
    this.#timers.after(scaler.delayMs, () => {
      const target = Math.min(group.maxSize, Math.max(group.desiredCapacity, scaler.demand));
      if (target <= group.desiredCapacity) return;
      group.desiredCapacity = target;
      this.#fillCapacity(group, "churn");
    });
  }

  #drawJobMs(group: GroupState): number {
    const schedule = group.jobs.schedule;
    if (schedule !== undefined && schedule.length > 0) {
      const ms = schedule[group.scheduleIndex % schedule.length] ?? this.#jobMs;
      group.scheduleIndex += 1;
      return ms;
    }
    const [min, max] = group.jobs.durationMs ?? [this.#jobMs, this.#jobMs];
    return Math.round(min + (max - min) * group.random());
  }

  #drawBusyOnBoot(group: GroupState): boolean {
    return group.jobs.busyOnBoot > 0 && group.random() < group.jobs.busyOnBoot;
  }

  #requireGroup(region: string, groupName: string): GroupState {
    const group = this.#groups.get(region)?.get(groupName);
    if (group === undefined) throw groupNotFound(groupName);
    return group;
  }

  #requireLiveInstance(region: string, instanceId: string): { group: GroupState; instance: InstanceState } {
    const instance = this.#instances.get(instanceId);
    const group = instance?.region === region ? this.#groups.get(region)?.get(instance.groupName) : undefined;
    if (
      instance === undefined ||
      group === undefined ||
      instance.state === "Terminating" ||
      instance.ec2State === "terminated"
    ) {
      throw new Error(`no running instance ${instanceId} in ${region}`);
    }
    return { group, instance };
  }

  #addGroup(spec: GroupSpec, launch: boolean): GroupState {
    const { region, name, instances } = spec;
    const busyAtStart = spec.jobs?.busyAtStart ?? spec.protectedInstances ?? 0;
    const minSize = spec.minSize ?? 0;
    const maxSize = spec.maxSize ?? Math.max(instances, 1);
    if (!Number.isInteger(instances) || instances < 0) throw new Error(`${name}: instances must be >= 0`);
    if (busyAtStart > instances) throw new Error(`${name}: busy instances exceed instances`);
    if (minSize > instances || instances > maxSize) {
      throw new Error(`${name}: need minSize <= instances <= maxSize`);
    }
    const busyOnBoot = spec.jobs?.busyOnBoot ?? 0;
    if (!(busyOnBoot >= 0 && busyOnBoot <= 1)) throw new Error(`${name}: jobs.busyOnBoot must be in [0, 1]`);
    const regionGroups = this.#groups.get(region) ?? new Map<string, GroupState>();
    if (regionGroups.has(name)) throw new Error(`duplicate group ${name} in ${region}`);
    this.#groups.set(region, regionGroups);

    // Ids derive from region and name so that repeated runs describe the same fleet.
    const digest = createHash("sha256").update(`${region}/${name}`).digest("hex");
    const tags = new Map<string, TagView>(
      Object.entries(spec.tags ?? {}).map(([key, value]) => [key, { key, value, propagateAtLaunch: true }]),
    );
    for (const tag of spec.groupTags ?? []) tags.set(tag.key, { ...tag });
    const scaler =
      spec.scaler === false
        ? (false as const)
        : { demand: spec.scaler?.demand ?? instances, delayMs: spec.scaler?.delayMs ?? this.#replaceMs };
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
      newInstancesProtectedFromScaleIn: spec.newInstancesProtectedFromScaleIn ?? true,
      instances: [],
      tags,
      platform: spec.platform ?? "Linux",
      idlePeriodMs: spec.idlePeriodMs ?? Number.POSITIVE_INFINITY,
      jobs: {
        busyOnBoot,
        ...(spec.jobs?.durationMs === undefined ? {} : { durationMs: spec.jobs.durationMs }),
        ...(spec.jobs?.schedule === undefined ? {} : { schedule: spec.jobs.schedule }),
      },
      scaler,
      ssmAgent: spec.ssmAgent ?? "online",
      stackName: tags.get("aws:cloudformation:stack-name")?.value ?? name,
      random: seededRandom(spec.jobs?.seed ?? Number.parseInt(digest.slice(0, 8), 16)),
      scheduleIndex: 0,
      spec,
    };
    regionGroups.set(name, group);
    if (launch) {
      this.#fillCapacity(group, "stack");
    } else {
      for (let index = 0; index < instances; index += 1) {
        const instance = this.#newInstance(group, "InService", group.newInstancesProtectedFromScaleIn, true);
        instance.busyAtBoot = index < busyAtStart;
        group.instances.push(instance);
      }
    }
    return group;
  }

  #newInstance(
    group: GroupState,
    state: InstanceState["state"],
    protectedFromScaleIn: boolean,
    initial: boolean,
  ): InstanceState {
    this.#instanceCount += 1;
    const zones = ["a", "b", "c"];
    const id = `i-${this.#instanceCount.toString(16).padStart(17, "0")}`;
    const now = this.#timers.now();
    const configPath =
      group.platform === "Windows"
        ? join(this.#configDir, group.region, id, "C", "buildkite-agent", "buildkite-agent.cfg")
        : join(this.#configDir, group.region, id, "etc", "buildkite-agent", "buildkite-agent.cfg");
    const instance: InstanceState = {
      id,
      region: group.region,
      groupName: group.name,
      availabilityZone: `${group.region}${zones[this.#instanceCount % zones.length] ?? "a"}`,
      state,
      ec2State: initial ? "running" : "pending",
      protectedFromScaleIn,
      launchTemplateVersion: group.launchTemplate.version,
      launchTime: new Date(initial ? now - INITIAL_AGE_MS : now),
      platform: group.platform,
      ssmAgent: group.ssmAgent,
      configPath,
      // EC2 Auto Scaling tags its instances with aws:autoscaling:groupName and copies the group's
      // PropagateAtLaunch tags (CloudFormation's aws:cloudformation:* tags among them).
      tags: [
        { key: "aws:autoscaling:groupName", value: group.name },
        ...[...group.tags.values()]
          .filter((tag) => tag.propagateAtLaunch)
          .map((tag) => ({ key: tag.key, value: tag.value })),
      ],
      bootFinished: false,
      agentRunning: false,
      epoch: 0,
      restarts: 0,
      busyAtBoot: false,
      terminationScheduled: false,
    };
    this.#instances.set(id, instance);
    const inRegion = this.#instancesByRegion.get(instance.region) ?? [];
    inRegion.push(instance);
    this.#instancesByRegion.set(instance.region, inRegion);
    return instance;
  }
}

async function defaultBoot(context: BootContext): Promise<BootResult> {
  if (context.configPath !== undefined) {
    writeAgentConfigSync(context.configPath, {
      platform: context.platform ?? "Linux",
      token: "",
      stackName: context.stackName ?? context.groupName,
      instanceId: context.instanceId,
      endpoint: "https://agent.buildkite.com/v3",
    });
  }
  return { ok: true };
}

async function defaultStartAgent(context: AgentStartContext): Promise<BootResult> {
  const token = await readAgentToken(context.configPath);
  return token ? { ok: true } : { ok: false, reason: "no token in the agent cfg" };
}

function isGone(instance: InstanceState): boolean {
  return instance.state === "Terminating" || instance.ec2State === "terminated";
}

function copyBoot(record: BootRecord): BootRecord {
  return { ...record, ...(record.result ? { result: { ...record.result } } : {}) };
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
    launchTime: new Date(instance.launchTime),
    platform: instance.platform,
    ssmAgent: instance.ssmAgent,
    bootFinished: instance.bootFinished,
    busy: instance.job !== undefined,
    restarts: instance.restarts,
    configPath: instance.configPath,
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

/**
 * The fleet's registry, shared by its parts (groups, instance lifecycle, agents, refreshes): every
 * group, instance and refresh, the boot and registration logs, and the counters a rotation is
 * judged by. Lookups live here; what changes state lives with the part that changes it.
 */
import { join } from "node:path";
import type { Timers } from "./clock";
import { groupNotFound } from "./errors";
import type { FleetSettings } from "./fleet-options";
import { type GroupState, type InstanceState, isActive, type RefreshState } from "./state";
import type { BootRecord, BootResult, RegistrationRecord } from "./types";

export const ACCOUNT_ID = "123456789012";

/** Instances that were already running when the fleet started were launched this long before. */
const INITIAL_AGE_MS = 60 * 60 * 1000;

function groupKey(region: string, groupName: string): string {
  return `${region}\0${groupName}`;
}

export class FleetState {
  /** Groups by region, then name. */
  readonly groups = new Map<string, Map<string, GroupState>>();
  /** Every refresh ever started, oldest first. */
  readonly refreshes: RefreshState[] = [];
  /** The same refreshes by `region\0group`, so per-group lookups do not scan every refresh ever. */
  readonly #refreshesByGroup = new Map<string, RefreshState[]>();
  readonly boots: BootRecord[] = [];
  readonly initialBoots: BootRecord[] = [];
  readonly registrations: RegistrationRecord[] = [];
  /** Every instance ever launched, by id (terminated ones are pruned from EC2's view later). */
  readonly instances = new Map<string, InstanceState>();
  /** The same instances by region, in launch order: EC2 calls are per region, fleets span twenty. */
  readonly instancesByRegion = new Map<string, InstanceState[]>();
  #instanceCount = 0;
  readonly counts = {
    replacedByRolloutIds: [] as string[],
    selfTerminated: 0,
    churnLaunches: 0,
    terminatedByStackUpdate: 0,
    jobsStarted: 0,
    jobsCompleted: 0,
    jobsInterrupted: 0,
    agentRestarts: 0,
  };

  constructor(
    readonly timers: Timers,
    readonly settings: FleetSettings,
  ) {}

  requireGroup(region: string, groupName: string): GroupState {
    const group = this.groups.get(region)?.get(groupName);
    if (group === undefined) throw groupNotFound(groupName);
    return group;
  }

  /** The group of a live instance; throws for one that is terminating, gone, or in another region. */
  requireLiveInstance(region: string, instanceId: string): { group: GroupState; instance: InstanceState } {
    const instance = this.instances.get(instanceId);
    const group = instance?.region === region ? this.groups.get(region)?.get(instance.groupName) : undefined;
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

  addRefresh(refresh: RefreshState): void {
    this.refreshes.push(refresh);
    const key = groupKey(refresh.region, refresh.groupName);
    const ofGroup = this.#refreshesByGroup.get(key) ?? [];
    ofGroup.push(refresh);
    this.#refreshesByGroup.set(key, ofGroup);
  }

  /** Refreshes of one group, oldest first. */
  refreshesOf(region: string, groupName: string): readonly RefreshState[] {
    return this.#refreshesByGroup.get(groupKey(region, groupName)) ?? [];
  }

  activeRefresh(region: string, groupName: string): RefreshState | undefined {
    return this.refreshesOf(region, groupName).find((refresh) => isActive(refresh.status));
  }

  /** Records a registration attempt of the instance's agent. */
  record(
    group: GroupState,
    instance: InstanceState,
    cause: RegistrationRecord["cause"],
    result: BootResult,
  ): void {
    this.registrations.push({
      at: new Date(this.timers.now()),
      region: group.region,
      groupName: group.name,
      instanceId: instance.id,
      cause,
      ok: result.ok,
      ...(result.reason === undefined ? {} : { reason: result.reason }),
    });
  }

  /** A new instance of `group`, registered by id and region (the caller adds it to the group). */
  newInstance(
    group: GroupState,
    state: InstanceState["state"],
    protectedFromScaleIn: boolean,
    initial: boolean,
  ): InstanceState {
    this.#instanceCount += 1;
    const zones = ["a", "b", "c"];
    const id = `i-${this.#instanceCount.toString(16).padStart(17, "0")}`;
    const now = this.timers.now();
    const { configDir } = this.settings;
    const configPath =
      group.platform === "Windows"
        ? join(configDir, group.region, id, "C", "buildkite-agent", "buildkite-agent.cfg")
        : join(configDir, group.region, id, "etc", "buildkite-agent", "buildkite-agent.cfg");
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
    this.instances.set(id, instance);
    const inRegion = this.instancesByRegion.get(instance.region) ?? [];
    inRegion.push(instance);
    this.instancesByRegion.set(instance.region, inRegion);
    return instance;
  }
}

export function isGone(instance: InstanceState): boolean {
  return instance.state === "Terminating" || instance.ec2State === "terminated";
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs a boot or start hook; a throwing hook is a failed boot, not a crashed simulation. */
export async function callHook(hook: () => Promise<BootResult>): Promise<BootResult> {
  try {
    const outcome = await hook();
    return { ok: outcome.ok, ...(outcome.reason === undefined ? {} : { reason: outcome.reason }) };
  } catch (error) {
    return { ok: false, reason: errorMessage(error) };
  }
}

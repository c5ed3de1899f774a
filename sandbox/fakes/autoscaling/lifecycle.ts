/**
 * Instances of the simulated fleet from launch to termination: launch, boot (user data), shut
 * down, capacity refill, and the API's TerminateInstanceInAutoScalingGroup.
 *
 * Every instance is protected from scale in: the stock stack's `InstanceScaleInProtection`
 * defaults to "true" and feeds the group's `NewInstancesProtectedFromScaleIn`
 * (buildkite/elastic-ci-stack-for-aws templates/aws-stack.yml). Nothing in the stack removes it;
 * instances leave by terminating themselves (agents.ts).
 */
import { randomUUID } from "node:crypto";
import { writeAgentConfigSync } from "./agent-config";
import { validationError } from "./errors";
import { callHook, type FleetState } from "./fleet-state";
import type { GroupState, InstanceState } from "./state";
import type { BootContext, BootRecord, BootResult, TerminationCause } from "./types";

/** Initial boots in flight at once (see bootInitialInstances). */
const INITIAL_BOOT_CONCURRENCY = 16;

export async function defaultBoot(context: BootContext): Promise<BootResult> {
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

export interface TerminateActivity {
  activityId: string;
  groupName: string;
  description: string;
  cause: string;
  startTime: Date;
}

export class InstanceLifecycle {
  constructor(
    private readonly state: FleetState,
    private readonly boot: (context: BootContext) => Promise<BootResult>,
    /** The agent starts once user data succeeded (`initial`: on one of the fleet's first instances). */
    private readonly agentStarted: (group: GroupState, instance: InstanceState, initial: boolean) => void,
  ) {}

  launch(group: GroupState): InstanceState {
    const instance = this.state.newInstance(group, "Pending", group.newInstancesProtectedFromScaleIn, false);
    group.instances.push(instance);
    return instance;
  }

  /** A launched instance's boot: pending, then running while user data runs, then the agent starts. */
  async bootLaunched(launchedBy: string, group: GroupState, instance: InstanceState): Promise<BootRecord> {
    instance.ec2State = "running";
    return this.#runUserData(launchedBy, group, instance, this.state.boots, "boot");
  }

  /**
   * Boots every instance that was already running when the fleet was created: user data reads the
   * token, writes the cfg, starts the agent. Their records go to `initialBoots`, not `boots`.
   */
  async bootInitialInstances(): Promise<BootRecord[]> {
    const pending = [...this.state.instances.values()].filter(
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
        const group = this.state.requireGroup(instance.region, instance.groupName);
        instance.epoch += 1;
        results[index] = await this.#runUserData(
          "initial-boot",
          group,
          instance,
          this.state.initialBoots,
          "initial",
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(INITIAL_BOOT_CONCURRENCY, pending.length) }, worker));
    return results;
  }

  async #runUserData(
    launchedBy: string,
    group: GroupState,
    instance: InstanceState,
    log: BootRecord[],
    cause: "initial" | "boot",
  ): Promise<BootRecord> {
    const { timers } = this.state;
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
      startedAt: new Date(timers.now()),
    };
    log.push(record);
    const result = await callHook(() => this.boot({ ...context }));
    record.result = result;
    record.finishedAt = new Date(timers.now());
    this.state.record(group, instance, cause, result);
    if (result.ok && instance.state !== "Terminating" && instance.ec2State !== "terminated") {
      this.agentStarted(group, instance, cause === "initial");
    }
    return record;
  }

  async terminate(group: GroupState, instance: InstanceState, cause: TerminationCause): Promise<void> {
    if (instance.state === "Terminating" || instance.ec2State === "terminated") return;
    const { counts, timers, settings } = this.state;
    instance.state = "Terminating";
    instance.ec2State = "shutting-down";
    instance.epoch += 1;
    // No terminating lifecycle hook in the stack's template: whatever job runs there dies with it.
    if (instance.job !== undefined) {
      counts.jobsInterrupted += 1;
      instance.job = undefined;
    }
    instance.agentRunning = false;
    if (cause === "refresh") counts.replacedByRolloutIds.push(instance.id);
    if (cause === "stack") counts.terminatedByStackUpdate += 1;
    // Shutting down is quicker than booting; a quarter of replaceMs keeps Terminating observable.
    await timers.sleep(Math.ceil(settings.replaceMs / 4));
    const index = group.instances.indexOf(instance);
    if (index >= 0) group.instances.splice(index, 1);
    instance.ec2State = "terminated";
    instance.terminatedAt = timers.now();
  }

  /** Launches instances until the group has its desired capacity (a launch for `cause`). */
  fillCapacity(group: GroupState, cause: "churn" | "api" | "stack"): void {
    if (this.state.timers.closed || !this.state.groups.get(group.region)?.has(group.name)) return;
    const live = group.instances.filter((instance) => instance.state !== "Terminating").length;
    for (let missing = group.desiredCapacity - live; missing > 0; missing -= 1) {
      if (cause === "churn") this.state.counts.churnLaunches += 1;
      const instance = this.launch(group);
      void this.#launchAndBoot(group, instance);
    }
  }

  async #launchAndBoot(group: GroupState, instance: InstanceState): Promise<void> {
    await this.state.timers.sleep(this.state.settings.replaceMs);
    if (instance.state === "Terminating") return;
    const record = await this.bootLaunched("capacity", group, instance);
    if (record.result?.ok) {
      instance.state = "InService";
    } else {
      // cloud-init failure powers the instance off (10-power-off-on-failure.conf in the stack's
      // systemd drop-ins). The group would launch another; the simulation does not, to stay bounded.
      await this.terminate(group, instance, "boot-failure");
    }
  }

  /**
   * TerminateInstanceInAutoScalingGroup from outside the instance (the API): counted as replaced
   * by the rollout. AWS refuses to decrement below MinSize with a ValidationError; without the
   * decrement the group launches a replacement
   * (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_TerminateInstanceInAutoScalingGroup.html).
   */
  terminateFromApi(
    region: string,
    instanceId: string,
    shouldDecrementDesiredCapacity: boolean,
  ): TerminateActivity {
    const instance = this.state.instances.get(instanceId);
    const group =
      instance?.region === region ? this.state.groups.get(region)?.get(instance.groupName) : undefined;
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
    const startTime = new Date(this.state.timers.now());
    if (instance.state !== "Terminating") {
      this.state.counts.replacedByRolloutIds.push(instance.id);
      void this.terminate(group, instance, "api").then(() => {
        if (!shouldDecrementDesiredCapacity) this.fillCapacity(group, "api");
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
}

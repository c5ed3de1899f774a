/**
 * The agents' own life on the fleet's instances, as the stock Elastic CI Stack
 * (buildkite/elastic-ci-stack-for-aws v6.71) runs them: jobs, idle self-termination, exits,
 * restarts, and the scaler putting capacity back.
 *
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
 * - The scaler Lambda raises the desired capacity for pending jobs; `scalerTick` models that much.
 */
import { readAgentToken } from "./agent-config";
import { callHook, type FleetState, isGone } from "./fleet-state";
import type { GroupState, InstanceState } from "./state";
import type { AgentStartContext, BootResult, TerminationCause } from "./types";

/** What the agents need of the instance lifecycle: instances leave, and the group fills back up. */
export interface InstanceExits {
  terminate(group: GroupState, instance: InstanceState, cause: TerminationCause): Promise<void>;
  fillCapacity(group: GroupState, cause: "churn" | "api" | "stack"): void;
}

export async function defaultStartAgent(context: AgentStartContext): Promise<BootResult> {
  const token = await readAgentToken(context.configPath);
  return token ? { ok: true } : { ok: false, reason: "no token in the agent cfg" };
}

/** Whether a freshly booted agent starts with a job (the group's seeded draw). */
export function drawBusyOnBoot(group: GroupState): boolean {
  return group.jobs.busyOnBoot > 0 && group.random() < group.jobs.busyOnBoot;
}

export class AgentLife {
  #jobSeq = 0;

  constructor(
    private readonly state: FleetState,
    private readonly startAgent: (context: AgentStartContext) => Promise<BootResult>,
    private readonly exits: InstanceExits,
  ) {}

  started(group: GroupState, instance: InstanceState, busy: boolean): void {
    instance.bootFinished = true;
    instance.agentRunning = true;
    instance.epoch += 1;
    if (busy) this.startJob(group, instance, this.drawJobMs(group));
    else this.#startIdle(group, instance);
  }

  startJob(group: GroupState, instance: InstanceState, ms: number): void {
    const { timers, counts } = this.state;
    this.#jobSeq += 1;
    const seq = this.#jobSeq;
    instance.epoch += 1;
    instance.job = { seq, endsAt: timers.now() + ms };
    counts.jobsStarted += 1;
    if (!Number.isFinite(ms)) return; // a job that never ends
    timers.after(ms, () => {
      if (instance.job?.seq !== seq) return;
      instance.job = undefined;
      counts.jobsCompleted += 1;
      this.#startIdle(group, instance);
    });
  }

  #startIdle(group: GroupState, instance: InstanceState): void {
    instance.epoch += 1;
    const epoch = instance.epoch;
    if (!Number.isFinite(group.idlePeriodMs)) return;
    this.state.timers.after(group.idlePeriodMs, () => {
      if (instance.epoch !== epoch || !instance.agentRunning || instance.job !== undefined) return;
      this.exit(group, instance, "clean");
    });
  }

  /** The agent process ended; what happens next is the service manager's and terminate-instance's business. */
  exit(group: GroupState, instance: InstanceState, kind: "failure" | "clean"): void {
    if (instance.state === "Terminating") return;
    const { timers, settings } = this.state;
    instance.agentRunning = false;
    instance.epoch += 1;
    if (instance.job !== undefined) {
      this.state.counts.jobsInterrupted += 1;
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
      timers.after(settings.linuxRestartDelayMs, () => void this.#restart(group, instance));
    if (!instance.terminationScheduled) {
      instance.terminationScheduled = true;
      timers.after(settings.terminateDelayMs, () => this.#linuxTerminateInstance(group, instance));
    }
  }

  /** packer/linux/stack/conf/buildkite-agent/scripts/terminate-instance: decrement, else without decrement. */
  #linuxTerminateInstance(group: GroupState, instance: InstanceState): void {
    if (instance.state === "Terminating") return;
    const decrement = group.desiredCapacity > group.minSize;
    if (decrement) group.desiredCapacity -= 1;
    this.state.counts.selfTerminated += 1;
    void this.exits.terminate(group, instance, "self").then(() => {
      if (decrement) this.#scalerTick(group);
      else this.exits.fillCapacity(group, "churn");
    });
  }

  /** packer/windows/stack/conf/buildkite-agent/scripts/terminate-instance.ps1: decrement, else restart the agent. */
  #windowsTerminateInstance(group: GroupState, instance: InstanceState): void {
    if (group.desiredCapacity > group.minSize) {
      group.desiredCapacity -= 1;
      this.state.counts.selfTerminated += 1;
      void this.exits.terminate(group, instance, "self").then(() => this.#scalerTick(group));
      return;
    }
    this.state.timers.after(
      this.state.settings.windowsRestartDelayMs,
      () => void this.#restart(group, instance),
    );
  }

  /** `buildkite-agent start` again on a live instance: the token comes from the cfg file. */
  async #restart(group: GroupState, instance: InstanceState): Promise<void> {
    if (instance.state === "Terminating" || instance.agentRunning) return;
    if (instance.restarts >= this.state.settings.maxAgentRestarts) return;
    instance.restarts += 1;
    this.state.counts.agentRestarts += 1;
    const epoch = instance.epoch;
    const result = await callHook(() =>
      this.startAgent({
        region: group.region,
        groupName: group.name,
        instanceId: instance.id,
        configPath: instance.configPath,
        platform: instance.platform,
      }),
    );
    this.state.record(group, instance, "restart", result);
    // Re-read through a function: the state may have changed while the agent was registering.
    if (isGone(instance) || instance.epoch !== epoch) return;
    if (result.ok) {
      instance.agentRunning = true;
      this.#startIdle(group, instance);
    } else {
      // `buildkite-agent start` exits non-zero when registration is refused.
      this.exit(group, instance, "failure");
    }
  }

  /** The stack's scaler puts the desired capacity back to the demand it sees, one tick later. */
  #scalerTick(group: GroupState): void {
    const scaler = group.scaler;
    if (scaler === false) return;
    this.state.timers.after(scaler.delayMs, () => {
      const target = Math.min(group.maxSize, Math.max(group.desiredCapacity, scaler.demand));
      if (target <= group.desiredCapacity) return;
      group.desiredCapacity = target;
      this.exits.fillCapacity(group, "churn");
    });
  }

  drawJobMs(group: GroupState): number {
    const schedule = group.jobs.schedule;
    if (schedule !== undefined && schedule.length > 0) {
      const ms = schedule[group.scheduleIndex % schedule.length] ?? this.state.settings.jobMs;
      group.scheduleIndex += 1;
      return ms;
    }
    const [min, max] = group.jobs.durationMs ?? [this.state.settings.jobMs, this.state.settings.jobMs];
    return Math.round(min + (max - min) * group.random());
  }
}

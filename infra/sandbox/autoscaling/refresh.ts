/**
 * The rolling-replacement algorithm of one instance refresh. It only talks to the fleet through
 * `RefreshEnv`, so the fleet owns state changes, events and timers while this file reads as the
 * sequence AWS documents: replace in batches, keep MinHealthyPercentage in service, stop on the
 * first failed replacement, let in-flight replacements finish when cancelled.
 */
import type { Timers } from "./clock";
import { batchSize } from "./preferences";
import type { GroupState, InstanceState, RefreshState } from "./state";
import type { BootResult, RefreshStatus } from "./types";

export interface RefreshEnv {
  timers: Timers;
  /** Time to launch and boot one instance, read per launch so `setReplaceMs` applies mid-refresh. */
  replaceMs(): number;
  launch(group: GroupState): InstanceState;
  boot(refresh: RefreshState, group: GroupState, instance: InstanceState): Promise<BootResult>;
  terminate(group: GroupState, instance: InstanceState): Promise<void>;
  /** Starts the (simulated) end of a busy protected instance's job; idempotent. */
  startJobCountdown(instance: InstanceState): void;
  /** True when a `failRefreshes` rule claims this refresh's first batch. */
  takeInjectedFailure(group: GroupState): boolean;
  transition(refresh: RefreshState, status: RefreshStatus, reason?: string): void;
}

export const SIMULATED_FAILURE = "simulated failure";

export interface RefreshPlan {
  /** Instances to replace, in order. */
  targets: InstanceState[];
  /** Protected instances left alone because ScaleInProtectedInstances=Ignore. */
  ignored: InstanceState[];
}

/** Decides, at start, which instances the refresh is responsible for. */
export function planRefresh(group: GroupState, refresh: RefreshState): RefreshPlan {
  const { skipMatching, scaleInProtectedInstances } = refresh.preferences;
  const candidates = group.instances.filter(
    (instance) =>
      instance.state === "InService" &&
      // SkipMatching leaves instances that already run the group's launch template version alone.
      !(skipMatching && instance.launchTemplateVersion === group.launchTemplate.version),
  );
  if (scaleInProtectedInstances !== "Ignore") return { targets: candidates, ignored: [] };
  return {
    targets: candidates.filter((instance) => !instance.protectedFromScaleIn),
    ignored: candidates.filter((instance) => instance.protectedFromScaleIn),
  };
}

export async function runRefresh(
  refresh: RefreshState,
  group: GroupState,
  plan: RefreshPlan,
  env: RefreshEnv,
): Promise<void> {
  const { timers } = env;
  const signal = refresh.controller.signal;
  // AWS reports Pending before the first replacement; one tick is enough to make it observable.
  await timers.sleep(0, signal);
  if (refresh.status === "Pending") env.transition(refresh, "InProgress");

  const waitForProtected = refresh.preferences.scaleInProtectedInstances === "Wait";
  if (waitForProtected) {
    for (const instance of plan.targets) if (instance.protectedFromScaleIn) env.startJobCountdown(instance);
  }

  const size = batchSize(group.desiredCapacity, refresh.preferences);
  const queue = [...plan.targets];
  let firstBatch = true;
  while (queue.length > 0 && refresh.status === "InProgress") {
    const ready = queue.filter((instance) => !(waitForProtected && instance.protectedFromScaleIn));
    if (ready.length === 0) {
      await untilNextJobEnds(queue, env, signal);
      continue;
    }
    const batch = ready.slice(0, size);
    for (const instance of batch) queue.splice(queue.indexOf(instance), 1);
    const injectFailure = firstBatch && env.takeInjectedFailure(group);
    firstBatch = false;
    const failures = await Promise.all(
      batch.map((old) => replaceOne(refresh, group, old, injectFailure, env)),
    );
    const failure = failures.find((reason) => reason !== undefined);
    if (failure !== undefined && refresh.status === "InProgress") {
      env.transition(refresh, "Failed", failure);
      return;
    }
  }

  if (refresh.status === "Cancelling") {
    env.transition(refresh, "Cancelled", "Instance refresh was cancelled.");
  } else if (refresh.status === "InProgress") {
    env.transition(refresh, "Successful", successReason(plan));
  }
}

/**
 * Launches a replacement for `old`, boots it and, once it is in service and warmed up, terminates
 * `old`. Returns the failure reason, if any. Deliberately not interruptible: a cancelled refresh
 * still finishes the replacements it has started, as AWS does.
 */
async function replaceOne(
  refresh: RefreshState,
  group: GroupState,
  old: InstanceState,
  injectFailure: boolean,
  env: RefreshEnv,
): Promise<string | undefined> {
  const fresh = env.launch(group);
  await env.timers.sleep(env.replaceMs());
  if (injectFailure) {
    await env.terminate(group, fresh);
    return SIMULATED_FAILURE;
  }
  const result = await env.boot(refresh, group, fresh);
  if (!result.ok) {
    await env.terminate(group, fresh);
    return `Instance ${fresh.id} failed to boot: ${result.reason ?? "no reason given"}`;
  }
  // InstanceWarmup is given in seconds; the simulation reads it as milliseconds to keep tests fast.
  await env.timers.sleep(refresh.preferences.instanceWarmup ?? 0);
  fresh.state = "InService";
  refresh.updated += 1;
  await env.terminate(group, old);
  return undefined;
}

/** Sleeps until the earliest busy protected instance in `queue` finishes its job (or the refresh stops). */
async function untilNextJobEnds(queue: InstanceState[], env: RefreshEnv, signal: AbortSignal): Promise<void> {
  for (const instance of queue) env.startJobCountdown(instance);
  const ends = queue.flatMap((instance) => (instance.jobEndsAt === undefined ? [] : [instance.jobEndsAt]));
  await env.timers.sleep(Math.min(...ends) - env.timers.now(), signal);
}

function successReason(plan: RefreshPlan): string | undefined {
  const skipped = plan.ignored.length;
  if (skipped === 0) return undefined;
  return `${skipped} instance(s) were not replaced because they are protected from scale in.`;
}

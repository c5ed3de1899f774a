/**
 * The rolling-replacement algorithm of one instance refresh. It only talks to the fleet through
 * `RefreshEnv`, so the fleet owns state changes, events and timers while this file reads as the
 * sequence AWS documents: replace in batches, keep MinHealthyPercentage in service, stop on the
 * first failed replacement, let in-flight replacements finish when cancelled.
 *
 * Scale-in protected instances follow RefreshPreferences.ScaleInProtectedInstances
 * (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html):
 * - Refresh: "Amazon EC2 Auto Scaling replaces instances that are protected from scale in." The
 *   Elastic CI Stack has no terminating lifecycle hook, so a job running there is killed.
 * - Ignore: "ignores instances that are protected from scale in and continues to replace instances
 *   that are not protected" (the refresh ends Successful with them left behind).
 * - Wait (default): "waits one hour for you to remove scale-in protection. Otherwise, the instance
 *   refresh will fail." The hour is `protectedWaitMs` here, counted from the moment only protected
 *   instances are left to replace; progress (a replacement) restarts it.
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
  terminate(group: GroupState, instance: InstanceState, cause: "refresh" | "boot-failure"): Promise<void>;
  /** How long a Wait refresh waits for protection to be removed (AWS: one hour). */
  protectedWaitMs(): number;
  /** StatusReason of a Wait refresh that gave up on the instances `ids`. */
  protectedWaitReason(ids: readonly string[]): string;
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

/** How often a blocked Wait refresh looks at the protection again. */
const PROTECTION_POLL_MS = 20;

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
  const size = batchSize(group.desiredCapacity, refresh.preferences);
  const queue = [...plan.targets];
  let firstBatch = true;
  let blockedSince: number | undefined;
  while (queue.length > 0 && refresh.status === "InProgress") {
    // An instance that went away meanwhile (it terminated itself, or was terminated through the
    // API) needs no replacement: whatever the group launched for it runs the current configuration.
    for (const instance of [...queue]) {
      if (instance.state !== "Terminating" && instance.ec2State !== "terminated") continue;
      queue.splice(queue.indexOf(instance), 1);
      refresh.updated += 1;
    }
    if (queue.length === 0) break;
    const ready = queue.filter((instance) => !(waitForProtected && instance.protectedFromScaleIn));
    if (ready.length === 0) {
      blockedSince ??= timers.now();
      const left = blockedSince + env.protectedWaitMs() - timers.now();
      if (left <= 0) {
        env.transition(refresh, "Failed", env.protectedWaitReason(queue.map((instance) => instance.id)));
        return;
      }
      await timers.sleep(Math.min(left, PROTECTION_POLL_MS), signal);
      continue;
    }
    blockedSince = undefined;
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
    await env.terminate(group, fresh, "boot-failure");
    return SIMULATED_FAILURE;
  }
  const result = await env.boot(refresh, group, fresh);
  if (!result.ok) {
    await env.terminate(group, fresh, "boot-failure");
    return `Instance ${fresh.id} failed to boot: ${result.reason ?? "no reason given"}`;
  }
  // InstanceWarmup is given in seconds; the simulation reads it as milliseconds to keep tests fast.
  await env.timers.sleep(refresh.preferences.instanceWarmup ?? 0);
  fresh.state = "InService";
  refresh.updated += 1;
  // The old instance may have gone by itself while its replacement booted.
  if (old.state !== "Terminating" && old.ec2State !== "terminated")
    await env.terminate(group, old, "refresh");
  return undefined;
}

function successReason(plan: RefreshPlan): string | undefined {
  const skipped = plan.ignored.length;
  if (skipped === 0) return undefined;
  return `${skipped} instance(s) were not replaced because they are protected from scale in.`;
}

/**
 * `world.settled()`: waits until every moving part of the world is idle (the bus, the local Lambda,
 * Run Command, refreshes, launches, stack updates and, in "queue" delivery, the trigger queue), so a
 * test or the scenario reads the world's records after everything it set off has ended.
 */
import type { Fleet } from "../fakes/autoscaling/index";
import type { ElasticStacks } from "../fakes/cloudformation/index";
import type { EventBus } from "../fakes/eventbridge/event-bus";
import type { LocalLambda } from "../fakes/lambda/local-lambda";
import type { RunCommandStandIn } from "../fakes/ssm/index";

export interface SettleParts {
  bus: EventBus;
  lambda: LocalLambda;
  fleet: Fleet;
  stacks: ElasticStacks;
  runCommand: RunCommandStandIn;
  /** "queue" delivery: what else is busy (the event source mapping, the queue's depth). */
  queue?: () => Promise<string[]>;
}

/** Resolves once every part was idle on three checks in a row; rejects naming the busy ones at the bound. */
export async function waitSettled(parts: SettleParts, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let quiet = 0;
  for (;;) {
    const busy = busyParts(parts);
    if (parts.queue) busy.push(...(await parts.queue()));
    quiet = busy.length === 0 ? quiet + 1 : 0;
    // Idle on three checks in a row: nothing can be in a hand-off between the parts.
    if (quiet >= 3) return;
    if (Date.now() >= deadline) {
      throw new Error(`world not settled after ${timeoutMs} ms: ${busy.join("; ") || "flapping"}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function busyParts({ bus, lambda, fleet, stacks, runCommand }: SettleParts): string[] {
  const busy: string[] = [];
  // Cheap views only: this runs every 25 ms while settling, on fleets of thousands of instances.
  const commands = runCommand.unfinished();
  if (commands.length > 0) busy.push(`commands: ${commands.join(", ")}`);
  if (!bus.isIdle()) busy.push("event bus delivering");
  const running = lambda.invocations().filter((r) => r.endedAt === undefined);
  if (running.length > 0)
    busy.push(
      `Lambda: ${running.map((r) => `${r.name} (${r.startedAt ? "running" : "queued"})`).join(", ")}`,
    );
  else if (!lambda.isIdle()) busy.push("Lambda busy");
  const active = fleet.activeRefreshes().map((r) => `${r.region}:${r.autoScalingGroupName} ${r.status}`);
  if (active.length > 0) busy.push(`refreshes: ${active.join(", ")}`);
  // Launches outside a refresh: replacements for churn, new groups of a stack update.
  const launching = fleet.launchingInstances().map((i) => `${i.region}:${i.instanceId}`);
  if (launching.length > 0) busy.push(`launching: ${launching.join(", ")}`);
  const updating = stacks.all().filter((stack) => stack.status.endsWith("_IN_PROGRESS"));
  if (updating.length > 0)
    busy.push(`stacks: ${updating.map((s) => `${s.region}:${s.stackName} ${s.status}`).join(", ")}`);
  return busy;
}

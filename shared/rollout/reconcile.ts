import type { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import type { EC2Client } from "@aws-sdk/client-ec2";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { SNSClient } from "@aws-sdk/client-sns";
import type { SSMClient } from "@aws-sdk/client-ssm";
import type { BuildkiteClient } from "../buildkite/client";
import type { ReconcileConfig, TargetGroup } from "../lib/config";
import { describeError } from "../lib/errors";
import type { Logger } from "../lib/log";
import type { MetricsSink } from "../lib/metrics";
import { backoffDelay, type Sleep } from "../lib/sleep";
import { type ActResult, act, type RefreshIdTag, recordRefreshIds } from "./act";
import { dueToLook, HANDOVER_WHILE_STARTING_AFTER_MS, type Handover, newContinuation } from "./handover";
import type { RolloutMemory } from "./memory";
import { groupKey, targetGroupOf } from "./model";
import { observe } from "./observe";
import { observeCommands } from "./observe-commands";
import { continueStarts, plan } from "./plan";
import {
  caughtUp,
  DEADLINE_MARGIN_MS,
  failedSendRegions,
  groupsOfCommands,
  logRound,
  lookAfterSync,
  ONE_LOOK_MS,
  transientlyUnobserved,
  uniqueGroups,
  waitForReplicaSync,
} from "./rounds";
import { needsFullObservation, type RunScope, scopeOf } from "./scope";
import { planSettings, tokenParameterName } from "./settings";
import type { Trigger } from "./trigger";
import type { Observation, Plan } from "./types";
import { foldIntoView } from "./view";

export interface ReconcileDeps {
  config: ReconcileConfig;
  secrets: (region: string) => SecretsManagerClient;
  autoScaling: (region: string) => AutoScalingClient;
  ec2: (region: string) => EC2Client;
  ssm: (region: string) => SSMClient;
  /** Auto Scaling clients without SDK retries, for StartInstanceRefresh and terminations (not idempotent). */
  autoScalingStart: (region: string) => AutoScalingClient;
  /** SSM clients without SDK retries, for SendCommand (not idempotent). */
  ssmSend: (region: string) => SSMClient;
  sns: (region: string) => SNSClient;
  buildkite: Pick<BuildkiteClient, "listTokens" | "deleteToken" | "listAgents" | "stopAgent">;
  logger: Logger;
  metrics: MetricsSink;
  now: () => Date;
  sleep: Sleep;
  /** Milliseconds left in this invocation. */
  remainingMs: () => number;
  /** The container's memory: what lets a run observe only what can have changed. */
  memory: RolloutMemory;
  /** Set when the run came from the trigger queue: it may hand the queue over instead of waiting. */
  handover?: Handover;
}

/** What one invocation was asked to handle: the triggers of its batch, already validated and filtered. */
export interface ReconcileRequest {
  triggers: Trigger[];
}

export interface ReconcileOutcome {
  scope: RunScope;
  /** The last round's plan; undefined when the run was skipped. */
  plan: Plan | undefined;
  rounds: number;
  /** How many rounds observed in full, partially (some groups), or only polled commands. */
  observations: { full: number; partial: number; polls: number };
  results: ActResult[];
  /** Set when the run ended to let waiting triggers through; its continuation resumes the rollout. */
  handedOver?: { id: string; waiting: number };
}

export const MAX_ROUNDS = 60;

/** What the next round observes. */
type Next =
  | { kind: "full" }
  /** Nothing: the next round carries on with the deferred starts of `plan`, made on `observation`. */
  | { kind: "starts"; plan: Plan; observation: Observation }
  | { kind: "groups"; groups: TargetGroup[] }
  /** Nothing: the lagging groups as the last look saw them, their replicas now in sync (rounds.ts lookAfterSync). */
  | { kind: "synced"; observation: Observation }
  | { kind: "poll"; previous: Observation; sent: ActResult["commandsSent"]; relist: string[] };

/**
 * The longest pause between two polls of the install commands in flight (jittered down to half):
 * the last command's result is seen at most this long after it lands, and the revocation follows.
 * A poll reads only the commands still running (one ListCommandInvocations each: at 20 × 1,000 in
 * place about two per region), so polling every half second costs about four calls a second per
 * region. Measured at 20 × 1,000 in place (npm run bench -- scale): at 1 s the last command's end
 * was seen 0.8-1.1 s late, 0.1 s over R + C + 2 s; at 500 ms, 0.5-0.7 s, for 60 more calls.
 */
const COMMAND_POLL_MAX_MS = 500;

/** Full observations a run may add to the one its trigger asked for (a partial run's escalations). */
const MAX_ESCALATIONS = 2;
/**
 * Looks again, within the run, at groups a transient error (throttling, a 5xx, a timeout) kept
 * unobserved, after 1, 2, 4 s: the events that would trigger another run have been used up, and
 * the schedule is minutes away.
 */
const MAX_UNOBSERVED_RETRIES = 3;

/**
 * One reconcile run: observe → plan → act, in rounds, observing only what can have changed
 * (scope.ts): a refresh event looks at its group; a run waits (bounded, within the deadline) for
 * lagging replicas and then looks at their regions' groups, and polls the install commands it sent
 * by reading those commands alone. Whenever a partial look finds that revoking, alerting or
 * recording may be due, the run observes in full — only a full observation may do those. Refreshes
 * are not waited for: their events (and the schedule) trigger the next run.
 */
export async function reconcile(
  deps: ReconcileDeps,
  request: ReconcileRequest = { triggers: [] },
): Promise<ReconcileOutcome> {
  const settings = planSettings(deps.config);
  let scope = scopeOf(request.triggers, deps.memory.recollect(), deps.config.clockSkewMs, (id) =>
    deps.memory.suspension(id),
  );
  // Our refreshes that reported success: remembered, so that the rollout's last report observes in full.
  deps.memory.noteReported(scope.reported ?? []);
  if (scope.kind === "skip" && (scope.reported?.length ?? 0) > 0) scope = (await caughtUp(deps)) ?? scope;
  const outcome: ReconcileOutcome = {
    scope,
    plan: undefined,
    rounds: 0,
    observations: { full: 0, partial: 0, polls: 0 },
    results: [],
  };
  if (scope.kind === "skip") {
    deps.logger.info("nothing new to observe; skipped", { reason: scope.reason });
    return outcome;
  }
  let next: Next = scope.kind === "full" ? { kind: "full" } : { kind: "groups", groups: scope.groups };
  /** Whether to end here so the triggers waiting behind this run go first (handover.ts). */
  let lookedAt = deps.now();
  /** Refresh ids the last round left to record with the next round's intents (act.ts recordIdsLater). */
  let idsToRecord: RefreshIdTag[] = [];
  const recordIdsLeft = async () => {
    await recordRefreshIds(deps, idsToRecord);
    idsToRecord = [];
  };
  /** `resume`: the groups the continuation looks at (none: it observes in full). */
  const handOver = async (
    waitingFor: string,
    resume: TargetGroup[] = [],
    startsLeftAfter: TargetGroup[] = [],
    afterMs?: number,
  ): Promise<boolean> => {
    if (!deps.handover || !dueToLook(lookedAt, deps.now(), afterMs)) return false;
    lookedAt = deps.now();
    let waiting: number;
    try {
      waiting = await deps.handover.waiting();
    } catch (error) {
      deps.logger.debug("could not count the waiting triggers; waiting in this run", {
        error: describeError(error),
      });
      return false;
    }
    if (waiting === 0) return false;
    const versionId = outcome.plan?.versionId;
    const continuation = newContinuation(versionId, deps.now());
    // Remembered before the send: the continuation may be delivered as soon as it is sent.
    if (versionId && resume.length > 0)
      deps.memory.suspend({
        id: continuation.id,
        versionId,
        groups: resume,
        ...(startsLeftAfter.length > 0 ? { startsLeft: startsLeftAfter } : {}),
      });
    try {
      // The ids a round left to the next are recorded first: the continuation may look at once.
      await recordIdsLeft();
      await deps.handover.continueLater(continuation);
    } catch (error) {
      deps.logger.warn("could not hand the queue over; waiting in this run", { error: describeError(error) });
      return false;
    }
    outcome.handedOver = { id: continuation.id, waiting };
    deps.metrics.put("HandedOver", 1, "Count");
    deps.logger.info("handed the queue over to the triggers waiting; a continuation resumes", {
      waiting,
      waitingFor,
      continuation: continuation.id,
    });
    return true;
  };
  /** Every install command this run has sent, over all its rounds. */
  const sentByThisRun = () => outcome.results.flatMap((r) => r.commandsSent);
  let escalations = 0;
  /** One round's look and plan; "skip" when a cold container finds nothing new, "escalate" to observe in full. */
  const observeAndPlan = async (
    look: Exclude<Next, { kind: "starts" }>,
  ): Promise<{ observation: Observation; plan: Plan } | "skip" | "escalate"> => {
    const observation: Observation =
      look.kind === "full"
        ? await observe(deps, { refreshHistory: "ours" })
        : look.kind === "groups"
          ? await observe(deps, { groups: look.groups, refreshHistory: "ours" })
          : look.kind === "poll"
            ? await observeCommands(deps, look.previous, look.sent, look.relist)
            : look.observation;
    if (look.kind !== "synced")
      outcome.observations[look.kind === "groups" ? "partial" : look.kind === "poll" ? "polls" : "full"]++;
    const memory = deps.memory.recollect();
    if (outcome.rounds === 1 && look.kind === "groups" && !memory) {
      // A cold container: the anchor's rollout tag says when the last full observation began.
      const recorded = observation.rollout.observedAt;
      const again = scopeOf(
        request.triggers,
        recorded && { fullStartedAt: recorded },
        deps.config.clockSkewMs,
      );
      if (again.kind === "skip") {
        deps.logger.info("nothing new to observe (as recorded on the anchor group); skipped", {
          reason: again.reason,
        });
        outcome.scope = again;
        return "skip";
      }
    }
    const current = plan(observation, settings);
    outcome.plan = current;
    if (observation.scope !== "full") {
      const why = needsFullObservation(current, memory, observation.now);
      if (why && escalations < MAX_ESCALATIONS) {
        escalations++;
        deps.memory.afterPlan(observation, current);
        deps.logger.info("observing in full", { reason: why });
        return "escalate";
      }
    }
    return { observation, plan: current };
  };
  /** Groups whose refresh a round deferred and no round has looked at again yet (beyond the next chunk). */
  let startsLeft: TargetGroup[] = scope.kind === "groups" ? (scope.startsLeft ?? []) : [];
  /** Groups whose start failed in a round since the last look at them: looked at again before the run ends. */
  let startsFailed: TargetGroup[] = [];
  let commandPolls = 0;
  let unobservedRetries = 0;
  /**
   * Install commands take seconds to run whoever polls them: at the first poll after a send, the
   * triggers that queued while this run observed and sent go first at once, not only
   * HANDOVER_AFTER_MS after the run began (a poll may take seconds of its own: at 20 × 1,000 in
   * place the promotion's label event waited 3.6 s, and 13.4 s on a slow machine). Only after a
   * send, so a continuation that sends nothing does not hand over again at once for every trigger
   * that arrives. Not at a replica wait: that wait is short, and after it the run plans the lagging
   * regions on its own look (rounds.ts lookAfterSync), where a continuation would look again in
   * full (measured at 20 × 1,000: the last command went out 0.6 s later).
   */
  let sentSinceLastPoll = false;
  const firstPollAfterSend = (): number | undefined => {
    const first = sentSinceLastPoll;
    sentSinceLastPoll = false;
    return first ? 0 : undefined;
  };
  /** Everything this run has seen, for its polls (view.ts). */
  let view: Observation | undefined;
  while (outcome.rounds < MAX_ROUNDS) {
    outcome.rounds++;
    let observation: Observation;
    let current: Plan;
    if (next.kind === "starts") {
      observation = next.observation;
      current = continueStarts(next.plan, settings.maxStartsPerRound);
    } else {
      const decided = await observeAndPlan(next);
      if (decided === "skip") break;
      if (decided === "escalate") {
        next = { kind: "full" };
        continue;
      }
      ({ observation, plan: current } = decided);
    }
    outcome.plan = current;
    /** Refreshes left to start in the next rounds: this plan's deferred ones, or those a continuation left. */
    const startsAhead = current.deferredStarts.length > 0 || startsLeft.length > 0;
    const result = await act(current, observation, {
      ...deps,
      alertTopicArn: deps.config.alertTopicArn,
      inPlace: deps.config.inPlace,
      tokenParameterName: tokenParameterName(deps.config),
      idsCarried: idsToRecord,
      // The next round's intents carry this round's refresh ids.
      recordIdsLater: startsAhead,
    });
    idsToRecord = result.idsToRecord;
    if (result.commandsSent.length > 0) sentSinceLastPoll = true;
    // A round that carried on from an earlier look adds only its starts to what memory holds.
    if (next.kind !== "starts") deps.memory.afterPlan(observation, current);
    deps.memory.noteStarted(current.versionId, result.refreshesStarted);
    // The look this round planned on has read the failed starts it covered: a full look, all of them.
    if (next.kind === "full") startsFailed = [];
    else if (next.kind === "groups") {
      const looked = new Set(next.groups.map(groupKey));
      startsFailed = startsFailed.filter((g) => !looked.has(groupKey(g)));
    }
    startsFailed = uniqueGroups([...startsFailed, ...result.startsFailed]);
    // A round that carried on adds its writes to the view: folding its look in again would undo the earlier rounds'.
    view = foldIntoView(view, next.kind === "starts" && view ? view : observation, current, result.alerted);
    outcome.results.push(result);
    logRound(deps, outcome.rounds, observation, current, result);

    // The groups of the regions still behind: where the replica wait, or the next round, looks.
    const laggingGroups = current.targets
      .filter((t) => current.regionsLagging.includes(t.region))
      .map(targetGroupOf);
    if (startsAhead) {
      // Refreshes left for the next rounds, unless triggers are waiting (then the continuation
      // looks at the next round's worth of those groups, and at the lagging regions' groups, so
      // the replica wait is not lost). This plan's own deferred starts go on from this look while
      // it is recent; the groups a continuation left (startsLeft) are looked at again a round's
      // worth at a time: looking again at every deferred group each round cost a describe per
      // group per round, quadratic in the groups over the rounds.
      const deferred = current.deferredStarts.map((a) => a.target);
      const toStart = uniqueGroups([...deferred, ...startsLeft]);
      const chunk = toStart.slice(0, settings.maxStartsPerRound ?? toStart.length);
      const nextGroups = uniqueGroups([...chunk, ...laggingGroups, ...startsFailed]);
      const carryOn =
        deferred.length > 0 && deps.now().getTime() - observation.startedAt.getTime() < ONE_LOOK_MS;
      const holdMs = carryOn ? HANDOVER_WHILE_STARTING_AFTER_MS : undefined;
      if (await handOver("refreshes still to start", nextGroups, toStart.slice(chunk.length), holdMs)) break;
      if (carryOn) {
        next = { kind: "starts", plan: current, observation };
        continue;
      }
      startsLeft = toStart.slice(chunk.length);
      next = { kind: "groups", groups: nextGroups };
      continue;
    }
    const waitForReplicas = current.waitingFor.includes("replicas") && current.versionId !== undefined;
    if (!waitForReplicas) {
      // Commands just sent or still running report within seconds: poll them in this run.
      // A SendCommand that failed may have created its command all the same (a lost response):
      // look again in this run rather than leave it to another trigger.
      const relist = failedSendRegions(current, result);
      const inFlight =
        result.commandsSent.length > 0 ||
        relist.length > 0 ||
        current.targets.some((t) => t.instances.some((i) => i.state === "in-flight"));
      if (!inFlight || current.complete) {
        // Groups a transient error kept unobserved, and groups whose start failed: a connection
        // reset or a timeout leaves unknown whether AWS started the refresh (StartInstanceRefresh
        // is not retried), and nothing else would trigger a look at them before the schedule.
        const unobserved = uniqueGroups([...transientlyUnobserved(observation), ...startsFailed]);
        if (unobserved.length === 0 || current.complete || unobservedRetries >= MAX_UNOBSERVED_RETRIES) break;
        const wait = 1_000 * 2 ** unobservedRetries++;
        if (deps.remainingMs() < DEADLINE_MARGIN_MS + wait) break;
        if (await handOver("groups a transient error kept unobserved or failed to start", unobserved)) break;
        deps.logger.info("looking again at groups a transient error kept unobserved or failed to start", {
          groups: unobserved.map((g) => `${g.region}:${g.groupName}`),
          inMs: wait,
        });
        await deps.sleep(wait);
        next = { kind: "groups", groups: unobserved };
        continue;
      }
      const delay = backoffDelay(commandPolls++, 250, COMMAND_POLL_MAX_MS);
      if (deps.remainingMs() < DEADLINE_MARGIN_MS + delay) break;
      if (await handOver("install commands in flight", [], [], firstPollAfterSend())) break;
      await deps.sleep(delay);
      // Every command this run sent: the view may predate some of them (an earlier round's groups).
      next = { kind: "poll", previous: view, sent: sentByThisRun(), relist };
      continue;
    }
    const lagging = current.regionsLagging;
    // The continuation looks at the lagging regions' groups and at those whose install commands this
    // run sent: no event reports a command's end, so a handover that left them out left them unseen.
    const resume = uniqueGroups([...laggingGroups, ...groupsOfCommands(view, sentByThisRun())]);
    const synced = await waitForReplicaSync(deps, current.versionId ?? "", lagging, () =>
      handOver("replicas behind", resume),
    );
    if (synced === "handed-over") break;
    if (synced === "out-of-time") {
      deps.logger.info("replicas still behind at the end of this run's budget; the next trigger continues", {
        regionsLagging: lagging,
      });
      break;
    }
    // The regions that caught up are the only ones whose groups have something new to do: planned
    // on the look just made while it is recent, else looked at again.
    const reused =
      view && (await lookAfterSync(deps, observation, view, laggingGroups, current.versionId ?? ""));
    next = reused
      ? { kind: "synced", observation: reused }
      : laggingGroups.length > 0
        ? { kind: "groups", groups: laggingGroups }
        : { kind: "full" };
  }
  await recordIdsLeft();
  return outcome;
}

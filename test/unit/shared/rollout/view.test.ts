import { describe, expect, it } from "vitest";
import { alertId } from "../../../../shared/rollout/markers";
import type { Action, Observation } from "../../../../shared/rollout/types";
import { foldIntoView } from "../../../../shared/rollout/view";
import { emptyPlan, NOW, observation, target, V2 } from "../../../support/rollout-fixtures";

const alert = (key: string): Action => ({ kind: "alert", key, subject: key, message: key });
const record = (at: Date, unobservableSince: Date | undefined): Action => ({
  kind: "record-rollout",
  versionId: V2,
  complete: false,
  unobservableSince,
  observedAt: at,
});

describe("foldIntoView", () => {
  it("a partial look replaces the groups it saw and keeps the rest, with the full look's tokens", () => {
    const full = observation();
    const view = foldIntoView(undefined, full, emptyPlan(), []);
    const partial = observation({
      scope: "partial",
      targets: [target("eu-west-1", "ci-b", { members: [] })],
      tokens: [],
    });
    const next = foldIntoView(view, partial, emptyPlan(), []);
    expect(next.targets.map((t) => `${t.groupName}:${t.members.length}`)).toEqual(["ci-a:2", "ci-b:0"]);
    expect(next.tokens).toEqual(full.tokens);
  });

  it("applies the sync times the round recorded", () => {
    const at = new Date(NOW.getTime() + 1_000);
    const obs = observation({ targets: [target("eu-west-1", "ci-b", { syncedAt: undefined })] });
    const plan = emptyPlan({
      actions: [
        { kind: "record-sync", target: { region: "eu-west-1", groupName: "ci-b" }, versionId: V2, at },
      ],
    });
    expect(foldIntoView(undefined, obs, plan, []).targets[0]?.syncedAt).toEqual(at);
  });

  // Bug: a poll built on the view wrote the rollout record from the look before this run's own
  // writes: an alert an earlier round had published dropped out of the record (and was sent again
  // by the next full observation), and the unobservable-since time the full plan started was lost.
  it("carries the rollout record as this run's rounds wrote it: the alerts published, the times recorded", () => {
    const since = new Date(NOW.getTime() - 60_000);
    const obs: Observation = observation({
      rollout: {
        alertsSent: [alertId("old")],
        complete: false,
        unobservableSince: undefined,
        observedAt: undefined,
      },
    });
    const plan = emptyPlan({
      actions: [alert("group-missing:x"), alert("refresh-failed:y"), record(NOW, since)],
    });
    // Only what act published counts as sent: the failed one is tried again.
    const view = foldIntoView(undefined, obs, plan, ["group-missing:x"]);
    expect(view.rollout.alertsSent).toEqual([alertId("old"), alertId("group-missing:x")]);
    expect(view.rollout.unobservableSince).toEqual(since);
    expect(view.rollout.observedAt).toEqual(NOW);
    // A later round without a record of its own keeps it; one alerting again adds nothing twice.
    const poll: Observation = { ...view, scope: "poll" };
    const again = foldIntoView(view, poll, emptyPlan(), ["group-missing:x"]);
    expect(again.rollout.alertsSent).toEqual([alertId("old"), alertId("group-missing:x")]);
    expect(again.rollout.unobservableSince).toEqual(since);
  });

  it("a round that wrote no record leaves the record as its look read it", () => {
    const obs = observation();
    expect(foldIntoView(undefined, obs, emptyPlan(), []).rollout).toEqual(obs.rollout);
  });
});

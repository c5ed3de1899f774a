import { describe, expect, it } from "vitest";
import type { Recollection } from "../../../../shared/rollout/memory";
import {
  ALERT_FULL_OBSERVATION_INTERVAL_MS,
  catchUp,
  needsFullObservation,
  scopeOf,
  seenBy,
  VERIFY_REPORTED_AT,
} from "../../../../shared/rollout/scope";
import type { Trigger } from "../../../../shared/rollout/trigger";
import type { Plan, TargetPhase } from "../../../../shared/rollout/types";
import { emptyPlan } from "../../../support/rollout-fixtures";

const FULL = new Date("2026-12-01T12:00:10.000Z");
const at = (iso: string) => new Date(iso);
const refresh = (group: string, time: string | undefined, region = "us-east-1"): Trigger => ({
  kind: "instance-refresh",
  region,
  group,
  refreshId: `r-${group}`,
  event: "Succeeded",
  at: time ? at(time) : undefined,
});
const memory = (over: Partial<Recollection> = {}): Recollection => ({
  versionId: "v2",
  fullStartedAt: FULL,
  managed: true,
  anchor: { region: "us-east-1", groupName: "a" },
  notDone: ["us-east-1:a", "us-east-1:b"],
  leakedOpen: false,
  refreshIds: {},
  reported: [],
  doneRefreshIds: {},
  ...over,
});

describe("seenBy: an event's effect was seen by a full observation that began after it", () => {
  it.each([
    ["stamped two seconds before", "2026-12-01T12:00:08Z", 0, true],
    // EventBridge stamps whole seconds: 12:00:09 may be as late as 12:00:09.999.
    ["stamped in the second before", "2026-12-01T12:00:09Z", 0, true],
    ["stamped in the same second", "2026-12-01T12:00:10Z", 0, false],
    ["after it", "2026-12-01T12:00:11Z", 0, false],
    ["within the clock skew", "2026-12-01T12:00:08Z", 1_500, false],
  ])("%s → %s", (_, time, skew, expected) => {
    expect(seenBy(refresh("a", time), FULL, skew)).toBe(expected);
  });

  it("never for a trigger without a time, or without a full observation", () => {
    expect(seenBy(refresh("a", undefined), FULL, 0)).toBe(false);
    expect(seenBy(refresh("a", "2026-12-01T11:00:00Z"), undefined, 0)).toBe(false);
  });
});

describe("scopeOf", () => {
  const label: Trigger = { kind: "secret-label-updated", versionId: "v3", at: at("2026-12-01T12:00:30Z") };

  it.each<[string, Trigger[], Recollection | undefined, string]>([
    ["a direct call (no trigger)", [], memory(), "full"],
    ["the secret's label moved", [label], memory(), "full"],
    [
      "the label moved to the version the last full observation found current (the rotation's run)",
      [{ ...label, versionId: "v2" }],
      memory(),
      "skip",
    ],
    [
      "the label moved to that version, in a cold container",
      [{ ...label, versionId: "v2" }],
      undefined,
      "full",
    ],
    [
      "a continuation sent 500 ms before the last full observation began (our time has milliseconds)",
      [{ kind: "continuation", id: "t", versionId: "v2", at: new Date(FULL.getTime() - 500) }],
      memory(),
      "skip",
    ],
    [
      "a refresh event stamped 500 ms before it (EventBridge's time has whole seconds)",
      [{ ...refresh("a", undefined), at: new Date(FULL.getTime() - 500) }],
      memory(),
      "groups",
    ],
    ["the schedule", [{ kind: "schedule", at: at("2026-12-01T12:05:00Z") }], memory(), "full"],
    ["the rotation", [{ kind: "rotation", versionId: "v3", at: undefined }], memory(), "full"],
    ["an operator", [{ kind: "manual", reason: undefined, at: undefined }], memory(), "full"],
    [
      "a continuation sent after the last full observation began",
      [{ kind: "continuation", id: "t", versionId: "v3", at: at("2026-12-01T12:00:30Z") }],
      memory(),
      "full",
    ],
    [
      "a continuation a later full observation has covered",
      [{ kind: "continuation", id: "t", versionId: "v3", at: at("2026-12-01T12:00:01Z") }],
      memory(),
      "skip",
    ],
    [
      "refresh events after the last full observation",
      [refresh("a", "2026-12-01T12:00:30Z")],
      memory(),
      "groups",
    ],
    ["refresh events in a cold container", [refresh("a", "2026-12-01T12:00:01Z")], undefined, "groups"],
    [
      "refresh events all before the last full observation",
      [refresh("a", "2026-12-01T12:00:01Z"), refresh("b", "2026-12-01T12:00:02Z")],
      memory(),
      "skip",
    ],
    [
      "a label event before it and a refresh after it",
      [{ ...label, at: at("2026-12-01T12:00:00Z") }, refresh("a", "2026-12-01T12:00:30Z")],
      memory(),
      "groups",
    ],
    [
      "a refresh before it and a label after it",
      [refresh("a", "2026-12-01T12:00:00Z"), label],
      memory(),
      "full",
    ],
  ])("%s → %s", (_, triggers, recollection, kind) => {
    expect(scopeOf(triggers, recollection, 0).kind).toBe(kind);
  });

  it("names each group once, with its region, dropping the events already seen", () => {
    const scope = scopeOf(
      [
        refresh("a", "2026-12-01T12:00:30Z"),
        refresh("a", "2026-12-01T12:00:31Z"),
        refresh("a", "2026-12-01T12:00:31Z", "eu-west-1"),
        refresh("b", "2026-12-01T12:00:01Z"),
      ],
      memory(),
      0,
    );
    expect(scope).toMatchObject({
      kind: "groups",
      groups: [
        { region: "us-east-1", groupName: "a" },
        { region: "eu-west-1", groupName: "a" },
      ],
    });
  });
});

describe("needsFullObservation (after a partial plan)", () => {
  const NOW = new Date(FULL.getTime() + 5_000);
  const partial = (targets: Array<[string, TargetPhase]>, over: Partial<Plan> = {}): Plan =>
    emptyPlan({
      strategy: "refresh",
      targets: targets.map(([groupName, phase]) => ({
        region: "us-east-1",
        groupName,
        stackName: undefined,
        phase,
        refreshId: undefined,
        percentageComplete: undefined,
        detail: "",
        instances: [],
      })),
      ...over,
    });

  it.each<[string, Plan, Recollection | undefined, Date, boolean]>([
    [
      "the plan itself asks for it",
      partial([["a", "refreshed"]], { escalate: "not seen" }),
      memory(),
      NOW,
      true,
    ],
    ["a cold container", partial([["a", "refreshing"]]), undefined, NOW, true],
    ["memory of another version", partial([["a", "refreshing"]]), memory({ versionId: "v1" }), NOW, true],
    [
      "the last pending group is done",
      partial([["a", "refreshed"]]),
      memory({ notDone: ["us-east-1:a"] }),
      NOW,
      true,
    ],
    [
      "the last pending group failed",
      partial([["a", "failed"]]),
      memory({ notDone: ["us-east-1:a"] }),
      NOW,
      true,
    ],
    [
      "the last pending group still refreshing",
      partial([["a", "refreshing"]]),
      memory({ notDone: ["us-east-1:a"] }),
      NOW,
      false,
    ],
    ["another group still pending", partial([["a", "refreshed"]]), memory(), NOW, false],
    [
      "the other pending group reported its refresh succeeded (the full observation verifies it)",
      partial([["a", "refreshed"]]),
      memory({ reported: ["us-east-1:b"] }),
      NOW,
      true,
    ],
    [
      "fleet alerts held back, last full observation recent",
      partial([["a", "refreshing"]], { deferredAlerts: 1 }),
      memory(),
      NOW,
      false,
    ],
    [
      "fleet alerts held back, last full observation a while ago",
      partial([["a", "refreshing"]], { deferredAlerts: 1 }),
      memory(),
      new Date(FULL.getTime() + ALERT_FULL_OBSERVATION_INTERVAL_MS),
      true,
    ],
    ["nothing to roll out", partial([], { versionId: undefined }), memory(), NOW, false],
    [
      "an emergency's leaked token waited for a region now in sync",
      partial([["a", "refreshing"]]),
      memory({ leakedOpen: true }),
      NOW,
      true,
    ],
    [
      "an emergency's leaked token, a region still behind",
      partial([["a", "waiting-for-replica"]], { regionsBehind: ["eu-west-1"] }),
      memory({ leakedOpen: true }),
      NOW,
      false,
    ],
  ])("%s → %s", (_, plan, recollection, now, expected) => {
    expect(needsFullObservation(plan, recollection, now) !== undefined).toBe(expected);
  });
});

describe("scopeOf: a continuation this container suspended", () => {
  const later = at("2026-12-01T12:00:30Z");
  const suspension = (id: string) =>
    id === "mine" ? { id, versionId: "v3", groups: [{ region: "eu-west-1", groupName: "b" }] } : undefined;

  it("resumes with its groups, like refresh events for them", () => {
    const scope = scopeOf(
      [{ kind: "continuation", id: "mine", versionId: "v3", at: later }],
      memory(),
      0,
      suspension,
    );
    expect(scope.kind).toBe("groups");
    expect(scope.kind === "groups" ? scope.groups : []).toEqual([{ region: "eu-west-1", groupName: "b" }]);
  });

  it("observes in full for a continuation it did not suspend (another container, or a replaced one)", () => {
    expect(
      scopeOf([{ kind: "continuation", id: "other", versionId: "v3", at: later }], memory(), 0, suspension)
        .kind,
    ).toBe("full");
  });

  it("still skips one a later full observation covered", () => {
    expect(
      scopeOf(
        [{ kind: "continuation", id: "mine", versionId: "v3", at: at("2026-12-01T12:00:01Z") }],
        memory(),
        0,
        suspension,
      ).kind,
    ).toBe("skip");
  });
});

describe("scopeOf: our own refreshes reporting success", () => {
  const LATER = "2026-12-01T12:00:30Z";
  const ours = memory({ refreshIds: { "us-east-1:a": "r-a", "us-east-1:b": "r-b" } });

  it("while another group is still to report: no call, the success is noted", () => {
    const scope = scopeOf([refresh("a", LATER)], ours, 0);
    expect(scope.kind).toBe("skip");
    expect(scope.reported).toEqual(["us-east-1:a"]);
  });

  it("the last group to report: the full observation that verifies every one of them", () => {
    expect(scopeOf([refresh("b", LATER)], memory({ ...ours, reported: ["us-east-1:a"] }), 0)).toMatchObject({
      kind: "full",
      reported: ["us-east-1:b"],
    });
    expect(scopeOf([refresh("a", LATER), refresh("b", LATER)], ours, 0).kind).toBe("full");
  });

  it.each<[string, Trigger, Recollection | undefined]>([
    [
      "a refresh that is not the one we know",
      { ...refresh("a", LATER), refreshId: "r-other" } as Trigger,
      ours,
    ],
    ["a failed refresh", { ...refresh("a", LATER), event: "Failed" } as Trigger, ours],
    ["a cancelled refresh", { ...refresh("a", LATER), event: "Cancelled" } as Trigger, ours],
    ["a rollback", { ...refresh("a", LATER), event: "Rollback Succeeded" } as Trigger, ours],
    [
      "a group done at the last full observation",
      refresh("c", LATER),
      memory({ ...ours, refreshIds: { "us-east-1:c": "r-c" } }),
    ],
    ["a container that knows none of our refreshes", refresh("a", LATER), memory()],
  ])("%s: looked at at once", (_, trigger, recollection) => {
    const scope = scopeOf([trigger], recollection, 0);
    expect(scope.kind).toBe("groups");
    expect(scope.reported).toEqual([]);
  });

  it("the success of the refresh a look already found done costs nothing, however late", () => {
    const seen = memory({ ...ours, notDone: ["us-east-1:b"], doneRefreshIds: { "us-east-1:a": "r-a" } });
    expect(scopeOf([refresh("a", LATER)], seen, 0).kind).toBe("skip");
    // Not the refresh it saw, or not a success: looked at.
    expect(scopeOf([{ ...refresh("a", LATER), refreshId: "r-a2" } as Trigger], seen, 0).kind).toBe("groups");
    expect(scopeOf([{ ...refresh("a", LATER), event: "Failed" } as Trigger], seen, 0).kind).toBe("groups");
    // A group pending again (a later full look found it not done) is not taken as seen.
    const pending = memory({ ...ours, doneRefreshIds: { "us-east-1:a": "r-a" } });
    expect(scopeOf([refresh("a", LATER)], pending, 0)).toMatchObject({
      kind: "skip",
      reported: ["us-east-1:a"],
    });
  });

  it("a cold container (the anchor's time only) looks at the group", () => {
    expect(scopeOf([refresh("a", LATER)], { fullStartedAt: FULL }, 0).kind).toBe("groups");
  });

  it("other triggers in the batch are looked at; the success is still only noted", () => {
    const failed = { ...refresh("b", LATER), event: "Failed" } as Trigger;
    const scope = scopeOf([refresh("a", LATER), failed], ours, 0);
    expect(scope).toMatchObject({ kind: "groups", groups: [{ region: "us-east-1", groupName: "b" }] });
    expect(scope.reported).toEqual(["us-east-1:a"]);
  });

  it(`${VERIFY_REPORTED_AT} waiting: looked at together (with the live triggers' groups)`, () => {
    const names = Array.from({ length: VERIFY_REPORTED_AT + 1 }, (_, i) => `g${i}`);
    const many = memory({
      notDone: names.map((n) => `us-east-1:${n}`),
      refreshIds: Object.fromEntries(names.map((n) => [`us-east-1:${n}`, `r-${n}`])),
      reported: names.slice(0, VERIFY_REPORTED_AT - 2).map((n) => `us-east-1:${n}`),
    });
    const before = scopeOf([refresh(names[VERIFY_REPORTED_AT - 2] ?? "", LATER)], many, 0);
    expect(before.kind).toBe("skip");
    // Memory noted that one; the next makes VERIFY_REPORTED_AT.
    const noted = { ...many, reported: names.slice(0, VERIFY_REPORTED_AT - 1).map((n) => `us-east-1:${n}`) };
    const scope = scopeOf([refresh(names[VERIFY_REPORTED_AT - 1] ?? "", LATER)], noted, 0);
    expect(scope.kind).toBe("groups");
    const groups = scope.kind === "groups" ? scope.groups.map((g) => `${g.region}:${g.groupName}`) : [];
    expect(groups.sort()).toEqual(
      names
        .slice(0, VERIFY_REPORTED_AT)
        .map((n) => `us-east-1:${n}`)
        .sort(),
    );
  });

  it("a group name with a colon survives the round trip through memory", () => {
    const odd = memory({ notDone: ["us-east-1:a:b", "us-east-1:x"], refreshIds: {}, reported: [] });
    const names = Array.from({ length: VERIFY_REPORTED_AT }, (_, i) => `us-east-1:n${i}`);
    const scope = scopeOf(
      [{ ...refresh("a:b", LATER), refreshId: "r-ab" } as Trigger],
      {
        ...odd,
        notDone: [...odd.notDone, ...names],
        refreshIds: { "us-east-1:a:b": "r-ab" },
        reported: names.slice(0, VERIFY_REPORTED_AT - 1),
      },
      0,
    );
    const groups = scope.kind === "groups" ? scope.groups : [];
    expect(groups).toContainEqual({ region: "us-east-1", groupName: "a:b" });
  });
});

describe("catchUp: the triggers waiting behind a run cover the groups still to report", () => {
  const pending = memory({
    notDone: ["us-east-1:a", "us-east-1:b", "eu-west-1:c"],
    reported: ["us-east-1:a"],
    refreshIds: { "us-east-1:a": "r-a", "us-east-1:b": "r-b", "eu-west-1:c": "r-c" },
  });

  it.each<[string, Pick<Recollection, "notDone" | "reported" | "refreshIds"> | undefined, number, boolean]>([
    ["fewer waiting than still to report: wait for them", pending, 1, false],
    ["as many waiting: observe in full now", pending, 2, true],
    ["more waiting (other triggers too): the same", pending, 40, true],
    [
      "a group still to report has no refresh of ours yet (still to start): no report can be waiting",
      { ...pending, refreshIds: { "us-east-1:a": "r-a", "us-east-1:b": "r-b" } },
      40,
      false,
    ],
    [
      "every group reported (the full observation follows anyway)",
      memory({ notDone: ["us-east-1:a"], reported: ["us-east-1:a"] }),
      9,
      false,
    ],
    ["nothing pending", memory({ notDone: [], reported: [] }), 9, false],
    ["no memory (a cold container)", undefined, 9, false],
  ])("%s", (_, recollection, waiting, expected) => {
    const scope = catchUp(recollection, waiting);
    expect(scope?.kind).toBe(expected ? "full" : undefined);
  });
});

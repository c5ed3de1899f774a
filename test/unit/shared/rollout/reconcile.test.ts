import {
  AutoScalingClient,
  CreateOrUpdateTagsCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
  StartInstanceRefreshCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import {
  DescribeSecretCommand,
  ListSecretVersionIdsCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import { SSMClient } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { describeManagedToken } from "../../../../shared/buildkite/description";
import { loadReconcileConfig } from "../../../../shared/lib/config";
import { createLogger } from "../../../../shared/lib/log";
import { HANDOVER_AFTER_MS } from "../../../../shared/rollout/handover";
import {
  decodeRefreshMarker,
  decodeRolloutMarker,
  decodeSync,
  encodeRefreshMarker,
  encodeSync,
} from "../../../../shared/rollout/markers";
import { RolloutMemory } from "../../../../shared/rollout/memory";
import { MARKER_TAG, ROLLOUT_TAG, SYNC_TAG } from "../../../../shared/rollout/plan";
import { MAX_ROUNDS, type ReconcileDeps, reconcile } from "../../../../shared/rollout/reconcile";
import { ONE_LOOK_MS } from "../../../../shared/rollout/rounds";
import { MAX_STARTS_PER_ROUND } from "../../../../shared/rollout/settings";
import type { Trigger } from "../../../../shared/rollout/trigger";
import { ARN, reconcileEnv } from "../../../support/rollout-fixtures";

/**
 * A cold container mid-rollout must reach the decisions a warm one reaches: memory may save calls,
 * never change a write. Each case runs the same trigger against the same AWS state twice — once
 * with the memory of an earlier full run, once with none — and compares every write.
 */
const config = loadReconcileConfig(
  reconcileEnv({ ROLLOUT_STRATEGY: "refresh", ALERT_TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:alerts" }),
);
const sm = mockClient(SecretsManagerClient);
const asg = mockClient(AutoScalingClient);
const ec2 = mockClient(EC2Client);
const sns = mockClient(SNSClient);

const CREATED = new Date("2026-12-01T12:00:00Z");
const SYNCED = new Date("2026-12-01T12:00:02Z");
const INTENT = new Date("2026-12-01T12:00:03Z");
const GROUPS = [
  { region: "us-east-1", name: "ci-a" },
  { region: "eu-west-1", name: "ci-b" },
];

/** The AWS state a test changes between runs: each group's refresh status and the anchor's rollout tag. */
let status: Record<string, string>;
let rolloutTag: string | undefined;
let clock: Date;
let deleted: string[];

beforeEach(() => {
  for (const m of [sm, asg, ec2, sns]) m.reset();
  status = { "ci-a": "Successful", "ci-b": "InProgress" };
  rolloutTag = undefined;
  clock = new Date("2026-12-01T12:05:00Z");
  deleted = [];
  sm.on(DescribeSecretCommand).resolves({
    VersionIdsToStages: { v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"] },
    ReplicationStatus: [{ Region: "eu-west-1", Status: "InSync" }],
  });
  sm.on(ListSecretVersionIdsCommand).resolves({ Versions: [{ VersionId: "v2", CreatedDate: CREATED }] });
  asg.on(DescribeAutoScalingGroupsCommand).callsFake((input: { AutoScalingGroupNames?: string[] }) => ({
    AutoScalingGroups: (input.AutoScalingGroupNames ?? []).map((name) => ({
      AutoScalingGroupName: name,
      // Replaced by the refresh once it succeeded; the old instance while it runs.
      Instances: [
        {
          InstanceId: `i-${name}-${status[name] === "Successful" ? "new" : "old"}`,
          LifecycleState: "InService",
        },
      ],
      Tags: [
        { Key: SYNC_TAG, Value: encodeSync("v2", SYNCED) },
        {
          Key: MARKER_TAG,
          Value: encodeRefreshMarker({ versionId: "v2", intentAt: INTENT, refreshId: `r-${name}` }),
        },
        ...(name === "ci-a" && rolloutTag ? [{ Key: ROLLOUT_TAG, Value: rolloutTag }] : []),
      ],
    })),
  }));
  asg.on(DescribeInstanceRefreshesCommand).callsFake((input: { AutoScalingGroupName?: string }) => {
    const name = input.AutoScalingGroupName ?? "";
    return {
      InstanceRefreshes: [
        {
          InstanceRefreshId: `r-${name}`,
          Status: status[name],
          StartTime: new Date(INTENT.getTime() + 1_000),
          Preferences: { ScaleInProtectedInstances: "Wait", MinHealthyPercentage: 90 },
        },
      ],
    };
  });
  ec2.on(DescribeInstancesCommand).callsFake((input: { Filters?: Array<{ Values?: string[] }> }) => ({
    Reservations: [
      {
        Instances: (input.Filters?.[0]?.Values ?? []).map((id) => ({
          InstanceId: id,
          LaunchTime: id.endsWith("-new")
            ? new Date("2026-12-01T12:02:00Z")
            : new Date("2026-11-30T08:00:00Z"),
          State: { Name: "running" },
        })),
      },
    ],
  }));
  asg.on(CreateOrUpdateTagsCommand).callsFake((input: { Tags?: Array<{ Key?: string; Value?: string }> }) => {
    for (const t of input.Tags ?? []) if (t.Key === ROLLOUT_TAG) rolloutTag = t.Value;
    return {};
  });
  sns.on(PublishCommand).resolves({ MessageId: "m" });
});

function depsWith(memory: RolloutMemory): ReconcileDeps {
  return {
    config,
    secrets: (region) => new SecretsManagerClient({ region }),
    autoScaling: (region) => new AutoScalingClient({ region }),
    ec2: (region) => new EC2Client({ region }),
    ssm: (region) => new SSMClient({ region }),
    ssmSend: (region) => new SSMClient({ region }),
    autoScalingStart: (region) => new AutoScalingClient({ region }),
    sns: (region) => new SNSClient({ region }),
    buildkite: {
      listTokens: async () => [
        {
          id: "t1",
          description: describeManagedToken(ARN, "v1"),
          createdAt: undefined,
          expiresAt: undefined,
        },
        {
          id: "t2",
          description: describeManagedToken(ARN, "v2"),
          createdAt: undefined,
          expiresAt: undefined,
        },
      ],
      deleteToken: async (id) => {
        deleted.push(id);
        return "deleted";
      },
      listAgents: async () => [],
      stopAgent: async () => undefined,
    },
    logger: createLogger("test", {}, "error"),
    metrics: { put: () => undefined },
    now: () => clock,
    sleep: async () => undefined,
    remainingMs: () => 600_000,
    memory,
  };
}

const succeeded = (name: string, at: Date): Trigger => ({
  kind: "instance-refresh",
  region: GROUPS.find((g) => g.name === name)?.region ?? "",
  group: name,
  refreshId: `r-${name}`,
  event: "Succeeded",
  at,
});

/** Every write a run made (tag values without times, which differ by design). */
function writes(): string[] {
  const tags = asg
    .commandCalls(CreateOrUpdateTagsCommand)
    .flatMap((c) => (c.args[0].input.Tags ?? []).map((t) => `tag ${t.ResourceId} ${t.Key}`));
  const starts = asg
    .commandCalls(StartInstanceRefreshCommand)
    .map((c) => `start ${c.args[0].input.AutoScalingGroupName}`);
  const alerts = sns.commandCalls(PublishCommand).map((c) => `alert ${c.args[0].input.Subject}`);
  return [...tags, ...starts, ...alerts, ...deleted.map((id) => `revoke ${id}`)].sort();
}

/** Runs `trigger` in a warm container (after a full run at `primedAt`) and in a cold one, from the same state. */
async function warmAndCold(primedAt: Date, trigger: Trigger, change: () => void) {
  const memory = new RolloutMemory();
  clock = primedAt;
  await reconcile(depsWith(memory), { triggers: [{ kind: "schedule", at: primedAt }] });
  const primedTag = rolloutTag;
  change();
  const after = { status: { ...status } };

  for (const m of [sm, asg, ec2, sns]) m.resetHistory();
  deleted = [];
  clock = new Date(primedAt.getTime() + 30_000);
  const warm = await reconcile(depsWith(memory), { triggers: [trigger] });
  const warmWrites = writes();
  const warmCalls = sm.calls().length + asg.calls().length + ec2.calls().length;

  // The same AWS state as the warm run found, in a container that remembers nothing.
  status = { ...after.status };
  rolloutTag = primedTag;
  for (const m of [sm, asg, ec2, sns]) m.resetHistory();
  deleted = [];
  const cold = await reconcile(depsWith(new RolloutMemory()), { triggers: [trigger] });
  const coldWrites = writes();
  const coldCalls = sm.calls().length + asg.calls().length + ec2.calls().length;
  return { warm, cold, warmWrites, coldWrites, warmCalls, coldCalls };
}

describe("reconcile: a cold container reaches the decisions of a warm one", () => {
  it("the last group's refresh succeeded: both revoke the old token and record completion", async () => {
    const r = await warmAndCold(
      new Date("2026-12-01T12:04:00Z"),
      succeeded("ci-b", new Date("2026-12-01T12:04:20Z")),
      () => {
        status["ci-b"] = "Successful";
      },
    );
    expect(r.warmWrites).toEqual(["revoke t1", "tag ci-a buildkite-agent-token-rotation:rollout"]);
    expect(r.coldWrites).toEqual(r.warmWrites);
    expect(r.warm.plan?.complete).toBe(true);
    expect(r.cold.plan?.complete).toBe(true);
  });

  it("another group is still refreshing: neither writes anything, and the warm one notes the success without a call", async () => {
    status["ci-a"] = "InProgress";
    const r = await warmAndCold(
      new Date("2026-12-01T12:04:00Z"),
      succeeded("ci-b", new Date("2026-12-01T12:04:20Z")),
      () => {
        status["ci-b"] = "Successful";
      },
    );
    expect(r.warmWrites).toEqual([]);
    expect(r.coldWrites).toEqual([]);
    // Our own refresh of ci-b reported success while ci-a has not: nothing to look at yet.
    expect(r.warm.scope.kind).toBe("skip");
    expect(r.warmCalls).toBe(0);
    expect(r.cold.observations).toEqual({ full: 1, partial: 1, polls: 0 });
  });

  it("a refresh failed: both send the one alert, and record it", async () => {
    const r = await warmAndCold(
      new Date("2026-12-01T12:04:00Z"),
      succeeded("ci-b", new Date("2026-12-01T12:04:20Z")),
      () => {
        status["ci-b"] = "Failed";
      },
    );
    expect(r.warmWrites).toEqual([
      "alert Buildkite token rollout blocked: refresh did not complete: ci-b (eu-west-1)",
      "tag ci-a buildkite-agent-token-rotation:rollout",
    ]);
    expect(r.coldWrites).toEqual(r.warmWrites);
  });

  it("an event older than the last full observation: the warm one skips it, the cold one writes nothing either", async () => {
    // The priming run recorded when it began (it sent an alert, so it wrote the rollout tag).
    status["ci-a"] = "Failed";
    const r = await warmAndCold(
      new Date("2026-12-01T12:04:00Z"),
      succeeded("ci-a", new Date("2026-12-01T12:03:50Z")),
      () => undefined,
    );
    expect(r.warm.scope.kind).toBe("skip");
    expect(r.warmCalls).toBe(0);
    expect(r.cold.scope.kind).toBe("skip");
    expect(r.coldWrites).toEqual([]);
  });
});

describe("reconcile: catching up with the reports waiting in the queue", () => {
  const primedAt = new Date("2026-12-01T12:04:00Z");
  const reportAt = new Date("2026-12-01T12:04:20Z");
  /** A warm container after a full run that found both refreshes in progress; then both ended. */
  async function primed() {
    status = { "ci-a": "InProgress", "ci-b": "InProgress" };
    const memory = new RolloutMemory();
    clock = primedAt;
    await reconcile(depsWith(memory), { triggers: [{ kind: "schedule", at: primedAt }] });
    status = { "ci-a": "Successful", "ci-b": "Successful" };
    for (const m of [sm, asg, ec2, sns]) m.resetHistory();
    deleted = [];
    clock = new Date(primedAt.getTime() + 30_000);
    return memory;
  }
  const queue = (waiting: number) => {
    let asked = 0;
    return {
      asked: () => asked,
      handover: {
        waiting: async () => {
          asked++;
          return waiting;
        },
        continueLater: async () => undefined,
      },
    };
  };

  const report = (memory: RolloutMemory, q: ReturnType<typeof queue>, name: string, at: Date) =>
    reconcile({ ...depsWith(memory), handover: q.handover }, { triggers: [succeeded(name, at)] });

  it("as many triggers wait as groups still to report: it looks now and revokes, instead of after the drain", async () => {
    const memory = await primed();
    const q = queue(1);
    const out = await report(memory, q, "ci-a", reportAt);
    expect(q.asked()).toBe(1);
    expect(out.scope.kind).toBe("full");
    expect(out.observations).toEqual({ full: 1, partial: 0, polls: 0 });
    expect(writes()).toEqual(["revoke t1", "tag ci-a buildkite-agent-token-rotation:rollout"]);
    // The report still queued costs nothing, even stamped after that look began: it saw the refresh done.
    for (const m of [sm, asg, ec2, sns]) m.resetHistory();
    const stamped = new Date(clock.getTime() + 1_000);
    clock = new Date(clock.getTime() + 5_000);
    const late = await report(memory, q, "ci-b", stamped);
    expect(late.scope.kind).toBe("skip");
    expect(sm.calls().length + asg.calls().length + ec2.calls().length).toBe(0);
  });

  it("fewer wait: the report is only noted, and the queue is asked at most every CATCH_UP_INTERVAL_MS", async () => {
    const memory = await primed();
    const q = queue(0);
    const out = await report(memory, q, "ci-a", reportAt);
    expect(out.scope.kind).toBe("skip");
    expect(sm.calls().length + asg.calls().length + ec2.calls().length).toBe(0);
    await report(memory, q, "ci-a", reportAt);
    expect(q.asked()).toBe(1);
    expect(writes()).toEqual([]);
  });

  it("without a queue (a direct or asynchronous call) there is no catch-up", async () => {
    const memory = await primed();
    const out = await reconcile(depsWith(memory), { triggers: [succeeded("ci-a", reportAt)] });
    expect(out.scope.kind).toBe("skip");
    expect(writes()).toEqual([]);
  });
});

describe("reconcile: the rollout tag records when the full observation began", () => {
  it("so that a cold container can tell which events it already saw", async () => {
    status["ci-a"] = "Failed";
    clock = new Date("2026-12-01T12:04:00Z");
    await reconcile(depsWith(new RolloutMemory()), { triggers: [] });
    expect(decodeRolloutMarker(rolloutTag)?.observedAt).toEqual(clock);
  });
});

/** eu-west-1's replica still serves v1 for the first `lagPolls` reads, then v2. */
function lagging(lagPolls: number): {
  deps: (memory: RolloutMemory) => ReconcileDeps;
  reads: () => number;
} {
  let reads = 0;
  // A stand-in for one region's client only (the class-wide mock answers every region alike);
  // the rollout reads the replica with DescribeSecret alone.
  const replica = {
    send: async () => {
      reads++;
      const current = reads > lagPolls ? "v2" : "v1";
      return { VersionIdsToStages: { [current]: ["AWSCURRENT"] } };
    },
  } as unknown as SecretsManagerClient;
  return {
    reads: () => reads,
    deps: (memory) => {
      const base = depsWith(memory);
      return {
        ...base,
        secrets: (region) => (region === "eu-west-1" ? replica : base.secrets(region)),
        sleep: async (ms) => {
          clock = new Date(clock.getTime() + ms);
        },
      };
    },
  };
}

describe("reconcile: a run that would only wait hands the queue over to triggers waiting behind it", () => {
  function queue(waiting: number, send: "ok" | "fails" = "ok") {
    const looks: Date[] = [];
    const sent: Array<{ id: string; versionId: string | undefined; at: Date }> = [];
    return {
      looks,
      sent,
      handover: {
        waiting: async () => {
          looks.push(clock);
          return waiting;
        },
        continueLater: async (c: { id: string; versionId: string | undefined; at: Date }) => {
          if (send === "fails") throw new Error("AccessDenied");
          sent.push(c);
        },
      },
    };
  }

  it("hands over once it has held the queue for HANDOVER_AFTER_MS and triggers wait", async () => {
    const world = lagging(1_000);
    const q = queue(3);
    const started = clock;
    const out = await reconcile(
      { ...world.deps(new RolloutMemory()), handover: q.handover },
      { triggers: [] },
    );
    expect(out.handedOver?.waiting).toBe(3);
    expect(q.sent).toHaveLength(1);
    expect(q.sent[0]?.versionId).toBe("v2");
    expect(q.sent[0]?.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.handedOver?.id).toBe(q.sent[0]?.id);
    // It looked once, as soon as it had held the queue for HANDOVER_AFTER_MS, and then stopped waiting.
    expect(q.looks).toHaveLength(1);
    expect((q.looks[0]?.getTime() ?? 0) - started.getTime()).toBeGreaterThanOrEqual(HANDOVER_AFTER_MS);
    expect((q.looks[0]?.getTime() ?? 0) - started.getTime()).toBeLessThan(HANDOVER_AFTER_MS + 500);
  });

  it("its continuation, in the same container, looks at the suspended groups only", async () => {
    const world = lagging(1_000);
    const q = queue(3);
    const memory = new RolloutMemory();
    await reconcile({ ...world.deps(memory), handover: q.handover }, { triggers: [] });
    const id = q.sent[0]?.id ?? "";
    const resumed = await reconcile(
      { ...world.deps(memory), handover: q.handover },
      { triggers: [{ kind: "continuation", id, versionId: "v2", at: clock }] },
    );
    expect(resumed.scope.kind).toBe("groups");
    expect(resumed.observations.full).toBe(0);
    // In a container that did not suspend it, the same continuation observes in full.
    const cold = await reconcile(
      { ...world.deps(new RolloutMemory()), handover: q.handover },
      { triggers: [{ kind: "continuation", id, versionId: "v2", at: clock }] },
    );
    expect(cold.scope.kind).toBe("full");
  });

  it("keeps waiting when nothing waits behind it, looking at most every HANDOVER_AFTER_MS", async () => {
    const world = lagging(40);
    const q = queue(0);
    const out = await reconcile(
      { ...world.deps(new RolloutMemory()), handover: q.handover },
      { triggers: [] },
    );
    expect(out.handedOver).toBeUndefined();
    expect(q.sent).toEqual([]);
    expect(world.reads()).toBeGreaterThan(40);
    expect(q.looks.length).toBeGreaterThan(0);
    for (let i = 1; i < q.looks.length; i++) {
      expect((q.looks[i]?.getTime() ?? 0) - (q.looks[i - 1]?.getTime() ?? 0)).toBeGreaterThanOrEqual(
        HANDOVER_AFTER_MS,
      );
    }
  });

  it("keeps waiting when its continuation cannot be sent (it never ends with nobody to continue)", async () => {
    const world = lagging(40);
    const q = queue(5, "fails");
    const out = await reconcile(
      { ...world.deps(new RolloutMemory()), handover: q.handover },
      { triggers: [] },
    );
    expect(out.handedOver).toBeUndefined();
    expect(world.reads()).toBeGreaterThan(40);
  });

  it("never hands over without a queue (a direct call)", async () => {
    const world = lagging(40);
    const out = await reconcile(world.deps(new RolloutMemory()), { triggers: [] });
    expect(out.handedOver).toBeUndefined();
    expect(world.reads()).toBeGreaterThan(40);
  });
});

/**
 * Auto Scaling before any refresh of the version: every group runs one instance launched before
 * it, and the tags act writes are read back by the next look, as Auto Scaling would. `found`
 * leaves groups out of a describe (a group that does not exist); `describing` sees every
 * describe's names first and may throw (throttling). Returns the tags, by group.
 */
function groupsBeforeTheirRefresh(
  options: { found?: (name: string) => boolean; describing?: (names: string[]) => void } = {},
): Map<string, Map<string, string>> {
  const tagsOf = new Map<string, Map<string, string>>();
  asg
    .on(CreateOrUpdateTagsCommand)
    .callsFake((input: { Tags?: Array<{ ResourceId?: string; Key?: string; Value?: string }> }) => {
      for (const t of input.Tags ?? []) {
        const tags = tagsOf.get(t.ResourceId ?? "") ?? new Map<string, string>();
        tags.set(t.Key ?? "", t.Value ?? "");
        tagsOf.set(t.ResourceId ?? "", tags);
      }
      return {};
    });
  asg.on(DescribeAutoScalingGroupsCommand).callsFake((input: { AutoScalingGroupNames?: string[] }) => {
    const names = input.AutoScalingGroupNames ?? [];
    options.describing?.(names);
    return {
      AutoScalingGroups: names.filter(options.found ?? (() => true)).map((name) => ({
        AutoScalingGroupName: name,
        Instances: [{ InstanceId: `i-${name}-old`, LifecycleState: "InService" }],
        Tags: [...(tagsOf.get(name) ?? new Map<string, string>())].map(([Key, Value]) => ({ Key, Value })),
      })),
    };
  });
  asg.on(DescribeInstanceRefreshesCommand).resolves({ InstanceRefreshes: [] });
  asg.on(StartInstanceRefreshCommand).callsFake((input: { AutoScalingGroupName?: string }) => ({
    InstanceRefreshId: `r-${input.AutoScalingGroupName}`,
  }));
  return tagsOf;
}

/** The groups StartInstanceRefresh was called for, in order. */
const started = () =>
  asg.commandCalls(StartInstanceRefreshCommand).map((c) => c.args[0].input.AutoScalingGroupName ?? "");
/** Every group name a look described (a partial look adds the anchor when it is not among them). */
const looked = () =>
  asg
    .commandCalls(DescribeAutoScalingGroupsCommand)
    .flatMap((c) => c.args[0].input.AutoScalingGroupNames ?? []);

describe("reconcile: refreshes beyond one round's bound", () => {
  /** The groups' tags, as Auto Scaling holds them. */
  let tags: Map<string, Map<string, string>>;
  const names = Array.from({ length: 2 * MAX_STARTS_PER_ROUND + 50 }, (_, i) => `ci-${i}`);
  const many = () =>
    loadReconcileConfig(
      reconcileEnv({
        ROLLOUT_STRATEGY: "refresh",
        REPLICA_REGIONS: "",
        TARGET_GROUPS: names.map((n) => `us-east-1:${n}`).join(","),
      }),
    );
  beforeEach(() => {
    sm.on(DescribeSecretCommand).resolves({
      VersionIdsToStages: { v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"] },
    });
    tags = groupsBeforeTheirRefresh();
  });
  const histories = () =>
    asg.commandCalls(DescribeInstanceRefreshesCommand).map((c) => c.args[0].input.AutoScalingGroupName ?? "");

  it("later rounds carry on with the one look's deferred starts: every group looked at once and started once", async () => {
    const memory = new RolloutMemory();
    const outcome = await reconcile({ ...depsWith(memory), config: many() });
    expect([...started()].sort()).toEqual([...names].sort());
    expect(outcome.rounds).toBe(3);
    expect(outcome.observations).toEqual({ full: 1, partial: 0, polls: 0 });
    expect(looked()).toHaveLength(names.length);
    // No refresh tag of ours for this version yet: no history read (StartInstanceRefresh refuses
    // while another refresh runs).
    expect(histories()).toEqual([]);
    // Each round started at most a round's worth.
    expect(outcome.results.map((r) => r.refreshesStarted.length)).toEqual([
      MAX_STARTS_PER_ROUND,
      MAX_STARTS_PER_ROUND,
      50,
    ]);
    // The rounds that carried on added their refreshes to memory, and kept the full look's summary.
    const recalled = memory.recollect();
    expect(Object.keys(recalled?.refreshIds ?? {})).toHaveLength(names.length);
    expect(recalled?.notDone).toHaveLength(names.length);
    // Every refresh's id is recorded by the end of the run; each round's ids went out with the next
    // round's intents, and only the last round's after the starts (one phase of tags per round).
    for (const n of names)
      expect(decodeRefreshMarker(tags.get(n)?.get(MARKER_TAG))?.refreshId).toBe(`r-${n}`);
    // What each run of tag calls between starts wrote: sync times, intents, ids.
    const phases: string[][] = [];
    for (const c of asg.calls()) {
      const command = c.args[0];
      if (command instanceof StartInstanceRefreshCommand) {
        if (phases.at(-1)?.[0] !== "start") phases.push(["start"]);
        continue;
      }
      if (!(command instanceof CreateOrUpdateTagsCommand)) continue;
      if (phases.length === 0 || phases.at(-1)?.[0] === "start") phases.push([]);
      const phase = phases.at(-1) ?? [];
      for (const t of command.input.Tags ?? []) {
        const kind =
          t.Key !== MARKER_TAG ? "sync" : decodeRefreshMarker(t.Value)?.refreshId ? "ids" : "intents";
        if (!phase.includes(kind)) phase.push(kind);
      }
    }
    expect(phases).toEqual([
      ["sync", "intents"],
      ["start"],
      ["intents", "ids"],
      ["start"],
      ["intents", "ids"],
      ["start"],
      ["ids"],
    ]);
  });

  it("a run that ends at its round limit with starts left records the last round's ids", async () => {
    const huge = Array.from({ length: MAX_ROUNDS * MAX_STARTS_PER_ROUND + 10 }, (_, i) => `ci-${i}`);
    const config = loadReconcileConfig(
      reconcileEnv({
        ROLLOUT_STRATEGY: "refresh",
        REPLICA_REGIONS: "",
        TARGET_GROUPS: huge.map((n) => `us-east-1:${n}`).join(","),
      }),
    );
    const outcome = await reconcile({ ...depsWith(new RolloutMemory()), config });
    expect(outcome.rounds).toBe(MAX_ROUNDS);
    expect(started()).toHaveLength(MAX_ROUNDS * MAX_STARTS_PER_ROUND);
    const unrecorded = started().filter(
      (n) => decodeRefreshMarker(tags.get(n)?.get(MARKER_TAG))?.refreshId !== `r-${n}`,
    );
    expect(unrecorded).toEqual([]);
  });

  it("a look older than the bound is not carried on: the next round's groups are looked at again", async () => {
    // Every reading of the clock is 31 s later: the full look is stale by the second round.
    let t = clock.getTime();
    const slow = () => {
      t += 31_000;
      return new Date(t);
    };
    const outcome = await reconcile({ ...depsWith(new RolloutMemory()), config: many(), now: slow });
    expect([...started()].sort()).toEqual([...names].sort());
    expect(outcome.observations).toEqual({ full: 1, partial: 2, polls: 0 });
    // The full look, then the next 100 of the 150 deferred, then the last 50 (each partial look
    // with the anchor): each group twice at most (looking at every deferred group again each round
    // would be 250 + 150 + 50).
    expect(looked()).toHaveLength(names.length + MAX_STARTS_PER_ROUND + 1 + 50 + 1);
  });

  it("a start whose outcome is unknown (a connection reset) is looked at again within the run, then made", async () => {
    // Seen in the 16 × 256 sandbox: 21 StartInstanceRefresh calls of one round reset by the peer;
    // the run ended, nothing else would trigger those groups, and the rollout stalled unrevoked.
    const unlucky = new Set(["ci-7", "ci-201"]);
    asg.on(StartInstanceRefreshCommand).callsFake((input: { AutoScalingGroupName?: string }) => {
      const name = input.AutoScalingGroupName ?? "";
      if (unlucky.delete(name)) throw Object.assign(new Error("read ECONNRESET"), { name: "TimeoutError" });
      return { InstanceRefreshId: `r-${name}` };
    });
    const slept: number[] = [];
    const outcome = await reconcile({
      ...depsWith(new RolloutMemory()),
      config: many(),
      sleep: async (ms: number) => void slept.push(ms),
    });
    // Every group started; the two reset ones a second time, after a look at them alone.
    expect(new Set(started())).toEqual(new Set(names));
    expect(started().filter((n) => n === "ci-7" || n === "ci-201")).toHaveLength(4);
    expect(outcome.observations).toEqual({ full: 1, partial: 1, polls: 0 });
    expect(looked().filter((n) => n === "ci-7")).toHaveLength(2);
    // The look again reads the history its intent tag points at: a refresh a lost response hid
    // would be adopted there.
    expect(histories().sort()).toEqual(["ci-201", "ci-7"]);
    expect(slept).toEqual([1_000]);
  });

  it("a handover between rounds: the continuation looks at the next chunk, then at the rest", async () => {
    const memory = new RolloutMemory();
    const sent: Array<{ id: string }> = [];
    const idsWhenSent: number[] = [];
    // Time passes with every reading of the clock, so the run is soon due to look at the queue.
    let t = clock.getTime();
    const ticking = () => {
      t += 1_000;
      return new Date(t);
    };
    const first = await reconcile(
      {
        ...depsWith(memory),
        config: many(),
        now: ticking,
        handover: {
          waiting: async () => 1,
          continueLater: async (c: { id: string }) => {
            // The ids of the refreshes started are recorded before the continuation can look.
            const ids = names.filter((n) => decodeRefreshMarker(tags.get(n)?.get(MARKER_TAG))?.refreshId);
            idsWhenSent.push(ids.length);
            sent.push(c);
          },
        },
      },
      { triggers: [{ kind: "schedule", at: new Date(t) }] },
    );
    expect(first.handedOver?.id).toBe(sent[0]?.id);
    expect(started()).toHaveLength(MAX_STARTS_PER_ROUND);
    expect(idsWhenSent).toEqual([MAX_STARTS_PER_ROUND]);
    asg.resetHistory();
    const resumed = await reconcile(
      { ...depsWith(memory), config: many(), now: ticking },
      { triggers: [{ kind: "continuation", id: sent[0]?.id ?? "", versionId: "v2", at: new Date(t) }] },
    );
    expect(resumed.scope.kind).toBe("groups");
    expect(resumed.observations).toEqual({ full: 0, partial: 2, polls: 0 });
    expect(looked()).toHaveLength(MAX_STARTS_PER_ROUND + 1 + 50 + 1);
    expect(started()).toHaveLength(MAX_STARTS_PER_ROUND + 50);
  });
});

describe("reconcile: once a lagging replica serves the version", () => {
  const cfg = (groups = "us-east-1:ci-a,eu-west-1:ci-b,eu-west-1:ci-c") =>
    loadReconcileConfig(
      reconcileEnv({
        ROLLOUT_STRATEGY: "refresh",
        ALERT_TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:alerts",
        TARGET_GROUPS: groups,
      }),
    );
  /** The tags act wrote, read back by the next look as Auto Scaling would. */
  let tagsOf: Map<string, Map<string, string>>;
  /** The primary's AWSCURRENT (v2 unless a test rotates again). */
  let primary: string;
  beforeEach(() => {
    primary = "v2";
    sm.on(DescribeSecretCommand).callsFake(() => ({
      VersionIdsToStages: { v1: ["AWSPREVIOUS"], [primary]: ["AWSCURRENT"] },
      ReplicationStatus: [{ Region: "eu-west-1", Status: "InSync" }],
    }));
    tagsOf = groupsBeforeTheirRefresh();
  });
  /** eu-west-1's replica serves v1 for the first `lagReads` reads, then v2. */
  function world(lagReads: number) {
    const replica = lagging(lagReads);
    return { ...replica, deps: { ...replica.deps(new RolloutMemory()), config: cfg() } };
  }

  it("plans the region's groups on the run's look instead of looking again, with the sync time of the wait", async () => {
    const lookedAt = clock.getTime();
    const outcome = await reconcile(world(3).deps);
    expect(started().sort()).toEqual(["ci-a", "ci-b", "ci-c"]);
    // One look at each group: the full one (the anchor, ci-a, among them).
    expect(looked().sort()).toEqual(["ci-a", "ci-b", "ci-c"]);
    expect(outcome.observations).toEqual({ full: 1, partial: 0, polls: 0 });
    // The sync recorded is when the wait saw the replica serve v2, after the look: an instance
    // launched in between counts as holding the old token.
    const synced = decodeSync(tagsOf.get("ci-b")?.get(SYNC_TAG));
    expect(synced?.versionId).toBe("v2");
    expect(synced?.at.getTime()).toBeGreaterThan(lookedAt);
    expect(synced?.at.getTime()).toBe(clock.getTime());
  });

  it("looks at a group again that the look could not see (throttled), rather than waiting to retry it", async () => {
    let throttled = 0;
    tagsOf = groupsBeforeTheirRefresh({
      describing: (names) => {
        if (names.includes("ci-b") && throttled++ === 0)
          throw Object.assign(new Error("Rate exceeded"), {
            name: "Throttling",
            $metadata: { httpStatusCode: 400 },
          });
      },
    });
    const slept: number[] = [];
    const { deps } = world(3);
    const outcome = await reconcile({
      ...deps,
      sleep: async (ms) => {
        slept.push(ms);
        await deps.sleep(ms);
      },
    });
    expect(started().sort()).toEqual(["ci-a", "ci-b", "ci-c"]);
    expect(outcome.observations).toEqual({ full: 1, partial: 1, polls: 0 });
    // Looked at again right after the wait: no retry of an unobserved group (1 s and up).
    expect(slept.every((ms) => ms < 1_000)).toBe(true);
  });

  it("looks at them again when the look is ONE_LOOK_MS old by the end of the wait", async () => {
    // Past 40 polls the wait backs off to 2 s: 60 reads of a lagging replica take over 30 s.
    const outcome = await reconcile(world(60).deps);
    expect(clock.getTime() - new Date("2026-12-01T12:05:00Z").getTime()).toBeGreaterThan(ONE_LOOK_MS);
    expect(started().sort()).toEqual(["ci-a", "ci-b", "ci-c"]);
    expect(outcome.observations).toEqual({ full: 1, partial: 1, polls: 0 });
    expect(looked().filter((n) => n === "ci-b")).toHaveLength(2);
  });

  it("looks at them again when the primary moved on during the wait, and starts nothing for the old version there", async () => {
    const { deps, reads } = world(3);
    const outcome = await reconcile({
      ...deps,
      // A rotation promotes v3 as the replica comes to serve v2 (v3 has no token of ours: nothing
      // rolls it out, and the full look that finds so ends the run).
      secrets: (region) => {
        if (region === "eu-west-1" && reads() === 3) primary = "v3";
        return deps.secrets(region);
      },
    });
    expect(started()).toEqual(["ci-a"]);
    expect(looked().filter((n) => n === "ci-b").length).toBeGreaterThan(1);
    expect(outcome.plan?.versionId).toBe("v3");
  });

  it("keeps the alerts of the run's earlier rounds in the record it writes after the wait", async () => {
    // Round 1 alerts about a missing group and starts 100 refreshes; round 2 carries on with the
    // rest from the same look; after the wait, ci-b's invalid sync tag is alerted. The record then
    // written must hold both alerts, or the next full observation alerts about the missing group again.
    const many = Array.from({ length: MAX_STARTS_PER_ROUND + 20 }, (_, i) => `us-east-1:ci-${i}`);
    const config = cfg([...many, "us-east-1:ci-missing", "eu-west-1:ci-b"].join(","));
    tagsOf = groupsBeforeTheirRefresh({ found: (name) => name !== "ci-missing" });
    tagsOf.set("ci-b", new Map([[SYNC_TAG, encodeSync("v2", new Date("2030-01-01T00:00:00Z"))]]));
    const outcome = await reconcile({ ...world(3).deps, config });
    expect(outcome.observations).toEqual({ full: 1, partial: 0, polls: 0 });
    const subjects = sns.commandCalls(PublishCommand).map((c) => c.args[0].input.Subject ?? "");
    expect(subjects).toEqual([
      expect.stringContaining("group not found: ci-missing"),
      expect.stringContaining("ignored an invalid tag on ci-b"),
    ]);
    const anchor = [...tagsOf.values()].map((t) => t.get(ROLLOUT_TAG)).find((v) => v !== undefined);
    expect(decodeRolloutMarker(anchor)?.alerts).toHaveLength(2);
  });
});

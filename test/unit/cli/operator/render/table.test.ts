import { describe, expect, it } from "vitest";
import {
  bar,
  blockedAdvice,
  duration,
  groupProgress,
  progressLine,
  renderProgress,
  renderStatus,
  statusAttention,
  statusJson,
} from "../../../../../cli/operator/render/table";
import type { StatusReport } from "../../../../../shared/rollout/status";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/agent-token-AbC123";
const NOW = new Date("2026-11-22T12:00:00.000Z");
const V1 = "11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const V2 = "22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
const V3 = "33333333-cccc-4ccc-8ccc-cccccccccccc";
const ANSI = "\x1b[";
/** Prose wraps; compare it with the line breaks and indentation folded to single spaces. */
const flat = (text: string) => text.replace(/\s+/g, " ");

type Group = StatusReport["groups"][number];
const group = (over: Partial<Group> = {}): Group => ({
  region: "us-east-1",
  groupName: "ci-a",
  stackName: undefined,
  phase: "refreshing",
  instances: 4,
  progress: { total: 4, safe: 0, pending: 4, unreachable: 0 },
  waiting: [],
  refreshId: "r-a",
  refreshStatus: "InProgress",
  percentageComplete: 50,
  detail: "refresh InProgress",
  ...over,
});

/** V2 rolling out: us-east-1 half refreshed, eu-west-1 lagging; V1's token still valid. */
function report(
  over: Partial<StatusReport> = {},
  secret: Partial<StatusReport["secret"]> = {},
): StatusReport {
  return {
    at: NOW,
    strategy: "refresh",
    secret: {
      arn: ARN,
      name: "bk/agent-token",
      primaryRegion: "us-east-1",
      rotationEnabled: true,
      schedule: "rate(30 days)",
      lastRotatedAt: new Date("2026-11-22T11:55:00.000Z"),
      nextRotationAt: new Date("2026-12-22T11:55:00.000Z"),
      overdue: false,
      currentVersionId: V2,
      pendingVersionId: undefined,
      ...secret,
    },
    versions: [
      {
        versionId: V2,
        stages: ["AWSCURRENT"],
        createdAt: new Date("2026-11-22T11:55:00.000Z"),
        ageSeconds: 300,
        token: {
          id: "tok-2",
          createdAt: "2026-11-22T11:55:01Z",
          expiresAt: "2026-12-30T00:00:00Z",
          expiresInSeconds: 3_196_800,
        },
      },
      {
        versionId: V1,
        stages: ["AWSPREVIOUS"],
        createdAt: new Date("2026-10-23T11:55:00.000Z"),
        ageSeconds: 2_592_300,
        token: { id: "tok-1", createdAt: undefined, expiresAt: undefined, expiresInSeconds: undefined },
      },
    ],
    regions: [
      { region: "us-east-1", primary: true, currentVersionId: V2, state: "in-sync", detail: undefined },
      { region: "eu-west-1", primary: false, currentVersionId: V1, state: "lagging", detail: "Replicating" },
    ],
    groups: [
      group(),
      group({
        region: "eu-west-1",
        groupName: "ci-b",
        stackName: undefined,
        phase: "waiting-for-replica",
        instances: 2,
        progress: { total: 2, safe: 0, pending: 2, unreachable: 0 },
        waiting: [],
        refreshId: "r-old",
        refreshStatus: "Successful",
        percentageComplete: 100,
        detail: "waiting for the region to serve the new version",
      }),
    ],
    managedTokensValid: [
      { id: "tok-1", versionId: V1, createdAt: undefined, expiresAt: undefined },
      { id: "tok-2", versionId: V2, createdAt: "2026-11-22T11:55:01Z", expiresAt: "2026-12-30T00:00:00Z" },
    ],
    unmanagedTokens: [{ id: "tok-0", description: "Initial agent token" }],
    next: ["wait for eu-west-1 to serve the current version", "wait for refreshes: us-east-1:ci-a"],
    waitingFor: ["replicas", "refreshes"],
    complete: false,
    notices: ["1 token(s) in the cluster were not created by this project"],
    emergency: undefined,
    ...over,
  };
}

const failed = () =>
  report({
    regions: [
      { region: "us-east-1", primary: true, currentVersionId: V2, state: "in-sync", detail: undefined },
      { region: "eu-west-1", primary: false, currentVersionId: V2, state: "in-sync", detail: undefined },
    ],
    groups: [
      group({
        phase: "refreshed",
        refreshStatus: "Successful",
        percentageComplete: 100,
        detail: "refreshed",
      }),
      group({
        region: "eu-west-1",
        groupName: "ci-b",
        stackName: undefined,
        phase: "failed",
        refreshId: "r-b",
        refreshStatus: "Failed",
        percentageComplete: 30,
        detail: "ended Failed: health checks",
      }),
    ],
    waitingFor: ["operator"],
    next: ["nothing until an operator acts: eu-west-1:ci-b ended Failed: health checks"],
  });

describe("small pieces", () => {
  it("draws progress bars", () => {
    expect(bar(0)).toBe("[----------]");
    expect(bar(50)).toBe("[#####-----]");
    expect(bar(100)).toBe("[##########]");
    expect(bar(undefined)).toBe("[----------]");
    expect(bar(140, 4)).toBe("[####]");
  });

  it("formats durations", () => {
    expect([
      duration(45),
      duration(720),
      duration(3600),
      duration(11_100),
      duration(-90_000),
      duration(345_600),
    ]).toEqual(["45s", "12m", "1h", "3h 5m", "1d 1h", "4d"]);
  });

  it("shows an in-place rollout's progress by instance: safe, pending, unreachable", () => {
    const progress = { total: 5, safe: 3, pending: 1, unreachable: 1 };
    expect(groupProgress(group({ phase: "updating", progress }))).toBe(
      "[######----] 3/5 safe, 1 pending, 1 unreachable",
    );
    expect(
      groupProgress(
        group({ phase: "updated", progress: { ...progress, safe: 5, pending: 0, unreachable: 0 } }),
      ),
    ).toBe("[##########] 5/5 safe");
  });

  it("names each instance an in-place rollout is blocked on, and what to do", () => {
    const blocked = group({
      phase: "blocked",
      detail: "1 instance(s) not updated in place (fallback alert)",
      waiting: [{ instanceId: "i-off", state: "unreachable", detail: "SSM agent ConnectionLost" }],
    });
    const [advice] = blockedAdvice(report({ groups: [blocked], waitingFor: ["operator"] }));
    expect(advice).toMatch(
      /^us-east-1:ci-a: 1 instance\(s\) not updated in place .*: i-off \(SSM agent ConnectionLost\); bring their SSM agent online/,
    );
  });

  it("shows a refresh's progress only for the current version's refresh", () => {
    expect(groupProgress(group())).toBe("[#####-----]  50% InProgress");
    expect(
      groupProgress(group({ phase: "refreshed", refreshStatus: "Successful", percentageComplete: 100 })),
    ).toBe("[##########] 100% Successful");
    // The latest refresh of a group still waiting belongs to an older version: not progress.
    expect(
      groupProgress(
        group({ phase: "waiting-for-replica", refreshStatus: "Successful", percentageComplete: 100 }),
      ),
    ).toBe("[----------]   0% waiting-for-replica");
    expect(groupProgress(group({ phase: "empty", instances: 0 }))).toBe("[##########] 100% empty");
    expect(groupProgress(group({ phase: "waiting-for-other-refresh", percentageComplete: 20 }))).toBe(
      "[##--------]  20% other refresh InProgress",
    );
  });
});

describe("renderStatus", () => {
  it("shows the secret, versions with token ages and expiry, regions, groups, tokens, next and notices", () => {
    const text = renderStatus(report());
    expect(text).not.toContain(ANSI);
    expect(text).toContain("bk/agent-token (primary region us-east-1)");
    expect(text).toContain(ARN);
    expect(text).toContain(
      "Rotation  enabled, rate(30 days)\n          last 2026-11-22T11:55:00Z (5m ago)\n",
    );
    expect(text).toContain("          next 2026-12-22T11:55:00Z (in 29d 23h)\n");
    expect(text).toContain("in progress: waiting for replicas, refreshes");
    expect(text).toMatch(
      new RegExp(
        `${V2}\\s+AWSCURRENT\\s+2026-11-22T11:55:00Z\\s+5m\\s+tok-2\\s+2026-12-30T00:00:00Z \\(in 37d\\)`,
      ),
    );
    expect(text).toMatch(new RegExp(`${V1}\\s+AWSPREVIOUS\\s+\\S+\\s+30d\\s+tok-1\\s+never`));
    expect(text).toMatch(/us-east-1\s+primary\s+22222222 \(current\)\s+in-sync/);
    expect(text).toMatch(/eu-west-1\s+replica\s+11111111\s+lagging\s+Replicating/);
    expect(text).toMatch(
      /us-east-1\s+ci-a\s+4\s+refreshing\s+\[#####-----\] {2}50% InProgress\s+refresh InProgress/,
    );
    expect(text).toMatch(/eu-west-1\s+ci-b\s+2\s+waiting-for-replica\s+-\s+waiting for the region/);
    expect(text).toContain(
      `managed, still valid (2): tok-1 (version 11111111), tok-2 (version 22222222, current)`,
    );
    expect(text).toContain('not managed by this project (1): tok-0 "Initial agent token"');
    expect(text).toContain("  - wait for eu-west-1 to serve the current version");
    expect(text).toContain("  - 1 token(s) in the cluster were not created by this project");
    expect(text).not.toContain("Needs attention");
  });

  it("flags rotation disabled, overdue, pending, expiring tokens and an emergency", () => {
    const text = renderStatus(
      report(
        {
          emergency: { versionId: V2, leakedVersionId: V1, minHealthyPercentage: 50 },
          versions: [
            {
              versionId: V2,
              stages: ["AWSCURRENT"],
              createdAt: undefined,
              ageSeconds: undefined,
              token: {
                id: "tok-2",
                createdAt: undefined,
                expiresAt: "2026-11-22T11:00:00Z",
                expiresInSeconds: -3600,
              },
            },
          ],
        },
        { overdue: true, nextRotationAt: new Date("2026-11-20T00:00:00.000Z"), pendingVersionId: V3 },
      ),
    );
    expect(text).toContain("OVERDUE: the rotation due 2026-11-20T00:00:00Z has not happened");
    expect(text).toContain(`rotation under way: version ${V3} holds AWSPENDING`);
    expect(text).toContain("2026-11-22T11:00:00Z (EXPIRED 1h ago)");
    expect(flat(text)).toContain(`declared for version ${V2} (leaked version ${V1}, min healthy 50%`);
    expect(text).toContain("Needs attention");
    expect(flat(text)).toContain("! rotation overdue: the scheduled rotation was due 2026-11-20T00:00:00Z");
    expect(renderStatus(report({}, { rotationEnabled: false }))).toContain(
      "NOT enabled (no scheduled rotation)",
    );
  });

  it("says what is blocked and how to fix it", () => {
    const text = renderStatus(failed(), { width: 80 });
    expect(text).toContain("BLOCKED: needs an operator");
    expect(text).toMatch(/eu-west-1\s+ci-b\s+4\s+failed\s+\[###-------\] {2}30% Failed/);
    const joined = text.replace(/\n\s+/g, " ");
    expect(joined).toContain(
      "blocked: eu-west-1:ci-b: refresh r-b ended Failed: health checks: fix the cause",
    );
    expect(joined).toContain("aws autoscaling delete-tags --region eu-west-1");
    for (const line of text.split("\n").filter((l) => l.startsWith("  ! ") || l.startsWith("    "))) {
      // Prose wraps at the width (a single long word may exceed it).
      if (line.includes(" ")) expect(line.trimEnd().length).toBeLessThanOrEqual(80 + 60);
    }
  });

  it("colors only when asked", () => {
    const text = renderStatus(failed(), { color: true });
    expect(text).toContain(ANSI);
    expect(text).toContain("\x1b[31mfailed");
    expect(text).toContain("\x1b[32min-sync");
  });
});

describe("renderProgress", () => {
  it("shows regions, a bar per group, token counts and what is next", () => {
    const text = renderProgress(report());
    expect(text).not.toContain(ANSI);
    expect(text).toContain("bk/agent-token  at 2026-11-22T12:00:00Z");
    expect(text).toContain("current 22222222 · pending -");
    expect(text).toContain("us-east-1 in-sync · eu-west-1 lagging");
    expect(text).toContain("  us-east-1  ci-a  [#####-----]  50% InProgress");
    expect(text).toContain("  eu-west-1  ci-b  [----------]   0% waiting-for-replica");
    expect(text).toContain("2 managed valid · 1 not managed");
    expect(text).toContain("Next      wait for eu-west-1 to serve the current version");
    expect(text).toContain("          wait for refreshes: us-east-1:ci-a");
    expect(text).toContain("in progress: waiting for replicas, refreshes");
  });

  it("counts the tokens revoked since a baseline report", () => {
    const later = report({
      managedTokensValid: [{ id: "tok-2", versionId: V2, createdAt: undefined, expiresAt: undefined }],
    });
    expect(renderProgress(later, { baseline: report() })).toContain(
      "1 managed valid · 1 revoked since start · 1 not managed",
    );
  });

  it("puts the promotion of a pending version first, and shows an emergency", () => {
    const text = renderProgress(
      report(
        {
          complete: true,
          waitingFor: [],
          next: ["nothing: the rollout of the current version is complete"],
          emergency: { versionId: V2, leakedVersionId: V1, minHealthyPercentage: 40 },
        },
        { pendingVersionId: V3 },
      ),
    );
    expect(text).toContain(`pending 33333333`);
    expect(flat(text)).toContain(
      `Next wait for the rotation function to create, test and promote version ${V3}`,
    );
    expect(text).not.toContain("nothing: the rollout");
    expect(text).toContain("EMERGENCY: leaked 11111111, min healthy 40%");
  });

  it("reports a blocked rollout", () => {
    expect(renderProgress(failed())).toContain("BLOCKED: needs an operator");
    expect(renderProgress(failed(), { color: true })).toContain(ANSI);
  });

  it("has a one-line form that changes only when the rollout does", () => {
    const line = progressLine(report());
    expect(line).toBe(
      "current 22222222 | regions 1/2 in sync | us-east-1:ci-a 50% InProgress, eu-west-1:ci-b 0% waiting-for-replica | tokens 2 managed valid · 1 not managed | next: wait for eu-west-1 to serve the current version; wait for refreshes: us-east-1:ci-a",
    );
    expect(progressLine(report({ at: new Date(NOW.getTime() + 5_000) }))).toBe(line);
    expect(progressLine(report({ groups: [group({ percentageComplete: 75 })] }))).not.toBe(line);
  });
});

describe("statusJson", () => {
  it("is stable: every key present, null for unknown, ISO dates, no token value", () => {
    const json = statusJson(report());
    expect(json).toEqual({
      schemaVersion: 1,
      at: "2026-11-22T12:00:00.000Z",
      secret: {
        arn: ARN,
        name: "bk/agent-token",
        primaryRegion: "us-east-1",
        rotationEnabled: true,
        schedule: "rate(30 days)",
        lastRotatedAt: "2026-11-22T11:55:00.000Z",
        nextRotationAt: "2026-12-22T11:55:00.000Z",
        overdue: false,
        currentVersionId: V2,
        pendingVersionId: null,
      },
      versions: [
        {
          versionId: V2,
          stages: ["AWSCURRENT"],
          createdAt: "2026-11-22T11:55:00.000Z",
          ageSeconds: 300,
          token: {
            id: "tok-2",
            createdAt: "2026-11-22T11:55:01.000Z",
            expiresAt: "2026-12-30T00:00:00.000Z",
            expiresInSeconds: 3_196_800,
          },
        },
        {
          versionId: V1,
          stages: ["AWSPREVIOUS"],
          createdAt: "2026-10-23T11:55:00.000Z",
          ageSeconds: 2_592_300,
          token: { id: "tok-1", createdAt: null, expiresAt: null, expiresInSeconds: null },
        },
      ],
      regions: [
        { region: "us-east-1", primary: true, currentVersionId: V2, state: "in-sync", detail: null },
        {
          region: "eu-west-1",
          primary: false,
          currentVersionId: V1,
          state: "lagging",
          detail: "Replicating",
        },
      ],
      strategy: "refresh",
      groups: [
        {
          region: "us-east-1",
          groupName: "ci-a",
          stackName: null,
          phase: "refreshing",
          instances: 4,
          progress: { total: 4, safe: 0, pending: 4, unreachable: 0 },
          waiting: [],
          refreshId: "r-a",
          refreshStatus: "InProgress",
          percentageComplete: 50,
          detail: "refresh InProgress",
        },
        {
          region: "eu-west-1",
          groupName: "ci-b",
          stackName: null,
          phase: "waiting-for-replica",
          instances: 2,
          progress: { total: 2, safe: 0, pending: 2, unreachable: 0 },
          waiting: [],
          refreshId: "r-old",
          refreshStatus: "Successful",
          percentageComplete: 100,
          detail: "waiting for the region to serve the new version",
        },
      ],
      tokens: {
        managedValid: [
          { id: "tok-1", versionId: V1, createdAt: null, expiresAt: null },
          {
            id: "tok-2",
            versionId: V2,
            createdAt: "2026-11-22T11:55:01.000Z",
            expiresAt: "2026-12-30T00:00:00.000Z",
          },
        ],
        unmanaged: [{ id: "tok-0", description: "Initial agent token" }],
      },
      emergency: null,
      rollout: {
        complete: false,
        waitingFor: ["replicas", "refreshes"],
        next: ["wait for eu-west-1 to serve the current version", "wait for refreshes: us-east-1:ci-a"],
        notices: ["1 token(s) in the cluster were not created by this project"],
      },
      attention: [],
      exitCode: 0,
    });
    // Round-trips through JSON unchanged (no Dates, no undefined).
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });

  it("exits 3 when blocked or overdue, saying why", () => {
    const blocked = statusJson(failed());
    expect(blocked.exitCode).toBe(3);
    expect(blocked.attention).toEqual([
      expect.stringMatching(/^blocked: eu-west-1:ci-b: refresh r-b ended Failed/),
    ]);
    const overdue = statusJson(report({}, { overdue: true }));
    expect(overdue.exitCode).toBe(3);
    expect(overdue.attention).toEqual([expect.stringMatching(/^rotation overdue/)]);
  });
});

describe("blockedAdvice and statusAttention", () => {
  it("has advice for a failed replica, a missing group and an unobservable group", () => {
    const r = report({
      regions: [
        { region: "us-east-1", primary: true, currentVersionId: V2, state: "in-sync", detail: undefined },
        {
          region: "eu-west-1",
          primary: false,
          currentVersionId: undefined,
          state: "failed",
          detail: "no replica",
        },
      ],
      groups: [
        group({ phase: "missing", detail: "group not found" }),
        group({
          region: "eu-west-1",
          groupName: "ci-b",
          stackName: undefined,
          phase: "unknown",
          detail: "could not be observed: AccessDenied",
        }),
      ],
      waitingFor: ["operator"],
    });
    const advice = blockedAdvice(r);
    expect(advice).toHaveLength(3);
    expect(advice[0]).toMatch(/^replica eu-west-1 does not serve the current version \(no replica\)/);
    expect(advice[1]).toMatch(/^us-east-1:ci-a: group not found: fix TARGET_GROUPS/);
    expect(advice[2]).toMatch(/^eu-west-1:ci-b: could not be observed: AccessDenied: check/);
    expect(statusAttention(r)).toHaveLength(3);
    expect(statusAttention(report())).toEqual([]);
  });
});

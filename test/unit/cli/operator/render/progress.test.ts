import { describe, expect, it } from "vitest";
import {
  bar,
  groupProgress,
  progressLine,
  renderProgress,
} from "../../../../../cli/operator/render/progress";
import { ANSI, failed, flat, group, NOW, report, V1, V2, V3 } from "../../../../support/status-report";

describe("progress bars", () => {
  it("draws progress bars", () => {
    expect(bar(0)).toBe("[----------]");
    expect(bar(50)).toBe("[#####-----]");
    expect(bar(100)).toBe("[##########]");
    expect(bar(undefined)).toBe("[----------]");
    expect(bar(140, 4)).toBe("[####]");
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

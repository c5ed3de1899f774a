import { describe, expect, it } from "vitest";
import { renderStatus } from "../../../../../cli/operator/render/table";
import { ANSI, ARN, failed, flat, report, V1, V2, V3 } from "../../../../support/status-report";

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

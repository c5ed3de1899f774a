import { describe, expect, it } from "vitest";
import {
  describeStatusJson,
  STATUS_JSON_SCHEMA,
  schemaErrors,
  statusJson,
} from "../../../../../cli/operator/render/json";
import { ARN, failed, report, V1, V2, V3 } from "../../../../support/status-report";

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

describe("the schema, written once", () => {
  it("is what statusJson makes, for every report shape the tests know", () => {
    const emergency = { versionId: V2, leakedVersionId: V1, minHealthyPercentage: 50 };
    for (const r of [report(), failed(), report({ emergency }, { overdue: true, pendingVersionId: V3 })]) {
      expect(schemaErrors(statusJson(r))).toEqual([]);
    }
  });

  it("catches a missing key, an extra key, a wrong type, an unknown phase and a non-ISO date", () => {
    const json = statusJson(report()) as unknown as Record<string, unknown> & {
      secret: Record<string, unknown>;
      groups: Array<Record<string, unknown>>;
    };
    delete json.secret.arn;
    json.extra = 1;
    json.secret.overdue = "no";
    const first = json.groups[0];
    if (first) first.phase = "sideways";
    json.at = "yesterday";
    expect(schemaErrors(json)).toEqual(
      expect.arrayContaining([
        "$.extra: not in the schema",
        "$.secret.arn: missing",
        expect.stringMatching(/^\$\.secret\.overdue: expected a boolean/),
        expect.stringMatching(/^\$\.groups\[0\]\.phase: expected missing\|waiting-for-replica/),
        expect.stringMatching(/^\$\.at: expected an ISO 8601 UTC date/),
      ]),
    );
  });

  it("is what `status --help` describes: every top-level key, the phases and the exit codes", () => {
    const help = describeStatusJson(100);
    for (const key of Object.keys(STATUS_JSON_SCHEMA.fields))
      expect(help).toMatch(new RegExp(`^  ${key}\\s`, "m"));
    // A long alternation may wrap after its bars.
    const unwrapped = help.replace(/\|\s+/g, "|");
    expect(unwrapped).toContain("refreshed|updating|updated|blocked|empty");
    expect(unwrapped).toContain("state: booted-after-sync|confirmed|gone|in-flight");
    expect(help).toContain("waitingFor: [replicas|refreshes|commands|operator]");
    expect(help).toMatch(/exitCode\s+0\|3/);
    for (const line of help.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
  });
});

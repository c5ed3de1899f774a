import type { StatusReport } from "../../shared/rollout/status";

/** Status reports for the CLI's view tests: V2 rolling out over two groups, and the same rollout blocked. */
export const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/agent-token-AbC123";
export const NOW = new Date("2026-11-22T12:00:00.000Z");
export const V1 = "11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
export const V2 = "22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
export const V3 = "33333333-cccc-4ccc-8ccc-cccccccccccc";
export const ANSI = "\x1b[";
/** Prose wraps; compare it with the line breaks and indentation folded to single spaces. */
export const flat = (text: string) => text.replace(/\s+/g, " ");

export type Group = StatusReport["groups"][number];
export const group = (over: Partial<Group> = {}): Group => ({
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
export function report(
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

export const failed = () =>
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

import type {
  Observation,
  RefreshObservation,
  TargetObservation,
  TokenObservation,
} from "../../shared/rollout/types";

/** Builders for rollout observations, shared by the plan, status and CLI tests. */
export const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/agent-token-AbC123";
export const NOW = new Date("2026-11-22T12:00:00Z");
export const V1 = "11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
export const V2 = "22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
export const V3 = "33333333-cccc-4ccc-8ccc-cccccccccccc";
export const DAY = 86_400_000;

export const refresh = (
  id: string,
  status: string,
  extra: Partial<RefreshObservation> = {},
): RefreshObservation => ({
  id,
  status,
  statusReason: status === "Failed" ? "instances failed health checks" : undefined,
  startTime: new Date(NOW.getTime() - 60_000),
  endTime: status === "InProgress" ? undefined : NOW,
  percentageComplete: status === "Successful" ? 100 : 40,
  instancesToUpdate: 0,
  ...extra,
});

export const target = (
  region: string,
  groupName: string,
  extra: Partial<TargetObservation> = {},
): TargetObservation => ({
  region,
  groupName,
  exists: true,
  instances: 4,
  marker: undefined,
  refreshes: [],
  error: undefined,
  ...extra,
});

/** A token; without a version id it stands for one a human made (the initial token). */
export const token = (
  id: string,
  versionId?: string,
  extra: Partial<TokenObservation> = {},
): TokenObservation => ({
  id,
  description: versionId ? `managed ${versionId}` : "Initial agent token",
  versionId,
  createdAt: "2026-11-22T11:55:00.000Z",
  expiresAt: undefined,
  ...extra,
});

/** A group whose marker names `id` for `version`, and that refresh in the given state. */
export const ours = (
  version: string,
  id = `r-${version}`,
  status = "Successful",
  extra: Partial<RefreshObservation> = {},
) => ({
  marker: { versionId: version, refreshId: id },
  refreshes: [refresh(id, status, extra)],
});

/**
 * V2 current (5 minutes old), V1 previous (a day old), one replica (eu-west-1) in sync, two
 * target groups (us-east-1:ci-a, eu-west-1:ci-b) not refreshed yet, managed tokens for V1 and V2.
 */
export function observation(
  over: Partial<Observation> = {},
  secret: Partial<Observation["secret"]> = {},
): Observation {
  return {
    now: NOW,
    secret: {
      arn: ARN,
      current: V2,
      pending: undefined,
      createdAt: { [V1]: new Date(NOW.getTime() - DAY), [V2]: new Date(NOW.getTime() - 300_000) },
      lastRotatedAt: undefined,
      ...secret,
    },
    replicas: [
      {
        region: "eu-west-1",
        current: V2,
        replicationStatus: "InSync",
        statusMessage: undefined,
        error: undefined,
      },
    ],
    targets: [target("us-east-1", "ci-a"), target("eu-west-1", "ci-b")],
    tokens: [token("t1", V1), token("t2", V2)],
    alertsSent: [],
    completedVersion: undefined,
    emergency: undefined,
    ...over,
  };
}

/** The reconcile contract for ARN, with one replica (eu-west-1) and two target groups. */
export function reconcileEnv(over: Record<string, string> = {}): Record<string, string> {
  return {
    ROTATION_SECRET_ARN: ARN,
    BUILDKITE_ORGANIZATION: "acme",
    BUILDKITE_CLUSTER_ID: "e4f44564-d3ea-45eb-87c2-6506643b852a",
    BUILDKITE_API_TOKEN_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/api-XyZ789",
    REPLICA_REGIONS: "eu-west-1",
    TARGET_GROUPS: "us-east-1:ci-a,eu-west-1:ci-b",
    ...over,
  };
}

import type { InstallResult } from "../../shared/rollout/install-result";
import type {
  InstanceObservation,
  InvocationObservation,
  Observation,
  Plan,
  PlanSettings,
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
  scaleInProtectedInstances: "Refresh",
  minHealthyPercentage: 90,
  skipMatching: false,
  hasDesiredConfiguration: false,
  ...extra,
});

/** When the fixtures' regions were first seen serving the current version: two minutes ago. */
export const SYNCED_AT = new Date(NOW.getTime() - 120_000);
/** Launched a day ago: it read the old token at boot. */
export const OLD_LAUNCH = new Date(NOW.getTime() - DAY);
/** Launched after the sync: it read the new token at boot. */
export const NEW_LAUNCH = new Date(NOW.getTime() - 30_000);

/** An InService Linux instance launched before the sync, SSM Online, no command yet. */
export const member = (
  instanceId: string,
  extra: Partial<InstanceObservation> = {},
): InstanceObservation => ({
  instanceId,
  lifecycleState: "InService",
  protectedFromScaleIn: true,
  launchedAt: OLD_LAUNCH,
  platform: "Linux",
  ssmPing: "Online",
  invocations: [],
  ...extra,
});

/** A Run Command invocation of the install document, `ageSeconds` old. */
export const invocation = (
  status: string,
  result?: InstallResult["result"],
  versionId: string | undefined = V2,
  ageSeconds = 10,
  extra: Partial<InvocationObservation> = {},
): InvocationObservation => ({
  commandId: `c-${status}-${result ?? "none"}`,
  requestedAt: new Date(NOW.getTime() - ageSeconds * 1000),
  status,
  statusDetails: status,
  result: result
    ? { result, version: versionId, sha256Prefix: "0123456789ab", reason: undefined }
    : undefined,
  ...extra,
});

/** Confirmed in place for `version`. */
export const confirmed = (instanceId: string, version = V2) =>
  member(instanceId, { invocations: [invocation("Success", "installed", version)] });

/** Two old instances (i-1, i-2), region synced two minutes ago, no marker. */
export const target = (
  region: string,
  groupName: string,
  extra: Partial<TargetObservation> = {},
): TargetObservation => ({
  region,
  groupName,
  stackName: undefined,
  exists: true,
  members: [member(`i-${groupName}-1`), member(`i-${groupName}-2`)],
  marker: undefined,
  syncedAt: SYNCED_AT,
  badSyncTag: undefined,
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

/** A group whose marker names `id` for `version` (intent recorded 90 s ago), and that refresh in the given state. */
export const ours = (
  version: string,
  id = `r-${version}`,
  status = "Successful",
  extra: Partial<RefreshObservation> = {},
) => ({
  marker: { versionId: version, intentAt: new Date(NOW.getTime() - 90_000), refreshId: id },
  refreshes: [refresh(id, status, extra)],
});

/** Instances that replaced the old ones after the sync. */
export const replaced = (groupName: string) => [
  member(`i-${groupName}-3`, { launchedAt: NEW_LAUNCH }),
  member(`i-${groupName}-4`, { launchedAt: NEW_LAUNCH }),
];

/**
 * V2 current (5 minutes old), V1 previous (a day old), one replica (eu-west-1) in sync, two
 * target groups (us-east-1:ci-a, eu-west-1:ci-b) with two old instances each, managed tokens for V1 and V2.
 */
export function observation(
  over: Partial<Observation> = {},
  secret: Partial<Observation["secret"]> = {},
): Observation {
  return {
    scope: "full",
    startedAt: NOW,
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
    stacks: [],
    tokens: [token("t1", V1), token("t2", V2)],
    agents: undefined,
    rollout: { alertsSent: [], complete: false, unobservableSince: undefined, observedAt: undefined },
    emergency: undefined,
    managedVersion: undefined,
    anchor: { region: "us-east-1", groupName: "ci-a" },
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

/** Plan settings of the unit tests: in place, alert fallback, 5 s clock skew. */
export const IN_PLACE_SETTINGS: PlanSettings = {
  primaryRegion: "us-east-1",
  strategy: "in-place",
  preferences: {
    minHealthyPercentage: 90,
    maxHealthyPercentage: undefined,
    instanceWarmupSeconds: undefined,
    scaleInProtectedInstances: "Refresh",
  },
  maxRolloutSeconds: 3600,
  replicaAlertSeconds: 600,
  clockSkewMs: 5_000,
  inPlace: { fallback: "alert", fallbackAfterSeconds: 1800, retrySeconds: 60, bootGraceSeconds: 600 },
};

/** A plan with nothing in it, for tests of what consumes plans. */
export const emptyPlan = (over: Partial<Plan> = {}): Plan => ({
  versionId: "v2",
  strategy: "in-place",
  targets: [],
  regionsBehind: [],
  regionsLagging: [],
  actions: [],
  waitingFor: [],
  notices: [],
  complete: false,
  escalate: undefined,
  deferredAlerts: 0,
  deferredStarts: [],
  ...over,
});

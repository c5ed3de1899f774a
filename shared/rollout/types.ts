import type { InstanceRefreshStatus } from "@aws-sdk/client-auto-scaling";
import type { RefreshPreferences, TargetGroup } from "../config";

/** Everything a reconcile run knows about the world, gathered by observe(); input of plan(). */
export interface Observation {
  now: Date;
  secret: {
    arn: string;
    /** Version holding AWSCURRENT in the primary region. */
    current: string | undefined;
    /** Version holding AWSPENDING when a rotation is under way (not the current one). */
    pending: string | undefined;
    /** When each version was created (≈ when its rotation started). */
    createdAt: Record<string, Date>;
    /** When AWSCURRENT last moved, if Secrets Manager says. */
    lastRotatedAt: Date | undefined;
  };
  /** Every replica region of the secret (targets' regions other than the primary among them). */
  replicas: ReplicaObservation[];
  targets: TargetObservation[];
  /** Every token of the cluster; `versionId` set only for tokens this project made for this secret. */
  tokens: TokenObservation[];
  /** Ids (markers.alertId) of alerts already sent for the current version (the anchor group's rollout tag). */
  alertsSent: string[];
  /** Whether the rollout of the current version was already recorded as complete. */
  completedVersion: string | undefined;
  /** An emergency declared by the operator CLI (anchor group tag); applies while its version is current. */
  emergency: EmergencyDeclaration | undefined;
}

/** "The token of `leakedVersionId` leaked; roll out `versionId` fast and revoke the leaked one early." */
export interface EmergencyDeclaration {
  versionId: string;
  leakedVersionId: string;
  minHealthyPercentage: number;
}

export interface ReplicaObservation {
  region: string;
  /** AWSCURRENT version id served in that region; undefined when unknown. */
  current: string | undefined;
  /** Secrets Manager's own replication status for the region, when it reports one. */
  replicationStatus: string | undefined;
  statusMessage: string | undefined;
  /** The region could not be asked (missing replica, access denied, ...): a short, safe reason. */
  error: string | undefined;
}

/**
 * One of the SDK's `InstanceRefreshStatus` values in practice; kept a plain string so a status AWS
 * adds later is observed (and treated as unknown by the plan) rather than rejected.
 */
export type RefreshStatus = `${InstanceRefreshStatus}` | (string & {});

export interface RefreshObservation {
  id: string;
  status: RefreshStatus;
  statusReason: string | undefined;
  startTime: Date | undefined;
  endTime: Date | undefined;
  percentageComplete: number | undefined;
  instancesToUpdate: number | undefined;
}

export interface TargetObservation extends TargetGroup {
  exists: boolean;
  /** Instances in the group right now, any lifecycle state. */
  instances: number;
  /** What our marker tag says we started for which version. */
  marker: { versionId: string; refreshId: string } | undefined;
  /** Recent refreshes, newest first. */
  refreshes: RefreshObservation[];
  error: string | undefined;
}

export interface TokenObservation {
  id: string;
  description: string;
  versionId: string | undefined;
  createdAt: string | undefined;
  expiresAt: string | undefined;
}

export type TargetPhase =
  | "missing"
  | "waiting-for-replica"
  | "waiting-for-other-refresh"
  | "start-refresh"
  | "refreshing"
  | "refreshed"
  | "empty"
  | "failed"
  | "partial"
  | "unmanaged"
  | "unknown";

export interface TargetStatus extends TargetGroup {
  phase: TargetPhase;
  refreshId: string | undefined;
  percentageComplete: number | undefined;
  detail: string;
}

export type Action =
  | { kind: "start-refresh"; target: TargetGroup; versionId: string; preferences: RefreshPreferences }
  | { kind: "revoke"; tokenId: string; versionId: string }
  | { kind: "alert"; key: string; subject: string; message: string }
  | { kind: "record-complete"; versionId: string };

export interface Plan {
  versionId: string | undefined;
  targets: TargetStatus[];
  /** Replica regions not serving the current version, failed ones included. */
  regionsBehind: string[];
  /** Of those, the ones merely catching up (worth waiting for). */
  regionsLagging: string[];
  actions: Action[];
  /** What the run is waiting for, if anything; "replicas" lets the caller wait within its deadline. */
  waitingFor: Array<"replicas" | "refreshes" | "operator">;
  /** Human-readable facts worth reporting that need no action from us (unmanaged tokens, ...). */
  notices: string[];
  /** True when nothing more will happen for the current version. */
  complete: boolean;
}

export interface PlanSettings {
  primaryRegion: string;
  preferences: RefreshPreferences;
  maxRolloutSeconds: number;
  /** A replica still behind this long after promotion is reported as failing to replicate. */
  replicaAlertSeconds: number;
}

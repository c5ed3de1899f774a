import type { InstanceRefreshStatus } from "@aws-sdk/client-auto-scaling";
import type { ObservationError } from "../lib/aws/errors";
import type { InPlaceFallback, RefreshPreferences, RolloutStrategy, TargetGroup } from "../lib/config";
import type { InstallResult } from "./install-result";

/** Everything a reconcile run knows about the world, gathered by observe(); input of plan(). */
export interface Observation {
  /**
   * "full": every region, every target group, the Buildkite tokens — what revocation, alerting and
   * recording completion need. "partial": only some groups (those an event named, or those whose
   * commands a run polls), with their regions' replicas and no Buildkite tokens; a plan of a partial
   * observation makes only per-group writes (see plan.ts PARTIAL_ACTIONS). "poll": what this run
   * already knew of every group it saw, with only the commands in flight read again; its plan may
   * only send commands and alert about what the commands reported (plan.ts POLL_ACTIONS), since the
   * rest of it (tags, refreshes) may predate this run's own writes.
   */
  scope: "full" | "partial" | "poll";
  /** When this observation began (before its first read): an event older than it has been seen. */
  startedAt: Date;
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
  /** Every target group: the named ones, then every group found for each target stack. */
  targets: TargetObservation[];
  /** Target stacks and the groups their tags lead to. */
  stacks: StackObservation[];
  /** Every token of the cluster; `versionId` set only for tokens this project made for this secret. */
  tokens: TokenObservation[];
  /**
   * The cluster's agents with the EC2 instance they run on (from their `aws:instance-id` meta-data);
   * observed only when the in-place fallback `terminate` may need them, undefined otherwise.
   */
  agents: AgentObservation[] | undefined;
  /** The group whose tags hold the rollout record and an emergency (markers.ts anchorOf), if found. */
  anchor: TargetGroup | undefined;
  /** What the anchor group's rollout tag says, validated against the current version. */
  rollout: RolloutRecord;
  /**
   * Partial observations only: the version a full observation in this container found to have a
   * token made by this project (full observations read it from `tokens`). Undefined when unknown.
   */
  managedVersion: string | undefined;
  /** An emergency declared by the operator CLI (anchor group tag), as written; plan() validates it. */
  emergency: EmergencyDeclaration | undefined;
}

/** The rollout tag's content for the current version (empty when absent, unreadable or for another version). */
export interface RolloutRecord {
  /** Ids (markers.alertId) of alerts already sent for the current version. */
  alertsSent: string[];
  /** Whether the rollout of the current version was already recorded as complete. */
  complete: boolean;
  /** Since when something has stayed unobservable (a transient error), if it has. */
  unobservableSince: Date | undefined;
  /** When the last full observation of the current version began, as recorded (validated). */
  observedAt: Date | undefined;
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
  error: ObservationError | undefined;
}

/** Why something could not be observed (defined with the classification that fills it). */
export type { ObservationError } from "../lib/aws/errors";

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
  /** The refresh's ScaleInProtectedInstances and MinHealthyPercentage, as AWS reports them. */
  scaleInProtectedInstances: string | undefined;
  minHealthyPercentage: number | undefined;
  skipMatching: boolean | undefined;
  /** Whether the refresh carries a desired configuration (ours never does). */
  hasDesiredConfiguration: boolean;
}

export interface TargetObservation extends TargetGroup {
  /** The Elastic CI Stack the group belongs to, when it was found through TARGET_STACKS. */
  stackName: string | undefined;
  exists: boolean;
  /** Instances in the group right now, any lifecycle state, with what EC2 and SSM say of them. */
  members: InstanceObservation[];
  /** What our refresh tag says we intended / started for which version (not yet validated). */
  marker: RefreshMarker | undefined;
  /** When the rollout first saw this group's region serve the current version (validated), if recorded. */
  syncedAt: Date | undefined;
  /** A sync tag that was present but failed validation (forged, for another version, in the future). */
  badSyncTag: string | undefined;
  /** Recent refreshes, newest first. */
  refreshes: RefreshObservation[];
  error: ObservationError | undefined;
}

export interface RefreshMarker {
  versionId: string;
  /** When the intent to start a refresh was recorded (before StartInstanceRefresh was called). */
  intentAt: Date;
  /** The refresh started for the intent; undefined while unknown (a lost response, a crash). */
  refreshId: string | undefined;
}

export interface InstanceObservation {
  instanceId: string;
  /** Auto Scaling lifecycle state (Pending, InService, Terminating, Standby, ...). */
  lifecycleState: string;
  protectedFromScaleIn: boolean;
  /** EC2 LaunchTime; undefined when EC2 did not report the instance. */
  launchedAt: Date | undefined;
  platform: "Linux" | "Windows" | undefined;
  /**
   * SSM's PingStatus ("Online", "ConnectionLost", "Inactive"), "Unregistered" when SSM does not
   * know the instance, undefined when not asked (the refresh strategy).
   */
  ssmPing: string | undefined;
  /** Run Command invocations of our document for the current version on this instance, newest first. */
  invocations: InvocationObservation[];
}

export interface InvocationObservation {
  commandId: string;
  requestedAt: Date;
  /**
   * The invocation's Status (Pending, InProgress, Delayed, Success, Cancelled, TimedOut, Failed,
   * Cancelling), or "Sent" while the command lists the instance but no invocation is visible yet.
   */
  status: string;
  statusDetails: string | undefined;
  /** The document's result line, when the output carries one. */
  result: InstallResult | undefined;
}

export interface StackObservation {
  region: string;
  stackName: string;
  /** Names of the groups carrying the stack's tags. */
  groups: string[];
  error: ObservationError | undefined;
}

export interface TokenObservation {
  id: string;
  description: string;
  versionId: string | undefined;
  createdAt: string | undefined;
  expiresAt: string | undefined;
}

export interface AgentObservation {
  id: string;
  instanceId: string | undefined;
  /** Buildkite's connection_state: connected, disconnected, stopping, stopped, lost, never_connected. */
  connectionState: string;
}

export type TargetPhase =
  | "missing"
  | "waiting-for-replica"
  | "waiting-for-other-refresh"
  | "start-refresh"
  | "refreshing"
  | "refreshed"
  | "updating"
  | "updated"
  | "blocked"
  | "empty"
  | "failed"
  | "partial"
  | "unmanaged"
  | "unknown";

/** Where one instance stands in the rollout of the current version (see ledger.ts). */
export type InstanceState =
  /** Safe: launched after its region served the current version, so it read the new token at boot. */
  | "booted-after-sync"
  /** Safe: the document confirmed the current version in its cfg, after the instance's boot had finished. */
  | "confirmed"
  /** Safe: leaving the group (Terminating / Terminated); it will not start an agent again. */
  | "gone"
  /** A command for the current version is on its way or running. */
  | "in-flight"
  /** Ready for a command now. */
  | "to-send"
  /** The document said the boot had not finished; asked again after the retry interval. */
  | "boot-in-progress"
  /** The last command failed or was not delivered; asked again after the retry interval. */
  | "retry-wait"
  /** SSM does not report the instance Online. */
  | "unreachable"
  /** The cfg holds a token this secret never held (another cluster's?): left alone. */
  | "foreign-token"
  /** The document refused the cfg (a symlink, not a regular file, missing). */
  | "refused"
  /** Waiting for an instance refresh to replace it (refresh strategy). */
  | "awaiting-refresh"
  /** Not enough known (no launch time). */
  | "unknown";

export interface InstanceStatus {
  instanceId: string;
  state: InstanceState;
  /** True for the three safe states. */
  safe: boolean;
  /** Short reason for an operator (no token). */
  detail: string;
  /** The fallback applies to it now (in-place, past IN_PLACE_FALLBACK_AFTER_SECONDS). */
  fallbackDue: boolean;
}

export interface TargetStatus extends TargetGroup {
  stackName: string | undefined;
  phase: TargetPhase;
  refreshId: string | undefined;
  percentageComplete: number | undefined;
  detail: string;
  /** Per-instance ledger; empty when the group was not observed. */
  instances: InstanceStatus[];
}

export type Action =
  /**
   * Writes the refresh tag with the intent (version, time), calls StartInstanceRefresh, then writes
   * the tag again with the refresh id. A failed intent write means no start.
   */
  | {
      kind: "start-refresh";
      target: TargetGroup;
      versionId: string;
      preferences: RefreshPreferences;
      reason: "strategy" | "fallback" | "emergency";
    }
  /** Writes the refresh tag with the id of a refresh found started for our recorded intent. */
  | { kind: "adopt-refresh"; target: TargetGroup; versionId: string; intentAt: Date; refreshId: string }
  /** Writes the sync tag: the group's region was first seen serving `versionId` at `at`. */
  | { kind: "record-sync"; target: TargetGroup; versionId: string; at: Date }
  /** SendCommand of the install document to these instances of one region (at most 50). */
  | { kind: "send-command"; region: string; versionId: string; instanceIds: string[] }
  /** Buildkite REST: stop the agent on the instance gracefully (force: false). */
  | { kind: "stop-agent"; target: TargetGroup; instanceId: string; agentId: string }
  /** TerminateInstanceInAutoScalingGroup without decrementing the desired capacity. */
  | { kind: "terminate-instance"; target: TargetGroup; instanceId: string }
  | { kind: "revoke"; tokenId: string; versionId: string }
  | { kind: "alert"; key: string; subject: string; message: string }
  /**
   * Writes the anchor group's rollout tag: the plan's alerts that act published (plus those sent
   * before), whether the rollout is complete, and since when something has been unobservable.
   */
  | {
      kind: "record-rollout";
      versionId: string;
      complete: boolean;
      unobservableSince: Date | undefined;
      /** When the last full observation began: this plan's, or (partial plans) the one recorded. */
      observedAt: Date | undefined;
    };

export interface Plan {
  versionId: string | undefined;
  strategy: RolloutStrategy;
  targets: TargetStatus[];
  /** Replica regions not serving the current version, failed ones included. */
  regionsBehind: string[];
  /** Of those, the ones merely catching up (worth waiting for). */
  regionsLagging: string[];
  actions: Action[];
  /** What the run is waiting for, if anything; "replicas" lets the caller wait within its deadline. */
  waitingFor: Array<"replicas" | "refreshes" | "commands" | "operator">;
  /** Human-readable facts worth reporting that need no action from us (unmanaged tokens, ...). */
  notices: string[];
  /** True when nothing more will happen for the current version. */
  complete: boolean;
  /**
   * Partial plans only: why this run needs a full observation before it can go on (revoking,
   * alerting and recording need one), or undefined.
   */
  escalate: string | undefined;
  /** Partial plans only: alerts held back for the next full observation. */
  deferredAlerts: number;
  /**
   * Refresh starts this plan makes but leaves to the run's next rounds (at most `maxStartsPerRound`
   * starts a round), so that the run can hand the trigger queue over between rounds. The next round
   * carries on with them from the same observation (continueStarts in plan.ts).
   */
  deferredStarts: StartRefreshAction[];
}

export type StartRefreshAction = Extract<Action, { kind: "start-refresh" }>;

export interface PlanSettings {
  primaryRegion: string;
  /** At most this many StartInstanceRefresh a plan lists; the rest wait for the next round (unset: no bound). */
  maxStartsPerRound?: number;
  strategy: RolloutStrategy;
  preferences: RefreshPreferences;
  maxRolloutSeconds: number;
  /** A replica still behind this long after promotion is reported as failing to replicate. */
  replicaAlertSeconds: number;
  inPlace: {
    fallback: InPlaceFallback;
    fallbackAfterSeconds: number;
    retrySeconds: number;
    bootGraceSeconds: number;
  };
  /** See ReconcileConfig.clockSkewMs. */
  clockSkewMs: number;
}

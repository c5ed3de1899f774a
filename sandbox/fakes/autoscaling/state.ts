/** Mutable simulation state, private to the fleet and its refresh runner. */
import type {
  Ec2State,
  GroupSpec,
  GroupView,
  JobsSpec,
  LifecycleState,
  Platform,
  RefreshPreferences,
  RefreshStatus,
  RefreshView,
  SsmAgentState,
  TagView,
} from "./types";

export interface InstanceState {
  id: string;
  region: string;
  groupName: string;
  availabilityZone: string;
  state: LifecycleState;
  /** What EC2 would report; `terminated` once gone from the group. */
  ec2State: Ec2State;
  protectedFromScaleIn: boolean;
  launchTemplateVersion: string;
  launchTime: Date;
  terminatedAt?: number;
  platform: Platform;
  ssmAgent: SsmAgentState;
  configPath: string;
  /** Tags EC2 shows for the instance, fixed at launch. */
  tags: Array<{ key: string; value: string }>;
  bootFinished: boolean;
  agentRunning: boolean;
  /** The running job, if any; `seq` tells a stale timer from the current job. */
  job?: { seq: number; endsAt: number };
  /** Bumped whenever the agent changes state, so stale idle/job timers do nothing. */
  epoch: number;
  restarts: number;
  /** Set when an initial instance is to start with a job once booted. */
  busyAtBoot: boolean;
  /** terminate-instance is already on its way (Linux runs it once per instance). */
  terminationScheduled: boolean;
}

/** A group as the fleet keeps it: the public view, with mutable instances and tags by key. */
export type GroupState = Omit<GroupView, "instances" | "tags"> & {
  instances: InstanceState[];
  tags: Map<string, TagView>;
  platform: Platform;
  idlePeriodMs: number;
  jobs: Required<Pick<JobsSpec, "busyOnBoot">> & Pick<JobsSpec, "durationMs" | "schedule">;
  scaler: false | { demand: number; delayMs: number };
  ssmAgent: SsmAgentState;
  stackName: string;
  /** Draws job lengths and busy-on-boot decisions (seeded). */
  random: () => number;
  scheduleIndex: number;
  spec: GroupSpec;
};

export interface RefreshState {
  id: string;
  region: string;
  groupName: string;
  origin: RefreshView["origin"];
  status: RefreshStatus;
  statusReason?: string;
  startTime: Date;
  endTime?: Date;
  preferences: RefreshPreferences;
  /** Instances the refresh is responsible for, fixed at start (protected-and-ignored included). */
  total: number;
  updated: number;
  /** Aborted when the refresh stops being InProgress, to cut short any interruptible wait. */
  controller: AbortController;
}

/** A refresh counts as active (blocking another start, cancellable) in these states. */
const ACTIVE: ReadonlySet<RefreshStatus> = new Set<RefreshStatus>([
  "Pending",
  "InProgress",
  "Cancelling",
  "RollbackInProgress",
  "Baking",
]);

export function isActive(status: RefreshStatus): boolean {
  return ACTIVE.has(status);
}

export function refreshView(refresh: RefreshState): RefreshView {
  const remaining = refresh.total - refresh.updated;
  // Nothing to do counts as done, but only once the refresh has actually finished.
  const percentageComplete =
    refresh.total === 0
      ? refresh.status === "Successful"
        ? 100
        : 0
      : Math.floor((refresh.updated * 100) / refresh.total);
  return {
    instanceRefreshId: refresh.id,
    region: refresh.region,
    autoScalingGroupName: refresh.groupName,
    origin: refresh.origin,
    status: refresh.status,
    ...(refresh.statusReason === undefined ? {} : { statusReason: refresh.statusReason }),
    startTime: refresh.startTime,
    ...(refresh.endTime === undefined ? {} : { endTime: refresh.endTime }),
    percentageComplete,
    instancesToUpdate: remaining,
    preferences: { ...refresh.preferences },
  };
}

/** Mutable simulation state, private to the fleet and its refresh runner. */
import type {
  GroupView,
  LifecycleState,
  RefreshPreferences,
  RefreshStatus,
  RefreshView,
  TagView,
} from "./types";

export interface InstanceState {
  id: string;
  availabilityZone: string;
  state: LifecycleState;
  protectedFromScaleIn: boolean;
  launchTemplateVersion: string;
  /** Set once a busy protected instance's job has a known end (see `Fleet#startJobCountdown`). */
  jobEndsAt?: number;
}

/** A group as the fleet keeps it: the public view, with mutable instances and tags by key. */
export type GroupState = Omit<GroupView, "instances" | "tags"> & {
  instances: InstanceState[];
  tags: Map<string, TagView>;
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

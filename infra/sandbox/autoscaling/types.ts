/** Public data shapes of the simulated fleet (camelCase; the HTTP layer maps them to AWS names). */

import type { InstanceRefreshStatus } from "@aws-sdk/client-auto-scaling";

export type LifecycleState = "Pending" | "InService" | "Terminating";

/** The statuses AWS reports (the SDK's own list). */
export type RefreshStatus = `${InstanceRefreshStatus}`;

export type ScaleInProtectedInstances = "Refresh" | "Ignore" | "Wait";
export type StandbyInstances = "Terminate" | "Ignore" | "Wait";

export interface GroupSpec {
  region: string;
  name: string;
  /** Desired capacity; the group starts with this many InService instances. */
  instances: number;
  /** How many of those are protected from scale in because they are busy running a job. */
  protectedInstances?: number;
  minSize?: number;
  maxSize?: number;
  /** Initial group tags (PropagateAtLaunch = true). */
  tags?: Record<string, string>;
}

export interface LaunchTemplateRef {
  launchTemplateId: string;
  launchTemplateName: string;
  version: string;
}

export interface InstanceView {
  instanceId: string;
  availabilityZone: string;
  lifecycleState: LifecycleState;
  healthStatus: "Healthy";
  protectedFromScaleIn: boolean;
  /** Launch template version the instance was launched from (drives SkipMatching). */
  launchTemplateVersion: string;
}

export interface TagView {
  key: string;
  value: string;
  propagateAtLaunch: boolean;
}

export interface GroupView {
  region: string;
  name: string;
  arn: string;
  minSize: number;
  maxSize: number;
  desiredCapacity: number;
  createdTime: Date;
  launchTemplate: LaunchTemplateRef;
  newInstancesProtectedFromScaleIn: boolean;
  instances: InstanceView[];
  tags: TagView[];
}

/** Preferences as a caller gives them; everything optional, AWS defaults applied on start. */
export interface RefreshPreferencesInput {
  minHealthyPercentage?: number;
  maxHealthyPercentage?: number;
  /** Seconds in the API; the simulation waits this many *milliseconds* so tests stay fast. */
  instanceWarmup?: number;
  skipMatching?: boolean;
  autoRollback?: boolean;
  scaleInProtectedInstances?: string;
  standbyInstances?: string;
}

export interface RefreshPreferences {
  minHealthyPercentage: number;
  maxHealthyPercentage: number;
  instanceWarmup?: number;
  skipMatching: boolean;
  autoRollback: boolean;
  scaleInProtectedInstances: ScaleInProtectedInstances;
  standbyInstances: StandbyInstances;
}

export interface RefreshView {
  instanceRefreshId: string;
  region: string;
  autoScalingGroupName: string;
  /** "api" when started through StartInstanceRefresh, "external" for `startExternalRefresh`. */
  origin: "api" | "external";
  status: RefreshStatus;
  statusReason?: string;
  startTime: Date;
  endTime?: Date;
  percentageComplete: number;
  instancesToUpdate: number;
  preferences: RefreshPreferences;
}

export interface BootContext {
  region: string;
  groupName: string;
  instanceId: string;
  instanceRefreshId: string;
}

export interface BootResult {
  ok: boolean;
  reason?: string;
}

export interface BootRecord extends BootContext {
  startedAt: Date;
  finishedAt?: Date;
  /** Undefined while the boot hook is still running. */
  result?: BootResult;
}

export type RefreshEventDetailType =
  | "EC2 Auto Scaling Instance Refresh Started"
  | "EC2 Auto Scaling Instance Refresh Succeeded"
  | "EC2 Auto Scaling Instance Refresh Failed"
  | "EC2 Auto Scaling Instance Refresh Cancelled"
  | "EC2 Auto Scaling Instance Refresh Rollback Succeeded";

/** EventBridge event as EC2 Auto Scaling documents it for instance refreshes. */
export interface RefreshEvent {
  version: "0";
  id: string;
  "detail-type": RefreshEventDetailType;
  source: "aws.autoscaling";
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: { InstanceRefreshId: string; AutoScalingGroupName: string };
}

export interface FailureRule {
  region?: string;
  groupName?: string;
  /** How many refreshes to fail; all of them (until the returned undo is called) when omitted. */
  count?: number;
}

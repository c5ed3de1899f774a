/** Public data shapes of the simulated fleet (camelCase; the HTTP layer maps them to AWS names). */

import type { InstanceRefreshStatus } from "@aws-sdk/client-auto-scaling";
import type { Platform, SsmAgentState } from "../instances/instance-host";

export type { Platform, SsmAgentState } from "../instances/instance-host";

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
  /**
   * Legacy name of `jobs.busyAtStart`: how many of the initial instances run a job when the fleet
   * starts. (It used to mean "protected while busy"; the stock stack protects every instance.)
   */
  protectedInstances?: number;
  minSize?: number;
  maxSize?: number;
  /** Initial group tags (PropagateAtLaunch = true). */
  tags?: Record<string, string>;
  /** More initial tags with an explicit PropagateAtLaunch (the stack's BuildkiteQueue tag does not propagate). */
  groupTags?: readonly TagView[];
  /**
   * The group's NewInstancesProtectedFromScaleIn. Default true, as the Elastic CI Stack's
   * `InstanceScaleInProtection` parameter defaults to "true" and feeds it
   * (templates/aws-stack.yml, AgentAutoScaleGroup). Nothing in the stack ever removes it.
   */
  newInstancesProtectedFromScaleIn?: boolean;
  /** `InstanceOperatingSystem` of the stack (default Linux). */
  platform?: Platform;
  /**
   * ScaleInIdlePeriod, scaled to milliseconds: an agent idle this long exits cleanly
   * (`disconnect-after-idle-timeout` in the cfg the boot script writes) and its instance terminates
   * itself. Default: never (no natural churn unless asked for).
   */
  idlePeriodMs?: number;
  jobs?: JobsSpec;
  /**
   * The stack's scaler, as far as it matters here: after an instance terminated itself and
   * decremented the desired capacity, the scaler raises it back to `demand` (pending jobs) one
   * `delayMs` later, so the group launches a replacement. `false` turns it off. Default on, with
   * demand = `instances` and delayMs = the fleet's replaceMs.
   */
  scaler?: false | { demand?: number; delayMs?: number };
  /** SSM agent state of every instance the group launches (default `online`). */
  ssmAgent?: SsmAgentState;
}

/** Jobs the agents run, deterministic per group (a seeded PRNG or an explicit schedule). */
export interface JobsSpec {
  /** How many of the initial instances run a job once they have booted (default 0). */
  busyAtStart?: number;
  /** Chance in [0, 1] that a freshly launched instance picks up a job as soon as its agent starts (default 0). */
  busyOnBoot?: number;
  /** Job length range in ms, drawn uniformly (default: the fleet's jobMs, fixed). */
  durationMs?: readonly [number, number];
  /** Explicit job lengths in ms, used in order and cycled; wins over `durationMs`. */
  schedule?: readonly number[];
  /** PRNG seed (default derived from the group's region and name). */
  seed?: number;
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
  /** EC2 launch time (Auto Scaling does not report it; EC2 DescribeInstances does). */
  launchTime: Date;
  platform: Platform;
  ssmAgent: SsmAgentState;
  /** User data finished and the agent service started (see InstanceHost.bootFinished). */
  bootFinished: boolean;
  /** A job is running on the instance's agent. */
  busy: boolean;
  /** Agent restarts on this instance so far (systemd / nssm), bounded by maxAgentRestarts. */
  restarts: number;
  /** Absolute path of the instance's agent cfg file on the sandbox's disk. */
  configPath: string;
}

export type Ec2State = "pending" | "running" | "shutting-down" | "terminated";

/** What EC2 DescribeInstances knows about an instance, terminated ones included for a while. */
export interface Ec2InstanceView {
  instanceId: string;
  region: string;
  availabilityZone: string;
  launchTime: Date;
  state: Ec2State;
  platform: Platform;
  launchTemplateVersion: string;
  /** Tags at launch: the group's PropagateAtLaunch tags plus aws:autoscaling:groupName. */
  tags: Array<{ key: string; value: string }>;
}

/** Why an instance went away; `self` is the stack's own terminate-instance script. */
export type TerminationCause = "self" | "refresh" | "api" | "stack" | "boot-failure";

export interface RegistrationRecord {
  at: Date;
  region: string;
  groupName: string;
  instanceId: string;
  /** `initial`: the fleet's first boot; `boot`: user data of a launched instance; `restart`: agent start on a live instance (cfg token). */
  cause: "initial" | "boot" | "restart";
  ok: boolean;
  /** Statuses and error names only, never a token. */
  reason?: string;
}

/** The facts a rotation is judged by (see `Fleet.counters`). */
export interface FleetCounters {
  /** Instances the rollout replaced: refresh replacements plus TerminateInstanceInAutoScalingGroup calls through the API. */
  replacedByRollout: number;
  replacedByRolloutIds: string[];
  /** Natural churn: idle agents that terminated themselves, and the instances launched for them. */
  selfTerminated: number;
  churnLaunches: number;
  /** Instances terminated because CloudFormation deleted their (replaced) group. */
  terminatedByStackUpdate: number;
  jobsStarted: number;
  jobsCompleted: number;
  /** Jobs running on an instance when something other than its idle agent terminated it, or when its agent died. */
  jobsInterrupted: number;
  registrations: {
    ok: number;
    failed: number;
    failures: Array<Pick<RegistrationRecord, "region" | "instanceId" | "cause" | "reason">>;
  };
  /** Agent restarts on live instances (systemd / nssm). */
  agentRestarts: number;
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
  /** The refresh that launched the instance, or `initial-boot` / `capacity` for other launches. */
  instanceRefreshId: string;
  /** Where user data writes the agent cfg; absent for hooks called outside the fleet. */
  configPath?: string;
  platform?: Platform;
  /** `BUILDKITE_STACK_NAME` (the agent name prefix); the group name for plain groups. */
  stackName?: string;
}

/** `buildkite-agent start` on a live instance: the token comes from the cfg file, nowhere else. */
export interface AgentStartContext {
  region: string;
  groupName: string;
  instanceId: string;
  configPath: string;
  platform: Platform;
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

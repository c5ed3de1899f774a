/**
 * Elastic CI Stacks as CloudFormation sees them: a stack (status, parameters, outputs, tags) that
 * owns one Auto Scaling group in the fleet, named and tagged the way CloudFormation names and tags
 * what it creates.
 *
 * Sources:
 * - Parameter and output names: buildkite/elastic-ci-stack-for-aws v6.71 `templates/aws-stack.yml`
 *   (BuildkiteAgentTokenParameterStorePath, BuildkiteAgentTokenParameterStoreKMSKey,
 *   ManagedPolicyARNs, InstanceOperatingSystem, InstanceRoleARN, InstanceRoleName, MinSize, MaxSize,
 *   ScaleInIdlePeriod, InstanceScaleInProtection, InstanceCreationTimeout; outputs
 *   AutoScalingGroupName = `!Ref AgentAutoScaleGroup` and InstanceRoleName).
 * - The group has no fixed name, so CloudFormation generates `<stack>-<logical id>-<random>`, and
 *   tags it with aws:cloudformation:stack-name, aws:cloudformation:stack-id and
 *   aws:cloudformation:logical-id (propagated to the instances it launches).
 * - `UpdatePolicy: AutoScalingReplacingUpdate: WillReplace: true` on AgentAutoScaleGroup: "During
 *   replacement, AWS CloudFormation retains the old group until it finishes creating the new one
 *   … After successfully creating the new Auto Scaling group, AWS CloudFormation deletes the old
 *   Auto Scaling group during the cleanup process." If the new group's instances do not signal
 *   within the CreationPolicy timeout (InstanceCreationTimeout: PT5M Linux, PT10M Windows), "the
 *   replacement update fails and AWS CloudFormation rolls back to the old Auto Scaling group"
 *   (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-updatepolicy.html).
 */
import { createHash, randomUUID } from "node:crypto";
import { ACCOUNT_ID, type Fleet } from "../autoscaling/fleet";
import type { GroupSpec, Platform, TagView } from "../autoscaling/types";

export const GROUP_LOGICAL_ID = "AgentAutoScaleGroup";

export type StackStatus =
  | "CREATE_COMPLETE"
  | "UPDATE_IN_PROGRESS"
  | "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
  | "UPDATE_COMPLETE"
  | "UPDATE_ROLLBACK_IN_PROGRESS"
  | "UPDATE_ROLLBACK_COMPLETE";

export interface ElasticStackSpec {
  region: string;
  stackName: string;
  /** Desired capacity of the group (the instances running when the stack is created). */
  instances: number;
  /** `BuildkiteAgentTokenParameterStorePath`, e.g. `/aws/reference/secretsmanager/buildkite/agent-token`. */
  tokenParameterPath: string;
  /** `BuildkiteAgentTokenParameterStoreKMSKey` (a key id; default empty). */
  tokenKmsKey?: string;
  /** `ManagedPolicyARNs` (default none). */
  managedPolicyArns?: readonly string[];
  /** `InstanceRoleARN` (bring your own role; default empty, the stack creates `<stack>-Role`). */
  instanceRoleArn?: string;
  /** `InstanceRoleName` (default empty). */
  instanceRoleName?: string;
  platform?: Platform;
  minSize?: number;
  maxSize?: number;
  /** `ScaleInIdlePeriod` in seconds, as the parameter says (default 600). */
  scaleInIdlePeriodSeconds?: number;
  /** `InstanceScaleInProtection` (default true). */
  instanceScaleInProtection?: boolean;
  /** `BuildkiteQueue` (default `default`). */
  queue?: string;
  /** Stack-level tags (CloudFormation propagates them to the group and, at launch, to instances). */
  tags?: Record<string, string>;
  /** Everything else about the group's simulation: jobs, idle period in ms, SSM agent, scaler. */
  group?: Omit<
    GroupSpec,
    | "region"
    | "name"
    | "instances"
    | "minSize"
    | "maxSize"
    | "platform"
    | "newInstancesProtectedFromScaleIn"
    | "tags"
    | "groupTags"
  >;
}

export interface StackView {
  region: string;
  stackName: string;
  stackId: string;
  status: StackStatus;
  statusReason?: string;
  creationTime: Date;
  lastUpdatedTime?: Date;
  parameters: Array<{ key: string; value: string }>;
  outputs: Array<{ key: string; value: string; description?: string; exportName?: string }>;
  tags: Array<{ key: string; value: string }>;
}

export interface ReplaceGroupOptions {
  /** CreationPolicy timeout for the new group to fill (default: scaled PT5M/PT10M, see `creationTimeoutMs`). */
  timeoutMs?: number;
  /** How long both groups stay in service once the new one is full, before cleanup (default 0). */
  cleanupDelayMs?: number;
}

interface StackState {
  spec: ElasticStackSpec;
  stackId: string;
  status: StackStatus;
  statusReason?: string;
  creationTime: Date;
  lastUpdatedTime?: Date;
  groupName: string;
  generation: number;
}

export interface StacksOptions {
  fleet: Fleet;
  now?: () => number;
  /** InstanceCreationTimeout scaled: Linux PT5M, Windows PT10M by default (templates/aws-stack.yml). */
  creationTimeoutMs?: { linux?: number; windows?: number };
  /** How often replaceGroup checks on the new group (default 20 ms). */
  pollMs?: number;
}

export class ElasticStacks {
  readonly #fleet: Fleet;
  readonly #now: () => number;
  readonly #stacks = new Map<string, StackState>();
  readonly #creationTimeoutMs: { linux: number; windows: number };
  readonly #pollMs: number;
  #closed = false;

  constructor(options: StacksOptions) {
    this.#fleet = options.fleet;
    this.#now = options.now ?? Date.now;
    this.#creationTimeoutMs = {
      linux: options.creationTimeoutMs?.linux ?? 5_000,
      windows: options.creationTimeoutMs?.windows ?? 10_000,
    };
    this.#pollMs = options.pollMs ?? 20;
  }

  /** Creates the stack and its group; the group's instances are running already (they boot with the fleet's initial boots). */
  create(spec: ElasticStackSpec): StackView {
    const key = stackKey(spec.region, spec.stackName);
    if (this.#stacks.has(key)) throw new Error(`stack ${spec.stackName} exists in ${spec.region}`);
    const stackId = `arn:aws:cloudformation:${spec.region}:${ACCOUNT_ID}:stack/${spec.stackName}/${randomUUID()}`;
    const state: StackState = {
      spec,
      stackId,
      status: "CREATE_COMPLETE",
      creationTime: new Date(this.#now()),
      groupName: generatedName(spec.stackName, GROUP_LOGICAL_ID, stackId, 0),
      generation: 0,
    };
    this.#fleet.addGroup(this.#groupSpec(state, state.groupName), { launch: false });
    this.#stacks.set(key, state);
    return view(state);
  }

  describe(region: string, stackName?: string): StackView[] {
    const all = [...this.#stacks.values()].filter((state) => state.spec.region === region);
    if (stackName === undefined) return all.map(view);
    // StackName accepts the name or the stack id.
    const found = all.filter((state) => state.spec.stackName === stackName || state.stackId === stackName);
    return found.map(view);
  }

  /** Every stack in every region. */
  all(): StackView[] {
    return [...this.#stacks.values()].map(view);
  }

  /** The stack's current group (the AutoScalingGroupName output). */
  groupName(region: string, stackName: string): string {
    return this.#require(region, stackName).groupName;
  }

  /**
   * Replaces the stack's group as an update with AutoScalingReplacingUpdate WillReplace does:
   * UPDATE_IN_PROGRESS while a new group (new generated name) launches and fills, both groups exist
   * meanwhile; then UPDATE_COMPLETE_CLEANUP_IN_PROGRESS, the AutoScalingGroupName output names
   * the new group and the old one is deleted (its instances terminate); then UPDATE_COMPLETE.
   * A new group that does not fill in time is deleted and the stack ends UPDATE_ROLLBACK_COMPLETE.
   * Resolves with the stack's final view.
   */
  async replaceGroup(
    region: string,
    stackName: string,
    options: ReplaceGroupOptions = {},
  ): Promise<StackView> {
    const state = this.#require(region, stackName);
    if (state.status.endsWith("_IN_PROGRESS")) throw new Error(`stack ${stackName} is ${state.status}`);
    state.status = "UPDATE_IN_PROGRESS";
    delete state.statusReason;
    state.lastUpdatedTime = new Date(this.#now());
    state.generation += 1;
    const oldName = state.groupName;
    const newName = generatedName(stackName, GROUP_LOGICAL_ID, state.stackId, state.generation);
    this.#fleet.addGroup(this.#groupSpec(state, newName), { launch: true });

    const platform = state.spec.platform ?? "Linux";
    const timeoutMs =
      options.timeoutMs ??
      (platform === "Windows" ? this.#creationTimeoutMs.windows : this.#creationTimeoutMs.linux);
    const deadline = this.#now() + timeoutMs;
    while (!this.#fleet.groupFilled(region, newName)) {
      if (this.#closed) return view(state);
      if (this.#now() >= deadline) {
        state.status = "UPDATE_ROLLBACK_IN_PROGRESS";
        state.statusReason = `Group ${newName} did not receive the expected instance signals within the timeout.`;
        await this.#fleet.deleteGroup(region, newName);
        state.status = "UPDATE_ROLLBACK_COMPLETE";
        return view(state);
      }
      await sleep(this.#pollMs);
    }
    if ((options.cleanupDelayMs ?? 0) > 0) await sleep(options.cleanupDelayMs ?? 0);
    state.status = "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS";
    state.groupName = newName;
    await this.#fleet.deleteGroup(region, oldName);
    state.status = "UPDATE_COMPLETE";
    return view(state);
  }

  /** Stops waiting loops (a replaceGroup in flight returns where it is). */
  close(): void {
    this.#closed = true;
  }

  #require(region: string, stackName: string): StackState {
    const state = this.#stacks.get(stackKey(region, stackName));
    if (state === undefined) throw new Error(`no stack ${stackName} in ${region}`);
    return state;
  }

  #groupSpec(state: StackState, groupName: string): GroupSpec {
    const { spec } = state;
    // CloudFormation's own tags and the stack's tags propagate at launch; the template's
    // BuildkiteQueue and AgentsPerInstance group tags are PropagateAtLaunch: false.
    const groupTags: TagView[] = [
      { key: "aws:cloudformation:stack-name", value: spec.stackName, propagateAtLaunch: true },
      { key: "aws:cloudformation:stack-id", value: state.stackId, propagateAtLaunch: true },
      { key: "aws:cloudformation:logical-id", value: GROUP_LOGICAL_ID, propagateAtLaunch: true },
      { key: "BuildkiteQueue", value: spec.queue ?? "default", propagateAtLaunch: false },
      { key: "AgentsPerInstance", value: "1", propagateAtLaunch: false },
    ];
    return {
      ...spec.group,
      region: spec.region,
      name: groupName,
      instances: spec.instances,
      minSize: spec.minSize ?? 0,
      maxSize: spec.maxSize ?? Math.max(spec.instances, 10),
      platform: spec.platform ?? "Linux",
      newInstancesProtectedFromScaleIn: spec.instanceScaleInProtection ?? true,
      tags: { ...spec.tags },
      groupTags,
    };
  }
}

function view(state: StackState): StackView {
  const { spec } = state;
  const windows = spec.platform === "Windows";
  const roleName =
    spec.instanceRoleArn !== undefined && spec.instanceRoleArn !== ""
      ? (spec.instanceRoleArn.split("/").at(-1) ?? "")
      : spec.instanceRoleName || `${spec.stackName}-Role`;
  const parameters: Record<string, string> = {
    // NoEcho parameters come back masked.
    BuildkiteAgentToken: "****",
    BuildkiteAgentTokenParameterStorePath: spec.tokenParameterPath,
    BuildkiteAgentTokenParameterStoreKMSKey: spec.tokenKmsKey ?? "",
    BuildkiteQueue: spec.queue ?? "default",
    InstanceOperatingSystem: windows ? "windows" : "linux",
    InstanceScaleInProtection: String(spec.instanceScaleInProtection ?? true),
    DisableScaleIn: "true",
    MinSize: String(spec.minSize ?? 0),
    MaxSize: String(spec.maxSize ?? Math.max(spec.instances, 10)),
    ScaleInIdlePeriod: String(spec.scaleInIdlePeriodSeconds ?? 600),
    InstanceCreationTimeout: "",
    ManagedPolicyARNs: (spec.managedPolicyArns ?? []).join(","),
    ScalerManagedPolicyARNs: "",
    InstanceRoleARN: spec.instanceRoleArn ?? "",
    InstanceRoleName: spec.instanceRoleName ?? "",
    AgentsPerInstance: "1",
    BuildkiteTerminateInstanceAfterJob: "false",
  };
  return {
    region: spec.region,
    stackName: spec.stackName,
    stackId: state.stackId,
    status: state.status,
    ...(state.statusReason === undefined ? {} : { statusReason: state.statusReason }),
    creationTime: state.creationTime,
    ...(state.lastUpdatedTime === undefined ? {} : { lastUpdatedTime: state.lastUpdatedTime }),
    parameters: Object.entries(parameters).map(([key, value]) => ({ key, value })),
    outputs: [
      {
        key: "AutoScalingGroupName",
        value: state.groupName,
        exportName: `${spec.stackName}-AutoScalingGroupName`,
      },
      { key: "InstanceRoleName", value: roleName, exportName: `${spec.stackName}-InstanceRoleName` },
    ],
    tags: Object.entries(spec.tags ?? {}).map(([key, value]) => ({ key, value })),
  };
}

/**
 * CloudFormation's physical name for a resource without a fixed name: stack name, logical id and
 * a random upper-case suffix. Derived from the stack id and generation here, so it is stable per
 * run and different after every replacement.
 */
function generatedName(stackName: string, logicalId: string, stackId: string, generation: number): string {
  const digest = createHash("sha256").update(`${stackId}#${generation}`).digest();
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const suffix = Array.from(digest.subarray(0, 12), (byte) => alphabet[byte % alphabet.length]).join("");
  return `${stackName}-${logicalId}-${suffix}`;
}

function stackKey(region: string, stackName: string): string {
  return `${region}/${stackName}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

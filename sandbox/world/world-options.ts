/**
 * The options of a sandbox world (startWorld) and how its groups and stacks become the fleet's and
 * CloudFormation's specs: sizes, timings, the product's configuration, faults and observers.
 */
import type { GroupSpec, ScaleInProtectedInstances } from "../fakes/autoscaling/index";
import type { ThrottleProfile } from "../fakes/aws/throttle";
import type { ElasticStackSpec } from "../fakes/cloudformation/index";
import type { InvocationPhase, InvocationRecord } from "../fakes/lambda/local-lambda";
import type { RunCommandStandInOptions } from "../fakes/ssm/index";
import type { RotationEvent } from "./secrets-manager-rotation";

/** The shape both functions export. */
export type FunctionHandler = (
  event: unknown,
  context?: { getRemainingTimeInMillis(): number },
) => Promise<unknown>;

/** Options of the stock-stack simulation a plain group or a stack's group takes (see GroupSpec). */
export type WorldFleetGroupOptions = Pick<GroupSpec, (typeof FLEET_GROUP_OPTIONS)[number]>;

/** The GroupSpec fields a world group or stack passes through to the fleet as they are. */
const FLEET_GROUP_OPTIONS = [
  "newInstancesProtectedFromScaleIn",
  "platform",
  "idlePeriodMs",
  "jobs",
  "scaler",
  "ssmAgent",
  "minSize",
  "maxSize",
] as const;

export interface WorldGroup extends WorldFleetGroupOptions {
  region: string;
  name: string;
  instances: number;
  /** Legacy: how many instances run a job at the start (= jobs.busyAtStart). */
  protectedInstances?: number;
}

/** An Elastic CI Stack: a CloudFormation stack and its `<stack>-AgentAutoScaleGroup-<random>` group. */
export interface WorldStack extends WorldFleetGroupOptions {
  region: string;
  stackName: string;
  instances: number;
  /** BuildkiteAgentTokenParameterStorePath; default the secret's SSM reference path. */
  tokenParameterPath?: string;
  tokenKmsKey?: string;
  managedPolicyArns?: string[];
  instanceRoleArn?: string;
  instanceRoleName?: string;
  scaleInIdlePeriodSeconds?: number;
  tags?: Record<string, string>;
}

export interface WorldOptions {
  primaryRegion?: string;
  replicaRegions?: string[];
  /** Plain Auto Scaling groups (may be empty when `stacks` are given). */
  groups: WorldGroup[];
  /** Elastic CI Stacks. */
  stacks?: WorldStack[];
  /** A Wait refresh fails after this long blocked on protected instances (AWS: one hour). Default 2000 ms. */
  protectedWaitMs?: number;
  /** Agent restart and terminate-instance timings, scaled (see FleetOptions). */
  agentTimings?: {
    linuxRestartDelayMs?: number;
    windowsRestartDelayMs?: number;
    terminateDelayMs?: number;
    maxAgentRestarts?: number;
  };
  /** Replication lag to every replica region (default 300 ms); see `replicator.setLag`. */
  replicaLagMs?: number;
  /** Time to launch and boot one instance in a refresh (default 100 ms). */
  replaceMs?: number;
  /** How long a busy protected instance keeps its job under a Wait refresh (default 300 ms). */
  jobMs?: number;
  /** Fail every instance refresh of the matching groups (all groups when both are omitted). */
  failRefresh?: { region?: string; groupName?: string };
  /** Make the Buildkite API fail a share of requests (502/429), after the fleet's first registration. */
  buildkiteFlaky?: boolean;
  refresh?: {
    minHealthyPercentage?: number;
    /** Seconds in the contract; the stand-in waits that many milliseconds. Default 0. */
    instanceWarmupSeconds?: number;
    scaleInProtectedInstances?: ScaleInProtectedInstances;
  };
  /** ROLLOUT_STRATEGY of the product (default in-place). */
  strategy?: "in-place" | "refresh";
  /** The product's in-place settings (IN_PLACE_*, BOOT_GRACE_SECONDS), in real seconds. */
  inPlace?: {
    fallback?: "alert" | "refresh" | "terminate";
    fallbackAfterSeconds?: number;
    retrySeconds?: number;
    deliveryTimeoutSeconds?: number;
    bootGraceSeconds?: number;
  };
  /** The Run Command stand-in's settings (see RunCommandStandInOptions); default msPerAwsSecond 100, linuxStep "mirror". */
  runCommand?: Pick<
    RunCommandStandInOptions,
    | "invocationDelayMs"
    | "commandLatencyMs"
    | "msPerAwsSecond"
    | "linuxStep"
    | "throttle"
    | "midRunTermination"
  >;
  /** Default 600. */
  maxRolloutSeconds?: number;
  /** Default 60. */
  replicaAlertSeconds?: number;
  /** Default `buildkite/agent-token`. */
  secretName?: string;
  /** The functions' configured timeouts (default 900 s each). */
  timeoutsMs?: { rotateToken?: number; reconcile?: number };
  handlers: { rotateToken: FunctionHandler; reconcile: FunctionHandler };
  /**
   * Throttling profiles (a token bucket per region, see throttle.ts) of the Auto Scaling stand-in
   * and of the SSM stand-in's Run Command operations; off by default. `ssm` wins over
   * `runCommand.throttle`.
   */
  throttle?: { autoScaling?: ThrottleProfile; ssm?: ThrottleProfile };
  /** The local Lambda's modelled per-invocation overhead, before each handler start (default 0). */
  lambdaOverheadMs?: number;
  /**
   * How reconcile triggers reach reconcile: "async" (default) invokes it asynchronously for each
   * bus event; "queue" sends each bus event to an SQS FIFO queue (one message group) that an event
   * source mapping stand-in drains into reconcile in batches of up to 10 (see sqs-event-source.ts).
   * Either way the env names RECONCILE_QUEUE_URL, where rotate-token sends its rotation message.
   */
  delivery?: "queue" | "async";
  /**
   * Deliveries the event bus makes at once (default 1, in put order). EventBridge guarantees no
   * order and delivers concurrently (event-bus.ts maxInFlight); the bench and the scenario tests
   * run with more than one.
   */
  busDeliveriesInFlight?: number;
  /**
   * The trigger queue's VisibilityTimeout in seconds: how long a batch stays hidden while it runs
   * (and after a failure the handler could not bring forward). Default: six times reconcile's
   * timeout, as the template sets it ("at least six times the timeout that you configure on your
   * function", https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html), so a
   * long run's batch is never delivered a second time while it runs.
   */
  queueVisibilityTimeoutSeconds?: number;
  /** Observers for a CLI: every Lambda invocation phase, every event put on the bus. Must not throw. */
  onInvoke?: (record: InvocationRecord, phase: InvocationPhase) => void;
  onEvent?: (event: unknown) => void;
  /** Typed hooks for a CLI's narration (must not throw): what the Secrets Manager player did ... */
  onRotation?: (event: RotationEvent) => void;
  /** ... and what each reconcile run that returned said about itself (see ReconcileRunSummary). */
  onReconcileEnded?: (summary: ReconcileRunSummary) => void;
}

/**
 * The part of reconcile's returned summary the sandbox narrates (functions/reconcile/handler.ts,
 * `ReconcileSummary`; the world takes the handlers as given and reads their result by shape). A run
 * that ends waiting for "replicas" with a version ran out of its wait budget for the replicas
 * (shared/rollout/reconcile.ts: the only exit of its loop while replicas lag).
 */
export interface ReconcileRunSummary {
  versionId: string | undefined;
  complete: boolean;
  waitingFor: string[];
}

/** The summary in a reconcile handler's result, when it returned one (skipped and timed-out runs did not). */
export function reconcileRunSummary(result: unknown): ReconcileRunSummary | undefined {
  const r = result as { versionId?: unknown; complete?: unknown; waitingFor?: unknown } | null;
  if (!r || typeof r !== "object" || typeof r.complete !== "boolean" || !Array.isArray(r.waitingFor))
    return undefined;
  return {
    versionId: typeof r.versionId === "string" ? r.versionId : undefined,
    complete: r.complete,
    waitingFor: r.waitingFor.filter((w): w is string => typeof w === "string"),
  };
}

export function fleetGroupOptions(g: WorldFleetGroupOptions): WorldFleetGroupOptions {
  const spec: Record<string, unknown> = {};
  for (const key of FLEET_GROUP_OPTIONS) if (g[key] !== undefined) spec[key] = g[key];
  // Built key by key from the type's own keys, so the cast only forgets the key-value pairing.
  return spec as WorldFleetGroupOptions;
}

export function stackSpec(stack: WorldStack, secretName: string): ElasticStackSpec {
  const { newInstancesProtectedFromScaleIn, platform, minSize, maxSize, ...rest } = stack;
  const group = fleetGroupOptions(rest);
  return {
    region: stack.region,
    stackName: stack.stackName,
    instances: stack.instances,
    tokenParameterPath: stack.tokenParameterPath ?? `/aws/reference/secretsmanager/${secretName}`,
    ...(stack.tokenKmsKey === undefined ? {} : { tokenKmsKey: stack.tokenKmsKey }),
    ...(stack.managedPolicyArns === undefined ? {} : { managedPolicyArns: stack.managedPolicyArns }),
    ...(stack.instanceRoleArn === undefined ? {} : { instanceRoleArn: stack.instanceRoleArn }),
    ...(stack.instanceRoleName === undefined ? {} : { instanceRoleName: stack.instanceRoleName }),
    ...(stack.scaleInIdlePeriodSeconds === undefined
      ? {}
      : { scaleInIdlePeriodSeconds: stack.scaleInIdlePeriodSeconds }),
    ...(stack.tags === undefined ? {} : { tags: stack.tags }),
    ...(platform === undefined ? {} : { platform }),
    ...(minSize === undefined ? {} : { minSize }),
    ...(maxSize === undefined ? {} : { maxSize }),
    ...(newInstancesProtectedFromScaleIn === undefined
      ? {}
      : { instanceScaleInProtection: newInstancesProtectedFromScaleIn }),
    group,
  };
}

export function checkGroups(
  groups: Array<{ region: string; name: string }>,
  primaryRegion: string,
  replicaRegions: string[],
): void {
  if (groups.length === 0) throw new Error("the world needs at least one Auto Scaling group or stack");
  if (replicaRegions.includes(primaryRegion)) {
    throw new Error(`replica regions must not include the primary region ${primaryRegion}`);
  }
  for (const group of groups) {
    if (group.region !== primaryRegion && !replicaRegions.includes(group.region)) {
      throw new Error(
        `group ${group.name} is in ${group.region}, which is neither the primary region nor a replica region`,
      );
    }
  }
}

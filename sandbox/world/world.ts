/**
 * One whole, local world for a rotation run, used by the end-to-end tests and by `npm run sandbox`:
 *
 *   moto (Secrets Manager, SSM, SNS, SQS, per-region backends)  + the local Buildkite API
 *   + simulated replication of the agent-token secret to the replica regions (with lag)
 *   + the EC2 Auto Scaling stand-in, whose instances boot and live like Elastic CI Stack agents
 *     (stock protection, jobs, idle self-termination, restarts, cfg files on disk)
 *   + EC2 DescribeInstances and CloudFormation DescribeStacks stand-ins fed by that fleet, and
 *     Elastic CI Stacks (a stack + its generated-name group) when asked for
 *   + a local Lambda endpoint running `rotate-token` and `reconcile` (serialized per function)
 *   + a local event bus standing for the EventBridge rules that trigger reconcile, delivering
 *     either as asynchronous invokes ("async") or into an SQS FIFO trigger queue drained by an
 *     event source mapping stand-in in batches ("queue"; see sqs-event-source.ts)
 *   + an SNS alert topic with an SQS queue subscribed, so alerts can be read back
 *   + a call meter the handlers' endpoints go through (world.meter()), optional throttling
 *     profiles on the Auto Scaling and SSM stand-ins, and a modelled Lambda invoke overhead.
 *
 * The handlers are passed in (this module never imports functions/), and the world sets
 * `process.env` to the configuration contract both read at their first invocation. Handlers cache
 * that configuration (and their SDK clients) at module level, so start at most one world per
 * module instance of the handlers: vitest isolates test files, and a CLI is one world per process.
 */

import { randomUUID } from "node:crypto";
import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from "@aws-sdk/client-lambda";
import { DescribeSecretCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { CreateTopicCommand, SNSClient, SubscribeCommand } from "@aws-sdk/client-sns";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { CONTINUATION_SOURCE } from "../../shared/rollout/handover";
import {
  type AutoScalingStandIn,
  type Fleet,
  type GroupSpec,
  type JobsSpec,
  type Platform,
  type ScaleInProtectedInstances,
  type SsmAgentState,
  startAutoScalingStandIn,
} from "../fakes/autoscaling/index";
import { type CallMeter, createCallMeter, type MeterCounts } from "../fakes/aws/call-meter";
import type { ThrottleProfile } from "../fakes/aws/throttle";
import type { BuildkiteApi } from "../fakes/buildkite/api";
import {
  type CloudFormationStandIn,
  type ElasticStackSpec,
  ElasticStacks,
  startCloudFormationStandIn,
} from "../fakes/cloudformation/index";
import { type Ec2StandIn, startEc2StandIn } from "../fakes/ec2/index";
import { createEventBus, type EventBus } from "../fakes/eventbridge/event-bus";
import { agentBoot, type BootHook } from "../fakes/instances/agent-boot";
import type { InstanceDirectory } from "../fakes/instances/instance-host";
import {
  type InvocationPhase,
  type InvocationRecord,
  type LocalLambda,
  startLocalLambda,
} from "../fakes/lambda/local-lambda";
import { type SqsEvent, type SqsEventSource, startSqsEventSource } from "../fakes/lambda/sqs-event-source";
import { type Replicator, startReplicator } from "../fakes/secrets-manager/replicator";
import {
  type RunCommandStandIn,
  type RunCommandStandInOptions,
  startRunCommandStandIn,
} from "../fakes/ssm/index";
import { removeLeftoverPending, STEP_ORDER, startRotation } from "./rotation-driver";
import { type RotationStack, startRotationStack, TEST_CREDENTIALS } from "./rotation-stack";
import { type RotationWatcher, watchRotations } from "./rotation-watcher";

/** The shape both functions export. */
export type FunctionHandler = (
  event: unknown,
  context?: { getRemainingTimeInMillis(): number },
) => Promise<unknown>;

/** Options of the stock-stack simulation a plain group or a stack's group takes (see GroupSpec). */
export interface WorldFleetGroupOptions {
  /** Default true (the stack's InstanceScaleInProtection default); false turns protection off. */
  newInstancesProtectedFromScaleIn?: boolean;
  platform?: Platform;
  /** ScaleInIdlePeriod scaled to ms; default never. */
  idlePeriodMs?: number;
  jobs?: JobsSpec;
  scaler?: false | { demand?: number; delayMs?: number };
  ssmAgent?: SsmAgentState;
  minSize?: number;
  maxSize?: number;
}

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
}

export interface Alert {
  subject: string | undefined;
  message: string;
}

export interface RotationResult {
  versionId: string;
  /** Just after finishSecret returned, i.e. once AWSCURRENT had moved. */
  promotedAt: Date;
}

export interface World {
  /** The configuration contract both functions read, SDK endpoints included (also in process.env). */
  env: Record<string, string>;
  primaryRegion: string;
  replicaRegions: string[];
  secretArn: string;
  secretName: string;
  motoUrl: string;
  autoScalingUrl: string;
  ec2Url: string;
  cloudFormationUrl: string;
  alertTopicArn: string;
  stack: RotationStack;
  buildkite: BuildkiteApi;
  fleet: Fleet;
  /** The Elastic CI Stacks (CloudFormation's side); `stacks.replaceGroup` replaces a stack's group. */
  stacks: ElasticStacks;
  ec2: Ec2StandIn;
  cloudFormation: CloudFormationStandIn;
  /** Systems Manager: Run Command served by the stand-in, Parameter Store proxied to moto (one endpoint). */
  runCommand: RunCommandStandIn;
  /** The fleet as the Run Command stand-in reads it. */
  instanceDirectory(): InstanceDirectory;
  replicator: Replicator;
  lambda: LocalLambda;
  bus: EventBus;
  /** Secrets Manager client for the primary region. */
  secrets: SecretsManagerClient;
  /** The fleet's boot hook: how an instance reads the token and registers. */
  boot: BootHook;
  /** Plays Secrets Manager for one rotation; rejects naming the step that failed. */
  rotate(): Promise<RotationResult>;
  /**
   * Plays Secrets Manager for rotations started outside the world (`bk-agent-token rotate`,
   * `aws secretsmanager rotate-secret`): drives the four steps and sends the label event. Stopped by stop().
   */
  watchRotations(): RotationWatcher;
  /** Puts a schedule event on the bus (as the safety-net schedule rule would). */
  schedule(): void;
  /**
   * The FIFO queue reconcile's triggers go through in "queue" delivery (created in both modes), as
   * the handlers address it (RECONCILE_QUEUE_URL: through the call meter, so their sends are counted).
   */
  reconcileQueueUrl: string;
  delivery: "queue" | "async";
  /** The event source mapping stand-in draining the queue; undefined in "async" delivery. */
  eventSource: SqsEventSource | undefined;
  /** Every AWS call (`service:Action`) and Buildkite call (`METHOD /route`) the handlers made since the last reset. */
  meter(): MeterCounts;
  resetMeter(): void;
  /** Calls the stand-ins answered as throttled so far. */
  throttled(): { autoScaling: number; ssm: number };
  /**
   * One entry per trigger a reconcile handler started on: when it was sent (bus put in "async",
   * SentTimestamp in "queue"), when the handler started, the wait between, and the delivery number.
   */
  eventWaits(): EventWait[];
  /** Resolves when the bus, the local Lambda and the fleet (no active refresh) are idle; bounded. */
  settled(timeoutMs?: number): Promise<void>;
  /** Every alert received on the topic so far, oldest first. */
  alerts(): Promise<Alert[]>;
  /** Stops everything, in reverse order of start, even after a failure. Idempotent. */
  stop(): Promise<void>;
}

export interface EventWait {
  /** The bus event's id ("async") or the SQS message id ("queue"). */
  id: string;
  /** The bus event's id in both modes ("queue": read from the message body), when there is one. */
  eventId?: string;
  sentAt: Date;
  startedAt: Date;
  waitMs: number;
  /** 1 for the first delivery; more when a failed batch was retried ("queue" only). */
  receiveCount: number;
  /** A run's own continuation after a handover (shared/rollout/handover.ts), not a trigger from outside. */
  continuation: boolean;
}

export class RotationStepError extends Error {
  override name = "RotationStepError";
  constructor(
    readonly step: string,
    readonly versionId: string,
    detail: string,
  ) {
    super(`rotation step ${step} failed for version ${versionId}: ${detail}`);
  }
}

const ROTATE_TOKEN = "rotate-token";
const RECONCILE = "reconcile";
const ALERTS = "buildkite-agent-token-alerts";
const TRIGGER_QUEUE = "buildkite-agent-token-reconcile.fifo";
const TRIGGER_GROUP = "reconcile";

export async function startWorld(options: WorldOptions): Promise<World> {
  const primaryRegion = options.primaryRegion ?? "us-east-1";
  const replicaRegions = [...new Set(options.replicaRegions ?? ["us-west-2", "eu-west-1"])];
  checkGroups(
    [...options.groups, ...(options.stacks ?? []).map((stack) => ({ ...stack, name: stack.stackName }))],
    primaryRegion,
    replicaRegions,
  );

  const cleanups: Array<{ what: string; run: () => Promise<void> | void }> = [];
  const stopAll = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup.run();
      } catch (error) {
        errors.push(new Error(`stopping ${cleanup.what} failed: ${String(error)}`, { cause: error }));
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, "stopping the world failed");
  };

  try {
    const stack = await startRotationStack({
      region: primaryRegion,
      ...(options.secretName ? { secretName: options.secretName } : {}),
    });
    cleanups.push({ what: "moto and the Buildkite API", run: () => stack.stop() });
    const secrets = stack.secrets;
    const described = await secrets.send(new DescribeSecretCommand({ SecretId: stack.secretArn }));
    const secretName = described.Name ?? options.secretName ?? "buildkite/agent-token";
    const initialVersion = Object.entries(described.VersionIdsToStages ?? {}).find(([, s]) =>
      s.includes("AWSCURRENT"),
    )?.[0];
    if (!initialVersion) throw new Error("the new secret has no AWSCURRENT version");

    const replicator = await startReplicator({
      motoUrl: stack.moto.url,
      primaryRegion,
      secretName,
      replicaRegions,
      lagMs: options.replicaLagMs ?? 300,
    });
    cleanups.push({ what: "the replicator", run: () => replicator.stop() });
    await replicator.whenInSync(initialVersion, 10_000 + (options.replicaLagMs ?? 300));

    // Counts the handlers' calls only: their configured endpoints (below) go through it.
    const meter: CallMeter = createCallMeter();
    cleanups.push({ what: "the call meter", run: () => meter.close() });

    // The trigger queue exists in both delivery modes, so RECONCILE_QUEUE_URL always names a queue.
    // Its client is the sandbox's (EventBridge's SQS target and the event source mapping), not metered.
    const delivery = options.delivery ?? "queue";
    const visibilityTimeoutSeconds =
      options.queueVisibilityTimeoutSeconds ??
      6 * Math.ceil((options.timeoutsMs?.reconcile ?? 900_000) / 1_000);
    const triggerSqs = new SQSClient({
      region: primaryRegion,
      endpoint: stack.moto.url,
      credentials: TEST_CREDENTIALS,
      requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 },
    });
    cleanups.push({ what: "the trigger queue's client", run: () => triggerSqs.destroy() });
    const triggerQueue = await createTriggerQueue(triggerSqs, visibilityTimeoutSeconds);

    // Each trigger's wait from being sent to a reconcile handler starting on it (the "event wait").
    const putAt = new Map<string, number>();
    const waits: EventWait[] = [];
    const reconcile: FunctionHandler = (event, context) => {
      noteEventWaits(event, putAt, waits);
      return options.handlers.reconcile(event, context);
    };

    const lambda = await startLocalLambda({
      functions: {
        [ROTATE_TOKEN]: {
          handler: options.handlers.rotateToken,
          ...(options.timeoutsMs?.rotateToken ? { timeoutMs: options.timeoutsMs.rotateToken } : {}),
        },
        [RECONCILE]: {
          handler: reconcile,
          ...(options.timeoutsMs?.reconcile ? { timeoutMs: options.timeoutsMs.reconcile } : {}),
        },
      },
      ...(options.lambdaOverheadMs === undefined ? {} : { overheadMs: options.lambdaOverheadMs }),
      ...(options.onInvoke ? { onInvoke: options.onInvoke } : {}),
    });
    cleanups.push({ what: "the local Lambda", run: () => lambda.close() });

    let eventSource: SqsEventSource | undefined;
    if (delivery === "queue") {
      const source = startSqsEventSource({
        sqs: triggerSqs,
        queueUrl: triggerQueue.url,
        queueArn: triggerQueue.arn,
        region: primaryRegion,
        visibilityTimeoutSeconds,
        invoke: (event: SqsEvent) => lambda.invoke(RECONCILE, event),
      });
      eventSource = source;
      cleanups.push({ what: "the event source mapping", run: () => source.stop() });
    }

    const bus = createEventBus({
      deliver:
        delivery === "queue"
          ? (event) => sendTrigger(triggerSqs, triggerQueue.url, event)
          : (event) => lambda.invokeAsync(RECONCILE, event),
    });
    cleanups.push({ what: "the event bus", run: () => bus.close() });
    const put = (event: unknown) => {
      try {
        options.onEvent?.(event);
      } catch {
        // an observer must not break delivery
      }
      const id = (event as { id?: unknown } | null)?.id;
      if (typeof id === "string") putAt.set(id, Date.now());
      bus.put(event);
    };

    const boot = agentBoot({ motoUrl: stack.moto.url, secretName, buildkiteUrl: stack.buildkite.url });
    cleanups.push({ what: "the agents' SDK clients", run: () => boot.destroy() });

    const standIn: AutoScalingStandIn = await startAutoScalingStandIn({
      groups: options.groups.map(
        (g): GroupSpec => ({
          ...fleetGroupOptions(g),
          region: g.region,
          name: g.name,
          instances: g.instances,
          ...(g.protectedInstances === undefined ? {} : { protectedInstances: g.protectedInstances }),
        }),
      ),
      replaceMs: options.replaceMs ?? 100,
      jobMs: options.jobMs ?? 300,
      ...(options.protectedWaitMs === undefined ? {} : { protectedWaitMs: options.protectedWaitMs }),
      ...options.agentTimings,
      boot,
      startAgent: boot.startAgent,
      onEvent: put,
      ...(options.throttle?.autoScaling ? { throttle: options.throttle.autoScaling } : {}),
    });
    cleanups.push({ what: "the Auto Scaling stand-in", run: () => standIn.close() });
    const fleet = standIn.fleet;
    // The Buildkite agents REST API reads the agents' live state from the fleet, and a graceful stop
    // (force: false) lets the running job finish before the agent exits cleanly (on the stock stack
    // a clean exit runs terminate-instance: ExecStopPost on Linux, the nssm exit hook on Windows).
    const findInstance = (id: string) => fleet.findInstance(id);
    const stopTimers = new Set<NodeJS.Timeout>();
    stack.buildkite.setAgentHooks({
      connected: (name) => {
        const found = findInstance(name);
        return (
          found !== undefined && found.instance.lifecycleState === "InService" && found.instance.bootFinished
        );
      },
      stop: (name) => {
        let polls = 0;
        const poll = () => {
          const found = findInstance(name);
          if (found?.instance.lifecycleState !== "InService") return;
          if (found.instance.busy && polls++ < 6_000) {
            const t = setTimeout(() => {
              stopTimers.delete(t);
              poll();
            }, 50);
            stopTimers.add(t);
            return;
          }
          fleet.restartAgent(found.region, name, "clean");
        };
        poll();
      },
    });
    cleanups.push({
      what: "the agent stop timers",
      run: () => {
        for (const t of stopTimers) clearTimeout(t);
        stack.buildkite.setAgentHooks(undefined);
      },
    });

    const stacks = new ElasticStacks({ fleet });
    for (const stack of options.stacks ?? []) stacks.create(stackSpec(stack, secretName));
    const cloudFormation = await startCloudFormationStandIn({ stacks });
    cleanups.push({ what: "the CloudFormation stand-in", run: () => cloudFormation.close() });
    const ec2 = await startEc2StandIn({ instances: fleet });
    cleanups.push({ what: "the EC2 stand-in", run: () => ec2.close() });
    const runCommand = await startRunCommandStandIn({
      motoUrl: stack.moto.url,
      directory: fleet.instanceDirectory(),
      msPerAwsSecond: 100,
      // The TypeScript mirror of the Linux step (parity-tested against bash in the stand-in's own
      // tests) unless a caller asks for the real bash + AWS CLI run, which costs seconds per instance.
      linuxStep: "mirror",
      ...options.runCommand,
      ...(options.throttle?.ssm ? { throttle: options.throttle.ssm } : {}),
    });
    cleanups.push({ what: "the Run Command stand-in", run: () => runCommand.close() });

    // The fleet's instances booted before the sandbox existed; each runs its user data once now
    // (reads the initial token through SSM, writes its cfg, registers), as a real fleet had.
    const initialBoots = await fleet.bootInitialInstances();
    const failedBoots = initialBoots.filter((b) => !b.result?.ok);
    if (failedBoots.length > 0) {
      throw new Error(
        `initial agent registration failed: ${failedBoots.map((b) => `${b.region}/${b.groupName}/${b.instanceId}: ${b.result?.reason ?? "?"}`).join("; ")}`,
      );
    }

    const clientOptions = { region: primaryRegion, endpoint: stack.moto.url, credentials: TEST_CREDENTIALS };
    const sns = new SNSClient(clientOptions);
    const sqs = new SQSClient(clientOptions);
    const lambdaClient = new LambdaClient({
      region: primaryRegion,
      endpoint: lambda.url,
      credentials: TEST_CREDENTIALS,
      maxAttempts: 1,
      requestHandler: { connectionTimeout: 3_000, requestTimeout: 300_000 },
    });
    cleanups.push({
      what: "the SDK clients",
      run: () => {
        sns.destroy();
        sqs.destroy();
        lambdaClient.destroy();
      },
    });
    const topic = await sns.send(new CreateTopicCommand({ Name: ALERTS }));
    const queue = await sqs.send(new CreateQueueCommand({ QueueName: ALERTS }));
    const queueUrl = queue.QueueUrl;
    const queueArn = (
      await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }))
    ).Attributes?.QueueArn;
    const alertTopicArn = topic.TopicArn;
    if (!alertTopicArn || !queueUrl || !queueArn) throw new Error("moto returned no topic or queue");
    await sns.send(new SubscribeCommand({ TopicArn: alertTopicArn, Protocol: "sqs", Endpoint: queueArn }));

    // The handlers' endpoints, each through the call meter (moto's one serves Secrets Manager,
    // SNS and SQS; the meter tells them apart by the signing service).
    const buildkiteEndpoint = await meter.buildkite(stack.buildkite.url);
    const motoEndpoint = await meter.aws(stack.moto.url, "moto");
    // The SQS client sends to the QueueUrl's host when it differs from its endpoint
    // (@aws-sdk/middleware-sdk-sqs queueUrlMiddleware): the handlers' queue URL names the meter too.
    const handlerQueueUrl = `${motoEndpoint}${new URL(triggerQueue.url).pathname}`;
    const env: Record<string, string> = {
      ...stack.env,
      AWS_ENDPOINT_URL: motoEndpoint,
      BUILDKITE_API_URL: buildkiteEndpoint,
      BUILDKITE_AGENT_API_URL: buildkiteEndpoint,
      RECONCILE_QUEUE_URL: handlerQueueUrl,
      AWS_ENDPOINT_URL_LAMBDA: lambda.url,
      AWS_ENDPOINT_URL_AUTO_SCALING: await meter.aws(standIn.url, "autoscaling"),
      AWS_ENDPOINT_URL_EC2: await meter.aws(ec2.url, "ec2"),
      AWS_ENDPOINT_URL_CLOUDFORMATION: await meter.aws(cloudFormation.url, "cloudformation"),
      // The SDK uses one SSM endpoint for Run Command and Parameter Store: the stand-in serves both.
      AWS_ENDPOINT_URL_SSM: await meter.aws(runCommand.url, "ssm"),
      ROLLOUT_STRATEGY: options.strategy ?? "in-place",
      IN_PLACE_FALLBACK: options.inPlace?.fallback ?? "alert",
      IN_PLACE_FALLBACK_AFTER_SECONDS: String(options.inPlace?.fallbackAfterSeconds ?? 30),
      IN_PLACE_RETRY_SECONDS: String(options.inPlace?.retrySeconds ?? 2),
      IN_PLACE_DELIVERY_TIMEOUT_SECONDS: String(options.inPlace?.deliveryTimeoutSeconds ?? 30),
      BOOT_GRACE_SECONDS: String(options.inPlace?.bootGraceSeconds ?? 60),
      // Every part of the sandbox shares one clock: EC2 launch times cannot be ahead of reconcile's.
      CLOCK_SKEW_MS: "0",
      REPLICA_REGIONS: replicaRegions.join(","),
      // Stacks are targeted by name (their groups are found by their tags), plain groups by name.
      ...(options.groups.length === 0
        ? {}
        : { TARGET_GROUPS: options.groups.map((g) => `${g.region}:${g.name}`).join(",") }),
      ...(options.stacks === undefined || options.stacks.length === 0
        ? {}
        : { TARGET_STACKS: options.stacks.map((s) => `${s.region}:${s.stackName}`).join(",") }),
      ALERT_TOPIC_ARN: alertTopicArn,
      REFRESH_MIN_HEALTHY_PERCENTAGE: String(options.refresh?.minHealthyPercentage ?? 90),
      REFRESH_INSTANCE_WARMUP_SECONDS: String(options.refresh?.instanceWarmupSeconds ?? 0),
      REFRESH_SCALE_IN_PROTECTED_INSTANCES: options.refresh?.scaleInProtectedInstances ?? "Wait",
      MAX_ROLLOUT_SECONDS: String(options.maxRolloutSeconds ?? 600),
      REPLICA_ALERT_SECONDS: String(options.replicaAlertSeconds ?? 60),
    };
    const saved = new Map(Object.keys(env).map((key) => [key, process.env[key]]));
    Object.assign(process.env, env);
    cleanups.push({
      what: "process.env",
      run: () => {
        for (const [key, value] of saved) {
          if (value === undefined) delete process.env[key];
          else process.env[key] = value;
        }
      },
    });

    if (options.failRefresh) fleet.failRefreshes({ ...options.failRefresh });
    if (options.buildkiteFlaky) stack.buildkite.setFlaky({ probability: 0.15, seed: 7 });

    const received: Alert[] = [];
    let draining: Promise<void> = Promise.resolve();
    const drainAlerts = async (): Promise<void> => {
      for (let round = 0; round < 50; round++) {
        const out = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
            VisibilityTimeout: 30,
          }),
        );
        const messages = out.Messages ?? [];
        if (messages.length === 0) return;
        for (const message of messages) received.push(parseAlert(message.Body));
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
          }),
        );
      }
    };

    // Versions already being driven, by rotate() or by a watcher: nobody drives one twice.
    const claimed = new Set<string>();
    const watchers: RotationWatcher[] = [];
    cleanups.push({
      what: "the rotation watchers",
      run: async () => void (await Promise.all(watchers.map((w) => w.stop()))),
    });

    let stopping: Promise<void> | undefined;
    const world: World = {
      env,
      primaryRegion,
      replicaRegions,
      secretArn: stack.secretArn,
      secretName,
      motoUrl: stack.moto.url,
      autoScalingUrl: standIn.url,
      ec2Url: ec2.url,
      cloudFormationUrl: cloudFormation.url,
      alertTopicArn,
      stack,
      buildkite: stack.buildkite,
      fleet,
      stacks,
      ec2,
      cloudFormation,
      runCommand,
      instanceDirectory: () => fleet.instanceDirectory(),
      replicator,
      lambda,
      bus,
      secrets,
      boot,
      reconcileQueueUrl: handlerQueueUrl,
      delivery,
      eventSource,
      meter: () => meter.counts(),
      resetMeter: () => meter.reset(),
      throttled: () => ({ autoScaling: standIn.throttled(), ssm: runCommand.throttled() }),
      eventWaits: () => waits.map((w) => ({ ...w })),

      async rotate() {
        const versionId = await startRotation(secrets, stack.secretArn, stack.rotationLambdaArn);
        claimed.add(versionId);
        for (const step of STEP_ORDER) {
          let out: InvokeCommandOutput;
          try {
            out = await lambdaClient.send(
              new InvokeCommand({
                FunctionName: ROTATE_TOKEN,
                InvocationType: "RequestResponse",
                Payload: new TextEncoder().encode(
                  JSON.stringify({ Step: step, SecretId: stack.secretArn, ClientRequestToken: versionId }),
                ),
              }),
            );
          } catch (error) {
            throw new RotationStepError(
              step,
              versionId,
              error instanceof Error ? `${error.name}: ${error.message}` : String(error),
            );
          }
          if (out.FunctionError) throw new RotationStepError(step, versionId, functionError(out.Payload));
        }
        const promotedAt = new Date();
        // AWS removes AWSPENDING at the end of a rotation; moto leaves it, then refuses the next
        // RotateSecret (from the CLI, say). End the rotation as AWS does.
        await removeLeftoverPending(secrets, stack.secretArn);
        // Secrets Manager's native event for the AWSCURRENT move, on the primary region's bus.
        put(bus.labelUpdated({ secretArn: stack.secretArn, region: primaryRegion, versionId }));
        return { versionId, promotedAt };
      },

      watchRotations() {
        const watcher = watchRotations({
          secrets,
          secretArn: stack.secretArn,
          claimed,
          invokeStep: async (step, versionId) => {
            const r = await lambda.invoke(ROTATE_TOKEN, {
              Step: step,
              SecretId: stack.secretArn,
              ClientRequestToken: versionId,
            });
            return r.ok ? { ok: true } : { ok: false, error: `${r.errorType}: ${r.errorMessage}` };
          },
          promoted: (versionId) =>
            put(bus.labelUpdated({ secretArn: stack.secretArn, region: primaryRegion, versionId })),
        });
        watchers.push(watcher);
        return watcher;
      },

      schedule() {
        put(bus.schedule({ region: primaryRegion }));
      },

      async settled(timeoutMs = 60_000) {
        const deadline = Date.now() + timeoutMs;
        let quiet = 0;
        for (;;) {
          const busy = busyParts(bus, lambda, fleet, stacks, runCommand);
          if (eventSource) {
            if (eventSource.busy()) busy.push("event source mapping running a batch");
            const depth = await queueDepth(triggerSqs, triggerQueue.url).catch(() => -1);
            if (depth !== 0) busy.push(`trigger queue: ${depth < 0 ? "unreadable" : `${depth} message(s)`}`);
          }
          quiet = busy.length === 0 ? quiet + 1 : 0;
          // Idle on three checks in a row: nothing can be in a hand-off between the parts.
          if (quiet >= 3) return;
          if (Date.now() >= deadline) {
            throw new Error(`world not settled after ${timeoutMs} ms: ${busy.join("; ") || "flapping"}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      },

      alerts() {
        const run = draining.then(drainAlerts);
        draining = run.catch(() => {});
        return run.then(() => [...received]);
      },

      stop() {
        stopping ??= stopAll();
        return stopping;
      },
    };
    return world;
  } catch (error) {
    await stopAll().catch(() => {});
    throw error;
  }
}

/** The FIFO queue in front of reconcile: one message group, deduplicated by event id. */
async function createTriggerQueue(
  sqs: SQSClient,
  visibilityTimeoutSeconds: number,
): Promise<{ url: string; arn: string }> {
  const created = await sqs.send(
    new CreateQueueCommand({
      QueueName: TRIGGER_QUEUE,
      Attributes: { FifoQueue: "true", VisibilityTimeout: String(visibilityTimeoutSeconds) },
    }),
  );
  const url = created.QueueUrl;
  const arn = url
    ? (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["QueueArn"] })))
        .Attributes?.QueueArn
    : undefined;
  if (!url || !arn) throw new Error("moto returned no trigger queue");
  return { url, arn };
}

/**
 * What an EventBridge rule with an SQS FIFO target does with an event: SendMessage with the event
 * as the body, the rule's MessageGroupId, and (no content-based deduplication) the event id as
 * MessageDeduplicationId, so a redelivered event is dropped within SQS's five-minute
 * deduplication interval (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/using-messagededuplicationid-property.html).
 */
async function sendTrigger(sqs: SQSClient, queueUrl: string, event: unknown): Promise<void> {
  const id = (event as { id?: unknown } | null)?.id;
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: queueUrl,
      MessageBody: JSON.stringify(event),
      MessageGroupId: TRIGGER_GROUP,
      MessageDeduplicationId: typeof id === "string" && id !== "" ? id : randomUUID(),
    }),
  );
}

async function queueDepth(sqs: SQSClient, queueUrl: string): Promise<number> {
  const out = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return (
    Number(out.Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

/** Records, at a reconcile handler's start, how long each trigger in its event waited. */
function noteEventWaits(event: unknown, putAt: Map<string, number>, waits: EventWait[]): void {
  const now = Date.now();
  const records = (event as { Records?: unknown } | null)?.Records;
  if (Array.isArray(records)) {
    for (const record of records as Array<{
      messageId?: unknown;
      eventSource?: unknown;
      body?: unknown;
      attributes?: Record<string, unknown>;
    }>) {
      if (record?.eventSource !== "aws:sqs") continue;
      const sent = Number(record.attributes?.SentTimestamp);
      if (!Number.isFinite(sent)) continue;
      const body = parsedBody(record.body);
      const eventId = typeof body?.id === "string" ? body.id : undefined;
      waits.push({
        id: String(record.messageId),
        ...(eventId === undefined ? {} : { eventId }),
        sentAt: new Date(sent),
        startedAt: new Date(now),
        waitMs: now - sent,
        receiveCount: Number(record.attributes?.ApproximateReceiveCount ?? 1),
        continuation: body?.source === CONTINUATION_SOURCE,
      });
    }
    return;
  }
  const id = (event as { id?: unknown } | null)?.id;
  const sent = typeof id === "string" ? putAt.get(id) : undefined;
  if (typeof id === "string" && sent !== undefined) {
    waits.push({
      id,
      eventId: id,
      sentAt: new Date(sent),
      startedAt: new Date(now),
      waitMs: now - sent,
      receiveCount: 1,
      continuation: false,
    });
  }
}

function parsedBody(body: unknown): { id?: unknown; source?: unknown } | undefined {
  if (typeof body !== "string") return undefined;
  try {
    const parsed = JSON.parse(body) as unknown;
    return typeof parsed === "object" && parsed !== null
      ? (parsed as { id?: unknown; source?: unknown })
      : undefined;
  } catch {
    return undefined;
  }
}

function fleetGroupOptions(g: WorldFleetGroupOptions): Omit<GroupSpec, "region" | "name" | "instances"> {
  const spec: Omit<GroupSpec, "region" | "name" | "instances"> = {};
  if (g.newInstancesProtectedFromScaleIn !== undefined)
    spec.newInstancesProtectedFromScaleIn = g.newInstancesProtectedFromScaleIn;
  if (g.platform !== undefined) spec.platform = g.platform;
  if (g.idlePeriodMs !== undefined) spec.idlePeriodMs = g.idlePeriodMs;
  if (g.jobs !== undefined) spec.jobs = g.jobs;
  if (g.scaler !== undefined) spec.scaler = g.scaler;
  if (g.ssmAgent !== undefined) spec.ssmAgent = g.ssmAgent;
  if (g.minSize !== undefined) spec.minSize = g.minSize;
  if (g.maxSize !== undefined) spec.maxSize = g.maxSize;
  return spec;
}

function stackSpec(stack: WorldStack, secretName: string): ElasticStackSpec {
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

function checkGroups(
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

function busyParts(
  bus: EventBus,
  lambda: LocalLambda,
  fleet: Fleet,
  stacks: ElasticStacks,
  runCommand: RunCommandStandIn,
): string[] {
  const busy: string[] = [];
  // Cheap views only: this runs every 25 ms while settling, on fleets of thousands of instances.
  const commands = runCommand.unfinished();
  if (commands.length > 0) busy.push(`commands: ${commands.join(", ")}`);
  if (!bus.isIdle()) busy.push("event bus delivering");
  const running = lambda.invocations().filter((r) => r.endedAt === undefined);
  if (running.length > 0)
    busy.push(
      `Lambda: ${running.map((r) => `${r.name} (${r.startedAt ? "running" : "queued"})`).join(", ")}`,
    );
  else if (!lambda.isIdle()) busy.push("Lambda busy");
  const active = fleet.activeRefreshes().map((r) => `${r.region}:${r.autoScalingGroupName} ${r.status}`);
  if (active.length > 0) busy.push(`refreshes: ${active.join(", ")}`);
  // Launches outside a refresh: replacements for churn, new groups of a stack update.
  const launching = fleet.launchingInstances().map((i) => `${i.region}:${i.instanceId}`);
  if (launching.length > 0) busy.push(`launching: ${launching.join(", ")}`);
  const updating = stacks.all().filter((stack) => stack.status.endsWith("_IN_PROGRESS"));
  if (updating.length > 0)
    busy.push(`stacks: ${updating.map((s) => `${s.region}:${s.stackName} ${s.status}`).join(", ")}`);
  return busy;
}

function functionError(payload: Uint8Array | undefined): string {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(payload ?? new Uint8Array())) as {
      errorType?: unknown;
      errorMessage?: unknown;
    };
    return `${String(parsed.errorType)}: ${String(parsed.errorMessage)}`;
  } catch {
    return "Unhandled (no error payload)";
  }
}

/** SNS delivers to SQS as a JSON envelope (raw delivery off) with Subject and Message. */
function parseAlert(body: string | undefined): Alert {
  try {
    const envelope = JSON.parse(body ?? "") as { Subject?: unknown; Message?: unknown };
    return {
      subject: typeof envelope.Subject === "string" ? envelope.Subject : undefined,
      message: typeof envelope.Message === "string" ? envelope.Message : String(envelope.Message),
    };
  } catch {
    return { subject: undefined, message: body ?? "" };
  }
}

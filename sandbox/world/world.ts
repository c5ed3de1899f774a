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
import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from "@aws-sdk/client-lambda";
import { DescribeSecretCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SNSClient } from "@aws-sdk/client-sns";
import { SQSClient } from "@aws-sdk/client-sqs";
import {
  type AutoScalingStandIn,
  type Fleet,
  type GroupSpec,
  startAutoScalingStandIn,
} from "../fakes/autoscaling/index";
import { type CallMeter, createCallMeter, type MeterCounts } from "../fakes/aws/call-meter";
import type { BuildkiteApi } from "../fakes/buildkite/api";
import {
  type CloudFormationStandIn,
  ElasticStacks,
  startCloudFormationStandIn,
} from "../fakes/cloudformation/index";
import { type Ec2StandIn, startEc2StandIn } from "../fakes/ec2/index";
import { createEventBus, type EventBus } from "../fakes/eventbridge/event-bus";
import { agentBoot, type BootHook } from "../fakes/instances/agent-boot";
import type { InstanceDirectory } from "../fakes/instances/instance-host";
import { type LocalLambda, startLocalLambda } from "../fakes/lambda/local-lambda";
import { type SqsEvent, type SqsEventSource, startSqsEventSource } from "../fakes/lambda/sqs-event-source";
import { type Replicator, startReplicator } from "../fakes/secrets-manager/replicator";
import { type RunCommandStandIn, startRunCommandStandIn } from "../fakes/ssm/index";
import { type Alert, createAlertInbox } from "./alert-inbox";
import { type EventWait, noteEventWaits } from "./event-waits";
import { type RotationStack, startRotationStack, TEST_CREDENTIALS } from "./rotation-stack";
import { type RotationWatcher, watchRotations } from "./rotation-watcher";
import {
  playRotation,
  type RotationPlayerOptions,
  RotationStepError,
  type StepInvoker,
  startRotation,
} from "./secrets-manager-rotation";
import { waitSettled } from "./settle";
import { createTriggerQueue, queueDepth, sendTrigger } from "./trigger-queue";
import {
  checkGroups,
  type FunctionHandler,
  fleetGroupOptions,
  reconcileRunSummary,
  stackSpec,
  type WorldOptions,
} from "./world-options";

export type { Alert } from "./alert-inbox";
export type { EventWait } from "./event-waits";
export { RotationStepError } from "./secrets-manager-rotation";
export type {
  FunctionHandler,
  ReconcileRunSummary,
  WorldFleetGroupOptions,
  WorldGroup,
  WorldOptions,
  WorldStack,
} from "./world-options";

export interface RotationResult {
  versionId: string;
  /** Just after finishSecret returned, i.e. once AWSCURRENT had moved. */
  promotedAt: Date;
  /** How many times the steps were driven (Secrets Manager retries a failed rotation). */
  attempts: number;
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
  /**
   * Plays Secrets Manager for one rotation (secrets-manager-rotation.ts: the four steps, the whole
   * rotation retried with the same version id); rejects with a RotationStepError naming the step
   * that failed in the last attempt. Aborting `signal` stops it between steps and retries.
   */
  rotate(options?: { signal?: AbortSignal }): Promise<RotationResult>;
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

const ROTATE_TOKEN = "rotate-token";
const RECONCILE = "reconcile";

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
    const visibilityTimeoutSeconds = options.queueVisibilityTimeoutSeconds ?? 2;
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
    const reconcile: FunctionHandler = async (event, context) => {
      noteEventWaits(event, putAt, waits);
      const result = await options.handlers.reconcile(event, context);
      const summary = reconcileRunSummary(result);
      try {
        if (summary) options.onReconcileEnded?.(summary);
      } catch {
        // an observer must not change the handler's result
      }
      return result;
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
    const inbox = await createAlertInbox(sns, sqs);
    const alertTopicArn = inbox.topicArn;

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

    // Versions already being driven, by rotate() or by a watcher: nobody drives one twice.
    const claimed = new Set<string>();
    const watchers: RotationWatcher[] = [];
    cleanups.push({
      what: "the rotation watchers",
      run: async () => void (await Promise.all(watchers.map((w) => w.stop()))),
    });

    // The one player of Secrets Manager's part, for rotate() and every watcher. Steps go to the
    // local Lambda through the real Lambda client (Invoke, RequestResponse), as Secrets Manager
    // invokes the rotation function.
    const invokeStep: StepInvoker = async (step, versionId) => {
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
        return {
          ok: false,
          error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        };
      }
      return out.FunctionError ? { ok: false, error: functionError(out.Payload) } : { ok: true };
    };
    const player: RotationPlayerOptions = {
      secrets,
      secretArn: stack.secretArn,
      invokeStep,
      // Secrets Manager's native event for the AWSCURRENT move, on the primary region's bus.
      promoted: (versionId) =>
        put(bus.labelUpdated({ secretArn: stack.secretArn, region: primaryRegion, versionId })),
      ...(options.onRotation ? { onEvent: options.onRotation } : {}),
    };

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

      async rotate(rotateOptions = {}) {
        const versionId = await startRotation(secrets, stack.secretArn, stack.rotationLambdaArn);
        claimed.add(versionId);
        const outcome = await playRotation({ ...player, ...rotateOptions }, versionId);
        if (outcome.failure || !outcome.promotedAt) {
          const failure = outcome.failure ?? { step: "finishSecret", error: "no promotion" };
          throw new RotationStepError(failure.step, versionId, failure.error, outcome.attempts);
        }
        return { versionId, promotedAt: outcome.promotedAt, attempts: outcome.attempts };
      },

      watchRotations() {
        const watcher = watchRotations({ ...player, claimed });
        watchers.push(watcher);
        return watcher;
      },

      schedule() {
        put(bus.schedule({ region: primaryRegion }));
      },

      settled(timeoutMs = 60_000) {
        const source = eventSource;
        return waitSettled(
          {
            bus,
            lambda,
            fleet,
            stacks,
            runCommand,
            ...(source
              ? {
                  queue: async () => {
                    const busy = source.busy() ? ["event source mapping running a batch"] : [];
                    const depth = await queueDepth(triggerSqs, triggerQueue.url).catch(() => -1);
                    if (depth !== 0)
                      busy.push(`trigger queue: ${depth < 0 ? "unreadable" : `${depth} message(s)`}`);
                    return busy;
                  },
                }
              : {}),
          },
          timeoutMs,
        );
      },

      alerts: () => inbox.alerts(),

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

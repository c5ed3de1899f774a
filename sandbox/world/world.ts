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

import { LambdaClient } from "@aws-sdk/client-lambda";
import { DescribeSecretCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SNSClient } from "@aws-sdk/client-sns";
import { SQSClient } from "@aws-sdk/client-sqs";
import { versionHolding } from "../../shared/secrets/stages";
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
import type { EventBus } from "../fakes/eventbridge/event-bus";
import { agentBoot, type BootHook } from "../fakes/instances/agent-boot";
import type { InstanceDirectory } from "../fakes/instances/instance-host";
import type { LocalLambda } from "../fakes/lambda/local-lambda";
import type { SqsEventSource } from "../fakes/lambda/sqs-event-source";
import { type Replicator, startReplicator } from "../fakes/secrets-manager/replicator";
import { type RunCommandStandIn, startRunCommandStandIn } from "../fakes/ssm/index";
import { createCleanups } from "../lib/cleanups";
import { connectAgents } from "./agent-hooks";
import { type Alert, createAlertInbox } from "./alert-inbox";
import type { EventWait } from "./event-waits";
import { applyToProcessEnv, handlerEnv } from "./handler-env";
import { ROTATE_TOKEN, wireHandlers } from "./handler-wiring";
import { type RotationStack, startRotationStack, TEST_CREDENTIALS } from "./rotation-stack";
import { type RotationWatcher, watchRotations } from "./rotation-watcher";
import {
  lambdaStepInvoker,
  playRotation,
  type RotationPlayerOptions,
  RotationStepError,
  startRotation,
} from "./secrets-manager-rotation";
import { waitSettled } from "./settle";
import { checkGroups, fleetGroupOptions, stackSpec, type WorldOptions } from "./world-options";

export { RotationStepError } from "./secrets-manager-rotation";
export type { FunctionHandler, WorldGroup, WorldOptions, WorldStack } from "./world-options";

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
  /** moto's process, for the bench's CPU figures (undefined if it has none, e.g. already gone). */
  motoPid: number | undefined;
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

export async function startWorld(options: WorldOptions): Promise<World> {
  const primaryRegion = options.primaryRegion ?? "us-east-1";
  const replicaRegions = [...new Set(options.replicaRegions ?? ["us-west-2", "eu-west-1"])];
  checkGroups(
    [...options.groups, ...(options.stacks ?? []).map((stack) => ({ ...stack, name: stack.stackName }))],
    primaryRegion,
    replicaRegions,
  );

  const cleanups = createCleanups("stopping the world failed");
  const stopAll = () => cleanups.runAll();

  try {
    const stack = await startRotationStack({
      region: primaryRegion,
      ...(options.secretName ? { secretName: options.secretName } : {}),
    });
    cleanups.push({ what: "moto and the Buildkite API", run: () => stack.stop() });
    const secrets = stack.secrets;
    const described = await secrets.send(new DescribeSecretCommand({ SecretId: stack.secretArn }));
    const secretName = described.Name ?? options.secretName ?? "buildkite/agent-token";
    const initialVersion = versionHolding(described.VersionIdsToStages ?? {}, "AWSCURRENT");
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

    const { lambda, bus, put, eventSource, triggerQueue, delivery, waits, queueBusy } = await wireHandlers(
      options,
      { primaryRegion, motoUrl: stack.moto.url, secretArn: stack.secretArn, cleanups },
    );

    const boot = agentBoot({ motoUrl: stack.moto.url, secretName, buildkiteUrl: stack.buildkite.url });
    cleanups.push({ what: "the agents' AWS CLI and registration connections", run: () => boot.destroy() });

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
    const unhookAgents = connectAgents(stack.buildkite, fleet);
    cleanups.push({ what: "the agent stop timers", run: unhookAgents });

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

    const { env, handlerQueueUrl } = await handlerEnv(options, {
      stack,
      meter,
      lambdaUrl: lambda.url,
      autoScalingUrl: standIn.url,
      ec2Url: ec2.url,
      cloudFormationUrl: cloudFormation.url,
      runCommandUrl: runCommand.url,
      triggerQueueUrl: triggerQueue.url,
      alertTopicArn,
      replicaRegions,
    });
    cleanups.push({ what: "process.env", run: applyToProcessEnv(env) });

    if (options.failRefresh) fleet.failRefreshes({ ...options.failRefresh });
    if (options.buildkiteFlaky) stack.buildkite.setFlaky({ probability: 0.15, seed: 7 });

    // Versions already being driven, by rotate() or by a watcher: nobody drives one twice.
    const claimed = new Set<string>();
    const watchers: RotationWatcher[] = [];
    cleanups.push({
      what: "the rotation watchers",
      run: async () => void (await Promise.all(watchers.map((w) => w.stop()))),
    });

    // The one player of Secrets Manager's part, for rotate() and every watcher.
    const player: RotationPlayerOptions = {
      secrets,
      secretArn: stack.secretArn,
      invokeStep: lambdaStepInvoker(lambdaClient, ROTATE_TOKEN, stack.secretArn),
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
      motoPid: stack.moto.pid,
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
        return waitSettled(
          {
            bus,
            lambda,
            fleet,
            stacks,
            runCommand,
            ...(eventSource ? { queue: queueBusy } : {}),
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

/**
 * The configuration contract both handlers read (README "Configuration"), with every SDK endpoint
 * pointed at the world's stand-ins through the call meter, and its application to `process.env`.
 */
import type { CallMeter } from "../fakes/aws/call-meter";
import type { RotationStack } from "./rotation-stack";
import type { WorldOptions } from "./world-options";

export interface HandlerEnvParts {
  stack: RotationStack;
  meter: CallMeter;
  lambdaUrl: string;
  autoScalingUrl: string;
  ec2Url: string;
  cloudFormationUrl: string;
  runCommandUrl: string;
  /** The trigger queue's URL at moto. */
  triggerQueueUrl: string;
  alertTopicArn: string;
  replicaRegions: string[];
}

export async function handlerEnv(
  options: WorldOptions,
  parts: HandlerEnvParts,
): Promise<{ env: Record<string, string>; handlerQueueUrl: string }> {
  // The handlers' endpoints, each through the call meter (moto's one serves Secrets Manager,
  // SNS and SQS; the meter tells them apart by the signing service).
  const buildkiteEndpoint = await parts.meter.buildkite(parts.stack.buildkite.url);
  const motoEndpoint = await parts.meter.aws(parts.stack.moto.url, "moto");
  // The SQS client sends to the QueueUrl's host when it differs from its endpoint
  // (@aws-sdk/middleware-sdk-sqs queueUrlMiddleware): the handlers' queue URL names the meter too.
  const handlerQueueUrl = `${motoEndpoint}${new URL(parts.triggerQueueUrl).pathname}`;
  const env: Record<string, string> = {
    ...parts.stack.env,
    AWS_ENDPOINT_URL: motoEndpoint,
    BUILDKITE_API_URL: buildkiteEndpoint,
    BUILDKITE_AGENT_API_URL: buildkiteEndpoint,
    RECONCILE_QUEUE_URL: handlerQueueUrl,
    AWS_ENDPOINT_URL_LAMBDA: parts.lambdaUrl,
    AWS_ENDPOINT_URL_AUTO_SCALING: await parts.meter.aws(parts.autoScalingUrl, "autoscaling"),
    AWS_ENDPOINT_URL_EC2: await parts.meter.aws(parts.ec2Url, "ec2"),
    AWS_ENDPOINT_URL_CLOUDFORMATION: await parts.meter.aws(parts.cloudFormationUrl, "cloudformation"),
    // The SDK uses one SSM endpoint for Run Command and Parameter Store: the stand-in serves both.
    AWS_ENDPOINT_URL_SSM: await parts.meter.aws(parts.runCommandUrl, "ssm"),
    ROLLOUT_STRATEGY: options.strategy ?? "in-place",
    IN_PLACE_FALLBACK: options.inPlace?.fallback ?? "alert",
    IN_PLACE_FALLBACK_AFTER_SECONDS: String(options.inPlace?.fallbackAfterSeconds ?? 30),
    IN_PLACE_RETRY_SECONDS: String(options.inPlace?.retrySeconds ?? 2),
    IN_PLACE_DELIVERY_TIMEOUT_SECONDS: String(options.inPlace?.deliveryTimeoutSeconds ?? 30),
    BOOT_GRACE_SECONDS: String(options.inPlace?.bootGraceSeconds ?? 60),
    // Every part of the sandbox shares one clock: EC2 launch times cannot be ahead of reconcile's.
    CLOCK_SKEW_MS: "0",
    REPLICA_REGIONS: parts.replicaRegions.join(","),
    // Stacks are targeted by name (their groups are found by their tags), plain groups by name.
    ...(options.groups.length === 0
      ? {}
      : { TARGET_GROUPS: options.groups.map((g) => `${g.region}:${g.name}`).join(",") }),
    ...(options.stacks === undefined || options.stacks.length === 0
      ? {}
      : { TARGET_STACKS: options.stacks.map((s) => `${s.region}:${s.stackName}`).join(",") }),
    ALERT_TOPIC_ARN: parts.alertTopicArn,
    REFRESH_MIN_HEALTHY_PERCENTAGE: String(options.refresh?.minHealthyPercentage ?? 90),
    REFRESH_INSTANCE_WARMUP_SECONDS: String(options.refresh?.instanceWarmupSeconds ?? 0),
    REFRESH_SCALE_IN_PROTECTED_INSTANCES: options.refresh?.scaleInProtectedInstances ?? "Wait",
    MAX_ROLLOUT_SECONDS: String(options.maxRolloutSeconds ?? 600),
    REPLICA_ALERT_SECONDS: String(options.replicaAlertSeconds ?? 60),
  };
  return { env, handlerQueueUrl };
}

/** Sets `env` in process.env; returns what restores the values it replaced. */
export function applyToProcessEnv(env: Record<string, string>): () => void {
  const saved = new Map(Object.keys(env).map((key) => [key, process.env[key]]));
  Object.assign(process.env, env);
  return () => {
    for (const [key, value] of saved) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
}

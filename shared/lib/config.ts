import { isRegionName, parseSecretArn, parseServiceArn, type SecretArn } from "./arn";
import { ConfigError } from "./errors";

/**
 * Every setting of every function, parsed once at cold start. Errors name the variable, so a
 * misconfigured stack fails on its first invocation with a message an operator can act on.
 */

export type Env = Readonly<Record<string, string | undefined>>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SLUG = /^[a-z0-9][a-z0-9-]*$/;

/** A setting that must be a complete secret ARN (shared/lib/arn.ts has the rule). */
export function secretArnSetting(variable: string, value: string): SecretArn {
  const secret = parseSecretArn(value);
  if (!secret) {
    throw new ConfigError(
      variable,
      "must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>)",
    );
  }
  return secret;
}

export function required(env: Env, name: string): string {
  const v = env[name]?.trim();
  if (!v) throw new ConfigError(name, "is required");
  return v;
}

function optional(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v ? v : undefined;
}

export function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function httpUrl(env: Env, name: string, fallback: string): string {
  const raw = optional(env, name) ?? fallback;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `must be an absolute URL, got "${raw}"`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new ConfigError(name, "must be http(s)");
  // Plain http only for loopback: a token must never cross a network unencrypted.
  if (url.protocol === "http:" && !isLoopback(url.hostname)) {
    throw new ConfigError(name, "must use https (http is only allowed for loopback test servers)");
  }
  return raw.replace(/\/+$/, "");
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "[::1]" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function regionList(env: Env, name: string): string[] {
  const raw = optional(env, name);
  if (!raw) return [];
  const regions = raw
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  for (const r of regions)
    if (!isRegionName(r)) throw new ConfigError(name, `"${r}" is not an AWS region name`);
  return [...new Set(regions)];
}

export interface BuildkiteConfig {
  organization: string;
  clusterId: string;
  apiUrl: string;
  agentApiUrl: string;
  apiTokenSecretArn: string;
}

function buildkiteConfig(env: Env): BuildkiteConfig {
  const organization = required(env, "BUILDKITE_ORGANIZATION");
  if (!SLUG.test(organization))
    throw new ConfigError("BUILDKITE_ORGANIZATION", "must be an organization slug");
  const clusterId = required(env, "BUILDKITE_CLUSTER_ID");
  if (!UUID.test(clusterId)) throw new ConfigError("BUILDKITE_CLUSTER_ID", "must be the cluster UUID");
  const apiTokenSecretArn = secretArnSetting(
    "BUILDKITE_API_TOKEN_SECRET_ARN",
    required(env, "BUILDKITE_API_TOKEN_SECRET_ARN"),
  ).arn;
  return {
    organization,
    clusterId,
    apiUrl: httpUrl(env, "BUILDKITE_API_URL", "https://api.buildkite.com"),
    agentApiUrl: httpUrl(env, "BUILDKITE_AGENT_API_URL", "https://agent.buildkite.com"),
    apiTokenSecretArn,
  };
}

export interface RotateTokenConfig {
  secret: SecretArn;
  buildkite: BuildkiteConfig;
  /** 0 = tokens never expire. */
  tokenExpirySeconds: number;
  /**
   * The reconciler's FIFO queue (RECONCILE_QUEUE_URL): finishSecret sends it one message; the
   * label event and the schedule are the backstops.
   */
  reconcileQueueUrl: string | undefined;
}

/**
 * An SQS FIFO queue URL, `<scheme>://<host>/<12-digit account>/<name>.fifo`: the name is at most 80
 * characters of alphanumerics, hyphens and underscores, ending in `.fifo`
 * (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html,
 * QueueName). The host is not pinned (sqs.<region>.amazonaws.com, the legacy queue.amazonaws.com
 * forms, or moto on loopback); https is required except for loopback, like every other URL here.
 */
const QUEUE_PATH = /^\/\d{12}\/[A-Za-z0-9_-]{1,75}\.fifo$/;

export function fifoQueueUrl(env: Env, name: string): string | undefined {
  const raw = optional(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `must be an SQS queue URL, got "${raw}"`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopback(url.hostname))) {
    throw new ConfigError(name, "must use https (http is only allowed for loopback test servers)");
  }
  if (!QUEUE_PATH.test(url.pathname) || url.search !== "" || url.hash !== "") {
    throw new ConfigError(
      name,
      `must be an SQS FIFO queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>.fifo), got "${raw}"`,
    );
  }
  return raw;
}

export function loadRotateTokenConfig(env: Env): RotateTokenConfig {
  const secret = secretArnSetting("ROTATION_SECRET_ARN", required(env, "ROTATION_SECRET_ARN"));
  const buildkite = buildkiteConfig(env);
  const tokenExpirySeconds = integer(env, "TOKEN_EXPIRY_SECONDS", 0, 0, 10 * 365 * 86_400);
  if (tokenExpirySeconds !== 0 && tokenExpirySeconds < 600) {
    // Buildkite refuses an expiry closer than 10 minutes; fail at cold start, not mid-rotation.
    throw new ConfigError(
      "TOKEN_EXPIRY_SECONDS",
      `must be 0 (no expiry) or at least 600, got ${tokenExpirySeconds}`,
    );
  }
  return {
    secret,
    buildkite,
    tokenExpirySeconds,
    reconcileQueueUrl: fifoQueueUrl(env, "RECONCILE_QUEUE_URL"),
  };
}

export type ScaleInProtectedInstances = "Refresh" | "Ignore" | "Wait";

export interface TargetGroup {
  region: string;
  groupName: string;
}

export interface RefreshPreferences {
  minHealthyPercentage: number;
  maxHealthyPercentage: number | undefined;
  instanceWarmupSeconds: number | undefined;
  scaleInProtectedInstances: ScaleInProtectedInstances;
}

/** An Elastic CI Stack for AWS, targeted by its CloudFormation stack name: its groups are found by their tags. */
export interface TargetStack {
  region: string;
  stackName: string;
}

/** How the new token reaches instances that booted with the old one. */
export type RolloutStrategy = "in-place" | "refresh";

/** What happens to an instance the in-place command cannot update within `fallbackAfterSeconds`. */
export type InPlaceFallback = "alert" | "refresh" | "terminate";

export interface InPlaceSettings {
  /** The SSM document this project's stacks create in every target region. */
  documentName: string;
  fallback: InPlaceFallback;
  /** Time since the instance's region served the new version before the fallback applies. */
  fallbackAfterSeconds: number;
  /** Least time between two commands to the same instance for one version. */
  retrySeconds: number;
  /** SendCommand's delivery timeout (TimeoutSeconds; AWS accepts 30 to 2,592,000). */
  deliveryTimeoutSeconds: number;
  /**
   * Upper bound for an instance launched before its region served the new version to finish its
   * boot (the stack's InstanceCreationTimeout: PT5M Linux, PT10M Windows); a document that still
   * reports boot-in-progress after this is treated as unreachable.
   */
  bootGraceSeconds: number;
}

export interface ReconcileConfig {
  secret: SecretArn;
  buildkite: BuildkiteConfig;
  replicaRegions: string[];
  /** Auto Scaling groups named explicitly (TARGET_GROUPS). */
  targets: TargetGroup[];
  /** Elastic CI Stacks (TARGET_STACKS): every group of the stack, old and new during a replacement. */
  stacks: TargetStack[];
  strategy: RolloutStrategy;
  inPlace: InPlaceSettings;
  refresh: RefreshPreferences;
  /**
   * How far EC2's clock (instance launch times) may be ahead of ours (the recorded sync time): a
   * launch closer than this to the sync does not prove the instance read the new token.
   */
  clockSkewMs: number;
  /** A rollout older than this alerts (it is not stopped: stopping could strand instances). */
  maxRolloutSeconds: number;
  /** A replica still serving an older version this long after a rotation is reported. */
  replicaAlertSeconds: number;
  alertTopicArn: string | undefined;
  /**
   * The FIFO queue every trigger arrives on (RECONCILE_QUEUE_URL): when a run fails, the batch's
   * messages are made visible again after `triggerRetrySeconds` (doubling per receive) instead of
   * the queue's visibility timeout. Unset: they come back after the visibility timeout.
   */
  queueUrl: string | undefined;
  /** First retry delay of a failed batch (TRIGGER_RETRY_SECONDS). */
  triggerRetrySeconds: number;
}

/**
 * A `region:name,…` list (commas or white space between items), each region the secret's primary or
 * a replica region; duplicates dropped. `what` names the second part in errors.
 */
function regionQualified(
  variable: string,
  raw: string,
  allowedRegions: readonly string[],
  name: RegExp,
  what: string,
): Array<{ region: string; name: string }> {
  const items: Array<{ region: string; name: string }> = [];
  const seen = new Set<string>();
  for (const item of raw
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean)) {
    const i = item.indexOf(":");
    const region = i > 0 ? item.slice(0, i) : "";
    const rest = i > 0 ? item.slice(i + 1) : "";
    if (!isRegionName(region) || !name.test(rest)) {
      throw new ConfigError(variable, `"${item}" must be region:${what}`);
    }
    if (!allowedRegions.includes(region)) {
      throw new ConfigError(
        variable,
        `region ${region} of "${item}" is neither the secret's primary region nor one of its replica regions (${allowedRegions.join(", ")})`,
      );
    }
    const key = `${region}:${rest}`;
    if (!seen.has(key)) items.push({ region, name: rest });
    seen.add(key);
  }
  return items;
}

/** Auto Scaling group names: 1–255 of these characters (API reference, AutoScalingGroupName). */
const GROUP_NAME = /^[\w\-.@+=/]{1,255}$/;

export function parseTargets(
  variable: string,
  raw: string,
  allowedRegions: readonly string[],
): TargetGroup[] {
  const targets = regionQualified(variable, raw, allowedRegions, GROUP_NAME, "auto-scaling-group-name").map(
    (t) => ({ region: t.region, groupName: t.name }),
  );
  if (targets.length === 0)
    throw new ConfigError(variable, "must name at least one region:auto-scaling-group-name");
  return targets;
}

/** CloudFormation stack names: a letter, then letters, digits and hyphens, at most 128 characters. */
const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;

export function parseStacks(variable: string, raw: string, allowedRegions: readonly string[]): TargetStack[] {
  return regionQualified(variable, raw, allowedRegions, STACK_NAME, "stack-name").map((s) => ({
    region: s.region,
    stackName: s.name,
  }));
}

/** The document name rule of SSM (3–128 of letters, digits, `_`, `-`, `.`). */
const DOCUMENT_NAME = /^[a-zA-Z0-9_.-]{3,128}$/;
export const DEFAULT_DOCUMENT_NAME = "BuildkiteAgentTokenRotation-InstallAgentToken";

function inPlaceSettings(env: Env): InPlaceSettings {
  const documentName = optional(env, "IN_PLACE_DOCUMENT_NAME") ?? DEFAULT_DOCUMENT_NAME;
  if (!DOCUMENT_NAME.test(documentName)) {
    throw new ConfigError("IN_PLACE_DOCUMENT_NAME", "must be an SSM document name");
  }
  const fallback = optional(env, "IN_PLACE_FALLBACK") ?? "alert";
  if (fallback !== "alert" && fallback !== "refresh" && fallback !== "terminate") {
    throw new ConfigError("IN_PLACE_FALLBACK", `must be alert, refresh or terminate, got "${fallback}"`);
  }
  return {
    documentName,
    fallback,
    fallbackAfterSeconds: integer(env, "IN_PLACE_FALLBACK_AFTER_SECONDS", 1800, 1, 7 * 86_400),
    retrySeconds: integer(env, "IN_PLACE_RETRY_SECONDS", 60, 1, 86_400),
    deliveryTimeoutSeconds: integer(env, "IN_PLACE_DELIVERY_TIMEOUT_SECONDS", 300, 30, 2_592_000),
    bootGraceSeconds: integer(env, "BOOT_GRACE_SECONDS", 600, 1, 86_400),
  };
}

export function loadReconcileConfig(env: Env): ReconcileConfig {
  const secret = secretArnSetting("ROTATION_SECRET_ARN", required(env, "ROTATION_SECRET_ARN"));
  const buildkite = buildkiteConfig(env);
  const replicaRegions = regionList(env, "REPLICA_REGIONS").filter((r) => r !== secret.region);
  const regions = [secret.region, ...replicaRegions];
  const rawGroups = optional(env, "TARGET_GROUPS");
  const rawStacks = optional(env, "TARGET_STACKS");
  if (!rawGroups && !rawStacks) {
    throw new ConfigError(
      "TARGET_STACKS",
      "or TARGET_GROUPS is required: region:stack-name (Elastic CI Stacks) or region:auto-scaling-group-name",
    );
  }
  const targets = rawGroups ? parseTargets("TARGET_GROUPS", rawGroups, regions) : [];
  const stacks = rawStacks ? parseStacks("TARGET_STACKS", rawStacks, regions) : [];
  if (rawStacks && stacks.length === 0)
    throw new ConfigError("TARGET_STACKS", "must name at least one region:stack-name");
  const strategy = optional(env, "ROLLOUT_STRATEGY") ?? "in-place";
  if (strategy !== "in-place" && strategy !== "refresh") {
    throw new ConfigError("ROLLOUT_STRATEGY", `must be in-place or refresh, got "${strategy}"`);
  }
  const scaleIn = optional(env, "REFRESH_SCALE_IN_PROTECTED_INSTANCES") ?? "Wait";
  if (scaleIn !== "Refresh" && scaleIn !== "Ignore" && scaleIn !== "Wait") {
    throw new ConfigError(
      "REFRESH_SCALE_IN_PROTECTED_INSTANCES",
      `must be Refresh, Ignore or Wait, got "${scaleIn}"`,
    );
  }
  const warmup = optional(env, "REFRESH_INSTANCE_WARMUP_SECONDS");
  const maxHealthy = optional(env, "REFRESH_MAX_HEALTHY_PERCENTAGE");
  const alertTopicArn = optional(env, "ALERT_TOPIC_ARN");
  if (alertTopicArn && !isTopicArn(alertTopicArn)) {
    throw new ConfigError("ALERT_TOPIC_ARN", "must be an SNS topic ARN");
  }
  return {
    secret,
    buildkite,
    replicaRegions,
    targets,
    stacks,
    strategy,
    inPlace: inPlaceSettings(env),
    refresh: {
      minHealthyPercentage: integer(env, "REFRESH_MIN_HEALTHY_PERCENTAGE", 90, 0, 100),
      maxHealthyPercentage:
        maxHealthy === undefined ? undefined : integer(env, "REFRESH_MAX_HEALTHY_PERCENTAGE", 100, 100, 200),
      instanceWarmupSeconds:
        warmup === undefined ? undefined : integer(env, "REFRESH_INSTANCE_WARMUP_SECONDS", 0, 0, 3600),
      scaleInProtectedInstances: scaleIn,
    },
    clockSkewMs: integer(env, "CLOCK_SKEW_MS", 1_000, 0, 60_000),
    maxRolloutSeconds: integer(env, "MAX_ROLLOUT_SECONDS", 4 * 3600, 60, 7 * 86_400),
    replicaAlertSeconds: integer(env, "REPLICA_ALERT_SECONDS", 900, 1, 86_400),
    alertTopicArn,
    queueUrl: fifoQueueUrl(env, "RECONCILE_QUEUE_URL"),
    triggerRetrySeconds: integer(env, "TRIGGER_RETRY_SECONDS", 30, 0, 900),
  };
}

/** An SNS topic ARN: regional, with an account, and a standard topic name of [\w-] (the alert topic is no FIFO topic). */
function isTopicArn(value: string): boolean {
  const arn = parseServiceArn(value, "sns", true);
  return arn !== undefined && /^[\w-]+$/.test(arn.resource);
}

import {
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import type { BuildkiteClient, CreatedClusterToken } from "../buildkite/client";
import { describeManagedToken, managedVersionOf } from "../buildkite/description";
import { isNotFound, isThrottling, isTimeout } from "../lib/aws/errors";
import type { RotateTokenConfig } from "../lib/config";
import { describeError, InputError, RotationStateError, TokenVerificationError } from "../lib/errors";
import { type Logger, registerSecret } from "../lib/log";
import type { MetricsSink } from "../lib/metrics";
import { truncate } from "../lib/redact";
import { describeSecret } from "../secrets/describe";

export const STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"] as const;
export type Step = (typeof STEPS)[number];

/** What Secrets Manager sends to a rotation function. */
export interface RotationEvent {
  Step: Step;
  SecretId: string;
  ClientRequestToken: string;
  /** Sent by Secrets Manager; passed back on PutSecretValue when present. */
  RotationToken?: string;
}

export interface RotationDeps {
  config: RotateTokenConfig;
  secrets: SecretsManagerClient;
  buildkite: Pick<BuildkiteClient, "createToken" | "listTokens" | "deleteToken" | "verifyAgentToken">;
  logger: Logger;
  metrics: MetricsSink;
  now: () => Date;
  /** Starts the reconciler without waiting for it; failures are logged, never fatal. */
  startReconcile?: (reason: { secretArn: string; versionId: string }) => Promise<void>;
  /** How old an unstored token must be to count as an orphan; default ORPHAN_MIN_AGE_MS. */
  orphanMinAgeMs?: number;
}

export function parseRotationEvent(event: unknown): RotationEvent {
  if (!event || typeof event !== "object") throw new InputError("rotation event must be an object");
  const e = event as Record<string, unknown>;
  const step = e.Step;
  if (typeof step !== "string" || !(STEPS as readonly string[]).includes(step)) {
    throw new InputError(`unknown rotation step ${JSON.stringify(String(step).slice(0, 40))}`);
  }
  const secretId = e.SecretId;
  const token = e.ClientRequestToken;
  if (typeof secretId !== "string" || secretId.length === 0) throw new InputError("SecretId is required");
  // Secrets Manager's own bound on a SecretId (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html).
  if (secretId.length > 2048)
    throw new InputError(`SecretId is ${secretId.length} characters long, over 2048`);
  if (typeof token !== "string" || !/^[A-Za-z0-9-]{32,64}$/.test(token)) {
    throw new InputError("ClientRequestToken must be a version id (32 to 64 letters, digits or dashes)");
  }
  const rotationToken = typeof e.RotationToken === "string" && e.RotationToken ? e.RotationToken : undefined;
  return {
    Step: step as Step,
    SecretId: secretId,
    ClientRequestToken: token,
    ...(rotationToken ? { RotationToken: rotationToken } : {}),
  };
}

/** Runs one step. Every step is idempotent: Secrets Manager may invoke any of them again. */
export async function rotate(event: RotationEvent, deps: RotationDeps): Promise<void> {
  const { config, logger } = deps;
  const versionId = event.ClientRequestToken;
  if (event.SecretId !== config.secret.arn) {
    // One deployment rotates one secret; a stray invocation must not touch another one.
    throw new InputError(
      `this function rotates only ${config.secret.arn}, not ${truncate(event.SecretId, 200)}`,
    );
  }

  const state = await describeSecret(deps.secrets, event.SecretId);
  if (!state.rotationEnabled) throw new RotationStateError(`rotation is not enabled for ${event.SecretId}`);
  const labels = state.stages[versionId];
  if (!labels) throw new RotationStateError(`version ${versionId} is not a version of ${event.SecretId}`);
  if (labels.includes("AWSCURRENT")) {
    logger.info("version is already AWSCURRENT; nothing to do", { step: event.Step, versionId });
    return;
  }
  if (!labels.includes("AWSPENDING")) {
    throw new RotationStateError(`version ${versionId} of ${event.SecretId} is not AWSPENDING`);
  }

  const started = Date.now();
  switch (event.Step) {
    case "createSecret":
      await createSecret(event, deps);
      break;
    case "setSecret":
      await setSecret(event, deps);
      break;
    case "testSecret":
      await testSecret(event, deps);
      break;
    case "finishSecret":
      await finishSecret(event, deps, state.current);
      break;
  }
  logger.info("rotation step done", { step: event.Step, versionId, ms: Date.now() - started });
}

/**
 * How long a managed token for the pending version may be another createSecret attempt's token
 * that is still on its way to PutSecretValue. No invocation outlives Lambda's 15-minute maximum
 * (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html), so an unstored token
 * older than that, plus a minute for clock skew between Buildkite and us, was left by an attempt
 * that can never store it.
 */
export const ORPHAN_MIN_AGE_MS = 16 * 60_000;

/** The pending version's value, or undefined while Secrets Manager's placeholder version is empty. */
async function pendingValue(
  event: RotationEvent,
  secrets: SecretsManagerClient,
): Promise<string | undefined> {
  const read = await readVersion(secrets, event.SecretId, event.ClientRequestToken, "AWSPENDING");
  if (read.kind === "unreadable") throw read.error;
  return read.kind === "value" ? read.value : undefined;
}

type VersionRead =
  | { kind: "value"; value: string }
  | { kind: "empty" }
  | { kind: "unreadable"; error: unknown };

/**
 * One version's value. Secrets Manager creates the AWSPENDING version id before any value exists
 * ("During rotation, Secrets Manager creates an AWSPENDING version ID before creating the new
 * secret version. To check if a secret version exists, call GetSecretValue."
 * https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html), so
 * ResourceNotFoundException means "no value yet", not "no such version".
 */
async function readVersion(
  secrets: SecretsManagerClient,
  secretId: string,
  versionId: string,
  stage?: string,
): Promise<VersionRead> {
  try {
    const out = await secrets.send(
      new GetSecretValueCommand({
        SecretId: secretId,
        VersionId: versionId,
        ...(stage ? { VersionStage: stage } : {}),
      }),
    );
    const value = out.SecretString;
    if (value) registerSecret(value);
    return value ? { kind: "value", value } : { kind: "empty" };
  } catch (error) {
    if (isNotFound(error)) return { kind: "empty" };
    return { kind: "unreadable", error };
  }
}

async function managedTokensFor(deps: RotationDeps, versionId: string) {
  const tokens = await deps.buildkite.listTokens();
  return tokens.filter((t) => managedVersionOf(t.description, deps.config.secret.arn) === versionId);
}

/**
 * True only when the service answered, on the SDK's first and only attempt, with a client error
 * that says the request was refused: nothing can have been stored. Everything else (a timeout, a
 * reset connection, a 5xx, a throttle after an earlier attempt whose response was lost) may have
 * committed.
 */
function definitelyNotCommitted(error: unknown): boolean {
  const e = error as { $metadata?: { httpStatusCode?: number; attempts?: number } };
  const status = e.$metadata?.httpStatusCode;
  const attempts = e.$metadata?.attempts ?? 1;
  // A throttle or a timeout says nothing about an earlier attempt whose answer was lost.
  const inconclusive = isThrottling(error) || isTimeout(error);
  return status !== undefined && status >= 400 && status < 500 && attempts <= 1 && !inconclusive;
}

async function createSecret(event: RotationEvent, deps: RotationDeps): Promise<void> {
  const { buildkite, config, logger, secrets } = deps;
  const versionId = event.ClientRequestToken;
  if (await pendingValue(event, secrets)) {
    logger.info("pending version already holds a token; createSecret is done", { versionId });
    return;
  }

  // A managed token for this version that is not stored is either left by an attempt that
  // crashed (it can never be used: revoke it) or belongs to an attempt still running (revoking it
  // would revoke the token that attempt is about to store). Age tells them apart.
  const minAge = deps.orphanMinAgeMs ?? ORPHAN_MIN_AGE_MS;
  const nowMs = deps.now().getTime();
  for (const token of await managedTokensFor(deps, versionId)) {
    const created = token.createdAt ? Date.parse(token.createdAt) : Number.NaN;
    if (Number.isFinite(created) && nowMs - created < minAge) {
      throw new RotationStateError(
        `another createSecret attempt for version ${versionId} created token ${token.id} at ${token.createdAt} and may still store it; nothing was changed. Secrets Manager retries the rotation; after ${new Date(created + minAge).toISOString()} an unstored token is revoked as an orphan`,
      );
    }
    const outcome = await buildkite.deleteToken(token.id);
    logger.warn("revoked a token left by an earlier createSecret attempt", {
      versionId,
      tokenId: token.id,
      createdAt: token.createdAt ?? null,
      outcome,
    });
    deps.metrics.put("OrphanTokensRevoked", 1, "Count");
  }

  const expiresAt =
    config.tokenExpirySeconds > 0
      ? new Date(deps.now().getTime() + config.tokenExpirySeconds * 1000)
      : undefined;
  const created = await buildkite.createToken({
    description: describeManagedToken(config.secret.arn, versionId),
    ...(expiresAt ? { expiresAt } : {}),
  });
  logger.info("created Buildkite cluster agent token", {
    versionId,
    tokenId: created.id,
    expiresAt: created.expiresAt ?? null,
  });

  try {
    await secrets.send(
      new PutSecretValueCommand({
        SecretId: event.SecretId,
        ClientRequestToken: versionId,
        SecretString: created.token,
        VersionStages: ["AWSPENDING"],
        ...(event.RotationToken ? { RotationToken: event.RotationToken } : {}),
      }),
    );
  } catch (error) {
    await settleFailedPut(event, deps, created, error);
    return;
  }
  deps.metrics.put("TokensCreated", 1, "Count");
  logger.info("stored the new token as AWSPENDING", { versionId, tokenId: created.id });
}

/**
 * PutSecretValue reported an error, which does not mean nothing was stored: its response may have
 * been lost after the commit (the SDK's retry then succeeds idempotently, is throttled, or times
 * out), or the commit may land after our request timed out. Revoking the new token then would
 * leave AWSPENDING holding a dead token. So read the version back and decide on what it holds.
 * Returns when the step is done; throws when it must be retried.
 */
async function settleFailedPut(
  event: RotationEvent,
  deps: RotationDeps,
  created: CreatedClusterToken,
  error: unknown,
): Promise<void> {
  const { logger, buildkite } = deps;
  const versionId = event.ClientRequestToken;
  const read = await readVersion(deps.secrets, event.SecretId, versionId);
  const fields = { versionId, tokenId: created.id, error: describeError(error) };
  if (read.kind === "value" && read.value === created.token) {
    deps.metrics.put("TokensCreated", 1, "Count");
    logger.warn("PutSecretValue reported an error, but the version holds the new token: stored", fields);
    return;
  }
  const revoke = async (why: string) => {
    await buildkite.deleteToken(created.id).then(
      (outcome) => logger.warn(why, { ...fields, outcome }),
      (cleanup: unknown) =>
        logger.error(`${why}; revoking it failed, the next attempt revokes it as an orphan`, {
          ...fields,
          cleanupError: describeError(cleanup),
        }),
    );
  };
  if (read.kind === "value") {
    // Another attempt stored its token first (a version's value never changes): ours is known
    // unstored, and nothing else would ever revoke it while its description names a live version.
    await revoke("the version already holds another token; revoked the new, unstored one");
    logger.info("pending version holds a token; createSecret is done", { versionId });
    return;
  }
  if (read.kind === "empty" && definitelyNotCommitted(error)) {
    await revoke("Secrets Manager refused to store the new token; revoked it");
    throw error;
  }
  // Unknown outcome: the commit may still land. Revoke nothing; the retried step finds the value,
  // or finds the token unstored and old enough to be an orphan.
  logger.warn("could not tell whether the new token was stored; left it for the retried step", {
    ...fields,
    readBack: read.kind === "unreadable" ? describeError(read.error) : "no value yet",
  });
  throw error;
}

/**
 * The pending token is gone from Buildkite (revoked by hand, or expired): this rotation can never
 * finish, and every retry would fail the same way. Take AWSPENDING off the version, so that
 * Secrets Manager (which refuses RotateSecret while AWSPENDING sits on a non-current version,
 * https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html) can start
 * a new rotation, and say exactly that.
 */
async function abandonDeadPending(event: RotationEvent, deps: RotationDeps, why: string): Promise<never> {
  const versionId = event.ClientRequestToken;
  const arn = event.SecretId;
  // Whatever is still listed for this version is useless now; nothing may keep it alive.
  for (const token of await managedTokensFor(deps, versionId)) {
    const outcome = await deps.buildkite.deleteToken(token.id);
    deps.logger.warn("revoked the abandoned pending version's token", {
      versionId,
      tokenId: token.id,
      outcome,
    });
  }
  try {
    await deps.secrets.send(
      new UpdateSecretVersionStageCommand({
        SecretId: arn,
        VersionStage: "AWSPENDING",
        RemoveFromVersionId: versionId,
      }),
    );
  } catch (error) {
    throw new RotationStateError(
      `${why}. Removing AWSPENDING from version ${versionId} failed (${describeError(error).name}); next step: aws secretsmanager update-secret-version-stage --secret-id ${arn} --version-stage AWSPENDING --remove-from-version-id ${versionId}, then start a new rotation: aws secretsmanager rotate-secret --secret-id ${arn}`,
    );
  }
  deps.logger.warn("abandoned the pending version: its token is dead", { versionId });
  throw new RotationStateError(
    `${why}. This rotation cannot finish: AWSPENDING was removed from version ${versionId} and AWSCURRENT is unchanged. Next step: start a new rotation: aws secretsmanager rotate-secret --secret-id ${arn} (or bk-agent-token rotate)`,
  );
}

/** The token is live in Buildkite as soon as it is created; confirm nobody revoked it since. */
async function setSecret(event: RotationEvent, deps: RotationDeps): Promise<void> {
  const versionId = event.ClientRequestToken;
  if (!(await pendingValue(event, deps.secrets))) {
    throw new RotationStateError(
      `version ${versionId} holds no value yet: createSecret has not stored a token; Secrets Manager retries the rotation from createSecret`,
    );
  }
  const [token] = await managedTokensFor(deps, versionId);
  if (!token) {
    return abandonDeadPending(
      event,
      deps,
      `no Buildkite token for version ${versionId} exists any more (revoked by hand?)`,
    );
  }
  deps.logger.info("Buildkite token for the pending version exists", { versionId, tokenId: token.id });
}

async function testSecret(event: RotationEvent, deps: RotationDeps): Promise<void> {
  const versionId = event.ClientRequestToken;
  const value = await pendingValue(event, deps.secrets);
  if (!value) throw new RotationStateError(`version ${versionId} holds no value to test`);
  const check = await deps.buildkite.verifyAgentToken(value);
  if (!check.valid && check.status === 401) {
    // 401: the agent API does not know the token (revoked or expired): it can never work again.
    return abandonDeadPending(
      event,
      deps,
      `the pending token (version ${versionId}) was refused by the agent API (HTTP 401)`,
    );
  }
  if (!check.valid) {
    // 403 says the token exists but may not be used from here (an IP restriction, a policy):
    // not necessarily dead, so nothing is abandoned; Secrets Manager retries.
    throw new TokenVerificationError(
      `the pending token (version ${versionId}) was refused by the agent API (HTTP ${check.status}); check the token's allowed IP addresses and BUILDKITE_AGENT_API_URL`,
    );
  }
  const expected = deps.config.buildkite.organization;
  if (check.organizationSlug !== undefined && check.organizationSlug !== expected) {
    throw new TokenVerificationError(
      `the pending token (version ${versionId}) belongs to organization ${check.organizationSlug}, not ${expected}`,
    );
  }
  deps.logger.info("pending token authenticates with the agent API", { versionId, organization: expected });
}

async function finishSecret(
  event: RotationEvent,
  deps: RotationDeps,
  current: string | undefined,
): Promise<void> {
  const versionId = event.ClientRequestToken;
  // Invoked out of order (or by hand), finishSecret must not promote a version that holds nothing,
  // or holds a value no managed token backs: every new boot would read it.
  if (!(await pendingValue(event, deps.secrets))) {
    throw new RotationStateError(
      `version ${versionId} holds no value; not promoting it. Secrets Manager retries the rotation from createSecret`,
    );
  }
  if ((await managedTokensFor(deps, versionId)).length === 0) {
    throw new RotationStateError(
      `version ${versionId} holds a value but no Buildkite token this project created for it exists; not promoting it. The retried rotation's setSecret abandons it`,
    );
  }
  try {
    await deps.secrets.send(
      new UpdateSecretVersionStageCommand({
        SecretId: event.SecretId,
        VersionStage: "AWSCURRENT",
        MoveToVersionId: versionId,
        ...(current ? { RemoveFromVersionId: current } : {}),
      }),
    );
  } catch (error) {
    // The response may have been lost after the label moved: look before calling it a failure.
    const after = await describeSecret(deps.secrets, event.SecretId).catch(() => undefined);
    if (!after?.stages[versionId]?.includes("AWSCURRENT")) throw error;
    deps.logger.warn("UpdateSecretVersionStage reported an error, but the version is AWSCURRENT: promoted", {
      versionId,
      error: describeError(error),
    });
  }
  deps.metrics.put("RotationsPromoted", 1, "Count");
  deps.logger.info("promoted the new version to AWSCURRENT", {
    versionId,
    previousVersionId: current ?? null,
  });
  if (deps.startReconcile) {
    try {
      await deps.startReconcile({ secretArn: event.SecretId, versionId });
    } catch (error) {
      deps.logger.warn("could not start the reconciler; the label event and its schedule will", {
        error: describeError(error),
      });
    }
  }
}

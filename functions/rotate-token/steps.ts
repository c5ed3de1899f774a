import {
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import type { BuildkiteClient } from "../../shared/buildkite/client";
import { describeManagedToken, managedVersionOf } from "../../shared/buildkite/description";
import type { RotateTokenConfig } from "../../shared/config";
import { describeError, InputError, RotationStateError, TokenVerificationError } from "../../shared/errors";
import { type Logger, registerSecret } from "../../shared/log";
import type { MetricsSink } from "../../shared/metrics";
import { describeSecret } from "../../shared/secrets/describe";

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
    throw new InputError(`this function rotates only ${config.secret.arn}, not ${event.SecretId}`);
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

/** The pending version's value, or undefined while Secrets Manager's placeholder version is empty. */
async function pendingValue(
  event: RotationEvent,
  secrets: SecretsManagerClient,
): Promise<string | undefined> {
  try {
    const out = await secrets.send(
      new GetSecretValueCommand({
        SecretId: event.SecretId,
        VersionId: event.ClientRequestToken,
        VersionStage: "AWSPENDING",
      }),
    );
    const value = out.SecretString;
    if (value) registerSecret(value);
    return value ? value : undefined;
  } catch (error) {
    if ((error as { name?: string }).name === "ResourceNotFoundException") return undefined;
    throw error;
  }
}

async function managedTokensFor(deps: RotationDeps, versionId: string) {
  const tokens = await deps.buildkite.listTokens();
  return tokens.filter((t) => managedVersionOf(t.description, deps.config.secret.arn) === versionId);
}

async function createSecret(event: RotationEvent, deps: RotationDeps): Promise<void> {
  const { buildkite, config, logger, secrets } = deps;
  const versionId = event.ClientRequestToken;
  if (await pendingValue(event, secrets)) {
    logger.info("pending version already holds a token; createSecret is done", { versionId });
    return;
  }

  // A crashed earlier attempt may have created a token it never stored: we cannot know its value,
  // so it can never be used. Revoke it before minting the one we will store.
  for (const orphan of await managedTokensFor(deps, versionId)) {
    const outcome = await buildkite.deleteToken(orphan.id);
    logger.warn("revoked a token left by an earlier createSecret attempt", {
      versionId,
      tokenId: orphan.id,
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
    // Leave nothing behind: a token whose value was never stored is useless and must not stay valid.
    await buildkite.deleteToken(created.id).then(
      () =>
        logger.warn("revoked the new token because storing it failed", { versionId, tokenId: created.id }),
      (cleanup: unknown) =>
        logger.error("could not revoke the new token after storing it failed; the next attempt will", {
          versionId,
          tokenId: created.id,
          error: describeError(cleanup),
        }),
    );
    throw error;
  }
  deps.metrics.put("TokensCreated", 1, "Count");
  logger.info("stored the new token as AWSPENDING", { versionId, tokenId: created.id });
}

/** The token is live in Buildkite as soon as it is created; confirm nobody revoked it since. */
async function setSecret(event: RotationEvent, deps: RotationDeps): Promise<void> {
  const versionId = event.ClientRequestToken;
  const [token] = await managedTokensFor(deps, versionId);
  if (!token) {
    throw new RotationStateError(
      `no Buildkite token for version ${versionId} exists any more (revoked by hand?); cancel this rotation and start a new one`,
    );
  }
  deps.logger.info("Buildkite token for the pending version exists", { versionId, tokenId: token.id });
}

async function testSecret(event: RotationEvent, deps: RotationDeps): Promise<void> {
  const versionId = event.ClientRequestToken;
  const value = await pendingValue(event, deps.secrets);
  if (!value) throw new RotationStateError(`version ${versionId} holds no value to test`);
  const check = await deps.buildkite.verifyAgentToken(value);
  if (!check.valid) {
    throw new TokenVerificationError(
      `the pending token (version ${versionId}) was refused by the agent API (HTTP ${check.status})`,
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
  await deps.secrets.send(
    new UpdateSecretVersionStageCommand({
      SecretId: event.SecretId,
      VersionStage: "AWSCURRENT",
      MoveToVersionId: versionId,
      ...(current ? { RemoveFromVersionId: current } : {}),
    }),
  );
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

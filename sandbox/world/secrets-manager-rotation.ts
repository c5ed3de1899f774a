import { InvokeCommand, type InvokeCommandOutput, type LambdaClient } from "@aws-sdk/client-lambda";
import {
  DescribeSecretCommand,
  RotateSecretCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { STEPS, type Step } from "../../shared/rotation/steps";
import { versionHolding } from "../../shared/secrets/stages";
import { sleep } from "../lib/abortable";

/**
 * The one player of Secrets Manager's part of a rotation in the sandbox: `world.rotate()`, the
 * rotation watcher (rotations started by the operator CLI or `aws secretsmanager rotate-secret`)
 * and the scenario all go through `playRotation`, so they drive the steps, retry and fail alike.
 * moto cannot run our function on RotateSecret (DESIGN.md, "moto divergences"), so this does what
 * Secrets Manager would do around it.
 *
 * Modelled on the Secrets Manager User Guide and API reference:
 * - RotateSecret creates the new version, labelled AWSPENDING and empty, then invokes the rotation
 *   function once per step, in order: createSecret, setSecret, testSecret, finishSecret, each with
 *   the same `ClientRequestToken` (the version id)
 *   (https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_lambda.html).
 * - "If any rotation step fails, Secrets Manager retries the entire rotation process multiple
 *   times" (same page): a failed step ends the attempt, and the next attempt drives all four steps
 *   again with the same version id. The number of retries and their spacing are not documented:
 *   here they are `attempts` (default 3) and `retryDelayMs` (default 300 ms × attempt), both options.
 * - A rotation that still fails leaves what it left: "When rotation is unsuccessful, the AWSPENDING
 *   staging label might be attached to an empty secret version"
 *   (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html). The
 *   player does not clean that up; it reports the failure (`RotationOutcome.failure`).
 * - A successful rotation ends with AWSPENDING on the AWSCURRENT version or on none (same page);
 *   moto leaves it on the promoted version and then refuses the next RotateSecret, so the player
 *   removes it at the end, as AWS would have, and `startRotation` removes a leftover one first.
 * - Then the native "Secret Label Updated" event for the AWSCURRENT move is sent (`promoted`).
 *
 * Every failure is reported the same way, whoever started the rotation: a `step` event per step, a
 * `retrying` event per failed attempt that is retried, and a `failed` event and outcome at the end.
 */

/** The four steps in the order Secrets Manager invokes them (the rotation function's own list). */
export const STEP_ORDER = STEPS;
export type RotationStep = Step;

/** One step's result as the invoker saw it; `error` is "errorType: message" and never holds a token. */
export type StepOutcome = { ok: true } | { ok: false; error: string };

/** Invokes the rotation function for one step, as Secrets Manager would (synchronously). */
export type StepInvoker = (step: RotationStep, versionId: string) => Promise<StepOutcome>;

/** What the player did, for observers (the scenario's narrator, the watcher's error list). */
export type RotationEvent =
  | {
      kind: "step";
      versionId: string;
      attempt: number;
      step: RotationStep;
      ok: boolean;
      error?: string;
      ms: number;
    }
  | {
      kind: "retrying";
      versionId: string;
      /** The attempt that failed. */
      attempt: number;
      attempts: number;
      step: RotationStep;
      error: string;
      delayMs: number;
    }
  | { kind: "promoted"; versionId: string; attempts: number; at: Date }
  | { kind: "failed"; versionId: string; attempts: number; step: RotationStep; error: string };

export interface RotationPlayerOptions {
  secrets: SecretsManagerClient;
  secretArn: string;
  invokeStep: StepInvoker;
  /** Called once AWSCURRENT moved (finishSecret returned): sends the label event. */
  promoted: (versionId: string) => void;
  /** Must not throw (a throwing observer is ignored). */
  onEvent?: (event: RotationEvent) => void;
  /** Attempts of the whole rotation (default 3). */
  attempts?: number;
  /** Wait before the attempt after `attempt` failed (default 300 ms × attempt). */
  retryDelayMs?: (attempt: number) => number;
  /** Aborting stops between steps and during a retry wait: the promise rejects with the reason. */
  signal?: AbortSignal;
}

export interface RotationOutcome {
  versionId: string;
  /** How many times the steps were driven. */
  attempts: number;
  /** Just after finishSecret returned; undefined when the rotation failed. */
  promotedAt: Date | undefined;
  /** The step that failed in the last attempt; undefined when the rotation succeeded. */
  failure: { step: RotationStep; error: string } | undefined;
}

export const ROTATION_ATTEMPTS = 3;

/** A rotation that failed in every attempt, as `world.rotate()` reports it. */
export class RotationStepError extends Error {
  override name = "RotationStepError";
  constructor(
    readonly step: string,
    readonly versionId: string,
    detail: string,
    readonly attempts = 1,
  ) {
    super(`rotation step ${step} failed for version ${versionId}: ${detail}`);
  }
}

/**
 * Start a rotation as `aws secretsmanager rotate-secret` would. moto refuses a new rotation while a
 * leftover AWSPENDING label sits on the AWSCURRENT version (AWS removes that label at the end of a
 * rotation), so it is removed first, as AWS would have.
 */
export async function startRotation(
  secrets: SecretsManagerClient,
  secretId: string,
  rotationLambdaArn: string,
): Promise<string> {
  await removeLeftoverPending(secrets, secretId);
  const out = await secrets.send(
    new RotateSecretCommand({
      SecretId: secretId,
      RotationLambdaARN: rotationLambdaArn,
      RotationRules: { AutomaticallyAfterDays: 30 },
    }),
  );
  if (!out.VersionId) throw new Error("RotateSecret returned no version id");
  return out.VersionId;
}

/** Removes AWSPENDING where it sits on the AWSCURRENT version (what AWS leaves after a success). */
export async function removeLeftoverPending(secrets: SecretsManagerClient, secretId: string): Promise<void> {
  const d = await secrets.send(new DescribeSecretCommand({ SecretId: secretId }));
  const stages = d.VersionIdsToStages ?? {};
  const pending = versionHolding(stages, "AWSPENDING");
  if (pending !== undefined && pending === versionHolding(stages, "AWSCURRENT")) {
    await secrets.send(
      new UpdateSecretVersionStageCommand({
        SecretId: secretId,
        VersionStage: "AWSPENDING",
        RemoveFromVersionId: pending,
      }),
    );
  }
}

/**
 * Plays Secrets Manager's part for `versionId` (already created by RotateSecret): the four steps,
 * the whole rotation retried with the same version id, then the end of a successful rotation.
 * Resolves with the outcome whether the rotation succeeded or failed; rejects only when aborted or
 * when a Secrets Manager call of its own (removing the leftover label) fails.
 */
export async function playRotation(
  options: RotationPlayerOptions,
  versionId: string,
): Promise<RotationOutcome> {
  const attempts = Math.max(1, options.attempts ?? ROTATION_ATTEMPTS);
  const delay = options.retryDelayMs ?? ((attempt: number) => 300 * attempt);
  const notify = (event: RotationEvent) => {
    try {
      options.onEvent?.(event);
    } catch {
      // an observer must not change the rotation
    }
  };
  for (let attempt = 1; ; attempt++) {
    const failure = await driveAttempt(options, versionId, attempt, notify);
    if (!failure) {
      const at = new Date();
      await removeLeftoverPending(options.secrets, options.secretArn);
      options.promoted(versionId);
      notify({ kind: "promoted", versionId, attempts: attempt, at });
      return { versionId, attempts: attempt, promotedAt: at, failure: undefined };
    }
    if (attempt >= attempts) {
      notify({ kind: "failed", versionId, attempts: attempt, ...failure });
      return { versionId, attempts: attempt, promotedAt: undefined, failure };
    }
    const delayMs = delay(attempt);
    notify({ kind: "retrying", versionId, attempt, attempts, ...failure, delayMs });
    await sleep(delayMs, options.signal);
  }
}

/** One attempt: the four steps in order, stopping at the first that fails. */
async function driveAttempt(
  options: RotationPlayerOptions,
  versionId: string,
  attempt: number,
  notify: (event: RotationEvent) => void,
): Promise<{ step: RotationStep; error: string } | undefined> {
  for (const step of STEP_ORDER) {
    options.signal?.throwIfAborted();
    const started = Date.now();
    const out = await options.invokeStep(step, versionId);
    const ms = Date.now() - started;
    if (out.ok) {
      notify({ kind: "step", versionId, attempt, step, ok: true, ms });
      continue;
    }
    notify({ kind: "step", versionId, attempt, step, ok: false, error: out.error, ms });
    return { step, error: out.error };
  }
  return undefined;
}

/**
 * Invokes the rotation function for one step as Secrets Manager does: a synchronous Invoke
 * (RequestResponse) with `{Step, SecretId, ClientRequestToken}` (rotate-secrets_lambda.html, cited
 * above). A function error or a failed invoke fails the step.
 */
export function lambdaStepInvoker(
  lambda: LambdaClient,
  functionName: string,
  secretArn: string,
): StepInvoker {
  return async (step, versionId) => {
    let out: InvokeCommandOutput;
    try {
      out = await lambda.send(
        new InvokeCommand({
          FunctionName: functionName,
          InvocationType: "RequestResponse",
          Payload: new TextEncoder().encode(
            JSON.stringify({ Step: step, SecretId: secretArn, ClientRequestToken: versionId }),
          ),
        }),
      );
    } catch (error) {
      return { ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    }
    return out.FunctionError ? { ok: false, error: functionError(out.Payload) } : { ok: true };
  };
}

/** The runtime's error payload (`errorType`, `errorMessage`) in one line. */
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

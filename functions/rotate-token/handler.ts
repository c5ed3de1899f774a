// Imported statically: a dynamic import() made esbuild keep every Lambda command (+25 KB), and
// the bench shows the Lambda client costs little at cold start. TRANSITIONAL (see startReconcileWith).

import { apiTokenLoaderForArn } from "../../shared/buildkite/api-token";
import { buildkiteClientFromConfig } from "../../shared/buildkite/client-from-config";
import { secretsManagerClients } from "../../shared/lib/aws/secrets-manager";
import { sendToQueue, sqsClients } from "../../shared/lib/aws/sqs";
import { loadRotateTokenConfig, type RotateTokenConfig } from "../../shared/lib/config";
import { DeadlineError } from "../../shared/lib/errors";
import { createLambdaHandler, type LambdaHandler } from "../../shared/lib/lambda/handler";
import { parseRotationEvent, type RotationDeps, rotate } from "../../shared/rotation/steps";

const SERVICE = "rotate-token";

/**
 * The function's timeout is 120 s. A step still running 10 s before it fails on purpose: Secrets
 * Manager retries a failed step (the steps are idempotent), and a clean failure is logged and
 * sanitised where a Lambda timeout would be neither.
 */
const TIMEOUT_MARGIN_MS = 10_000;

interface ContainerDeps {
  config: RotateTokenConfig;
  secrets: RotationDeps["secrets"];
  apiToken: () => Promise<string>;
  startReconcile: RotationDeps["startReconcile"];
}

/**
 * How finishSecret starts the reconciler: one message on its FIFO queue (RECONCILE_QUEUE_URL), in
 * the secret's region (the stack's), carrying when it was sent (`time`, as an EventBridge envelope
 * does) so the reconciler can order it against the events it coalesces. The deduplication id is the
 * step and the version: a retried finishSecret within SQS's five-minute window sends nothing new.
 */
function startReconcileWith(config: RotateTokenConfig): RotationDeps["startReconcile"] {
  const queueUrl = config.reconcileQueueUrl;
  if (queueUrl) {
    const clients = sqsClients();
    return async (reason) => {
      const message = { source: SERVICE, ...reason, time: new Date().toISOString() };
      await sendToQueue(clients, config.secret.region, queueUrl, message, `finishSecret-${reason.versionId}`);
    };
  }
  return undefined;
}

/** A fresh handler with its own container state (config parsed and validated once, API token cached). */
export function createRotateTokenHandler(env: NodeJS.ProcessEnv = process.env): LambdaHandler<void> {
  return createLambdaHandler<ContainerDeps, void>({
    service: SERVICE,
    timeoutMarginMs: TIMEOUT_MARGIN_MS,
    failureMessage: "rotation step failed",
    build: () => {
      const config = loadRotateTokenConfig(env);
      const clients = secretsManagerClients();
      const secrets = clients(config.secret.region);
      return {
        config,
        secrets,
        apiToken: apiTokenLoaderForArn(clients, config.buildkite.apiTokenSecretArn),
        startReconcile: startReconcileWith(config),
      };
    },
    run: async (event, deps, invocation) => {
      const parsed = parseRotationEvent(event);
      const { startReconcile, apiToken, ...rest } = deps;
      // The client holds no state worth keeping; per invocation it follows this invocation's deadline.
      const buildkite = buildkiteClientFromConfig(deps.config.buildkite, {
        apiToken,
        remainingMs: () => invocation.remainingMs() - TIMEOUT_MARGIN_MS,
        logger: invocation.logger,
      });
      await rotate(parsed, {
        ...rest,
        buildkite,
        logger: invocation.logger.child({ step: parsed.Step, versionId: parsed.ClientRequestToken }),
        metrics: invocation.metrics,
        now: () => new Date(),
        ...(startReconcile ? { startReconcile } : {}),
      });
    },
    onTimeout: () => {
      throw new DeadlineError("the rotation step did not finish before the function's deadline");
    },
  });
}

export const handler = createRotateTokenHandler();

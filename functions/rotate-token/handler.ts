import type { Context } from "aws-lambda";
import { secretsManagerClients } from "../../shared/aws/secrets-manager";
import { apiTokenLoader } from "../../shared/buildkite/api-token";
import { BuildkiteClient } from "../../shared/buildkite/client";
import { loadRotateTokenConfig } from "../../shared/config";
import { describeError } from "../../shared/errors";
import { createLogger, redactSecrets } from "../../shared/log";
import { createMetrics } from "../../shared/metrics";
import { sanitizeForRuntime } from "../../shared/runtime-error";
import { parseRotationEvent, type RotationDeps, rotate } from "./steps";

const SERVICE = "rotate-token";
const logger = createLogger(SERVICE);
let deps: RotationDeps | undefined;
let remaining: () => number = () => Number.POSITIVE_INFINITY;

/** Built on the first invocation of a container and reused: config is parsed and validated once. */
function build(): RotationDeps {
  const config = loadRotateTokenConfig(process.env);
  const secrets = secretsManagerClients()(config.secret.region);
  const buildkite = new BuildkiteClient({
    ...config.buildkite,
    apiToken: apiTokenLoader(secrets, config.buildkite.apiTokenSecretArn),
    remainingMs: () => remaining(),
    onRetry: (info) => logger.warn("retrying Buildkite API call", info),
  });
  const reconcileFunction = config.reconcileFunction;
  return {
    config,
    secrets,
    buildkite,
    logger,
    metrics: createMetrics(SERVICE),
    now: () => new Date(),
    ...(reconcileFunction
      ? {
          startReconcile: async (reason) => {
            // Loaded on demand: most invocations (three of four steps) never need the Lambda client.
            const { invokeAsync } = await import("../../shared/aws/invoke");
            await invokeAsync(config.secret.region, reconcileFunction, { source: SERVICE, ...reason });
          },
        }
      : {}),
  };
}

export async function handler(
  event: unknown,
  context?: Pick<Context, "getRemainingTimeInMillis">,
): Promise<void> {
  remaining = context ? () => context.getRemainingTimeInMillis() : () => Number.POSITIVE_INFINITY;
  try {
    deps ??= build();
    const parsed = parseRotationEvent(event);
    await rotate(parsed, {
      ...deps,
      logger: logger.child({ step: parsed.Step, versionId: parsed.ClientRequestToken }),
    });
  } catch (error) {
    logger.error("rotation step failed", { error: describeError(error) });
    // The runtime prints and returns what we throw: never the raw error (shared/runtime-error.ts).
    throw sanitizeForRuntime(error, redactSecrets);
  }
}

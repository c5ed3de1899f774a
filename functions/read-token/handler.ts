import type { LambdaFunctionURLEventWithIAMAuthorizer, LambdaFunctionURLResult } from "aws-lambda";
import { secretsManagerClients } from "../../shared/aws/secrets-manager";
import { describeError } from "../../shared/errors";
import { createLogger, redactSecrets } from "../../shared/log";
import { sanitizeForRuntime } from "../../shared/runtime-error";
import { loadReadTokenConfig } from "../../shared/token-reader/config";
import { createTokenReader } from "../../shared/token-reader/reader";
import { secretsManagerSource } from "../../shared/token-reader/secrets-manager-source";
import { type ServeDeps, serveToken } from "./serve";

const SERVICE = "read-token";
const logger = createLogger(SERVICE);
let deps: ServeDeps | undefined;

/**
 * Built on the first invocation of a container and reused: config is validated once and the
 * reader's cache lives as long as the container.
 */
function build(): ServeDeps {
  const config = loadReadTokenConfig(process.env);
  const reader = createTokenReader({
    secretId: config.secret.arn,
    regions: config.regions,
    source: secretsManagerSource(secretsManagerClients()),
    maxAgeMs: config.cacheMaxAgeSeconds * 1000,
    maxStaleMs: config.maxStaleSeconds * 1000,
    logger,
  });
  logger.info("read-token ready", {
    secretArn: config.secret.arn,
    regions: config.regions,
    allowedAccounts: [...config.allowed.accounts],
    allowedRoles: config.allowed.roles.map((r) => r.arn),
  });
  return { reader, allowed: config.allowed, logger };
}

export async function handler(
  event: LambdaFunctionURLEventWithIAMAuthorizer,
): Promise<LambdaFunctionURLResult> {
  try {
    deps ??= build();
  } catch (error) {
    // A misconfigured stack fails loudly (an invocation error on the Errors metric), naming the setting.
    logger.error("read-token configuration is invalid", { error: describeError(error) });
    throw sanitizeForRuntime(error, redactSecrets);
  }
  try {
    return await serveToken(event, deps);
  } catch (error) {
    // serveToken answers every expected failure itself; anything else reaches the runtime, which
    // prints and returns what we throw: never the raw error (shared/runtime-error.ts).
    logger.error("read-token failed", { error: describeError(error) });
    throw sanitizeForRuntime(error, redactSecrets);
  }
}

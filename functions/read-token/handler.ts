import type { LambdaFunctionURLEventWithIAMAuthorizer, LambdaFunctionURLResult } from "aws-lambda";
import { secretsManagerClients } from "../../shared/lib/aws/secrets-manager";
import { createLambdaHandler, type LambdaHandler } from "../../shared/lib/lambda/handler";
import { loadReadTokenConfig } from "../../shared/token-reader/config";
import { createTokenReader } from "../../shared/token-reader/reader";
import { secretsManagerSource } from "../../shared/token-reader/secrets-manager-source";
import { type ServeDeps, serveToken } from "./serve";

const SERVICE = "read-token";

/**
 * The function's timeout is 15 s (template.yaml); a reader call that is still waiting 3 s before
 * it gets a 503 the caller can retry, rather than a Lambda timeout (which a function URL turns
 * into a bare 502 after the full 15 s).
 */
const TIMEOUT_MARGIN_MS = 3_000;

/**
 * A fresh handler with its own container state: the config is validated once and the reader's
 * cache lives as long as the handler (in Lambda, the container).
 */
export function createReadTokenHandler(
  env: NodeJS.ProcessEnv = process.env,
): LambdaHandler<LambdaFunctionURLResult> {
  return createLambdaHandler<Omit<ServeDeps, "logger">, LambdaFunctionURLResult>({
    service: SERVICE,
    timeoutMarginMs: TIMEOUT_MARGIN_MS,
    failureMessage: "read-token failed",
    build: (logger) => {
      const config = loadReadTokenConfig(env);
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
      return { reader, allowed: config.allowed };
    },
    run: (event, deps, invocation) =>
      serveToken(event as LambdaFunctionURLEventWithIAMAuthorizer, { ...deps, logger: invocation.logger }),
    onTimeout: () => ({
      statusCode: 503,
      headers: { "content-type": "application/json", "cache-control": "no-store", "retry-after": "1" },
      body: JSON.stringify({ error: "timeout", message: "the token could not be read in time; retry" }),
    }),
  });
}

export const handler = createReadTokenHandler();

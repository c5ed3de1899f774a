import type { BuildkiteConfig } from "../lib/config";
import type { Logger } from "../lib/log";
import { BuildkiteClient, type BuildkiteClientOptions } from "./client";

type RetryInfo = Parameters<NonNullable<BuildkiteClientOptions["onRetry"]>>[0];

/** What a caller adds to the configuration: the token, where retries are told, and its deadline. */
export interface BuildkiteClientWiring {
  /**
   * The API token, read lazily (api-token.ts apiTokenLoaderForArn): a Lambda keeps one loader per
   * container, so a warm invocation does not read the secret again.
   */
  apiToken: () => Promise<string>;
  /** Where each retry is logged, at `retryLevel` (the fields carry no token). */
  logger?: Pick<Logger, "info" | "warn">;
  /** warn in the functions (a retry there is worth an operator's look), info in the CLI. */
  retryLevel?: "info" | "warn";
  /** Milliseconds left before the caller must stop (a Lambda invocation's deadline). */
  remainingMs?: () => number;
  /** Request timeout and backoff, where the caller needs other than the client's defaults. */
  tuning?: Pick<BuildkiteClientOptions, "timeoutMs" | "maxAttempts" | "baseDelayMs" | "maxDelayMs" | "sleep">;
}

/** The one way a Buildkite client is built from the configuration (BUILDKITE_* settings). */
export function buildkiteClientFromConfig(
  config: BuildkiteConfig,
  wiring: BuildkiteClientWiring,
): BuildkiteClient {
  const { logger, retryLevel = "warn" } = wiring;
  return new BuildkiteClient({
    apiUrl: config.apiUrl,
    agentApiUrl: config.agentApiUrl,
    organization: config.organization,
    clusterId: config.clusterId,
    apiToken: wiring.apiToken,
    ...wiring.tuning,
    ...(wiring.remainingMs ? { remainingMs: wiring.remainingMs } : {}),
    ...(logger
      ? { onRetry: (info: RetryInfo) => logger[retryLevel]("retrying Buildkite API call", info) }
      : {}),
  });
}

import type { Context } from "aws-lambda";
import { autoScalingClients } from "../../shared/aws/auto-scaling";
import { ec2Clients } from "../../shared/aws/ec2";
import { secretsManagerClients } from "../../shared/aws/secrets-manager";
import { snsClients } from "../../shared/aws/sns";
import { ssmClients } from "../../shared/aws/ssm";
import { apiTokenLoader } from "../../shared/buildkite/api-token";
import { BuildkiteClient } from "../../shared/buildkite/client";
import { loadReconcileConfig } from "../../shared/config";
import { describeError } from "../../shared/errors";
import { createLogger, redactSecrets } from "../../shared/log";
import { createMetrics } from "../../shared/metrics";
import { type ReconcileDeps, reconcile } from "../../shared/rollout/reconcile";
import { sanitizeForRuntime } from "../../shared/runtime-error";
import { sleep } from "../../shared/sleep";
import { isNoOpTrigger, parseTrigger } from "./trigger";

const SERVICE = "reconcile";
const logger = createLogger(SERVICE);
let deps: Omit<ReconcileDeps, "remainingMs"> | undefined;
/** The current invocation's deadline; the Buildkite client, built once, consults it on every retry. */
let remaining: () => number = () => Number.POSITIVE_INFINITY;

function build(): Omit<ReconcileDeps, "remainingMs"> {
  const config = loadReconcileConfig(process.env);
  const secrets = secretsManagerClients();
  return {
    config,
    secrets,
    autoScaling: autoScalingClients(),
    ec2: ec2Clients(),
    ssm: ssmClients(),
    sns: snsClients(),
    buildkite: new BuildkiteClient({
      ...config.buildkite,
      apiToken: apiTokenLoader(secrets(config.secret.region), config.buildkite.apiTokenSecretArn),
      remainingMs: () => remaining(),
      onRetry: (info) => logger.warn("retrying Buildkite API call", info),
    }),
    logger,
    metrics: createMetrics(SERVICE),
    now: () => new Date(),
    sleep,
  };
}

/** Summary returned to direct callers (tests, the CLI); never contains a token. */
export type ReconcileResult = ReconcileSummary | { trigger: string; skipped: true };

export interface ReconcileSummary {
  trigger: string;
  versionId: string | undefined;
  complete: boolean;
  waitingFor: string[];
  targets: Array<{ target: string; phase: string; refreshId: string | undefined }>;
  revoked: number;
  refreshesStarted: number;
  commandsSent: number;
}

export async function handler(
  event: unknown,
  context?: Pick<Context, "getRemainingTimeInMillis">,
): Promise<ReconcileResult> {
  // Direct calls without a context (tests, the CLI) get a one-minute budget.
  const started = Date.now();
  const remainingMs = context
    ? () => context.getRemainingTimeInMillis()
    : () => 60_000 - (Date.now() - started);
  remaining = remainingMs;
  try {
    const trigger = parseTrigger(event);
    if (isNoOpTrigger(trigger)) {
      logger.info("nothing to decide on a refresh start; skipped", { trigger });
      return { trigger: trigger.kind, skipped: true };
    }
    deps ??= build();
    logger.info("reconcile triggered", { trigger });
    const outcome = await reconcile({ ...deps, remainingMs });
    return {
      trigger: trigger.kind,
      versionId: outcome.plan.versionId,
      complete: outcome.plan.complete,
      waitingFor: outcome.plan.waitingFor,
      targets: outcome.plan.targets.map((t) => ({
        target: `${t.region}:${t.groupName}`,
        phase: t.phase,
        refreshId: t.refreshId,
      })),
      revoked: outcome.results.reduce((n, r) => n + r.revoked.length, 0),
      refreshesStarted: outcome.results.reduce((n, r) => n + r.refreshesStarted.length, 0),
      commandsSent: outcome.results.reduce((n, r) => n + r.commandsSent.length, 0),
    };
  } catch (error) {
    logger.error("reconcile failed", { error: describeError(error) });
    // The runtime prints and returns what we throw: never the raw error (shared/runtime-error.ts).
    throw sanitizeForRuntime(error, redactSecrets);
  }
}

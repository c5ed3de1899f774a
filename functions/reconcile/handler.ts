import { autoScalingClients } from "../../shared/aws/auto-scaling";
import { ec2Clients } from "../../shared/aws/ec2";
import { secretsManagerClients } from "../../shared/aws/secrets-manager";
import { snsClients } from "../../shared/aws/sns";
import { ssmClients, ssmSendClients } from "../../shared/aws/ssm";
import { apiTokenLoaderForArn } from "../../shared/buildkite/api-token";
import { BuildkiteClient } from "../../shared/buildkite/client";
import { loadReconcileConfig } from "../../shared/config";
import { createLambdaHandler, type Invocation, type LambdaHandler } from "../../shared/lambda/handler";
import { RolloutMemory } from "../../shared/rollout/memory";
import { type ReconcileDeps, reconcile } from "../../shared/rollout/reconcile";
import { sleep } from "../../shared/sleep";
import { concernsTargets, isNoOpTrigger, parseTrigger } from "./trigger";

const SERVICE = "reconcile";

/**
 * middy aborts the run's signal 20 s before the 900 s deadline, the same margin the rollout keeps
 * before it stops waiting (shared/rollout/reconcile.ts): the run then has those 20 s to act on
 * what it observed and return its summary. A run cut short is not a failure — the next trigger
 * (event or schedule) continues from AWS's own state — so the timeout answer is a summary, never
 * an error (an error would mean two asynchronous retries and an alarm).
 */
const TIMEOUT_MARGIN_MS = 20_000;
/** Direct calls without a Lambda context (tests, the CLI) get one minute. */
const DIRECT_CALL_BUDGET_MS = 60_000;

/** Summary returned to direct callers (tests, the CLI); never contains a token. */
export type ReconcileResult =
  | ReconcileSummary
  | { trigger: string; skipped: true }
  | { trigger: string; timedOut: true; requestId: string };

export interface ReconcileSummary {
  trigger: string;
  /** How much the run observed: "full", or "groups" for refresh events (see shared/rollout/scope.ts). */
  scope: string;
  observations: { full: number; partial: number; polls: number };
  versionId: string | undefined;
  complete: boolean;
  waitingFor: string[];
  targets: Array<{ target: string; phase: string; refreshId: string | undefined }>;
  revoked: number;
  refreshesStarted: number;
  commandsSent: number;
}

type ContainerDeps = Omit<ReconcileDeps, "remainingMs" | "buildkite" | "logger" | "metrics"> & {
  apiToken: () => Promise<string>;
};

/** The trigger being handled, for the timeout answer (parsed once in run, read again on timeout). */
const triggerKinds = new WeakMap<Invocation, string>();

/** A fresh handler with its own container state (config validated once, SDK clients reused). */
export function createReconcileHandler(env: NodeJS.ProcessEnv = process.env): LambdaHandler<ReconcileResult> {
  return createLambdaHandler<ContainerDeps, ReconcileResult>({
    service: SERVICE,
    timeoutMarginMs: TIMEOUT_MARGIN_MS,
    directCallBudgetMs: DIRECT_CALL_BUDGET_MS,
    failureMessage: "reconcile failed",
    // A malformed event is refused before the configuration is read: nothing is observed or written.
    validate: (event) => void parseTrigger(event),
    build: () => {
      const config = loadReconcileConfig(env);
      const secrets = secretsManagerClients();
      return {
        config,
        secrets,
        autoScaling: autoScalingClients(),
        ec2: ec2Clients(),
        ssm: ssmClients(),
        ssmSend: ssmSendClients(),
        sns: snsClients(),
        apiToken: apiTokenLoaderForArn(secrets, config.buildkite.apiTokenSecretArn),
        // What a warm container remembers between runs; a cold one observes in full.
        memory: new RolloutMemory(),
        now: () => new Date(),
        sleep,
      };
    },
    run: async (event, deps, invocation) => {
      const { logger } = invocation;
      const trigger = parseTrigger(event);
      triggerKinds.set(invocation, trigger.kind);
      if (isNoOpTrigger(trigger)) {
        logger.info("nothing to decide on a refresh start; skipped", { trigger });
        return { trigger: trigger.kind, skipped: true };
      }
      if (!concernsTargets(trigger, deps.config)) {
        logger.debug("refresh of a group that is not a target; skipped", { trigger });
        return { trigger: trigger.kind, skipped: true };
      }
      const { apiToken, ...rest } = deps;
      logger.info("reconcile triggered", { trigger });
      const outcome = await reconcile(
        {
          ...rest,
          // The client holds no state worth keeping; per invocation it follows this invocation's deadline.
          buildkite: new BuildkiteClient({
            ...deps.config.buildkite,
            apiToken,
            remainingMs: invocation.remainingMs,
            onRetry: (info) => logger.warn("retrying Buildkite API call", info),
          }),
          logger,
          metrics: invocation.metrics,
          remainingMs: invocation.remainingMs,
        },
        { triggers: [trigger] },
      );
      if (!outcome.plan) return { trigger: trigger.kind, skipped: true };
      return {
        trigger: trigger.kind,
        scope: outcome.scope.kind,
        observations: outcome.observations,
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
    },
    onTimeout: (invocation) => ({
      trigger: triggerKinds.get(invocation) ?? "unknown",
      timedOut: true,
      requestId: invocation.requestId,
    }),
  });
}

export const handler = createReconcileHandler();

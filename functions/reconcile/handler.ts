import { apiTokenLoaderForArn } from "../../shared/buildkite/api-token";
import { buildkiteClientFromConfig } from "../../shared/buildkite/client-from-config";
import { autoScalingClients, autoScalingStartClients } from "../../shared/lib/aws/auto-scaling";
import { ec2Clients } from "../../shared/lib/aws/ec2";
import { secretsManagerClients } from "../../shared/lib/aws/secrets-manager";
import { snsClients } from "../../shared/lib/aws/sns";
import { deferRedelivery, retryDelaySeconds, type SQSClient, sqsClients } from "../../shared/lib/aws/sqs";
import { ssmClients, ssmSendClients } from "../../shared/lib/aws/ssm";
import { loadReconcileConfig } from "../../shared/lib/config";
import { describeError } from "../../shared/lib/errors";
import { createLambdaHandler, type Invocation, type LambdaHandler } from "../../shared/lib/lambda/handler";
import { sleep } from "../../shared/lib/sleep";
import { queueHandover } from "../../shared/rollout/handover";
import { RolloutMemory } from "../../shared/rollout/memory";
import { type ReconcileDeps, reconcile } from "../../shared/rollout/reconcile";
import { type ParsedInvocation, parseInvocation } from "./batch";
import { concernsTargets, isNoOpTrigger, type Trigger } from "./trigger";

const SERVICE = "reconcile";

/**
 * middy aborts the run's signal 20 s before the 900 s deadline, the same margin the rollout keeps
 * before it stops waiting (shared/rollout/reconcile.ts): the run then has those 20 s to act on
 * what it observed and return its summary. A run cut short is not a failure — the next trigger
 * (event or schedule) continues from AWS's own state — so the timeout answer is a summary, never
 * an error (an error would return the whole batch to the queue, to come back after the
 * visibility timeout and count towards the dead-letter queue).
 */
const TIMEOUT_MARGIN_MS = 20_000;
/** Direct calls without a Lambda context (tests, the CLI) get one minute. */
const DIRECT_CALL_BUDGET_MS = 60_000;

/**
 * Summary returned to direct callers (tests, the CLI); never contains a token. `trigger` names the
 * kinds of the invocation's well-formed triggers (comma-separated, first-seen order; "none" when
 * every record was refused), `triggers` counts them (before the no-op and non-target ones are
 * dropped) and `refused` counts the malformed records.
 */
export type ReconcileResult =
  | ReconcileSummary
  | { trigger: string; triggers: number; refused: number; skipped: true }
  | { trigger: string; triggers: number; refused: number; timedOut: true; requestId: string };

export interface ReconcileSummary {
  trigger: string;
  triggers: number;
  refused: number;
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
  /** The run ended early to let waiting triggers through; its continuation is on the queue. */
  handedOver?: true;
}

type ContainerDeps = Omit<ReconcileDeps, "remainingMs" | "buildkite" | "logger" | "metrics"> & {
  apiToken: () => Promise<string>;
  sqs: (region: string) => SQSClient;
};

/** What the invocation carried, for the timeout answer (parsed once in run, read again on timeout). */
const parsedInvocations = new WeakMap<Invocation, ParsedInvocation>();

function kindsOf(triggers: Trigger[]): string {
  const kinds = [...new Set(triggers.map((t) => t.kind))];
  return kinds.length === 0 ? "none" : kinds.join(",");
}

/**
 * A run that failed returns its whole batch to the queue (the handler rethrows). With one message
 * group that batch holds back every later trigger until it is handled, so rather than the queue's
 * visibility timeout (90 minutes) it comes back after retryDelaySeconds (TRIGGER_RETRY_SECONDS,
 * doubling per receive, at most 15 minutes); after maxReceiveCount receives SQS moves it to the
 * dead-letter queue, which alarms. If the change fails, the messages come back after the visibility
 * timeout: logged, never fatal (the run's own error is what the invocation reports).
 */
async function scheduleRetry(
  parsed: ParsedInvocation,
  config: ContainerDeps["config"],
  sqs: ContainerDeps["sqs"],
  invocation: Invocation,
): Promise<void> {
  const queueUrl = config.queueUrl;
  if (!queueUrl || parsed.received.length === 0) return;
  const receiveCount = Math.max(...parsed.received.map((r) => r.receiveCount));
  const seconds = retryDelaySeconds(receiveCount, config.triggerRetrySeconds);
  try {
    const { failed } = await deferRedelivery(
      sqs,
      config.secret.region,
      queueUrl,
      parsed.received.map((r) => r.receiptHandle),
      seconds,
    );
    if (failed > 0) {
      invocation.logger.warn(
        "could not bring part of the failed batch forward; it returns after the visibility timeout",
        {
          failed,
          of: parsed.received.length,
        },
      );
    } else {
      invocation.logger.info("the failed batch is retried later", { seconds, receiveCount });
    }
  } catch (error) {
    invocation.logger.warn(
      "could not bring the failed batch forward; it returns after the visibility timeout",
      {
        error: describeError(error),
      },
    );
  }
}

/** A fresh handler with its own container state (config validated once, SDK clients reused). */
export function createReconcileHandler(env: NodeJS.ProcessEnv = process.env): LambdaHandler<ReconcileResult> {
  return createLambdaHandler<ContainerDeps, ReconcileResult>({
    service: SERVICE,
    timeoutMarginMs: TIMEOUT_MARGIN_MS,
    directCallBudgetMs: DIRECT_CALL_BUDGET_MS,
    failureMessage: "reconcile failed",
    // A malformed bare event, or a batch that is not an SQS batch, is refused before the
    // configuration is read: nothing is observed or written.
    validate: (event) => void parseInvocation(event),
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
        autoScalingStart: autoScalingStartClients(),
        sns: snsClients(),
        sqs: sqsClients(),
        apiToken: apiTokenLoaderForArn(secrets, config.buildkite.apiTokenSecretArn),
        // What a warm container remembers between runs; a cold one observes in full.
        memory: new RolloutMemory(),
        now: () => new Date(),
        sleep,
      };
    },
    run: async (event, deps, invocation) => {
      const { logger } = invocation;
      const parsed = parseInvocation(event);
      parsedInvocations.set(invocation, parsed);
      const counts = {
        trigger: kindsOf(parsed.triggers),
        triggers: parsed.triggers.length,
        refused: parsed.refused.length,
      };
      for (const refusal of parsed.refused) {
        // By id and reason only: the body is foreign input and may hold anything.
        logger.warn("refused a malformed trigger; it is not retried", { ...refusal });
      }
      if (parsed.refused.length > 0)
        invocation.metrics.put("RefusedTriggers", parsed.refused.length, "Count");
      const triggers = parsed.triggers.filter((trigger) => {
        if (isNoOpTrigger(trigger)) {
          logger.info("nothing to decide on a refresh start; skipped", { trigger });
          return false;
        }
        if (!concernsTargets(trigger, deps.config)) {
          logger.debug("refresh of a group that is not a target; skipped", { trigger });
          return false;
        }
        return true;
      });
      if (triggers.length === 0) return { ...counts, skipped: true };
      const { apiToken, sqs, ...rest } = deps;
      logger.info("reconcile triggered", { triggers });
      // Only a run the queue delivered holds the queue, and only its continuation would be consumed.
      const queueUrl = deps.config.queueUrl;
      const handover =
        queueUrl && parsed.received.length > 0
          ? { handover: queueHandover(sqs, deps.config.secret.region, queueUrl) }
          : {};
      const outcome = await reconcile(
        {
          ...rest,
          // The client holds no state worth keeping; per invocation it follows this invocation's deadline.
          buildkite: buildkiteClientFromConfig(deps.config.buildkite, {
            apiToken,
            remainingMs: invocation.remainingMs,
            logger,
          }),
          logger,
          metrics: invocation.metrics,
          remainingMs: invocation.remainingMs,
          ...handover,
        },
        { triggers },
      ).catch(async (error: unknown) => {
        await scheduleRetry(parsed, deps.config, sqs, invocation);
        throw error;
      });
      if (!outcome.plan) return { ...counts, skipped: true };
      return {
        ...counts,
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
        ...(outcome.handedOver ? { handedOver: true } : {}),
      };
    },
    onTimeout: (invocation) => {
      const parsed = parsedInvocations.get(invocation);
      return {
        trigger: parsed ? kindsOf(parsed.triggers) : "unknown",
        triggers: parsed?.triggers.length ?? 0,
        refused: parsed?.refused.length ?? 0,
        timedOut: true,
        requestId: invocation.requestId,
      };
    },
  });
}

export const handler = createReconcileHandler();

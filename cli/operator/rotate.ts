import { randomUUID } from "node:crypto";
import { RotateSecretCommand } from "@aws-sdk/client-secrets-manager";
import { describeError } from "../../shared/lib/errors";
import { sleep as realSleep, type Sleep } from "../../shared/lib/sleep";
import { CLEAR_SCREEN, duration, isTty, terminalWidth, useColor } from "../../shared/lib/terminal";
import { EMERGENCY_TAG } from "../../shared/rollout/plan";
import type { StatusReport } from "../../shared/rollout/status";
import { describeSecret } from "../../shared/secrets/describe";
import { helpText, type OptionSpec, PROGRAM, UsageError, withOptions } from "../args";
import type { CliIo, CommandRunner } from "../types";
import { OPERATOR_OPTIONS, OPERATOR_SECTION_INTROS, type OperatorContext } from "./context";
import { type Containment, containmentReport, declareEmergency, noteRevocation } from "./emergency";
import { type OperatorContextBuilder, withOperatorContext } from "./operator-command";
import { blockedAdvice } from "./render/advice";
import { progressLine, renderProgress } from "./render/progress";

const OPTIONS = {
  interval: {
    type: "string",
    value: "SECONDS",
    help: "how often to poll the rollout (default 5; fractions allowed)",
  },
  timeout: {
    type: "string",
    value: "DURATION",
    help: "stop following after this long: 90s, 30m, 4h or seconds (default 4h)",
  },
  "no-follow": { type: "boolean", help: "start the rotation and exit at once" },
  emergency: { type: "boolean", help: "the current token leaked: see above" },
  "min-healthy": {
    type: "string",
    value: "PERCENT",
    help: "with --emergency: the refreshes' minimum healthy percentage\n(0-100, default 50)",
  },
  ...OPERATOR_OPTIONS,
} as const satisfies OptionSpec;

const HELP = helpText(PROGRAM, {
  usage: "rotate [--emergency [--min-healthy N]] [options]",
  description: `Start a rotation of the agent token secret (secretsmanager:RotateSecret with a version id chosen
here, so the new version is known) and follow its rollout with a live progress view until every
instance has the new token (rewritten in place, or replaced) and the old managed tokens are
revoked. Stopping the follow (Ctrl-C, --timeout) does not stop the rotation: the functions carry
on; 'bk-agent-token status' shows it.

Refuses (exit 1) when a rotation is already pending (AWSPENDING on a version other than
AWSCURRENT), or when rotation is not configured on the secret.

--emergency is for a leaked token. Before the rotation starts, it records on the first existing
target group (tag ${EMERGENCY_TAG}) that the current version leaked. The
reconcile function then revokes the leaked version's token as soon as every region serves the
new version, without waiting for the refreshes (revoking stops new registrations only: agents
already connected keep running), and refreshes every group with --min-healthy and
ScaleInProtectedInstances=Refresh (busy instances are replaced too). At the end a containment
report says when the leaked token was revoked (or that it must be revoked by hand), how many
instances may still run with it, and what cannot be contained.`,
  options: OPTIONS,
  sectionIntros: OPERATOR_SECTION_INTROS,
  epilogue: `Exit codes:
  0  the rollout of the new version is complete (with --no-follow: the rotation started)
  1  error, or refused (a rotation is already pending, rotation not configured)
  2  usage
  3  the rollout is blocked until an operator acts (what and how is printed)
  4  --timeout reached before the rollout completed (it continues without us)`,
});

export const EXIT_BLOCKED = 3;
export const EXIT_TIMEOUT = 4;

/** "90s", "30m", "4h", "1.5h", "120" (seconds) → milliseconds. */
export function parseDuration(raw: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(raw.trim());
  if (!m?.[1]) throw new UsageError(`${option} must be a duration such as 90s, 30m or 4h, got "${raw}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? "s";
  const ms = n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as "ms" | "s" | "m" | "h"];
  if (!(ms > 0)) throw new UsageError(`${option} must be more than zero`);
  return ms;
}

export interface RotateOptions {
  intervalMs: number;
  timeoutMs: number;
  follow: boolean;
  emergency: { minHealthyPercentage: number } | undefined;
}

export function rotateOptions(values: {
  interval?: string;
  timeout?: string;
  "no-follow"?: boolean;
  emergency?: boolean;
  "min-healthy"?: string;
}): RotateOptions {
  const intervalMs = values.interval === undefined ? 5_000 : parseDuration(values.interval, "--interval");
  if (intervalMs < 50 || intervalMs > 3_600_000) {
    throw new UsageError("--interval must be between 0.05 and 3600 seconds");
  }
  const timeoutMs = values.timeout === undefined ? 4 * 3_600_000 : parseDuration(values.timeout, "--timeout");
  let emergency: RotateOptions["emergency"];
  if (values["min-healthy"] !== undefined && !values.emergency) {
    throw new UsageError("--min-healthy only applies with --emergency");
  }
  if (values.emergency) {
    const raw = values["min-healthy"]?.trim() ?? "50";
    if (!/^\d{1,3}$/.test(raw) || Number(raw) > 100) {
      throw new UsageError(`--min-healthy must be a whole percentage from 0 to 100, got "${raw}"`);
    }
    emergency = { minHealthyPercentage: Number(raw) };
  }
  return { intervalMs, timeoutMs, follow: !values["no-follow"], emergency };
}

type Outcome =
  | { kind: "complete"; report: StatusReport }
  | { kind: "blocked"; report: StatusReport }
  | { kind: "timeout"; report: StatusReport | undefined }
  | { kind: "superseded"; report: StatusReport }
  | { kind: "error"; message: string; report: StatusReport | undefined };

/** Done: the new version is current, every instance of every group has it, and no older managed token is valid. */
export function rolloutDone(report: StatusReport, versionId: string): boolean {
  return (
    report.secret.currentVersionId === versionId &&
    report.complete &&
    report.managedTokensValid.every(
      (t) => t.versionId === versionId || t.versionId === report.secret.pendingVersionId,
    )
  );
}

async function follow(
  ctx: OperatorContext,
  io: CliIo,
  versionId: string,
  previousVersionId: string,
  options: RotateOptions,
  containment: Containment | undefined,
  sleep: Sleep,
  header: string,
): Promise<Outcome> {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  const tty = isTty(io.stdout);
  const color = useColor(io.stdout, io.env);
  const width = terminalWidth(io.stdout);
  let baseline: StatusReport | undefined;
  let last: StatusReport | undefined;
  let lastLine = "";
  let blockedStreak = 0;
  let failures = 0;
  for (;;) {
    let report: StatusReport | undefined;
    try {
      report = await ctx.collect();
      failures = 0;
    } catch (error) {
      failures++;
      const e = describeError(error);
      io.stderr.write(
        `bk-agent-token rotate: could not observe the rollout (${failures}): ${e.name}: ${e.message}\n`,
      );
      if (failures >= 10)
        return {
          kind: "error",
          message: "the rollout could not be observed 10 times in a row",
          report: last,
        };
    }
    if (report) {
      last = report;
      baseline ??= report;
      if (tty) {
        const elapsed = `following ${duration((Date.now() - started) / 1000)} of ${duration(options.timeoutMs / 1000)} (Ctrl-C stops following, not the rotation)`;
        io.stdout.write(
          `${CLEAR_SCREEN}${header}${renderProgress(report, { color, baseline, ...(width ? { width } : {}) })}${elapsed}\n`,
        );
      } else {
        const line = progressLine(report, { baseline });
        if (line !== lastLine) io.stdout.write(`${report.at.toISOString()} ${line}\n`);
        lastLine = line;
      }
      if (containment) noteRevocation(containment, report);
      const current = report.secret.currentVersionId;
      if (rolloutDone(report, versionId)) return { kind: "complete", report };
      if (current === versionId && report.waitingFor.includes("operator")) {
        // Seen twice in a row: one failed observation of a group is not yet a blocked rollout.
        blockedStreak++;
        if (blockedStreak >= 2) return { kind: "blocked", report };
      } else {
        blockedStreak = 0;
      }
      if (current !== versionId && current !== previousVersionId) return { kind: "superseded", report };
    }
    const left = deadline - Date.now();
    if (left <= 0) return { kind: "timeout", report: last };
    await sleep(Math.min(options.intervalMs, left));
  }
}

export interface RotateDeps {
  sleep?: Sleep;
  newVersionId?: () => string;
  /** Builds the clients (tests pass fakes). */
  context?: OperatorContextBuilder;
}

export function rotateCommandWith(deps: RotateDeps = {}): CommandRunner {
  const sleep = deps.sleep ?? realSleep;
  const newVersionId = deps.newVersionId ?? randomUUID;
  const buildContext = deps.context;
  return {
    // The rotation's own options are checked before any client is built: a usage error costs no AWS call.
    run: withOptions(OPTIONS, HELP, (values, io) => {
      const options = rotateOptions(values);
      return withOperatorContext(
        values,
        io,
        async (ctx) => {
          // What was said before following starts; a terminal redraw repeats it above the progress view.
          let header = "";
          const say = (text: string) => {
            header += `${text}\n`;
            io.stdout.write(`${text}\n`);
          };
          const refuse = (text: string) => {
            io.stderr.write(`bk-agent-token rotate: ${text}\n`);
            return 1;
          };
          const { config } = ctx;
          const secret = await describeSecret(ctx.secrets(config.secret.region), config.secret.arn);
          const { current, pending } = secret;
          if (pending) {
            return refuse(
              `a rotation is already pending: version ${pending} holds AWSPENDING (current: ${current ?? "none"}). Follow it with 'bk-agent-token status'. If it is stuck, see the rotate-token function's logs; Secrets Manager retries it. To abandon it: aws secretsmanager update-secret-version-stage --secret-id ${config.secret.arn} --version-stage AWSPENDING --remove-from-version-id ${pending}`,
            );
          }
          if (!secret.rotationEnabled || !secret.rotationLambdaArn) {
            return refuse(
              `rotation is not configured on ${config.secret.arn} (no rotation function or schedule): deploy the stack's rotation schedule first ('bk-agent-token preflight' checks it)`,
            );
          }
          if (!current) return refuse(`${config.secret.arn} has no AWSCURRENT version`);

          const versionId = newVersionId();
          let containment: Containment | undefined;
          if (options.emergency) {
            const declared = await declareEmergency(ctx, {
              versionId,
              leakedVersionId: current,
              minHealthyPercentage: options.emergency.minHealthyPercentage,
            });
            if (!declared) {
              return refuse(
                "--emergency needs an existing target group to record the emergency on, and none of TARGET_GROUPS exists",
              );
            }
            say(
              `Emergency declared on ${declared.anchor.region}:${declared.anchor.groupName}: version ${current} leaked; new version ${versionId}; refreshes with min healthy ${options.emergency.minHealthyPercentage}% and protected instances replaced (Refresh).`,
            );
            containment = declared.containment;
          }

          // RotationLambdaARN restates the configured function (no configuration change on AWS). Without
          // it moto forgets the function and promotes an empty version at once.
          const out = await ctx.secrets(config.secret.region).send(
            new RotateSecretCommand({
              SecretId: config.secret.arn,
              ClientRequestToken: versionId,
              RotationLambdaARN: secret.rotationLambdaArn,
            }),
          );
          const started = out.VersionId ?? versionId;
          if (started !== versionId) {
            io.stderr.write(
              `bk-agent-token rotate: warning: Secrets Manager started version ${started}, not ${versionId}${options.emergency ? ": the emergency declaration does not apply to it" : ""}\n`,
            );
          }
          say(`Rotation of ${config.secret.name} started: version ${started} replaces ${current}.`);
          if (!options.follow) {
            say("Not following (--no-follow): 'bk-agent-token status' shows the rollout.");
            return 0;
          }

          const outcome = await follow(ctx, io, started, current, options, containment, sleep, header);
          const report = outcome.report;
          let code: number;
          switch (outcome.kind) {
            case "complete": {
              say(
                `Rollout of version ${started} complete: every instance has the new token, older managed tokens revoked.`,
              );
              code = 0;
              break;
            }
            case "blocked": {
              say(`Rollout of version ${started} is BLOCKED until an operator acts:`);
              for (const b of blockedAdvice(outcome.report)) say(`  - ${b}`);
              say(
                "Until then no old token is revoked, so agents keep working. The reconcile function continues on its own once fixed; follow with 'bk-agent-token status'.",
              );
              code = EXIT_BLOCKED;
              break;
            }
            case "timeout": {
              say(
                `Stopped following after ${duration(options.timeoutMs / 1000)}: the rollout of ${started} is not complete and continues without us. Next: ${report?.next.join("; ") ?? "unknown"}. Follow with 'bk-agent-token status'.`,
              );
              code = EXIT_TIMEOUT;
              break;
            }
            case "superseded": {
              io.stderr.write(
                `bk-agent-token rotate: another rotation promoted version ${outcome.report.secret.currentVersionId ?? "?"}; ${started} will not be rolled out\n`,
              );
              code = 1;
              break;
            }
            case "error": {
              io.stderr.write(
                `bk-agent-token rotate: ${outcome.message}; the rotation continues without us\n`,
              );
              code = 1;
              break;
            }
          }
          if (containment)
            io.stdout.write(containmentReport(containment, report, config.buildkite.clusterId));
          return code;
        },
        buildContext,
      );
    }),
  };
}

export const rotateCommand: CommandRunner = rotateCommandWith();

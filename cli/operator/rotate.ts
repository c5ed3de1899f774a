import { randomUUID } from "node:crypto";
import { DescribeSecretCommand, RotateSecretCommand } from "@aws-sdk/client-secrets-manager";
import { isManagedFor, managedVersionOf } from "../../shared/buildkite/description";
import type { TargetGroup } from "../../shared/config";
import { AppError, describeError } from "../../shared/errors";
import { tagGroup } from "../../shared/rollout/act";
import { encodeEmergency } from "../../shared/rollout/markers";
import { DONE_PHASES } from "../../shared/rollout/model";
import { observeGroups } from "../../shared/rollout/observe";
import { EMERGENCY_TAG } from "../../shared/rollout/plan";
import type { StatusReport } from "../../shared/rollout/status";
import { sleep as realSleep, type Sleep } from "../../shared/sleep";
import { duration, isTty, terminalWidth, useColor } from "../../shared/terminal";
import { parseCommandArgs, UsageError } from "../args";
import { cliLogger } from "../logger";
import type { CliIo, CommandRunner } from "../types";
import {
  OPERATOR_HELP,
  OPERATOR_OPTIONS,
  type OperatorContext,
  operatorContext,
  operatorSettings,
} from "./context";
import { blockedAdvice } from "./render/advice";
import { progressLine, renderProgress } from "./render/progress";

const HELP = `Usage: bk-agent-token rotate [--emergency [--min-healthy N]] [options]

Start a rotation of the agent token secret (secretsmanager:RotateSecret with a version id chosen
here, so the new version is known) and follow its rollout with a live progress view until every
instance has the new token (rewritten in place, or replaced) and the old managed tokens are revoked. Stopping the follow (Ctrl-C,
--timeout) does not stop the rotation: the functions carry on; 'bk-agent-token status' shows it.

Refuses (exit 1) when a rotation is already pending (AWSPENDING on a version other than
AWSCURRENT), or when rotation is not configured on the secret.

--emergency is for a leaked token. Before the rotation starts, it records on the first existing
target group (tag ${EMERGENCY_TAG}) that the current version leaked. The
reconcile function then revokes the leaked version's token as soon as every region serves the
new version, without waiting for the refreshes (revoking stops new registrations only: agents
already connected keep running), and refreshes every group with --min-healthy and
ScaleInProtectedInstances=Refresh (busy instances are replaced too). At the end a containment
report says when the leaked token was revoked (or that it must be revoked by hand), how many
instances may still run with it, and what cannot be contained.

Options:
  --interval SECONDS        how often to poll the rollout (default 5; fractions allowed)
  --timeout DURATION        stop following after this long: 90s, 30m, 4h or seconds (default 4h)
  --no-follow               start the rotation and exit at once
  --emergency               the current token leaked: see above
  --min-healthy PERCENT     with --emergency: the refreshes' minimum healthy percentage
                            (0-100, default 50)

${OPERATOR_HELP}

Exit codes:
  0  the rollout of the new version is complete (with --no-follow: the rotation started)
  1  error, or refused (a rotation is already pending, rotation not configured)
  2  usage
  3  the rollout is blocked until an operator acts (what and how is printed)
  4  --timeout reached before the rollout completed (it continues without us)
`;

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

/**
 * The anchor group, by the rule observe() uses: the first target group, in TARGET_GROUPS order,
 * that exists. A region that cannot be described before the anchor is found is an error: guessing
 * could put the emergency tag where the reconciler does not look.
 */
export async function findAnchor(
  ctx: Pick<OperatorContext, "config" | "autoScaling">,
): Promise<TargetGroup | undefined> {
  const { targets } = await observeGroups(ctx);
  for (const t of targets) {
    if (t.exists) return { region: t.region, groupName: t.groupName };
    if (t.error) {
      throw new AppError(
        `cannot describe the target groups in ${t.region} to find the group that carries the emergency tag: ${t.error.message}`,
      );
    }
  }
  return undefined;
}

type Outcome =
  | { kind: "complete"; report: StatusReport }
  | { kind: "blocked"; report: StatusReport }
  | { kind: "timeout"; report: StatusReport | undefined }
  | { kind: "superseded"; report: StatusReport }
  | { kind: "error"; message: string; report: StatusReport | undefined };

interface Containment {
  leakedVersionId: string;
  leakedTokenIds: string[];
  unmanaged: Array<{ id: string; description: string }>;
  revokedSeenAt: Date | undefined;
  /** Groups not yet done when the revocation was first seen. */
  openGroupsAtRevocation: string[] | undefined;
}

const OPEN = (g: StatusReport["groups"][number]) => !DONE_PHASES.has(g.phase);

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
          `\x1b[H\x1b[2J${header}${renderProgress(report, { color, baseline, ...(width ? { width } : {}) })}${elapsed}\n`,
        );
      } else {
        const line = progressLine(report, { baseline });
        if (line !== lastLine) io.stdout.write(`${report.at.toISOString()} ${line}\n`);
        lastLine = line;
      }
      if (containment && !containment.revokedSeenAt && containment.leakedTokenIds.length > 0) {
        const valid = new Set(report.managedTokensValid.map((t) => t.id));
        if (containment.leakedTokenIds.every((id) => !valid.has(id))) {
          containment.revokedSeenAt = report.at;
          containment.openGroupsAtRevocation = report.groups
            .filter(OPEN)
            .map((g) => `${g.region}:${g.groupName}`);
        }
      }
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

function containmentReport(c: Containment, report: StatusReport | undefined, clusterId: string): string {
  const lines = [`Containment of the leaked token (version ${c.leakedVersionId}):`];
  if (c.leakedTokenIds.length === 0) {
    lines.push(
      `  - NOT CONTAINED BY THIS TOOL: no token created by this project belongs to the leaked version (the initial token, or one set by hand). Revoke the leaked token by hand in Buildkite (cluster ${clusterId} → Agent tokens)${c.unmanaged.length > 0 ? `; the cluster's tokens not created by this project: ${c.unmanaged.map((t) => `${t.id} "${t.description}"`).join(", ")}` : ""}.`,
    );
  } else if (c.revokedSeenAt) {
    const open = c.openGroupsAtRevocation ?? [];
    lines.push(
      `  - leaked token ${c.leakedTokenIds.join(", ")} revoked (seen gone at ${c.revokedSeenAt.toISOString()})${open.length > 0 ? `, before the refreshes of ${open.join(", ")} had finished` : ""}: it can no longer register new agents.`,
    );
  } else {
    const behind = report?.regions.filter((r) => r.state !== "in-sync").map((r) => r.region) ?? [];
    lines.push(
      `  - leaked token ${c.leakedTokenIds.join(", ")} NOT revoked yet: the reconcile function revokes it as soon as every region serves the new version${behind.length > 0 ? ` (still behind: ${behind.join(", ")})` : ""}. To revoke it now by hand: Buildkite cluster ${clusterId} → Agent tokens → ${c.leakedTokenIds.join(", ")} (instances booting in a lagging region would then fail to register).`,
    );
  }
  if (report) {
    const open = report.groups.filter(OPEN);
    if (open.length === 0) {
      lines.push(
        "  - every instance of every target group has the new token (booted after the sync, rewritten in place, or gone).",
      );
    } else {
      // The ledger knows which instances are not yet safe; refresh percentages only estimate it.
      const stale = open.map((g) => ({
        where: `${g.region}:${g.groupName}`,
        left: g.waiting.length,
        phase: g.phase,
      }));
      const total = stale.reduce((n, s) => n + s.left, 0);
      lines.push(
        `  - ${total} instance(s) may still hold the leaked token in their agent config: ${stale.map((s) => `${s.where} ${s.left} (${s.phase})`).join(", ")}.`,
      );
    }
  }
  lines.push(
    "  - agents already connected with the leaked token keep running until their instance is replaced (revoking a token stops new registrations only); anyone holding the token cannot register new agents once it is revoked.",
  );
  return `${lines.join("\n")}\n`;
}

export interface RotateDeps {
  sleep?: Sleep;
  newVersionId?: () => string;
  /** Builds the clients (tests pass fakes). */
  context?: typeof operatorContext;
}

export function rotateCommandWith(deps: RotateDeps = {}): CommandRunner {
  const sleep = deps.sleep ?? realSleep;
  const newVersionId = deps.newVersionId ?? randomUUID;
  const buildContext = deps.context ?? operatorContext;
  return {
    async run(args, io) {
      const { values } = parseCommandArgs(args, {
        ...OPERATOR_OPTIONS,
        interval: { type: "string" },
        timeout: { type: "string" },
        "no-follow": { type: "boolean" },
        emergency: { type: "boolean" },
        "min-healthy": { type: "string" },
      });
      if (values.help) {
        io.stdout.write(HELP);
        return 0;
      }
      const options = rotateOptions(values);
      const settings = operatorSettings(values, io.env);
      const ctx = await buildContext(settings, io.env, cliLogger(io.env));
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
      try {
        const { config } = ctx;
        const secret = await ctx
          .secrets(config.secret.region)
          .send(new DescribeSecretCommand({ SecretId: config.secret.arn }));
        const stages = Object.entries(secret.VersionIdsToStages ?? {});
        const current = stages.find(([, s]) => s.includes("AWSCURRENT"))?.[0];
        const pending = stages.find(([, s]) => s.includes("AWSPENDING") && !s.includes("AWSCURRENT"))?.[0];
        if (pending) {
          return refuse(
            `a rotation is already pending: version ${pending} holds AWSPENDING (current: ${current ?? "none"}). Follow it with 'bk-agent-token status'. If it is stuck, see the rotate-token function's logs; Secrets Manager retries it. To abandon it: aws secretsmanager update-secret-version-stage --secret-id ${config.secret.arn} --version-stage AWSPENDING --remove-from-version-id ${pending}`,
          );
        }
        if (secret.RotationEnabled !== true || !secret.RotationLambdaARN) {
          return refuse(
            `rotation is not configured on ${config.secret.arn} (no rotation function or schedule): deploy the stack's rotation schedule first ('bk-agent-token preflight' checks it)`,
          );
        }
        if (!current) return refuse(`${config.secret.arn} has no AWSCURRENT version`);

        const versionId = newVersionId();
        let containment: Containment | undefined;
        if (options.emergency) {
          const tokens = await ctx.buildkite.listTokens();
          const leakedTokenIds = tokens
            .filter((t) => managedVersionOf(t.description, config.secret.arn) === current)
            .map((t) => t.id);
          const anchor = await findAnchor(ctx);
          if (!anchor) {
            return refuse(
              "--emergency needs an existing target group to record the emergency on, and none of TARGET_GROUPS exists",
            );
          }
          const declaration = {
            versionId,
            leakedVersionId: current,
            minHealthyPercentage: options.emergency.minHealthyPercentage,
          };
          // Written BEFORE the rotation starts, so the very first reconcile of the new version sees it.
          await tagGroup(
            ctx.autoScaling(anchor.region),
            anchor.groupName,
            EMERGENCY_TAG,
            encodeEmergency(declaration),
          );
          say(
            `Emergency declared on ${anchor.region}:${anchor.groupName}: version ${current} leaked; new version ${versionId}; refreshes with min healthy ${declaration.minHealthyPercentage}% and protected instances replaced (Refresh).`,
          );
          containment = {
            leakedVersionId: current,
            leakedTokenIds,
            unmanaged: tokens
              .filter((t) => !isManagedFor(t.description, config.secret.arn))
              .map((t) => ({ id: t.id, description: t.description })),
            revokedSeenAt: undefined,
            openGroupsAtRevocation: undefined,
          };
        }

        // RotationLambdaARN restates the configured function (no configuration change on AWS). Without
        // it moto forgets the function and promotes an empty version at once.
        const out = await ctx.secrets(config.secret.region).send(
          new RotateSecretCommand({
            SecretId: config.secret.arn,
            ClientRequestToken: versionId,
            RotationLambdaARN: secret.RotationLambdaARN,
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
            io.stderr.write(`bk-agent-token rotate: ${outcome.message}; the rotation continues without us\n`);
            code = 1;
            break;
          }
        }
        if (containment) io.stdout.write(containmentReport(containment, report, config.buildkite.clusterId));
        return code;
      } finally {
        ctx.dispose();
      }
    },
  };
}

export const rotateCommand: CommandRunner = rotateCommandWith();

import { parseCommandArgs } from "../args";
import { cliLogger } from "../logger";
import type { Command } from "../types";
import {
  OPERATOR_HELP,
  OPERATOR_OPTIONS,
  operatorContext,
  operatorSettings,
  terminalWidth,
  useColor,
} from "./context";
import { renderStatus, statusJson } from "./render/table";

const HELP = `Usage: bk-agent-token status [--json] [options]

Show the rotation: the secret's versions with their tokens' ages and expiry, the version each
region serves, each group's refresh state and progress, the managed tokens still valid, what the
reconcile function will do next, and whether rotation is overdue. Read-only.

Options:
  --json                    print one JSON object instead of the table (schema below)

${OPERATOR_HELP}

Exit codes:
  0  fine (in progress, complete or idle)
  1  error (configuration, access, API)
  2  usage
  3  needs attention: the rollout is blocked until an operator acts (failed refresh, missing
     group, failed replica), or the scheduled rotation is overdue (more than an hour late)

JSON (schemaVersion 1; keys are always present, null when unknown; fields may be added, never
removed or changed; dates ISO 8601 UTC; durations in seconds; no token value, only token ids):
  schemaVersion, at, exitCode (0|3), attention [string],
  secret    {arn, name, primaryRegion, rotationEnabled, schedule, lastRotatedAt, nextRotationAt,
             overdue, currentVersionId, pendingVersionId}
  versions  [{versionId, stages, createdAt, ageSeconds,
              token: {id, createdAt, expiresAt, expiresInSeconds} | null}]   newest first
  regions   [{region, primary, currentVersionId, state: in-sync|lagging|failed, detail}]
  groups    [{region, groupName, phase, instances, refreshId, refreshStatus, percentageComplete,
              detail}]
            phase: missing|waiting-for-replica|waiting-for-other-refresh|start-refresh|
                   refreshing|refreshed|empty|failed|partial|unmanaged|unknown
  tokens    {managedValid: [{id, versionId, createdAt, expiresAt}], unmanaged: [{id, description}]}
  emergency {versionId, leakedVersionId, minHealthyPercentage} | null
  rollout   {complete, waitingFor: [replicas|refreshes|operator], next: [string], notices: [string]}
`;

export const statusCommand: Command = {
  summary: "show the rotation and rollout state (table or --json); exit 3 when blocked or overdue",
  async run(args, io) {
    const { values } = parseCommandArgs(args, { ...OPERATOR_OPTIONS, json: { type: "boolean" } });
    if (values.help) {
      io.stdout.write(HELP);
      return 0;
    }
    const settings = operatorSettings(values, io.env);
    const ctx = await operatorContext(settings, io.env, cliLogger(io.env));
    try {
      const report = await ctx.collect();
      const json = statusJson(report);
      if (values.json) {
        io.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      } else {
        const width = terminalWidth(io.stdout);
        io.stdout.write(
          renderStatus(report, { color: useColor(io.stdout, io.env), ...(width ? { width } : {}) }),
        );
      }
      return json.exitCode;
    } finally {
      ctx.dispose();
    }
  },
};

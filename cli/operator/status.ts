import { terminalWidth, useColor } from "../../shared/lib/terminal";
import { helpText, type OptionSpec, PROGRAM } from "../args";
import type { CommandRunner } from "../types";
import { OPERATOR_OPTIONS, OPERATOR_SECTION_INTROS } from "./context";
import { operatorCommand } from "./operator-command";
import { describeStatusJson, statusJson } from "./render/json";
import { renderStatus } from "./render/table";

const OPTIONS = {
  json: { type: "boolean", help: "print one JSON object instead of the table (schema below)" },
  ...OPERATOR_OPTIONS,
} as const satisfies OptionSpec;

const HELP = helpText(PROGRAM, {
  usage: "status [--json] [options]",
  description: `Show the rotation: the secret's versions with their tokens' ages and expiry, the version each
region serves, each group's refresh state and progress, the managed tokens still valid, what the
reconcile function will do next, and whether rotation is overdue. Read-only.`,
  options: OPTIONS,
  sectionIntros: OPERATOR_SECTION_INTROS,
  epilogue: `Exit codes:
  0  fine (in progress, complete or idle)
  1  error (configuration, access, API)
  2  usage
  3  needs attention: the rollout is blocked until an operator acts (failed refresh, missing
     group, failed replica), or the scheduled rotation is overdue (more than an hour late)

JSON (schemaVersion 1; keys are always present, null when unknown; fields may be added, never
removed or changed; dates ISO 8601 UTC; durations in seconds; no token value, only token ids):
${describeStatusJson(100)}`,
});

export const statusCommand: CommandRunner = operatorCommand(OPTIONS, HELP, async (ctx, values, io) => {
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
});

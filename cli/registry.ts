import { renderCommand } from "./consumer/render";
import { tokenCommand } from "./consumer/token";
import { writeConfigCommand } from "./consumer/write-config";
import type { Command } from "./types";

/**
 * An operator command, loaded when it runs: its module (and the Lambda, SNS, Auto Scaling, STS,
 * IAM, EC2 and CloudFormation clients it brings) is imported only then. The bundle is built with
 * esbuild's code splitting (scripts/build.ts), so a boot script that prints the token does not
 * even parse that code.
 */
function lazy(summary: string, load: () => Promise<Pick<Command, "run">>): Command {
  return { summary, run: async (args, io) => (await load()).run(args, io) };
}

/**
 * Every subcommand of `bk-agent-token`, by name: the boot-time consumers (cli/consumer/, loaded
 * with the CLI) and the operator commands (cli/operator/, loaded lazily). To add one, write its
 * module exporting a Command ({ summary, run(args, io) }) and list it here.
 */
export const commands: Record<string, Command> = {
  token: tokenCommand,
  "write-config": writeConfigCommand,
  render: renderCommand,
  status: lazy(
    "show the rotation and rollout state (table or --json); exit 3 when blocked or overdue",
    async () => (await import("./operator/status")).statusCommand,
  ),
  preflight: lazy(
    "dry run: check access, token scopes, groups, replicas and schedule; print the plan",
    async () => (await import("./operator/preflight")).preflightCommand,
  ),
  rotate: lazy(
    "start a rotation and follow its rollout (--emergency for a leaked token)",
    async () => (await import("./operator/rotate")).rotateCommand,
  ),
};

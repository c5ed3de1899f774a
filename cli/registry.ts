import { renderCommand } from "./consumer/render";
import { tokenCommand } from "./consumer/token";
import { writeConfigCommand } from "./consumer/write-config";
import { preflightCommand } from "./operator/preflight";
import { rotateCommand } from "./operator/rotate";
import { statusCommand } from "./operator/status";
import type { Command } from "./types";

/**
 * Every subcommand of `bk-agent-token`, by name. To add one, write cli/commands/<name>.ts
 * exporting a Command ({ summary, run(args, io) }) and list it here.
 */
export const commands: Record<string, Command> = {
  token: tokenCommand,
  "write-config": writeConfigCommand,
  render: renderCommand,
  status: statusCommand,
  preflight: preflightCommand,
  rotate: rotateCommand,
};

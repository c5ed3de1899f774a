import { preflightCommand } from "./commands/preflight";
import { renderCommand } from "./commands/render";
import { rotateCommand } from "./commands/rotate";
import { statusCommand } from "./commands/status";
import { tokenCommand } from "./commands/token";
import { writeConfigCommand } from "./commands/write-config";
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

import type { Env } from "../shared/lib/config";
import { createLogger, type Logger, parseLevel } from "../shared/lib/log";

/**
 * The CLI's structured diagnostics (stderr: main() points the log sink there). Quiet by default:
 * warnings and errors only, unless LOG_LEVEL asks for more.
 */
export function cliLogger(env: Env): Logger {
  return createLogger("bk-agent-token", {}, parseLevel(env.LOG_LEVEL, "warn"));
}

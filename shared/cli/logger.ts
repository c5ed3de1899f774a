import type { Env } from "../config";
import { createLogger, type Logger, type LogLevel } from "../log";

/**
 * The CLI's structured diagnostics (stderr: main() points the log sink there). Quiet by default:
 * warnings and errors only, unless LOG_LEVEL asks for more.
 */
export function cliLogger(env: Env): Logger {
  const raw = env.LOG_LEVEL?.toLowerCase();
  const level: LogLevel =
    raw === "debug" || raw === "info" || raw === "warn" || raw === "error" ? raw : "warn";
  return createLogger("bk-agent-token", {}, level);
}

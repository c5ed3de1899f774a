import type { Env } from "../shared/lib/config";

/** Where a command writes and what environment it sees; injectable so tests run main() in-process. */
export interface CliIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  /**
   * Settings the CLI itself reads (BUILDKITE_AGENT_TOKEN_SECRET_ID, AWS_REGION, LOG_LEVEL, env://
   * references). The AWS SDK reads its own settings (credentials, AWS_ENDPOINT_URL, AWS_PROFILE)
   * from the process environment.
   */
  env: Env;
}

/**
 * One subcommand. `run` gets the arguments after the command name, handles its own --help, and
 * returns the exit code (0 ok, 1 failed, 2 usage). Throwing a UsageError also exits 2; any other
 * error exits 1 with its (redacted) message on stderr.
 */
export interface Command {
  summary: string;
  run(args: readonly string[], io: CliIo): Promise<number>;
}

/** What an operator module exports: its summary lives in the registry, which lists it without loading it. */
export type CommandRunner = Pick<Command, "run">;

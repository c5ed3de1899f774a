import { redactSecrets, setLogSink } from "../shared/lib/log";
import { truncate } from "../shared/lib/redact";
import { readErrorMessage } from "../shared/token-reader/errors";
import { PROGRAM, UsageError } from "./args";
import { commands } from "./registry";
import type { CliIo, Command } from "./types";

export { PROGRAM } from "./args";

export function overview(registry: Readonly<Record<string, Command>> = commands): string {
  const names = Object.keys(registry);
  const width = Math.max(...names.map((n) => n.length), 4);
  const lines = names.map((n) => `  ${n.padEnd(width)}  ${registry[n]?.summary ?? ""}`);
  return `Usage: ${PROGRAM} <command> [options]

Commands:
${lines.join("\n")}

Run '${PROGRAM} <command> --help' for a command's options.
`;
}

/**
 * Runs one command and returns the exit code: 0 ok, 1 failed, 2 usage. Structured logs go to
 * stderr while it runs, so stdout carries only what the command prints. Nothing written to stderr
 * by main itself can carry a registered secret.
 */
/** The longest error message printed; enough for every message we build, with references. */
const MAX_ERROR_CHARS = 2_000;

export async function main(
  argv: readonly string[],
  io: CliIo,
  registry: Readonly<Record<string, Command>> = commands,
): Promise<number> {
  const previousSink = setLogSink((line) => io.stderr.write(`${line}\n`));
  const [name, ...rest] = argv;
  try {
    if (name === "--help" || name === "-h" || name === "help") {
      const topic = rest[0];
      const command = topic ? registry[topic] : undefined;
      if (command) return await command.run(["--help"], io);
      io.stdout.write(overview(registry));
      return 0;
    }
    const command = name ? registry[name] : undefined;
    if (!name || !command) {
      io.stderr.write(
        `${name ? `${PROGRAM}: unknown command ${JSON.stringify(truncate(name, 60))}\n\n` : ""}${overview(registry)}`,
      );
      return 2;
    }
    return await command.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(
        redactSecrets(
          `${PROGRAM} ${name}: ${truncate(error.message, MAX_ERROR_CHARS)}\nRun '${PROGRAM} ${name} --help' for usage.\n`,
        ),
      );
      return 2;
    }
    // Bounded: a message can quote attacker-chosen input (a path, a reference, a server's answer).
    io.stderr.write(
      redactSecrets(`${PROGRAM} ${name}: error: ${truncate(readErrorMessage(error), MAX_ERROR_CHARS)}\n`),
    );
    return 1;
  } finally {
    setLogSink(previousSink);
  }
}

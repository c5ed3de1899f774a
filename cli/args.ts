import { type ParseArgsConfig, parseArgs } from "node:util";
import { InputError } from "../shared/lib/errors";
import type { CliIo } from "./types";

/** The CLI's name, as package.json's "bin" installs it. */
export const PROGRAM = "bk-agent-token";

/** Bad command-line usage: exit code 2 and a hint to run --help. */
export class UsageError extends InputError {
  override name = "UsageError";
}

/**
 * One command-line option, written once: node:util parseArgs reads `type`, `short` and
 * `multiple`; the help is generated from `value`, `help` and `section`. Nothing else describes it.
 */
export interface OptionDoc {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** The value's placeholder in the help: `--secret-id ID`. */
  value?: string;
  /** What it does; `\n` starts a continuation line. */
  help: string;
  /** The help section it is listed under (default "Options"). */
  section?: string;
}

export type OptionSpec = Record<string, OptionDoc>;

/** `-h, --help` for every command. */
export const HELP_OPTION = {
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies OptionSpec;

/** Everything a command's help says, in order: usage, description, options by section, epilogue. */
export interface CommandHelp {
  /** After the program name: `token [options]`. */
  usage: string;
  description: string;
  options: OptionSpec;
  /** Prose printed under a section's title, above its options (e.g. where configuration comes from). */
  sectionIntros?: Record<string, string>;
  /** After the options: exit codes, formats. */
  epilogue?: string;
}

const FLAG_WIDTH = 24;

/** The options of one section, aligned: `  --secret-id ID            secret name or ARN`. */
export function optionLines(options: OptionSpec): string[] {
  const lines: string[] = [];
  for (const [name, o] of Object.entries(options)) {
    const flag = `${o.short ? `-${o.short}, ` : ""}--${name}${o.value ? ` ${o.value}` : ""}`;
    const [first = "", ...rest] = o.help.split("\n");
    if (flag.length > FLAG_WIDTH) {
      lines.push(`  ${flag}`, `  ${" ".repeat(FLAG_WIDTH)}  ${first}`);
    } else {
      lines.push(`  ${flag.padEnd(FLAG_WIDTH)}  ${first}`);
    }
    for (const r of rest) lines.push(`  ${" ".repeat(FLAG_WIDTH)}  ${r}`);
  }
  return lines;
}

/** A command's --help, generated from its option spec. */
export function helpText(program: string, help: CommandHelp): string {
  const sections = new Map<string, OptionSpec>();
  for (const [name, o] of Object.entries(help.options)) {
    const title = o.section ?? "Options";
    sections.set(title, { ...(sections.get(title) ?? {}), [name]: o });
  }
  const parts = [`Usage: ${program} ${help.usage}`, help.description.trim()];
  for (const [title, options] of sections) {
    const intro = help.sectionIntros?.[title];
    parts.push([`${title}:`, ...(intro ? [intro.trimEnd()] : []), ...optionLines(options)].join("\n"));
  }
  if (help.epilogue) parts.push(help.epilogue.trim());
  return `${parts.join("\n\n")}\n`;
}

/** node:util parseArgs, strict, no positionals; its errors become UsageErrors. */
export function parseCommandArgs<const T extends OptionSpec>(args: readonly string[], options: T) {
  try {
    return parseArgs({
      args: [...args],
      options: options satisfies ParseArgsConfig["options"],
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** What parseCommandArgs gives for an option spec. */
export type OptionValues<T extends OptionSpec> = ReturnType<typeof parseCommandArgs<T>>["values"];

/**
 * The start of every command: its arguments parsed (a usage error throws), --help answered with
 * `help` (exit 0), else `run` with the parsed values.
 */
export function withOptions<const T extends OptionSpec>(
  options: T,
  help: string,
  run: (values: OptionValues<T>, io: CliIo) => Promise<number>,
): (args: readonly string[], io: CliIo) => Promise<number> {
  return async (args, io) => {
    const { values } = parseCommandArgs(args, options);
    // Every command's spec has HELP_OPTION; parseArgs' generic result type does not show it here.
    if ((values as { help?: boolean }).help) {
      io.stdout.write(help);
      return 0;
    }
    return run(values, io);
  };
}

/** Repeatable and comma-separated values, flattened, trimmed, without duplicates. */
export function splitList(values: readonly string[] | string | undefined): string[] {
  const list = typeof values === "string" ? [values] : (values ?? []);
  return [
    ...new Set(
      list
        .flatMap((v) => v.split(","))
        .map((v) => v.trim())
        .filter(Boolean),
    ),
  ];
}

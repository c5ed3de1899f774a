import { InvalidTokenValueError } from "../../shared/token-reader/errors";
import { helpText, type OptionSpec, PROGRAM, UsageError, withOptions } from "../args";
import { cliLogger } from "../logger";
import type { Command } from "../types";
import { checkWriteTarget, readCheckedTarget, writeFileAtomic } from "./atomic-write";
import { awsContext, COMMON_OPTIONS, readerSettings, requireSecretId } from "./aws";

const OPTIONS = {
  file: {
    type: "string",
    value: "PATH",
    help: "the agent config file (e.g. /etc/buildkite-agent/buildkite-agent.cfg)",
  },
  "follow-symlinks": {
    type: "boolean",
    help: "allow symbolic links in PATH (the file it points to is replaced)",
  },
  ...COMMON_OPTIONS,
} as const satisfies OptionSpec;

const HELP = helpText(PROGRAM, {
  usage: "write-config --file PATH [options]",
  description: `Write the agent token into a buildkite-agent.cfg: the token="..." line is replaced (or appended
when there is none; later duplicates are dropped), every other line is kept. The file is replaced
atomically (temporary file in the same directory, then rename) with mode 0600, keeping its owner
when allowed. A missing file is created. Only a regular file (or a missing one) is written: a
symbolic link (the file or any directory above it), a device, a FIFO, or a directory writable
by its group or others (unless sticky, as /tmp) is refused.
`,
  options: OPTIONS,
});

const TOKEN_LINE = /^\s*token\s*=/;

/**
 * The config with its token line set. Buildkite tokens are printable ASCII without quotes or
 * backslashes; anything else could not be written as a quoted value safely, and is refused
 * without echoing it.
 */
export function setTokenLine(content: string, token: string): string {
  if (!/^[\x21-\x7e]+$/.test(token) || token.includes('"') || token.includes("\\")) {
    throw new InvalidTokenValueError(
      "the token contains characters that cannot be written to an agent config (whitespace, quotes, backslashes or non-ASCII)",
    );
  }
  const line = `token="${token}"`;
  if (content === "") return `${line}\n`;
  const eol = content.includes("\r\n") ? "\r\n" : "\n";
  const endsWithEol = content.endsWith("\n");
  const lines = content.split(/\r?\n/);
  if (endsWithEol) lines.pop();
  let replaced = false;
  const out: string[] = [];
  for (const l of lines) {
    if (TOKEN_LINE.test(l)) {
      if (!replaced) out.push(line);
      replaced = true;
    } else {
      out.push(l);
    }
  }
  if (!replaced) out.push(line);
  return out.join(eol) + eol;
}

export const writeConfigCommand: Command = {
  summary: 'write the token into a buildkite-agent.cfg (token="..." line, atomic, mode 0600)',
  run: withOptions(OPTIONS, HELP, async (values, io) => {
    const file = values.file?.trim();
    if (!file) throw new UsageError("--file PATH is required");
    const settings = readerSettings(values, io.env);
    const secretId = requireSecretId(settings);
    const safety = { followSymlinks: values["follow-symlinks"] === true };
    // Check and read the file first: a path we refuse or cannot read is reported before any AWS
    // call, and a FIFO or device is never opened.
    const target = await checkWriteTarget(file, safety);
    const current = await readCheckedTarget(target, safety);
    const aws = awsContext(settings, cliLogger(io.env));
    try {
      const value = await aws.reader(secretId).read();
      const written = await writeFileAtomic(target.path, setTokenLine(current, value.token), 0o600, safety);
      if (!written.ownerKept) {
        io.stderr.write(`bk-agent-token: warning: could not keep the owner of ${written.path}\n`);
      }
      io.stderr.write(
        `bk-agent-token: wrote the token (version ${value.versionId ?? "unknown"}) to ${written.path}\n`,
      );
      return 0;
    } finally {
      aws.dispose();
    }
  }),
};

import type { CliIo } from "../../cli/types";

/** An in-process CliIo: what a command wrote to stdout and stderr, and the environment it saw. */
export function fakeIo(env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { stdout: { write: (s) => out.push(s) }, stderr: { write: (s) => err.push(s) }, env };
  return { io, out: () => out.join(""), err: () => err.join("") };
}

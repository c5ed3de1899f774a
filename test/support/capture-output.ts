import { setLogSink } from "../../shared/lib/log";

/**
 * Captures every line our logger writes and everything else written to stdout/stderr, so a test
 * can assert that no token value ever appeared in any output.
 */
export function captureOutput() {
  const lines: string[] = [];
  const previousSink = setLogSink((line) => lines.push(line));
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  const grab =
    (original: typeof out) =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      lines.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString());
      return (original as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    };
  process.stdout.write = grab(out) as typeof process.stdout.write;
  process.stderr.write = grab(err) as typeof process.stderr.write;
  return {
    lines,
    text: () => lines.join("\n"),
    restore() {
      setLogSink(previousSink);
      process.stdout.write = out;
      process.stderr.write = err;
    },
  };
}

import { setLogSink } from "../../shared/lib/log";

/** Anything that knows the token values it minted: the Buildkite stand-in's `tokens()`. */
export interface TokenSource {
  tokens(): ReadonlyArray<{ value: string }>;
}

/**
 * A test-wide token scan. Everything written while it runs (our logger's lines, before its
 * redaction is applied; stdout; stderr) is kept, and so is every extra text a test hands it
 * (runtime error reports, command outputs, results). `leaks()` lists which registered tokens
 * appear anywhere: every token the watched Buildkite stand-ins ever minted (revoked ones
 * included) plus any value registered by hand.
 *
 * Our log sink is wrapped, not replaced: lines still reach the previous sink. The sink sees lines
 * after the logger's redaction, so `redacted()` lists where the redaction had to act: a suite
 * that asserts it empty proves no token even reached the logger (the redaction is the last line
 * of defence, not what keeps a test green).
 */
export interface TokenScan {
  watch(source: TokenSource): void;
  register(value: string): void;
  /** Add text that never went through stdout/stderr/the logger (error reports, HTTP bodies). */
  record(label: string, text: string): void;
  /** The tokens found, as "<where>: token #n" (never the value). */
  leaks(): string[];
  /** Where the logger's redaction marker appears. */
  redacted(): string[];
  /** Throws naming where each token appeared (never the token itself). */
  assertClean(): void;
  /** Count of texts scanned so far (so a test can assert the scan saw something). */
  size(): number;
  stop(): void;
}

export function startTokenScan(): TokenScan {
  const texts: Array<{ label: string; text: string }> = [];
  const sources: TokenSource[] = [];
  const extra = new Set<string>();
  let active = true;
  const previous = setLogSink((line) => {
    if (active) texts.push({ label: "log", text: line });
    previous(line);
  });
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  const grab =
    (label: string, original: typeof out) =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      texts.push({ label, text: typeof chunk === "string" ? chunk : Buffer.from(chunk).toString() });
      return (original as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    };
  process.stdout.write = grab("stdout", out) as typeof process.stdout.write;
  process.stderr.write = grab("stderr", err) as typeof process.stderr.write;

  const values = () => {
    const all = new Set(extra);
    for (const s of sources) for (const t of s.tokens()) if (t.value.length >= 8) all.add(t.value);
    return [...all];
  };
  const leaks = () => {
    const found: string[] = [];
    const tokens = values();
    for (const { label, text } of texts) {
      tokens.forEach((token, i) => {
        if (text.includes(token)) found.push(`${label}: token #${i + 1}`);
      });
    }
    return found;
  };
  return {
    watch: (source) => {
      sources.push(source);
    },
    register: (value) => {
      if (value.length >= 8) extra.add(value);
    },
    record: (label, text) => {
      texts.push({ label, text });
    },
    leaks,
    redacted: () =>
      texts.filter(({ text }) => /\[REDACTED\]|\[redacted\]/.test(text)).map(({ label }) => label),
    assertClean: () => {
      const found = leaks();
      if (found.length > 0) throw new Error(`token values leaked into: ${[...new Set(found)].join(", ")}`);
    },
    size: () => texts.length,
    stop: () => {
      active = false;
      setLogSink(previous);
      process.stdout.write = out;
      process.stderr.write = err;
    },
  };
}

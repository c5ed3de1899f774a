/**
 * Structured JSON logs, one object per line, with two layers of protection against leaking a
 * token: values registered with `registerSecret` are replaced wherever they appear, and fields
 * whose key names a credential are never printed.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SENSITIVE_KEY = /^(token|value|secret|secretstring|password|authorization|apitoken|accesstoken)$/i;
const REDACTED = "[REDACTED]";

const secrets = new Set<string>();

/** Remember a credential so that no log line can ever contain it. */
export function registerSecret(value: string | undefined): void {
  // Very short values would redact ordinary words; real tokens are long.
  if (value && value.length >= 8) secrets.add(value);
}

export function redactSecrets(text: string): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return out;
}

export type LogSink = (line: string) => void;
let sink: LogSink = (line) => process.stdout.write(`${line}\n`);

/** Tests capture every line here; the default writes to stdout, which Lambda ships to CloudWatch. */
export function setLogSink(next: LogSink): LogSink {
  const previous = sink;
  sink = next;
  return previous;
}

export function writeLine(line: string): void {
  sink(redactSecrets(line));
}

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

function scrub(value: unknown, depth = 0): unknown {
  if (depth > 6) return "[deep]";
  if (value instanceof Error) {
    return { name: value.name, message: value.message };
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = SENSITIVE_KEY.test(k) ? REDACTED : scrub(v, depth + 1);
    }
    return out;
  }
  return value;
}

export function createLogger(service: string, base: Fields = {}, level?: LogLevel): Logger {
  const min = LEVELS[level ?? parseLevel(process.env.LOG_LEVEL)];
  const emit = (lvl: LogLevel, message: string, fields?: Fields) => {
    if (LEVELS[lvl] < min) return;
    const entry = {
      timestamp: new Date().toISOString(),
      level: lvl.toUpperCase(),
      service,
      message,
      ...(scrub(base) as Fields),
      ...(fields ? (scrub(fields) as Fields) : {}),
    };
    writeLine(JSON.stringify(entry));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger(service, { ...base, ...fields }, level),
  };
}

/** A LOG_LEVEL value as a level; anything else is `fallback`. */
export function parseLevel(raw: string | undefined, fallback: LogLevel = "info"): LogLevel {
  const l = raw?.toLowerCase();
  return l === "debug" || l === "info" || l === "warn" || l === "error" ? l : fallback;
}

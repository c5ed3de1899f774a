/**
 * Structured JSON logs, one object per line, with three layers of protection against leaking a
 * token: values registered with `registerSecret` are replaced wherever they appear, text shaped
 * like a credential is blanked (shared/lib/redact.ts), and fields whose key names a credential are
 * never printed. Every line and every string field is bounded before any of that runs.
 */
import { MAX_FIELD_CHARS, redactTokenShapes, truncate } from "./redact";

export type LogLevel = "debug" | "info" | "warn" | "error";
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const REDACTED = "[REDACTED]";
/** The longest line we write; CloudWatch Logs caps an event at 256 KB anyway. */
const MAX_LINE_CHARS = 200_000;

/**
 * A key names a credential when, lower-cased without separators, it contains one of these
 * (`agentToken`, `BUILDKITE_AGENT_TOKEN`, `x-api-key`, `requestBody`, …) …
 */
const SENSITIVE_PARTS = [
  "token",
  "secret",
  "password",
  "passwd",
  "passphrase",
  "authorization",
  "credential",
  "apikey",
  "privatekey",
  "accesskey",
  "sessionkey",
  "cookie",
  "signature",
  "body",
  "payload",
];
/** … or is exactly one of these … */
const SENSITIVE_EXACT = new Set(["value", "auth", "pwd"]);
/**
 * … unless it names a reference to one rather than the thing: `tokenId`, `secretArn`,
 * `leakedTokenIds`, `tokenExpirySeconds`, `ClientRequestToken` (a version id).
 */
const REFERENCE_SUFFIXES = [
  "id",
  "ids",
  "arn",
  "arns",
  "name",
  "names",
  "count",
  "seconds",
  "ms",
  "at",
  "path",
  "stage",
  "stages",
  "region",
  "regions",
  "kind",
  "source",
  "length",
  "url",
];
const NOT_SENSITIVE = new Set(["clientrequesttoken", "rotationtokenpresent"]);

/** Whether a field of this name is never printed (non-string scalars are: they cannot be a token). */
export function isSensitiveKey(key: string): boolean {
  const k = key.toLowerCase().replace(/[^a-z0-9]/g, "");
  if (NOT_SENSITIVE.has(k)) return false;
  if (SENSITIVE_EXACT.has(k)) return true;
  if (!SENSITIVE_PARTS.some((part) => k.includes(part))) return false;
  return !REFERENCE_SUFFIXES.some((suffix) => k.endsWith(suffix) && k.length > suffix.length);
}

const secrets = new Set<string>();

/** Remember a credential so that no log line can ever contain it. */
export function registerSecret(value: string | undefined): void {
  // Very short values would redact ordinary words; real tokens are long.
  if (value && value.length >= 8) {
    secrets.add(value);
    longestSecret = Math.max(longestSecret, value.length);
  }
}

let longestSecret = 0;

/**
 * Registered values, then credential shapes, replaced in at most MAX_LINE_CHARS of `text`. The cut
 * keeps enough beyond the limit that a registered value straddling it is still found whole.
 */
export function redactSecrets(text: string, max = MAX_LINE_CHARS): string {
  let out = text.length > max + longestSecret ? text.slice(0, max + longestSecret) : text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return redactTokenShapes(truncate(out, max), max + 64);
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

/** The longest string field we print; ids, names and snippets fit, echoed junk does not. */
const MAX_STRING_FIELD = 2 * MAX_FIELD_CHARS;
const MAX_ITEMS = 100;

function scrub(value: unknown, depth = 0): unknown {
  if (depth > 6) return "[deep]";
  if (typeof value === "string") return truncate(value, MAX_STRING_FIELD);
  if (value instanceof Error) {
    return { name: truncate(value.name, 100), message: truncate(value.message, MAX_STRING_FIELD) };
  }
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((v) => scrub(v, depth + 1));
    return value.length > MAX_ITEMS ? [...items, `[${value.length - MAX_ITEMS} more]`] : items;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value).slice(0, MAX_ITEMS)) {
      const scalar = typeof v === "number" || typeof v === "boolean" || v === null || v === undefined;
      out[truncate(k, 100)] = !scalar && isSensitiveKey(k) ? REDACTED : scrub(v, depth + 1);
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
      message: truncate(message, MAX_STRING_FIELD * 2),
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

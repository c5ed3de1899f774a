import type { RolloutStrategy } from "../../../shared/lib/config";
import { wrap } from "../../../shared/lib/terminal";
import type { StatusReport } from "../../../shared/rollout/status";
import type { InstanceState, Plan, TargetPhase } from "../../../shared/rollout/types";
import { statusAttention } from "./advice";

/**
 * `bk-agent-token status --json`, schema version 1, written once: STATUS_JSON_SCHEMA below is the
 * only description of the shape. The TypeScript type (StatusJson) is derived from it, the help text
 * (`status --help`) is rendered from it, and schemaErrors() checks a document against it (tests do,
 * on every document they make). Stable: fields are only ever added; every key is always present
 * (null when unknown); dates are ISO 8601 UTC strings; durations are seconds; no token value.
 */

type Field =
  | { readonly type: "string" | "iso" | "number" | "boolean"; readonly note?: string }
  | { readonly type: "const"; readonly value: number | string; readonly note?: string }
  | { readonly type: "enum"; readonly values: readonly string[] | readonly number[]; readonly note?: string }
  | { readonly type: "nullable"; readonly of: Field; readonly note?: string }
  | { readonly type: "list"; readonly of: Field; readonly note?: string }
  | { readonly type: "object"; readonly fields: Readonly<Record<string, Field>>; readonly note?: string };

/** The JSON value a field describes. */
export type JsonOf<F> = F extends { type: "string" | "iso" }
  ? string
  : F extends { type: "number" }
    ? number
    : F extends { type: "boolean" }
      ? boolean
      : F extends { type: "const"; value: infer V }
        ? V
        : F extends { type: "enum"; values: readonly (infer V)[] }
          ? V
          : F extends { type: "nullable"; of: infer E }
            ? JsonOf<E> | null
            : F extends { type: "list"; of: infer E }
              ? Array<JsonOf<E>>
              : F extends { type: "object"; fields: infer O }
                ? { -readonly [K in keyof O]: JsonOf<O[K]> }
                : never;

const str = (note?: string) => ({ type: "string", ...(note ? { note } : {}) }) as const;
const isoDate = { type: "iso" } as const;
const num = (note?: string) => ({ type: "number", ...(note ? { note } : {}) }) as const;
const bool = { type: "boolean" } as const;
const nullable = <const F extends Field>(of: F) => ({ type: "nullable", of }) as const;
const list = <const F extends Field>(of: F, note?: string) =>
  ({ type: "list", of, ...(note ? { note } : {}) }) as const;
const oneOf = <const V extends readonly string[] | readonly number[]>(values: V, note?: string) =>
  ({ type: "enum", values, ...(note ? { note } : {}) }) as const;
const object = <const O extends Record<string, Field>>(fields: O, note?: string) =>
  ({ type: "object", fields, ...(note ? { note } : {}) }) as const;

// Enumerations, checked against the domain's types so a new phase or state cannot be left out.
const PHASES = [
  "missing",
  "waiting-for-replica",
  "waiting-for-other-refresh",
  "start-refresh",
  "refreshing",
  "refreshed",
  "updating",
  "updated",
  "blocked",
  "empty",
  "failed",
  "partial",
  "unmanaged",
  "unknown",
] as const satisfies readonly TargetPhase[];
const INSTANCE_STATES = [
  "booted-after-sync",
  "confirmed",
  "gone",
  "in-flight",
  "to-send",
  "boot-in-progress",
  "retry-wait",
  "unreachable",
  "foreign-token",
  "refused",
  "awaiting-refresh",
  "unknown",
] as const satisfies readonly InstanceState[];
const WAITING_FOR = ["replicas", "refreshes", "commands", "operator"] as const satisfies Plan["waitingFor"];
const STRATEGIES = ["in-place", "refresh"] as const satisfies readonly RolloutStrategy[];
type Exhaustive<T extends string, L extends readonly string[]> = [T] extends [L[number]] ? true : never;
const exhaustive: [
  Exhaustive<TargetPhase, typeof PHASES>,
  Exhaustive<InstanceState, typeof INSTANCE_STATES>,
  Exhaustive<Plan["waitingFor"][number], typeof WAITING_FOR>,
  Exhaustive<RolloutStrategy, typeof STRATEGIES>,
] = [true, true, true, true];
void exhaustive;

export const STATUS_JSON_SCHEMA = object({
  schemaVersion: { type: "const", value: 1 },
  at: { type: "iso", note: "when the snapshot was taken" },
  secret: object({
    arn: str(),
    name: str(),
    primaryRegion: str(),
    rotationEnabled: bool,
    schedule: nullable(str()),
    lastRotatedAt: nullable(isoDate),
    nextRotationAt: nullable(isoDate),
    overdue: bool,
    currentVersionId: nullable(str()),
    pendingVersionId: nullable(str()),
  }),
  versions: list(
    object({
      versionId: str(),
      stages: list(str()),
      createdAt: nullable(isoDate),
      ageSeconds: nullable(num()),
      token: nullable(
        object({
          id: str(),
          createdAt: nullable(isoDate),
          expiresAt: nullable(isoDate),
          expiresInSeconds: nullable(num()),
        }),
      ),
    }),
    "newest first",
  ),
  regions: list(
    object({
      region: str(),
      primary: bool,
      currentVersionId: nullable(str()),
      state: oneOf(["in-sync", "lagging", "failed"]),
      detail: nullable(str()),
    }),
  ),
  strategy: oneOf(STRATEGIES),
  groups: list(
    object({
      region: str(),
      groupName: str(),
      stackName: nullable(str()),
      phase: oneOf(PHASES),
      instances: num(),
      progress: object({ total: num(), safe: num(), pending: num(), unreachable: num() }),
      waiting: list(
        object({ instanceId: str(), state: oneOf(INSTANCE_STATES), detail: str() }),
        "instances not yet safe",
      ),
      refreshId: nullable(str()),
      refreshStatus: nullable(str()),
      percentageComplete: nullable(num()),
      detail: str(),
    }),
  ),
  tokens: object({
    managedValid: list(
      object({ id: str(), versionId: str(), createdAt: nullable(isoDate), expiresAt: nullable(isoDate) }),
    ),
    unmanaged: list(object({ id: str(), description: str() })),
  }),
  emergency: nullable(object({ versionId: str(), leakedVersionId: str(), minHealthyPercentage: num() })),
  rollout: object({
    complete: bool,
    waitingFor: list(oneOf(WAITING_FOR)),
    next: list(str()),
    notices: list(str()),
  }),
  attention: list(str(), "why the exit code is 3; empty when it is 0"),
  exitCode: oneOf([0, 3]),
});

export type StatusJson = JsonOf<typeof STATUS_JSON_SCHEMA>;

/** How a field reads in the help: `string|null`, `[{id, versionId}]`, `in-sync|lagging|failed`. */
function describeField(f: Field): string {
  switch (f.type) {
    case "string":
    case "number":
    case "boolean":
      return f.type;
    case "iso":
      return "ISO";
    case "const":
      return JSON.stringify(f.value);
    case "enum":
      return f.values.join("|");
    case "nullable":
      return `${describeField(f.of)}|null`;
    case "list":
      return `[${describeField(f.of)}]`;
    case "object":
      return `{${Object.entries(f.fields)
        .map(([k, v]) => (v.type === "string" ? k : `${k}: ${describeField(v)}`))
        .join(", ")}}`;
  }
}

/** The schema as `status --help` prints it: one entry per top-level key, wrapped at `width`. */
export function describeStatusJson(width = 100): string {
  const keys = Object.entries(STATUS_JSON_SCHEMA.fields);
  const pad = Math.max(...keys.map(([k]) => k.length)) + 2;
  return keys
    .flatMap(([key, field]) => {
      const f = field as Field;
      const text = `${describeField(f)}${f.note ? `   (${f.note})` : ""}`;
      // A long alternation (the phases) may break after its bars; nothing else breaks inside a word.
      const breakable = text
        .split(" ")
        .map((word) => (word.length > width - pad - 6 ? word.replaceAll("|", "| ") : word))
        .join(" ");
      return wrap(breakable, width, `  ${key.padEnd(pad)}`, pad + 4);
    })
    .join("\n");
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** Where `value` departs from the schema (empty: it conforms). Extra keys are departures too. */
export function schemaErrors(value: unknown, field: Field = STATUS_JSON_SCHEMA, path = "$"): string[] {
  const fail = (what: string) => [`${path}: expected ${what}, got ${JSON.stringify(value) ?? "undefined"}`];
  switch (field.type) {
    case "string":
      return typeof value === "string" ? [] : fail("a string");
    case "iso":
      return typeof value === "string" && ISO_UTC.test(value) ? [] : fail("an ISO 8601 UTC date");
    case "number":
      return typeof value === "number" && Number.isFinite(value) ? [] : fail("a number");
    case "boolean":
      return typeof value === "boolean" ? [] : fail("a boolean");
    case "const":
      return value === field.value ? [] : fail(JSON.stringify(field.value));
    case "enum":
      return (field.values as readonly unknown[]).includes(value) ? [] : fail(field.values.join("|"));
    case "nullable":
      return value === null ? [] : schemaErrors(value, field.of, path);
    case "list":
      return Array.isArray(value)
        ? value.flatMap((v, i) => schemaErrors(v, field.of, `${path}[${i}]`))
        : fail("a list");
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return fail("an object");
      const record = value as Record<string, unknown>;
      const extra = Object.keys(record)
        .filter((k) => !(k in field.fields))
        .map((k) => `${path}.${k}: not in the schema`);
      return [
        ...extra,
        ...Object.entries(field.fields).flatMap(([k, f]) =>
          k in record ? schemaErrors(record[k], f, `${path}.${k}`) : [`${path}.${k}: missing`],
        ),
      ];
    }
  }
}

/** Buildkite's timestamps as ISO 8601 UTC (unparseable ones are passed through as given). */
function isoString(value: string | undefined): string | null {
  if (value === undefined) return null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? value : new Date(t).toISOString();
}

const dateOrNull = (d: Date | undefined): string | null => (d ? d.toISOString() : null);
const orNull = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

export function statusJson(report: StatusReport): StatusJson {
  const s = report.secret;
  const attention = statusAttention(report);
  return {
    schemaVersion: 1,
    at: report.at.toISOString(),
    secret: {
      arn: s.arn,
      name: s.name,
      primaryRegion: s.primaryRegion,
      rotationEnabled: s.rotationEnabled,
      schedule: orNull(s.schedule),
      lastRotatedAt: dateOrNull(s.lastRotatedAt),
      nextRotationAt: dateOrNull(s.nextRotationAt),
      overdue: s.overdue,
      currentVersionId: orNull(s.currentVersionId),
      pendingVersionId: orNull(s.pendingVersionId),
    },
    versions: report.versions.map((v) => ({
      versionId: v.versionId,
      stages: [...v.stages],
      createdAt: dateOrNull(v.createdAt),
      ageSeconds: orNull(v.ageSeconds),
      token: v.token
        ? {
            id: v.token.id,
            createdAt: isoString(v.token.createdAt),
            expiresAt: isoString(v.token.expiresAt),
            expiresInSeconds: orNull(v.token.expiresInSeconds),
          }
        : null,
    })),
    regions: report.regions.map((r) => ({
      region: r.region,
      primary: r.primary,
      currentVersionId: orNull(r.currentVersionId),
      state: r.state,
      detail: orNull(r.detail),
    })),
    strategy: report.strategy,
    groups: report.groups.map((g) => ({
      region: g.region,
      groupName: g.groupName,
      stackName: orNull(g.stackName),
      phase: g.phase,
      instances: g.instances,
      progress: { ...g.progress },
      waiting: g.waiting.map((w) => ({ ...w })),
      refreshId: orNull(g.refreshId),
      refreshStatus: orNull(g.refreshStatus),
      percentageComplete: orNull(g.percentageComplete),
      detail: g.detail,
    })),
    tokens: {
      managedValid: report.managedTokensValid.map((t) => ({
        id: t.id,
        versionId: t.versionId,
        createdAt: isoString(t.createdAt),
        expiresAt: isoString(t.expiresAt),
      })),
      unmanaged: report.unmanagedTokens.map((t) => ({ id: t.id, description: t.description })),
    },
    emergency: report.emergency ? { ...report.emergency } : null,
    rollout: {
      complete: report.complete,
      waitingFor: [...report.waitingFor],
      next: [...report.next],
      notices: [...report.notices],
    },
    attention,
    exitCode: attention.length > 0 ? 3 : 0,
  };
}

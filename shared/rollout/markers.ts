import { createHash } from "node:crypto";
import type { EmergencyDeclaration, RefreshMarker } from "./types";

export const MARKER_TAG = "buildkite-agent-token-rotation:refresh";
export const ROLLOUT_TAG = "buildkite-agent-token-rotation:rollout";
export const EMERGENCY_TAG = "buildkite-agent-token-rotation:emergency";
export const SYNC_TAG = "buildkite-agent-token-rotation:synced";
/** Every tag key this project writes: the IAM policy allows CreateOrUpdateTags for these keys only. */
export const OWN_TAG_KEYS = [MARKER_TAG, ROLLOUT_TAG, EMERGENCY_TAG, SYNC_TAG] as const;

/**
 * The only state this project writes: tags on the target Auto Scaling groups (a value is at most
 * 256 characters, a group has at most 50 tags; we use at most four). Tags are input like any other:
 * every decoder is strict, and plan() validates what it decodes against the observed world.
 * - On every target group, `…:refresh` = `version=<id> intent=<epoch ms> refresh=<id|->`: we intended
 *   (and then started) an instance refresh for that secret version.
 * - On every target group, `…:synced` = `version=<id> at=<epoch ms>`: when the rollout first saw the
 *   group's region serve that version. Instances launched after it read the new token at boot.
 * - On the anchor group (the first target that exists), `…:rollout` =
 *   `version=<id> complete=<0|1> alerts=<id,id> unobserved=<epoch ms|-> observed=<epoch ms>`: the
 *   alerts already sent for the current version (so a level-triggered loop alerts once), whether
 *   completion was recorded, since when something has stayed unobservable, and when the last full
 *   observation began (so a cold container can tell that an older event was already seen).
 */
export interface RolloutMarker {
  versionId: string;
  complete: boolean;
  alerts: string[];
  unobservableSince: Date | undefined;
  /** When the last full observation of this version began. */
  observedAt?: Date | undefined;
}

/**
 * Alert ids kept in the rollout tag. With the longest version id (64) and every time set, the other
 * fields take 141 characters; ten 10-character ids and their commas take 109, within the 256 an
 * Auto Scaling tag value allows (API reference: Tag). Older ids drop out first.
 */
export const ROLLOUT_TAG_ALERTS = 10;

const VERSION = "[A-Za-z0-9-]{1,64}";
/** Times are epoch milliseconds: a sync time rounded down could predate what was observed. */
const EPOCH = "\\d{12,14}";

const millis = (d: Date) => d.getTime();
const fromMillis = (s: string) => new Date(Number(s));

export function encodeRefreshMarker(m: RefreshMarker): string {
  return `version=${m.versionId} intent=${millis(m.intentAt)} refresh=${m.refreshId ?? "-"}`;
}

export function decodeRefreshMarker(value: string | undefined): RefreshMarker | undefined {
  const m = new RegExp(`^version=(${VERSION}) intent=(${EPOCH}) refresh=([A-Za-z0-9-]{1,64})$`).exec(
    value ?? "",
  );
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  return { versionId: m[1], intentAt: fromMillis(m[2]), refreshId: m[3] === "-" ? undefined : m[3] };
}

export function encodeSync(versionId: string, at: Date): string {
  return `version=${versionId} at=${millis(at)}`;
}

export function decodeSync(value: string | undefined): { versionId: string; at: Date } | undefined {
  const m = new RegExp(`^version=(${VERSION}) at=(${EPOCH})$`).exec(value ?? "");
  return m?.[1] && m[2] ? { versionId: m[1], at: fromMillis(m[2]) } : undefined;
}

export function encodeRolloutMarker(m: RolloutMarker): string {
  const alerts = m.alerts.slice(-ROLLOUT_TAG_ALERTS).join(",");
  const since = m.unobservableSince ? String(millis(m.unobservableSince)) : "-";
  const observed = m.observedAt ? ` observed=${millis(m.observedAt)}` : "";
  return `version=${m.versionId} complete=${m.complete ? 1 : 0} alerts=${alerts} unobserved=${since}${observed}`;
}

export function decodeRolloutMarker(value: string | undefined): RolloutMarker | undefined {
  const m = new RegExp(
    `^version=(${VERSION}) complete=([01]) alerts=((?:[0-9a-f]{10})(?:,[0-9a-f]{10})*|) unobserved=(${EPOCH}|-)(?: observed=(${EPOCH}))?$`,
  ).exec(value ?? "");
  if (!m?.[1]) return undefined;
  return {
    versionId: m[1],
    complete: m[2] === "1",
    alerts: m[3] ? m[3].split(",") : [],
    unobservableSince: m[4] && m[4] !== "-" ? fromMillis(m[4]) : undefined,
    observedAt: m[5] ? fromMillis(m[5]) : undefined,
  };
}

/**
 * `buildkite-agent-token-rotation:emergency` on the anchor group, written by `rotate --emergency`
 * before it starts the rotation with a version id it chose: `version=<new> leaked=<old> min-healthy=<n>`.
 * It only matters while that version is AWSCURRENT, so it never needs cleaning up.
 */
export function encodeEmergency(e: EmergencyDeclaration): string {
  return `version=${e.versionId} leaked=${e.leakedVersionId} min-healthy=${e.minHealthyPercentage}`;
}

export function decodeEmergency(value: string | undefined): EmergencyDeclaration | undefined {
  const m = new RegExp(`^version=(${VERSION}) leaked=(${VERSION}) min-healthy=(\\d{1,3})$`).exec(value ?? "");
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  const minHealthyPercentage = Math.min(100, Number(m[3]));
  return { versionId: m[1], leakedVersionId: m[2], minHealthyPercentage };
}

/** The group that carries the rollout and emergency tags: the first target, in observation order, that exists. */
export function anchorOf<T extends { exists: boolean }>(targets: readonly T[]): T | undefined {
  return targets.find((t) => t.exists);
}

/**
 * How an operator asks for a fresh refresh of a group after fixing what blocked it: removing our
 * marker makes the next reconcile start one. Quoted in alerts and in the CLI's advice.
 */
export function retryRefreshAdvice(region: string, groupName: string): string {
  return `remove the tag ${MARKER_TAG} from the group (aws autoscaling delete-tags --region ${region} --tags ResourceId=${groupName},ResourceType=auto-scaling-group,Key=${MARKER_TAG}); the next reconcile starts a new refresh`;
}

/** A short stable id for an alert key. */
export function alertId(key: string): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 10);
}

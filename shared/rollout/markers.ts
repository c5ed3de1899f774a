import { createHash } from "node:crypto";
import type { EmergencyDeclaration } from "./types";

export const MARKER_TAG = "buildkite-agent-token-rotation:refresh";
export const ROLLOUT_TAG = "buildkite-agent-token-rotation:rollout";
export const EMERGENCY_TAG = "buildkite-agent-token-rotation:emergency";

/**
 * The only state this project writes: tags on the target Auto Scaling groups.
 * - On every target group, `buildkite-agent-token-rotation:refresh` = `version=<id> refresh=<id>`:
 *   the instance refresh we started for that secret version.
 * - On the anchor group (the first target that exists), `buildkite-agent-token-rotation:rollout` =
 *   `version=<id> complete=<0|1> alerts=<id,id>`: which alerts were already sent for the current
 *   version (so a level-triggered loop alerts once) and whether its completion was recorded.
 * Tag values are at most 256 characters: alert keys are stored as short hashes.
 */
export interface RefreshMarker {
  versionId: string;
  refreshId: string;
}

export interface RolloutMarker {
  versionId: string;
  complete: boolean;
  alerts: string[];
}

export function encodeRefreshMarker(m: RefreshMarker): string {
  return `version=${m.versionId} refresh=${m.refreshId}`;
}

export function decodeRefreshMarker(value: string | undefined): RefreshMarker | undefined {
  const m = /^version=(\S+) refresh=(\S+)$/.exec(value ?? "");
  return m?.[1] && m[2] ? { versionId: m[1], refreshId: m[2] } : undefined;
}

export function encodeRolloutMarker(m: RolloutMarker): string {
  // Keep the newest alerts if there were ever more than fit.
  const alerts = m.alerts.slice(-20).join(",");
  return `version=${m.versionId} complete=${m.complete ? 1 : 0} alerts=${alerts}`;
}

export function decodeRolloutMarker(value: string | undefined): RolloutMarker | undefined {
  const m = /^version=(\S+) complete=([01]) alerts=(\S*)$/.exec(value ?? "");
  if (!m?.[1]) return undefined;
  return { versionId: m[1], complete: m[2] === "1", alerts: m[3] ? m[3].split(",") : [] };
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
  const m = /^version=(\S+) leaked=(\S+) min-healthy=(\d{1,3})$/.exec(value ?? "");
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  const minHealthyPercentage = Math.min(100, Number(m[3]));
  return { versionId: m[1], leakedVersionId: m[2], minHealthyPercentage };
}

/** The group that carries the rollout and emergency tags: the first target, in TARGET_GROUPS order, that exists. */
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

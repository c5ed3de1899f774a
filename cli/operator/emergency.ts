import { isManagedFor, managedVersionOf } from "../../shared/buildkite/description";
import type { TargetGroup } from "../../shared/lib/config";
import { AppError } from "../../shared/lib/errors";
import { tagGroup } from "../../shared/rollout/act";
import { anchorOf, EMERGENCY_TAG, encodeEmergency } from "../../shared/rollout/markers";
import { DONE_PHASES } from "../../shared/rollout/model";
import { observeGroups } from "../../shared/rollout/observe";
import type { StatusReport } from "../../shared/rollout/status";
import type { EmergencyDeclaration } from "../../shared/rollout/types";
import type { OperatorContext } from "./context";

/**
 * `rotate --emergency`: the declaration written on the anchor group before the rotation starts, and
 * the containment of the leaked token that `rotate` follows and reports at the end. The reconciler
 * reads the declaration (markers.ts decodeEmergency) and does the rest.
 */

/**
 * The anchor group, by the domain's rule (markers.ts anchorOf over observeGroups, as observe()
 * and act() find it). A target that cannot be described before the anchor is an error: it may be
 * the anchor, and guessing could put the emergency tag where the reconciler does not look.
 */
export async function findAnchor(
  ctx: Pick<OperatorContext, "config" | "autoScaling">,
): Promise<TargetGroup | undefined> {
  const { targets } = await observeGroups(ctx);
  const anchor = anchorOf(targets);
  const before = anchor ? targets.slice(0, targets.indexOf(anchor)) : targets;
  const unknown = before.find((t) => t.error);
  if (unknown?.error) {
    throw new AppError(
      `cannot describe the target groups in ${unknown.region} to find the group that carries the emergency tag: ${unknown.error.message}`,
    );
  }
  return anchor ? { region: anchor.region, groupName: anchor.groupName } : undefined;
}

export interface Containment {
  leakedVersionId: string;
  leakedTokenIds: string[];
  unmanaged: Array<{ id: string; description: string }>;
  revokedSeenAt: Date | undefined;
  /** Groups not yet done when the revocation was first seen. */
  openGroupsAtRevocation: string[] | undefined;
}

const OPEN = (g: StatusReport["groups"][number]) => !DONE_PHASES.has(g.phase);

/**
 * Records the emergency on the anchor group (tag EMERGENCY_TAG), BEFORE the rotation starts, so
 * the very first reconcile of the new version sees it; and notes which managed tokens belong to the
 * leaked version. Undefined when no target group exists to carry the tag.
 */
export async function declareEmergency(
  ctx: Pick<OperatorContext, "config" | "autoScaling" | "buildkite">,
  declaration: EmergencyDeclaration,
): Promise<{ anchor: TargetGroup; containment: Containment } | undefined> {
  const arn = ctx.config.secret.arn;
  const tokens = await ctx.buildkite.listTokens();
  const anchor = await findAnchor(ctx);
  if (!anchor) return undefined;
  await tagGroup(
    ctx.autoScaling(anchor.region),
    anchor.groupName,
    EMERGENCY_TAG,
    encodeEmergency(declaration),
  );
  return {
    anchor,
    containment: {
      leakedVersionId: declaration.leakedVersionId,
      leakedTokenIds: tokens
        .filter((t) => managedVersionOf(t.description, arn) === declaration.leakedVersionId)
        .map((t) => t.id),
      unmanaged: tokens
        .filter((t) => !isManagedFor(t.description, arn))
        .map((t) => ({ id: t.id, description: t.description })),
      revokedSeenAt: undefined,
      openGroupsAtRevocation: undefined,
    },
  };
}

/** Notes, once, when every leaked token is seen gone, and which groups were still open then. */
export function noteRevocation(c: Containment, report: StatusReport): void {
  if (c.revokedSeenAt || c.leakedTokenIds.length === 0) return;
  const valid = new Set(report.managedTokensValid.map((t) => t.id));
  if (c.leakedTokenIds.some((id) => valid.has(id))) return;
  c.revokedSeenAt = report.at;
  c.openGroupsAtRevocation = report.groups.filter(OPEN).map((g) => `${g.region}:${g.groupName}`);
}

export function containmentReport(
  c: Containment,
  report: StatusReport | undefined,
  clusterId: string,
): string {
  const lines = [`Containment of the leaked token (version ${c.leakedVersionId}):`];
  if (c.leakedTokenIds.length === 0) {
    lines.push(
      `  - NOT CONTAINED BY THIS TOOL: no token created by this project belongs to the leaked version (the initial token, or one set by hand). Revoke the leaked token by hand in Buildkite (cluster ${clusterId} → Agent tokens)${c.unmanaged.length > 0 ? `; the cluster's tokens not created by this project: ${c.unmanaged.map((t) => `${t.id} "${t.description}"`).join(", ")}` : ""}.`,
    );
  } else if (c.revokedSeenAt) {
    const open = c.openGroupsAtRevocation ?? [];
    lines.push(
      `  - leaked token ${c.leakedTokenIds.join(", ")} revoked (seen gone at ${c.revokedSeenAt.toISOString()})${open.length > 0 ? `, before the refreshes of ${open.join(", ")} had finished` : ""}: it can no longer register new agents.`,
    );
  } else {
    const behind = report?.regions.filter((r) => r.state !== "in-sync").map((r) => r.region) ?? [];
    lines.push(
      `  - leaked token ${c.leakedTokenIds.join(", ")} NOT revoked yet: the reconcile function revokes it as soon as every region serves the new version${behind.length > 0 ? ` (still behind: ${behind.join(", ")})` : ""}. To revoke it now by hand: Buildkite cluster ${clusterId} → Agent tokens → ${c.leakedTokenIds.join(", ")} (instances booting in a lagging region would then fail to register).`,
    );
  }
  if (report) {
    const open = report.groups.filter(OPEN);
    if (open.length === 0) {
      lines.push(
        "  - every instance of every target group has the new token (booted after the sync, rewritten in place, or gone).",
      );
    } else {
      // The ledger knows which instances are not yet safe; refresh percentages only estimate it.
      const stale = open.map((g) => ({
        where: `${g.region}:${g.groupName}`,
        left: g.waiting.length,
        phase: g.phase,
      }));
      const total = stale.reduce((n, s) => n + s.left, 0);
      lines.push(
        `  - ${total} instance(s) may still hold the leaked token in their agent config: ${stale.map((s) => `${s.where} ${s.left} (${s.phase})`).join(", ")}.`,
      );
    }
  }
  lines.push(
    "  - agents already connected with the leaked token keep running until their instance is replaced (revoking a token stops new registrations only); anyone holding the token cannot register new agents once it is revoked.",
  );
  return `${lines.join("\n")}\n`;
}

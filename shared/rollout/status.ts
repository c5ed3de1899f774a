import type { ReconcileConfig } from "../lib/config";
import type { SecretState } from "../secrets/describe";
import { BLOCKED_PHASES, type InstanceCounts, instanceCounts } from "./model";
import { type ObserveDeps, observeWithSecret } from "./observe";
import { plan } from "./plan";
import { planSettings } from "./settings";
import type { Action, EmergencyDeclaration, InstanceState, Observation, Plan, TargetPhase } from "./types";

/**
 * Everything an operator wants to see about the rotation, in one snapshot: what the CLI's
 * `status`, `rotate` and the sandbox's live view render. Built from the same observe() and plan()
 * the reconciler uses, so "what reconcile will do next" is exactly what it will do. No token value.
 */
export interface StatusReport {
  at: Date;
  secret: {
    arn: string;
    name: string;
    primaryRegion: string;
    rotationEnabled: boolean;
    schedule: string | undefined;
    lastRotatedAt: Date | undefined;
    nextRotationAt: Date | undefined;
    /** A scheduled rotation should have happened more than an hour ago. */
    overdue: boolean;
    currentVersionId: string | undefined;
    pendingVersionId: string | undefined;
  };
  versions: Array<{
    versionId: string;
    stages: string[];
    createdAt: Date | undefined;
    ageSeconds: number | undefined;
    /** The Buildkite token this project made for the version, if it is still valid. */
    token:
      | {
          id: string;
          createdAt: string | undefined;
          expiresAt: string | undefined;
          expiresInSeconds: number | undefined;
        }
      | undefined;
  }>;
  regions: Array<{
    region: string;
    primary: boolean;
    currentVersionId: string | undefined;
    state: "in-sync" | "lagging" | "failed";
    detail: string | undefined;
  }>;
  strategy: Plan["strategy"];
  groups: Array<{
    region: string;
    groupName: string;
    /** The Elastic CI Stack it belongs to, when targeted by stack. */
    stackName: string | undefined;
    phase: TargetPhase;
    instances: number;
    /** The per-instance ledger in numbers: safe (booted after sync, confirmed, gone), pending, unreachable. */
    progress: InstanceCounts;
    /** Every instance not yet safe, with where it stands. */
    waiting: Array<{ instanceId: string; state: InstanceState; detail: string }>;
    refreshId: string | undefined;
    refreshStatus: string | undefined;
    percentageComplete: number | undefined;
    detail: string;
  }>;
  managedTokensValid: Array<{
    id: string;
    versionId: string;
    createdAt: string | undefined;
    expiresAt: string | undefined;
  }>;
  unmanagedTokens: Array<{ id: string; description: string }>;
  /** What the next reconcile run will do, in words. */
  next: string[];
  waitingFor: Plan["waitingFor"];
  complete: boolean;
  notices: string[];
  emergency: EmergencyDeclaration | undefined;
}

export interface StatusDeps extends ObserveDeps {
  config: ReconcileConfig;
}

const HOUR_MS = 3_600_000;

export async function collectStatus(deps: StatusDeps): Promise<StatusReport> {
  const { observation, secret } = await observeWithSecret(deps);
  const p = plan(observation, planSettings(deps.config));
  return buildStatus(deps.config, observation, p, secret);
}

/** Pure: the report from an observation, its plan and the secret's rotation settings. */
export function buildStatus(
  config: ReconcileConfig,
  obs: Observation,
  p: Plan,
  secret: SecretState,
): StatusReport {
  const now = obs.now.getTime();
  const days = secret.rotationRules?.automaticallyAfterDays;
  const nextRotationAt =
    secret.nextRotationDate ??
    (days && secret.lastRotatedDate
      ? new Date(secret.lastRotatedDate.getTime() + days * 86_400_000)
      : undefined);
  const tokenByVersion = new Map(obs.tokens.filter((t) => t.versionId).map((t) => [t.versionId, t]));

  return {
    at: obs.now,
    secret: {
      arn: config.secret.arn,
      name: config.secret.name,
      primaryRegion: config.secret.region,
      rotationEnabled: secret.rotationEnabled,
      schedule: secret.rotationRules?.scheduleExpression ?? (days ? `every ${days} days` : undefined),
      lastRotatedAt: secret.lastRotatedDate,
      nextRotationAt,
      overdue:
        secret.rotationEnabled && nextRotationAt !== undefined && now > nextRotationAt.getTime() + HOUR_MS,
      currentVersionId: obs.secret.current,
      pendingVersionId: obs.secret.pending,
    },
    versions: Object.entries(secret.stages)
      .map(([versionId, stages]) => {
        const createdAt = obs.secret.createdAt[versionId];
        const t = tokenByVersion.get(versionId);
        return {
          versionId,
          stages,
          createdAt,
          ageSeconds: createdAt ? Math.round((now - createdAt.getTime()) / 1000) : undefined,
          token: t
            ? {
                id: t.id,
                createdAt: t.createdAt,
                expiresAt: t.expiresAt,
                expiresInSeconds: t.expiresAt
                  ? Math.round((Date.parse(t.expiresAt) - now) / 1000)
                  : undefined,
              }
            : undefined,
        };
      })
      // Newest first; versions created in the same instant (moto, or clock resolution) by stage.
      .sort(
        (a, b) =>
          (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0) ||
          stageRank(a.stages) - stageRank(b.stages),
      ),
    strategy: p.strategy,
    regions: [
      {
        region: config.secret.region,
        primary: true,
        currentVersionId: obs.secret.current,
        state: "in-sync" as const,
        detail: undefined,
      },
      ...obs.replicas.map((r) => ({
        region: r.region,
        primary: false,
        currentVersionId: r.current,
        state:
          r.current === obs.secret.current
            ? ("in-sync" as const)
            : r.error || r.replicationStatus === "Failed"
              ? ("failed" as const)
              : ("lagging" as const),
        detail: r.error?.message ?? r.statusMessage,
      })),
    ],
    groups: p.targets.map((t) => {
      const o = obs.targets.find((x) => x.region === t.region && x.groupName === t.groupName);
      const refresh = o?.refreshes.find((r) => r.id === t.refreshId) ?? o?.refreshes[0];
      return {
        region: t.region,
        groupName: t.groupName,
        stackName: t.stackName,
        phase: t.phase,
        instances: o?.members.length ?? 0,
        progress: instanceCounts(t),
        waiting: t.instances
          .filter((i) => !i.safe)
          .map((i) => ({ instanceId: i.instanceId, state: i.state, detail: i.detail })),
        refreshId: refresh?.id,
        refreshStatus: refresh?.status,
        percentageComplete: refresh?.percentageComplete,
        detail: t.detail,
      };
    }),
    managedTokensValid: obs.tokens.flatMap((t) =>
      t.versionId
        ? [{ id: t.id, versionId: t.versionId, createdAt: t.createdAt, expiresAt: t.expiresAt }]
        : [],
    ),
    unmanagedTokens: obs.tokens
      .filter((t) => !t.versionId)
      .map((t) => ({ id: t.id, description: t.description })),
    next: describeNext(p),
    waitingFor: p.waitingFor,
    complete: p.complete,
    notices: p.notices,
    emergency: obs.emergency,
  };
}

const STAGE_ORDER = ["AWSPENDING", "AWSCURRENT", "AWSPREVIOUS"];

function stageRank(stages: string[]): number {
  const ranks = stages.map((s) => STAGE_ORDER.indexOf(s)).filter((r) => r >= 0);
  return ranks.length > 0 ? Math.min(...ranks) : STAGE_ORDER.length;
}

export function describeNext(p: Plan): string[] {
  const words = (a: Action): string => {
    switch (a.kind) {
      case "start-refresh":
        return `start an instance refresh of ${a.target.groupName} in ${a.target.region} (min healthy ${a.preferences.minHealthyPercentage}%, protected instances: ${a.preferences.scaleInProtectedInstances})`;
      case "revoke":
        return `revoke token ${a.tokenId} (version ${a.versionId})`;
      case "alert":
        return `alert: ${a.subject}`;
      case "record-rollout":
        return a.complete
          ? `record the rollout of ${a.versionId} as complete`
          : `record the rollout state of ${a.versionId} (alerts sent)`;
      case "record-sync":
        return `record that ${a.target.region} serves ${a.versionId} (group ${a.target.groupName})`;
      case "adopt-refresh":
        return `adopt refresh ${a.refreshId} of ${a.target.groupName} in ${a.target.region}, started for our recorded intent`;
      case "send-command":
        return `send the install command to ${a.instanceIds.length} instance(s) in ${a.region}`;
      case "stop-agent":
        return `stop the agent on ${a.instanceId} (${a.target.groupName}, ${a.target.region}) after its current job`;
      case "terminate-instance":
        return `replace ${a.instanceId} (${a.target.groupName}, ${a.target.region}): terminate it without decrementing the desired capacity`;
    }
  };
  if (p.actions.length > 0) return p.actions.map(words);
  if (p.complete) return ["nothing: the rollout of the current version is complete"];
  const out: string[] = [];
  if (p.waitingFor.includes("replicas"))
    out.push(`wait for ${p.regionsLagging.join(", ")} to serve the current version`);
  const refreshing = p.targets.filter((t) => ["refreshing", "waiting-for-other-refresh"].includes(t.phase));
  if (refreshing.length > 0) {
    out.push(`wait for refreshes: ${refreshing.map((t) => `${t.region}:${t.groupName}`).join(", ")}`);
  }
  const updating = p.targets.filter((t) => t.phase === "updating");
  if (updating.length > 0) {
    out.push(
      `wait for the install command: ${updating.map((t) => `${t.region}:${t.groupName} (${instanceCounts(t).pending} pending)`).join(", ")}`,
    );
  }
  if (p.waitingFor.includes("operator")) {
    const blocked = p.targets.filter((t) => BLOCKED_PHASES.has(t.phase));
    out.push(
      `nothing until an operator acts: ${[...blocked.map((t) => `${t.region}:${t.groupName} ${t.detail}`), ...p.regionsBehind.filter((r) => !p.regionsLagging.includes(r)).map((r) => `replica ${r}`)].join("; ")}`,
    );
  }
  return out.length > 0 ? out : ["nothing: no rotation of this project's is being rolled out"];
}

import {
  type AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
} from "@aws-sdk/client-auto-scaling";
import { ListSecretVersionIdsCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { BuildkiteClient } from "../buildkite/client";
import { managedVersionOf } from "../buildkite/description";
import type { ReconcileConfig } from "../config";
import { describeError } from "../errors";
import { describeSecret, type SecretState } from "../secrets/describe";
import { anchorOf, decodeEmergency, decodeRefreshMarker, decodeRolloutMarker } from "./markers";
import { EMERGENCY_TAG, MARKER_TAG, ROLLOUT_TAG } from "./plan";
import type { Observation, ReplicaObservation, TargetObservation, TokenObservation } from "./types";

export interface ObserveDeps {
  config: Pick<ReconcileConfig, "secret" | "replicaRegions" | "targets">;
  secrets: (region: string) => SecretsManagerClient;
  autoScaling: (region: string) => AutoScalingClient;
  buildkite: Pick<BuildkiteClient, "listTokens">;
  now: () => Date;
}

/**
 * Gathers the observation: the primary secret first, then every replica region, every target
 * group and the Buildkite tokens, all in parallel. Replicas are asked before groups are described,
 * so an instance launched after a region was seen in sync is known to have read the new token.
 */
export async function observe(deps: ObserveDeps): Promise<Observation> {
  return (await observeWithSecret(deps)).observation;
}

/** observe(), plus the primary secret as DescribeSecret reported it (rotation rules, dates). */
export async function observeWithSecret(
  deps: ObserveDeps,
): Promise<{ observation: Observation; secret: SecretState }> {
  const { secret } = deps.config;
  const primary = deps.secrets(secret.region);
  const [state, versions] = await Promise.all([
    describeSecret(primary, secret.arn),
    primary.send(new ListSecretVersionIdsCommand({ SecretId: secret.arn, MaxResults: 100 })),
  ]);
  const createdAt: Record<string, Date> = {};
  for (const v of versions.Versions ?? [])
    if (v.VersionId && v.CreatedDate) createdAt[v.VersionId] = v.CreatedDate;

  // Every region that could hand out the token: the configured replicas and any Secrets Manager
  // reports, so a replica missing from the configuration can never be skipped before revocation.
  const replicaRegions = [
    ...new Set([...deps.config.replicaRegions, ...state.replication.map((r) => r.region).filter(Boolean)]),
  ].filter((region) => region !== secret.region);
  const replicas = await Promise.all(
    replicaRegions.map((region) => observeReplica(deps, region, state.replication)),
  );
  const [targets, tokens] = await Promise.all([observeTargets(deps), observeTokens(deps)]);

  const anchor = anchorOf(targets);
  const rollout = decodeRolloutMarker(anchor?.tags[ROLLOUT_TAG]);
  const forCurrent = rollout && rollout.versionId === state.current ? rollout : undefined;

  const observation: Observation = {
    now: deps.now(),
    secret: {
      arn: secret.arn,
      current: state.current,
      pending: state.pending,
      createdAt,
      lastRotatedAt: state.lastRotatedDate,
    },
    replicas,
    targets: targets.map(({ tags: _tags, ...t }) => t),
    tokens,
    alertsSent: forCurrent?.alerts ?? [],
    completedVersion: forCurrent?.complete ? forCurrent.versionId : undefined,
    emergency: decodeEmergency(anchor?.tags[EMERGENCY_TAG]),
  };
  return { observation, secret: state };
}

export async function replicaCurrentVersion(
  client: SecretsManagerClient,
  secretName: string,
): Promise<string | undefined> {
  const state = await describeSecret(client, secretName);
  return state.current;
}

async function observeReplica(
  deps: ObserveDeps,
  region: string,
  replication: Array<{ region: string; status: string | undefined; message: string | undefined }>,
): Promise<ReplicaObservation> {
  const status = replication.find((r) => r.region === region);
  const base = { region, replicationStatus: status?.status, statusMessage: status?.message };
  try {
    // Asked in that region, by name: a replica has the primary's name and the same version ids.
    const current = await replicaCurrentVersion(deps.secrets(region), deps.config.secret.name);
    return { ...base, current, error: undefined };
  } catch (error) {
    const e = describeError(error);
    const reason =
      e.name === "ResourceNotFoundException"
        ? `no replica of the secret exists in ${region}`
        : `${e.name}: ${e.message}`;
    return { ...base, current: undefined, error: reason };
  }
}

type TargetWithTags = TargetObservation & { tags: Record<string, string> };

async function observeTargets(deps: ObserveDeps): Promise<TargetWithTags[]> {
  const byRegion = new Map<string, string[]>();
  for (const t of deps.config.targets)
    byRegion.set(t.region, [...(byRegion.get(t.region) ?? []), t.groupName]);
  const described = new Map<string, Awaited<ReturnType<typeof describeGroups>> | Error>();
  await Promise.all(
    [...byRegion].map(async ([region, names]) => {
      described.set(
        region,
        await describeGroups(deps.autoScaling(region), names).catch((e: unknown) => e as Error),
      );
    }),
  );
  return Promise.all(
    deps.config.targets.map(async (t): Promise<TargetWithTags> => {
      const groups = described.get(t.region);
      const base = {
        region: t.region,
        groupName: t.groupName,
        instances: 0,
        marker: undefined,
        refreshes: [],
        tags: {},
      };
      if (groups instanceof Error) {
        const e = describeError(groups);
        return { ...base, exists: false, error: `${e.name}: ${e.message}` };
      }
      const group = groups?.get(t.groupName);
      if (!group) return { ...base, exists: false, error: undefined };
      try {
        const out = await deps
          .autoScaling(t.region)
          .send(new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: t.groupName, MaxRecords: 10 }));
        const refreshes = (out.InstanceRefreshes ?? [])
          .filter((r) => r.InstanceRefreshId)
          .map((r) => ({
            id: r.InstanceRefreshId ?? "",
            status: r.Status ?? "unknown",
            statusReason: r.StatusReason,
            startTime: r.StartTime,
            endTime: r.EndTime,
            percentageComplete: r.PercentageComplete,
            instancesToUpdate: r.InstancesToUpdate,
          }))
          .sort((a, b) => (b.startTime?.getTime() ?? 0) - (a.startTime?.getTime() ?? 0));
        return {
          ...base,
          exists: true,
          instances: group.instances,
          marker: decodeRefreshMarker(group.tags[MARKER_TAG]),
          refreshes,
          tags: group.tags,
          error: undefined,
        };
      } catch (error) {
        const e = describeError(error);
        return { ...base, exists: true, error: `${e.name}: ${e.message}` };
      }
    }),
  );
}

/** The named groups of one region that exist (all pages), with their instance count and tags. */
export async function describeGroups(client: AutoScalingClient, names: string[]) {
  const groups = new Map<string, { instances: number; tags: Record<string, string> }>();
  let nextToken: string | undefined;
  for (let page = 0; page < 20; page++) {
    const out = await client.send(
      new DescribeAutoScalingGroupsCommand({
        AutoScalingGroupNames: names,
        NextToken: nextToken,
        MaxRecords: 100,
      }),
    );
    for (const g of out.AutoScalingGroups ?? []) {
      if (!g.AutoScalingGroupName) continue;
      const tags: Record<string, string> = {};
      for (const tag of g.Tags ?? []) if (tag.Key) tags[tag.Key] = tag.Value ?? "";
      groups.set(g.AutoScalingGroupName, { instances: g.Instances?.length ?? 0, tags });
    }
    nextToken = out.NextToken;
    if (!nextToken) break;
  }
  return groups;
}

async function observeTokens(deps: ObserveDeps): Promise<TokenObservation[]> {
  const tokens = await deps.buildkite.listTokens();
  return tokens.map((t) => ({
    id: t.id,
    description: t.description,
    versionId: managedVersionOf(t.description, deps.config.secret.arn),
    createdAt: t.createdAt,
    expiresAt: t.expiresAt,
  }));
}

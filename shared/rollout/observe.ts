import {
  type AutoScalingClient,
  type AutoScalingGroup,
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
  type Filter,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, type EC2Client } from "@aws-sdk/client-ec2";
import { ListSecretVersionIdsCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { DescribeInstanceInformationCommand, type SSMClient } from "@aws-sdk/client-ssm";
import type { BuildkiteClient } from "../buildkite/client";
import { managedVersionOf } from "../buildkite/description";
import { isNotFound, observationError } from "../lib/aws/errors";
import type { ReconcileConfig, TargetGroup } from "../lib/config";
import { CALLS_PER_REGION, type Limit, perKeyLimit } from "../lib/limit";
import { describeSecret, type SecretState } from "../secrets/describe";
import { safeByLaunch } from "./ledger";
import {
  anchorOf,
  decodeEmergency,
  decodeRefreshMarker,
  decodeRolloutMarker,
  decodeSync,
  EMERGENCY_TAG,
  MARKER_TAG,
  ROLLOUT_TAG,
  SYNC_TAG,
} from "./markers";
import type { RolloutMemory } from "./memory";
import { groupKey, targetGroupOf } from "./model";
import { attachInvocations } from "./observe-commands";
import { rolloutStartedAt } from "./plan";
import type {
  AgentObservation,
  InstanceObservation,
  Observation,
  ObservationError,
  ReplicaObservation,
  StackObservation,
  TargetObservation,
  TokenObservation,
} from "./types";

export interface ObserveDeps {
  config: Pick<
    ReconcileConfig,
    "secret" | "replicaRegions" | "targets" | "stacks" | "strategy" | "inPlace" | "clockSkewMs"
  >;
  secrets: (region: string) => SecretsManagerClient;
  autoScaling: (region: string) => AutoScalingClient;
  ec2: (region: string) => EC2Client;
  ssm: (region: string) => SSMClient;
  buildkite: Pick<BuildkiteClient, "listTokens" | "listAgents">;
  now: () => Date;
  /** The container's memory (reconcile only): immutable facts it already read are not read again. */
  memory?: RolloutMemory;
}

/** What to observe: everything (the default), or only these target groups (a partial observation). */
export interface ObserveRequest {
  groups?: readonly TargetGroup[];
  /**
   * Whose refresh history to read: every group's ("all", the default: the operator's status shows
   * someone else's refresh), or only where our refresh tag names the current version ("ours",
   * reconcile). A decision reads another refresh only to wait for it before starting ours, and
   * StartInstanceRefresh itself refuses while one is active (InstanceRefreshInProgress, "an active
   * instance refresh already exists", API reference: StartInstanceRefresh, Errors), which act takes
   * as "wait for it". So a rotation's first look at a thousand groups costs no thousand describes.
   */
  refreshHistory?: "all" | "ours";
}

/** DescribeAutoScalingGroups takes at most 50 names (API reference: AutoScalingGroupNames). */
export const GROUP_NAMES_PER_CALL = 50;
/** An EC2 filter takes at most 200 values. */
const EC2_FILTER_VALUES = 200;
/** DescribeInstanceInformation's InstanceIds filter and page size: at most 50. */
const SSM_INSTANCES_PER_CALL = 50;
export const MAX_PAGES = 40;

/** The tags CloudFormation puts on an Elastic CI Stack's agent group (templates/aws-stack.yml, AgentAutoScaleGroup). */
export const STACK_NAME_TAG = "aws:cloudformation:stack-name";
export const LOGICAL_ID_TAG = "aws:cloudformation:logical-id";
export const AGENT_GROUP_LOGICAL_ID = "AgentAutoScaleGroup";

/**
 * Gathers the observation: the primary secret first, then every replica region, then every target
 * group with its instances (EC2 launch times; for in-place, SSM reachability and our commands) and
 * the Buildkite tokens. Replicas are asked before groups are described, so an instance launched
 * after a region was seen in sync is known to have read the new token.
 */
export async function observe(deps: ObserveDeps, request: ObserveRequest = {}): Promise<Observation> {
  return (await observeWithSecret(deps, request)).observation;
}

/**
 * observe(), plus the primary secret as DescribeSecret reported it (rotation rules, dates). A
 * partial observation (request.groups) reads the secret, the replicas of those groups' regions, the
 * groups themselves and the anchor group's tags — never the Buildkite tokens or the other groups.
 */
export async function observeWithSecret(
  deps: ObserveDeps,
  request: ObserveRequest = {},
): Promise<{ observation: Observation; secret: SecretState }> {
  const startedAt = deps.now();
  const { secret } = deps.config;
  const partial = request.groups !== undefined;
  const primary = deps.secrets(secret.region);
  const listVersions = () =>
    primary.send(new ListSecretVersionIdsCommand({ SecretId: secret.arn, MaxResults: 100 })).then((out) => {
      const createdAt: Record<string, Date> = {};
      for (const v of out.Versions ?? [])
        if (v.VersionId && v.CreatedDate) createdAt[v.VersionId] = v.CreatedDate;
      deps.memory?.rememberCreatedAt(createdAt);
      return createdAt;
    });
  let state: SecretState;
  let createdAt: Record<string, Date>;
  if (partial) {
    // A version's creation time never changes: a warm container reads it once.
    state = await describeSecret(primary, secret.arn);
    const known = state.current ? deps.memory?.versionCreatedAt(state.current) : undefined;
    createdAt = known && state.current ? { [state.current]: known } : await listVersions();
  } else {
    [state, createdAt] = await Promise.all([describeSecret(primary, secret.arn), listVersions()]);
  }
  const secretObs: Observation["secret"] = {
    arn: secret.arn,
    current: state.current,
    pending: state.pending,
    createdAt,
    lastRotatedAt: state.lastRotatedDate,
  };

  // Every region that could hand out the token: the configured replicas and any Secrets Manager
  // reports, so a replica missing from the configuration can never be skipped before revocation.
  // A partial observation asks only the regions of its groups.
  const wanted = request.groups ? new Set(request.groups.map((g) => g.region)) : undefined;
  const replicaRegions = [
    ...new Set([...deps.config.replicaRegions, ...state.replication.map((r) => r.region).filter(Boolean)]),
  ].filter((region) => region !== secret.region && (wanted === undefined || wanted.has(region)));
  const [groups, tokens] = request.groups
    ? [await observeSomeGroups(deps, request.groups), []]
    : await Promise.all([observeGroups(deps), observeTokens(deps)]);

  const anchor = groups.anchor ?? anchorOf(groups.targets);
  const emergency = decodeEmergency(anchor?.tags[EMERGENCY_TAG]);
  const emergencyNow = emergency !== undefined && emergency.versionId === state.current;
  const inPlace = deps.config.strategy === "in-place" || emergencyNow;
  const since = rolloutStartedAt({ secret: secretObs });
  const needsRefreshes =
    deps.config.strategy === "refresh" || emergencyNow || deps.config.inPlace.fallback === "refresh";
  const limit = perKeyLimit(CALLS_PER_REGION);
  const oursOnly = request.refreshHistory === "ours";
  const members = groups.targets.map((t) => observeMembers(deps, t, state.current, since));
  // EC2 first: with refreshHistory "ours", a group whose every instance launched after its region
  // served the version is done whatever its refresh reports, and its history is not read.
  await attachInstanceFacts(deps, members, inPlace);
  const targets = await Promise.all(
    members.map((t) =>
      observeRefreshes(deps, t, state.current, needsRefreshes && !oursOnly, oursOnly, limit),
    ),
  );
  // Commands are listed per region, once, and handed to each group's instances.
  if (inPlace && state.current) await attachInvocations(deps, targets, state.current, since);
  // The replicas last: one that caught up while the groups were read counts now, rather than after
  // a replica wait and another look at its regions' groups (at a thousand groups the look takes
  // longer than replication usually does). Reading later is never less safe: a replica only
  // serves the version once it has it, and the sync time recorded is this observation's end.
  const replicas = await Promise.all(
    replicaRegions.map((region) => observeReplica(deps, region, state.replication)),
  );

  const rollout = decodeRolloutMarker(anchor?.tags[ROLLOUT_TAG]);
  const forCurrent = rollout && rollout.versionId === state.current ? rollout : undefined;
  const agents =
    !partial && inPlace && deps.config.inPlace.fallback === "terminate"
      ? await observeAgents(deps)
      : undefined;
  const recollection = deps.memory?.recollect();

  const observation: Observation = {
    scope: partial ? "partial" : "full",
    startedAt,
    now: deps.now(),
    secret: secretObs,
    replicas,
    targets: targets.map(({ tags: _tags, raw: _raw, ...t }) => t),
    stacks: groups.stacks,
    tokens,
    agents,
    rollout: {
      alertsSent: forCurrent?.alerts ?? [],
      complete: forCurrent?.complete ?? false,
      unobservableSince: validPast(forCurrent?.unobservableSince, since, deps.now()),
      observedAt: validPast(forCurrent?.observedAt, since, deps.now()),
    },
    emergency,
    anchor: anchor && targetGroupOf(anchor),
    managedVersion:
      partial && recollection?.managed && recollection.versionId === state.current
        ? state.current
        : undefined,
  };
  return { observation, secret: state };
}

/**
 * The named groups, and the anchor group for its tags (the rollout record, an emergency): the one
 * the last full observation found, else the first named target, else the first group of the first
 * target stack — the order anchorOf() applies to a full observation.
 */
async function observeSomeGroups(
  deps: Pick<ObserveDeps, "config" | "autoScaling" | "memory">,
  wanted: readonly TargetGroup[],
): Promise<{ targets: GroupRow[]; stacks: StackObservation[]; anchor: GroupRow | undefined }> {
  const anchorTarget = deps.memory?.recollect()?.anchor ?? deps.config.targets[0];
  const found = await describeNamedGroups(deps, [...wanted, ...(anchorTarget ? [anchorTarget] : [])]);
  let anchor = anchorTarget ? rowOf(anchorTarget, found) : undefined;
  if (!anchorTarget && deps.config.stacks[0]) {
    const s = deps.config.stacks[0];
    const first = await describeGroups(deps.autoScaling(s.region), stackGroupsQuery(s)).catch(() => []);
    const g = first[0];
    if (g?.AutoScalingGroupName)
      anchor = row({ region: s.region, groupName: g.AutoScalingGroupName }, s.stackName, g, undefined);
  }
  return {
    targets: wanted.map((t) => rowOf(t, found)),
    stacks: [],
    anchor: anchor?.exists ? anchor : undefined,
  };
}

/**
 * The named groups, described by name in chunks of GROUP_NAMES_PER_CALL per region, keyed
 * `region:group`: the group, the region's error (for every name asked there), or nothing when
 * Auto Scaling does not know the name.
 */
async function describeNamedGroups(
  deps: Pick<ObserveDeps, "autoScaling">,
  targets: readonly TargetGroup[],
): Promise<Map<string, AutoScalingGroup | ObservationError>> {
  const byRegion = new Map<string, Set<string>>();
  for (const t of targets) byRegion.set(t.region, (byRegion.get(t.region) ?? new Set()).add(t.groupName));
  const found = new Map<string, AutoScalingGroup | ObservationError>();
  await Promise.all(
    [...byRegion].map(async ([region, set]) => {
      const names = [...set];
      try {
        for (let i = 0; i < names.length; i += GROUP_NAMES_PER_CALL) {
          const chunk = names.slice(i, i + GROUP_NAMES_PER_CALL);
          for (const g of await describeGroups(deps.autoScaling(region), { AutoScalingGroupNames: chunk }))
            if (g.AutoScalingGroupName) found.set(groupKey({ region, groupName: g.AutoScalingGroupName }), g);
        }
      } catch (error) {
        const e = observationError(error);
        for (const groupName of names) found.set(groupKey({ region, groupName }), e);
      }
    }),
  );
  return found;
}

/** A target group's row from describeNamedGroups' answer. */
function rowOf(t: TargetGroup, described: Map<string, AutoScalingGroup | ObservationError>): GroupRow {
  const g = described.get(groupKey(t));
  if (g !== undefined && !("AutoScalingGroupName" in g)) return row(t, undefined, undefined, g);
  return row(t, undefined, g, undefined);
}

/** The Elastic CI Stack's agent group, by the tags CloudFormation puts on it. */
function stackGroupsQuery(s: { stackName: string }): { Filters: Filter[] } {
  return {
    Filters: [
      { Name: `tag:${STACK_NAME_TAG}`, Values: [s.stackName] },
      { Name: `tag:${LOGICAL_ID_TAG}`, Values: [AGENT_GROUP_LOGICAL_ID] },
    ],
  };
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
    const e = observationError(error);
    const message = isNotFound(error) ? `no replica of the secret exists in ${region}` : e.message;
    return { ...base, current: undefined, error: { ...e, message } };
  }
}

export type GroupRow = TargetObservation & {
  tags: Record<string, string>;
  raw: AutoScalingGroup | undefined;
};

/**
 * Every target group: the named ones (in TARGET_GROUPS order), then each stack's groups. During a
 * CloudFormation replacement a stack has two groups; both are targets until the old one is gone.
 */
export async function observeGroups(
  deps: Pick<ObserveDeps, "config" | "autoScaling">,
): Promise<{ targets: GroupRow[]; stacks: StackObservation[]; anchor?: GroupRow }> {
  const described = await describeNamedGroups(deps, deps.config.targets);
  const rows: GroupRow[] = deps.config.targets.map((t) => rowOf(t, described));

  const stacks = await Promise.all(
    deps.config.stacks.map(async (s): Promise<StackObservation & { found: AutoScalingGroup[] }> => {
      try {
        const found = await describeGroups(deps.autoScaling(s.region), stackGroupsQuery(s));
        const names = found.map((g) => g.AutoScalingGroupName ?? "").filter(Boolean);
        return { ...s, groups: names, error: undefined, found };
      } catch (error) {
        return { ...s, groups: [], error: observationError(error), found: [] };
      }
    }),
  );
  const seen = new Set(rows.map((r) => `${r.region}:${r.groupName}`));
  for (const s of stacks) {
    for (const g of s.found) {
      const name = g.AutoScalingGroupName ?? "";
      if (seen.has(`${s.region}:${name}`)) continue;
      seen.add(`${s.region}:${name}`);
      rows.push(row({ region: s.region, groupName: name }, s.stackName, g, undefined));
    }
  }
  return { targets: rows, stacks: stacks.map(({ found: _found, ...s }) => s) };
}

function row(
  t: TargetGroup,
  stackName: string | undefined,
  g: AutoScalingGroup | undefined,
  error: ObservationError | undefined,
): GroupRow {
  const tags: Record<string, string> = {};
  for (const tag of g?.Tags ?? []) if (tag.Key) tags[tag.Key] = tag.Value ?? "";
  return {
    region: t.region,
    groupName: t.groupName,
    stackName: stackName ?? tags[STACK_NAME_TAG],
    exists: g !== undefined,
    members: [],
    marker: decodeRefreshMarker(tags[MARKER_TAG]),
    syncedAt: undefined,
    badSyncTag: undefined,
    refreshes: [],
    error,
    tags,
    raw: g,
  };
}

/** DescribeAutoScalingGroups, every page. */
export async function describeGroups(
  client: AutoScalingClient,
  query: { AutoScalingGroupNames?: string[]; Filters?: Filter[] },
): Promise<AutoScalingGroup[]> {
  const groups: AutoScalingGroup[] = [];
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const out = await client.send(
      new DescribeAutoScalingGroupsCommand({ ...query, NextToken: nextToken, MaxRecords: 100 }),
    );
    groups.push(...(out.AutoScalingGroups ?? []));
    nextToken = out.NextToken;
    if (!nextToken) break;
  }
  return groups;
}

/** The group's instances (from Auto Scaling) and its sync tag; EC2 and SSM are asked afterwards, once per region. */
function observeMembers(
  deps: ObserveDeps,
  t: GroupRow,
  current: string | undefined,
  since: Date | undefined,
): GroupRow {
  if (!t.exists || t.error) return t;
  const sync = decodeSync(t.tags[SYNC_TAG]);
  const syncValid = sync !== undefined && sync.versionId === current && validPast(sync.at, since, deps.now());
  const members: InstanceObservation[] = (t.raw?.Instances ?? [])
    .filter((i) => i.InstanceId)
    .map((i) => ({
      instanceId: i.InstanceId ?? "",
      lifecycleState: i.LifecycleState ?? "unknown",
      protectedFromScaleIn: i.ProtectedFromScaleIn === true,
      launchedAt: undefined,
      platform: undefined,
      ssmPing: undefined,
      invocations: [],
    }));
  return {
    ...t,
    members,
    syncedAt: syncValid ? sync.at : undefined,
    // A tag for an older version is simply stale; one for this version that fails validation is not ours.
    badSyncTag: sync && sync.versionId === current && !syncValid ? t.tags[SYNC_TAG] : undefined,
  };
}

/**
 * The group's refresh history, only when a decision can use it: the refresh strategy, an
 * emergency, the refresh fallback (`needsRefreshes`), or our own refresh tag for the current version
 * — unless `oursOnly` and every instance is safe by its launch alone (ledger.ts safeByLaunch): then
 * the group is done whatever the refresh reports (plan.ts), and at the end of a rollout that is
 * every group, so the observation that revokes reads no refresh at all.
 */
async function observeRefreshes(
  deps: ObserveDeps,
  t: GroupRow,
  current: string | undefined,
  needsRefreshes: boolean,
  oursOnly: boolean,
  limit: Limit,
): Promise<GroupRow> {
  if (!t.exists || t.error) return t;
  // Our refresh tag for this version: its refresh is read whatever else is (a decision rests on it).
  if (!needsRefreshes && t.marker?.versionId !== current) return t;
  const syncedAt = t.syncedAt;
  if (
    oursOnly &&
    syncedAt !== undefined &&
    t.members.length > 0 &&
    t.members.every((m) => safeByLaunch(m, syncedAt, deps.config.clockSkewMs))
  )
    return t;
  // Our refresh for this version, already seen in a final status, reads the same again.
  const ours = t.marker?.versionId === current ? t.marker?.refreshId : undefined;
  const final = ours ? deps.memory?.finalRefresh(t.region, t.groupName, ours) : undefined;
  if (final) return { ...t, refreshes: [final] };
  try {
    const refreshes = await limit(t.region, () => describeRefreshes(deps.autoScaling(t.region), t.groupName));
    deps.memory?.rememberRefreshes(t.region, t.groupName, refreshes);
    return { ...t, refreshes };
  } catch (error) {
    return { ...t, error: observationError(error) };
  }
}

/** EC2 launch times and platforms, and (in place) SSM reachability: one batched pass per region. */
async function attachInstanceFacts(deps: ObserveDeps, targets: GroupRow[], inPlace: boolean): Promise<void> {
  const regions = [...new Set(targets.filter((t) => t.exists && !t.error).map((t) => t.region))];
  await Promise.all(
    regions.map(async (region) => {
      const inRegion = targets.filter((t) => t.region === region && t.exists && !t.error);
      const members = inRegion.flatMap((t) => t.members);
      try {
        await Promise.all([
          describeInstances(deps.ec2(region), members),
          inPlace ? describeInstanceInformation(deps.ssm(region), members) : Promise.resolve(),
        ]);
      } catch (error) {
        const e = observationError(error);
        for (const t of inRegion) t.error = e;
      }
    }),
  );
}

async function describeRefreshes(client: AutoScalingClient, groupName: string) {
  const out = await client.send(
    new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: groupName, MaxRecords: 10 }),
  );
  return (out.InstanceRefreshes ?? [])
    .filter((r) => r.InstanceRefreshId)
    .map((r) => ({
      id: r.InstanceRefreshId ?? "",
      status: r.Status ?? "unknown",
      statusReason: r.StatusReason,
      startTime: r.StartTime,
      endTime: r.EndTime,
      percentageComplete: r.PercentageComplete,
      instancesToUpdate: r.InstancesToUpdate,
      scaleInProtectedInstances: r.Preferences?.ScaleInProtectedInstances,
      minHealthyPercentage: r.Preferences?.MinHealthyPercentage,
      skipMatching: r.Preferences?.SkipMatching,
      hasDesiredConfiguration:
        r.DesiredConfiguration !== undefined &&
        (r.DesiredConfiguration.LaunchTemplate !== undefined ||
          r.DesiredConfiguration.MixedInstancesPolicy !== undefined),
    }))
    .sort((a, b) => (b.startTime?.getTime() ?? 0) - (a.startTime?.getTime() ?? 0));
}

/** EC2 launch times and platforms (Auto Scaling reports neither). Filters, unlike InstanceIds, tolerate a vanished id. */
async function describeInstances(client: EC2Client, members: InstanceObservation[]): Promise<void> {
  const byId = new Map(members.map((m) => [m.instanceId, m]));
  const ids = [...byId.keys()];
  for (let i = 0; i < ids.length; i += EC2_FILTER_VALUES) {
    let nextToken: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const out = await client.send(
        new DescribeInstancesCommand({
          Filters: [{ Name: "instance-id", Values: ids.slice(i, i + EC2_FILTER_VALUES) }],
          MaxResults: 1000,
          NextToken: nextToken,
        }),
      );
      for (const r of out.Reservations ?? []) {
        for (const inst of r.Instances ?? []) {
          const m = inst.InstanceId ? byId.get(inst.InstanceId) : undefined;
          if (!m) continue;
          m.launchedAt = inst.LaunchTime;
          // EC2 sets Platform only for Windows ("windows").
          m.platform = String(inst.Platform ?? "").toLowerCase() === "windows" ? "Windows" : "Linux";
          const state = inst.State?.Name;
          if (state === "shutting-down" || state === "terminated") m.lifecycleState = "Terminated";
        }
      }
      nextToken = out.NextToken;
      if (!nextToken) break;
    }
  }
}

/** SSM's PingStatus for each instance; instances SSM does not list are "Unregistered". */
async function describeInstanceInformation(client: SSMClient, members: InstanceObservation[]): Promise<void> {
  const byId = new Map(members.map((m) => [m.instanceId, m]));
  const ids = [...byId.keys()];
  for (const m of members) m.ssmPing = "Unregistered";
  for (let i = 0; i < ids.length; i += SSM_INSTANCES_PER_CALL) {
    let nextToken: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const out = await client.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: "InstanceIds", Values: ids.slice(i, i + SSM_INSTANCES_PER_CALL) }],
          MaxResults: SSM_INSTANCES_PER_CALL,
          NextToken: nextToken,
        }),
      );
      for (const info of out.InstanceInformationList ?? []) {
        const m = info.InstanceId ? byId.get(info.InstanceId) : undefined;
        if (m) m.ssmPing = info.PingStatus ?? "Unregistered";
      }
      nextToken = out.NextToken;
      if (!nextToken) break;
    }
  }
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

async function observeAgents(deps: ObserveDeps): Promise<AgentObservation[]> {
  return (await deps.buildkite.listAgents()).map((a) => ({
    id: a.id,
    instanceId: a.instanceId,
    connectionState: a.connectionState,
  }));
}

/**
 * A time read back from our own tags counts only if it lies within the rollout (not before the
 * version was created, not in the future): anything else was not written by us for this version.
 */
function validPast(at: Date | undefined, since: Date | undefined, now: Date): Date | undefined {
  if (!at) return undefined;
  const skew = 5_000;
  if (at.getTime() > now.getTime() + skew) return undefined;
  if (since && at.getTime() < since.getTime() - skew) return undefined;
  return at;
}

/**
 * The Auto Scaling actions the stand-in implements: each reads its Query parameters, calls the
 * fleet and returns the `<ActionResult>` content (or undefined for actions without output).
 */

import { AutoScalingError, groupNotFound, validationError } from "./errors";
import { ACCOUNT_ID, type Fleet } from "./fleet";
import type { QueryParams } from "./query";
import type { GroupView, RefreshPreferencesInput, RefreshView, TagView } from "./types";
import type { XmlObject } from "./xml";

export type Operation = (fleet: Fleet, region: string, params: QueryParams) => XmlObject | undefined;

const GROUP_RESOURCE_TYPE = "auto-scaling-group";

export const operations: ReadonlyMap<string, Operation> = new Map<string, Operation>([
  ["DescribeAutoScalingGroups", describeAutoScalingGroups],
  ["CreateOrUpdateTags", createOrUpdateTags],
  ["DeleteTags", deleteTags],
  ["DescribeTags", describeTags],
  ["StartInstanceRefresh", startInstanceRefresh],
  ["DescribeInstanceRefreshes", describeInstanceRefreshes],
  ["CancelInstanceRefresh", cancelInstanceRefresh],
  ["TerminateInstanceInAutoScalingGroup", terminateInstanceInAutoScalingGroup],
  ["SetInstanceProtection", setInstanceProtection],
]);

/**
 * "By default, you can only specify up to 50 names. You can optionally increase this limit using
 * the MaxRecords property." (DescribeAutoScalingGroups, AutoScalingGroupNames;
 * https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeAutoScalingGroups.html).
 */
const DEFAULT_MAX_RECORDS = 50;
const MAX_RECORDS = 100;

function describeAutoScalingGroups(fleet: Fleet, region: string, params: QueryParams): XmlObject {
  const filters = readFilters(params);
  const names = params.strings("AutoScalingGroupNames");
  const limit = params.integer("MaxRecords") ?? DEFAULT_MAX_RECORDS;
  if (names !== undefined && names.length > Math.max(DEFAULT_MAX_RECORDS, Math.min(limit, MAX_RECORDS))) {
    throw validationError(
      `The number of Auto Scaling group names (${names.length}) exceeds the limit of ${Math.max(DEFAULT_MAX_RECORDS, Math.min(limit, MAX_RECORDS))}; raise MaxRecords (at most ${MAX_RECORDS}) or ask for fewer.`,
    );
  }
  const groups = fleet
    .describeGroups(region, names)
    .filter((group) => filters.every((filter) => groupMatches(group, filter)));
  const { page, nextToken } = paginate(groups, params);
  return { AutoScalingGroups: page.map(groupXml), NextToken: nextToken };
}

function createOrUpdateTags(fleet: Fleet, region: string, params: QueryParams): undefined {
  const tags = readTags(fleet, region, params);
  for (const tag of tags) {
    fleet.setTag(region, tag.groupName, {
      key: tag.key,
      value: tag.params.string("Value") ?? "",
      propagateAtLaunch: tag.params.boolean("PropagateAtLaunch") ?? false,
    });
  }
  return undefined;
}

function deleteTags(fleet: Fleet, region: string, params: QueryParams): undefined {
  for (const tag of readTags(fleet, region, params)) {
    fleet.deleteTag(region, tag.groupName, tag.key, tag.params.string("Value"));
  }
  return undefined;
}

function describeTags(fleet: Fleet, region: string, params: QueryParams): XmlObject {
  const filters = readFilters(params);
  const rows = fleet
    .describeGroups(region)
    .flatMap((group) => group.tags.map((tag) => ({ groupName: group.name, tag })))
    .filter((row) => filters.every((filter) => tagMatches(row.groupName, row.tag, filter)));
  const { page, nextToken } = paginate(rows, params);
  return { Tags: page.map((row) => tagXml(row.groupName, row.tag)), NextToken: nextToken };
}

function startInstanceRefresh(fleet: Fleet, region: string, params: QueryParams): XmlObject {
  const groupName = params.requiredString("AutoScalingGroupName");
  const strategy = params.string("Strategy") ?? "Rolling";
  if (strategy !== "Rolling") {
    throw validationError(`Strategy ${strategy} is not supported by this stand-in; use Rolling.`);
  }
  // Refusing beats silently ignoring: a caller that sends one expects its launch template to apply.
  if (params.struct("DesiredConfiguration") !== undefined) {
    throw validationError("DesiredConfiguration is not supported by this stand-in.");
  }
  const id = fleet.startInstanceRefresh(region, groupName, readPreferences(params.struct("Preferences")));
  return { InstanceRefreshId: id };
}

function describeInstanceRefreshes(fleet: Fleet, region: string, params: QueryParams): XmlObject {
  const groupName = params.requiredString("AutoScalingGroupName");
  const ids = params.strings("InstanceRefreshIds");
  const wanted = ids === undefined || ids.length === 0 ? undefined : new Set(ids);
  const known = fleet.describeGroups(region, [groupName]).length > 0;
  const refreshes = (known ? fleet.refreshes(region, groupName) : []).filter(
    (refresh) => wanted === undefined || wanted.has(refresh.instanceRefreshId),
  );
  const { page, nextToken } = paginate(refreshes, params);
  return { InstanceRefreshes: page.map(refreshXml), NextToken: nextToken };
}

function cancelInstanceRefresh(fleet: Fleet, region: string, params: QueryParams): XmlObject {
  const groupName = params.requiredString("AutoScalingGroupName");
  return { InstanceRefreshId: fleet.cancelInstanceRefresh(region, groupName) };
}

/** Both parameters are required (API_TerminateInstanceInAutoScalingGroup); the result is an Activity. */
function terminateInstanceInAutoScalingGroup(fleet: Fleet, region: string, params: QueryParams): XmlObject {
  const instanceId = params.requiredString("InstanceId");
  const decrement = params.boolean("ShouldDecrementDesiredCapacity");
  if (decrement === undefined) params.requiredString("ShouldDecrementDesiredCapacity");
  const activity = fleet.terminateInstanceInAutoScalingGroup(region, instanceId, decrement === true);
  return {
    Activity: {
      ActivityId: activity.activityId,
      AutoScalingGroupName: activity.groupName,
      Description: activity.description,
      Cause: activity.cause,
      StartTime: activity.startTime,
      StatusCode: "InProgress",
      Progress: 0,
      Details: JSON.stringify({ "Availability Zone": `${region}a` }),
    },
  };
}

function setInstanceProtection(fleet: Fleet, region: string, params: QueryParams): XmlObject {
  const groupName = params.requiredString("AutoScalingGroupName");
  const ids = params.strings("InstanceIds") ?? [];
  const protect = params.boolean("ProtectedFromScaleIn");
  if (protect === undefined) params.requiredString("ProtectedFromScaleIn");
  fleet.setInstanceProtection(region, groupName, ids, protect === true);
  return {};
}

// ---- Request helpers ----------------------------------------------------------------------------

interface Filter {
  name: string;
  values: string[];
}

function readFilters(params: QueryParams): Filter[] {
  return (params.structs("Filters") ?? []).map((filter) => ({
    name: filter.requiredString("Name"),
    values: filter.strings("Values") ?? [],
  }));
}

/** DescribeAutoScalingGroups filters: `tag-key`, `tag-value` and `tag:<key>`. */
function groupMatches(group: GroupView, filter: Filter): boolean {
  const { name, values } = filter;
  if (name === "tag-key") return group.tags.some((tag) => values.includes(tag.key));
  if (name === "tag-value") return group.tags.some((tag) => values.includes(tag.value));
  if (name.startsWith("tag:")) {
    const key = name.slice("tag:".length);
    return group.tags.some((tag) => tag.key === key && values.includes(tag.value));
  }
  throw validationError(`Filter name '${name}' is not supported by DescribeAutoScalingGroups.`);
}

/** DescribeTags filters: `auto-scaling-group`, `key`, `value`, `propagate-at-launch`. */
function tagMatches(groupName: string, tag: TagView, filter: Filter): boolean {
  const { name, values } = filter;
  if (name === "auto-scaling-group") return values.includes(groupName);
  if (name === "key") return values.includes(tag.key);
  if (name === "value") return values.includes(tag.value);
  if (name === "propagate-at-launch") return values.includes(String(tag.propagateAtLaunch));
  throw validationError(`Filter name '${name}' is not supported by DescribeTags.`);
}

interface TagRequest {
  groupName: string;
  key: string;
  params: QueryParams;
}

/** Reads `Tags.member.N` and checks every referenced group exists before anything changes. */
function readTags(fleet: Fleet, region: string, params: QueryParams): TagRequest[] {
  const tags = params.structs("Tags");
  if (tags === undefined) {
    throw validationError(
      "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null",
    );
  }
  return tags.map((tag) => {
    const groupName = tag.requiredString("ResourceId");
    const resourceType = tag.string("ResourceType") ?? GROUP_RESOURCE_TYPE;
    if (resourceType !== GROUP_RESOURCE_TYPE) {
      throw validationError(`Invalid resource type ${resourceType}; expected ${GROUP_RESOURCE_TYPE}.`);
    }
    if (fleet.describeGroups(region, [groupName]).length === 0) throw groupNotFound(groupName);
    return { groupName, key: tag.requiredString("Key"), params: tag };
  });
}

function readPreferences(params: QueryParams | undefined): RefreshPreferencesInput {
  if (params === undefined) return {};
  return {
    minHealthyPercentage: params.integer("MinHealthyPercentage"),
    maxHealthyPercentage: params.integer("MaxHealthyPercentage"),
    instanceWarmup: params.integer("InstanceWarmup"),
    skipMatching: params.boolean("SkipMatching"),
    autoRollback: params.boolean("AutoRollback"),
    scaleInProtectedInstances: params.string("ScaleInProtectedInstances"),
    standbyInstances: params.string("StandbyInstances"),
  };
}

/** Offset-based paging behind an opaque token; MaxRecords is 1..100 with a default of 50 as in AWS. */
function paginate<T>(items: readonly T[], params: QueryParams): { page: T[]; nextToken?: string } {
  const limit = params.integer("MaxRecords") ?? 50;
  if (limit < 1 || limit > 100) throw validationError("MaxRecords must be between 1 and 100.");
  const token = params.string("NextToken");
  const offset = token === undefined ? 0 : decodeToken(token);
  const end = offset + limit;
  return {
    page: items.slice(offset, end),
    ...(end < items.length ? { nextToken: Buffer.from(`offset:${end}`).toString("base64url") } : {}),
  };
}

function decodeToken(token: string): number {
  const match = /^offset:(\d+)$/.exec(Buffer.from(token, "base64url").toString());
  if (match?.[1] === undefined) throw new AutoScalingError("InvalidNextToken", "The token is invalid.");
  return Number(match[1]);
}

// ---- Response shapes ----------------------------------------------------------------------------

function groupXml(group: GroupView): XmlObject {
  const launchTemplate = {
    LaunchTemplateId: group.launchTemplate.launchTemplateId,
    LaunchTemplateName: group.launchTemplate.launchTemplateName,
  };
  return {
    AutoScalingGroupName: group.name,
    AutoScalingGroupARN: group.arn,
    LaunchTemplate: { ...launchTemplate, Version: group.launchTemplate.version },
    MinSize: group.minSize,
    MaxSize: group.maxSize,
    DesiredCapacity: group.desiredCapacity,
    DefaultCooldown: 300,
    AvailabilityZones: ["a", "b", "c"].map((zone) => `${group.region}${zone}`),
    HealthCheckType: "EC2",
    HealthCheckGracePeriod: 300,
    CreatedTime: group.createdTime,
    Instances: group.instances.map((instance) => ({
      InstanceId: instance.instanceId,
      InstanceType: "t3.large",
      AvailabilityZone: instance.availabilityZone,
      LifecycleState: instance.lifecycleState,
      HealthStatus: instance.healthStatus,
      LaunchTemplate: { ...launchTemplate, Version: instance.launchTemplateVersion },
      ProtectedFromScaleIn: instance.protectedFromScaleIn,
    })),
    Tags: group.tags.map((tag) => tagXml(group.name, tag)),
    TerminationPolicies: ["Default"],
    NewInstancesProtectedFromScaleIn: group.newInstancesProtectedFromScaleIn,
    ServiceLinkedRoleARN: `arn:aws:iam::${ACCOUNT_ID}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`,
    CapacityRebalance: false,
  };
}

function tagXml(groupName: string, tag: TagView): XmlObject {
  return {
    ResourceId: groupName,
    ResourceType: GROUP_RESOURCE_TYPE,
    Key: tag.key,
    Value: tag.value,
    PropagateAtLaunch: tag.propagateAtLaunch,
  };
}

function refreshXml(refresh: RefreshView): XmlObject {
  const { preferences } = refresh;
  return {
    InstanceRefreshId: refresh.instanceRefreshId,
    AutoScalingGroupName: refresh.autoScalingGroupName,
    Status: refresh.status,
    StatusReason: refresh.statusReason,
    StartTime: refresh.startTime,
    EndTime: refresh.endTime,
    PercentageComplete: refresh.percentageComplete,
    InstancesToUpdate: refresh.instancesToUpdate,
    ProgressDetails: {
      LivePoolProgress: {
        PercentageComplete: refresh.percentageComplete,
        InstancesToUpdate: refresh.instancesToUpdate,
      },
    },
    Preferences: {
      MinHealthyPercentage: preferences.minHealthyPercentage,
      InstanceWarmup: preferences.instanceWarmup,
      SkipMatching: preferences.skipMatching,
      AutoRollback: preferences.autoRollback,
      ScaleInProtectedInstances: preferences.scaleInProtectedInstances,
      StandbyInstances: preferences.standbyInstances,
      MaxHealthyPercentage: preferences.maxHealthyPercentage,
    },
    Strategy: "Rolling",
  };
}

/**
 * Auto Scaling groups of the simulated fleet: a group built (and checked) from its spec, with the
 * instances that already run in it, and the views DescribeAutoScalingGroups answers from.
 */
import { createHash } from "node:crypto";
import { seededRandom } from "../../lib/seeded-random";
import { ACCOUNT_ID, type FleetState } from "./fleet-state";
import type { GroupState, InstanceState } from "./state";
import type { GroupSpec, GroupView, InstanceView, TagView } from "./types";

function asUuid(hex: string): string {
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20, 32)].join(
    "-",
  );
}

/**
 * Registers the group `spec` describes. With `launch` false its instances already run (InService,
 * launched an hour ago, not yet booted); with `launch` true it starts empty and the caller fills it.
 */
export function createGroup(state: FleetState, spec: GroupSpec, launch: boolean): GroupState {
  const { region, name, instances } = spec;
  const busyAtStart = spec.jobs?.busyAtStart ?? spec.protectedInstances ?? 0;
  const minSize = spec.minSize ?? 0;
  const maxSize = spec.maxSize ?? Math.max(instances, 1);
  if (!Number.isInteger(instances) || instances < 0) throw new Error(`${name}: instances must be >= 0`);
  if (busyAtStart > instances) throw new Error(`${name}: busy instances exceed instances`);
  if (minSize > instances || instances > maxSize) {
    throw new Error(`${name}: need minSize <= instances <= maxSize`);
  }
  const busyOnBoot = spec.jobs?.busyOnBoot ?? 0;
  if (!(busyOnBoot >= 0 && busyOnBoot <= 1)) throw new Error(`${name}: jobs.busyOnBoot must be in [0, 1]`);
  const regionGroups = state.groups.get(region) ?? new Map<string, GroupState>();
  if (regionGroups.has(name)) throw new Error(`duplicate group ${name} in ${region}`);
  state.groups.set(region, regionGroups);

  // Ids derive from region and name so that repeated runs describe the same fleet.
  const digest = createHash("sha256").update(`${region}/${name}`).digest("hex");
  const tags = new Map<string, TagView>(
    Object.entries(spec.tags ?? {}).map(([key, value]) => [key, { key, value, propagateAtLaunch: true }]),
  );
  for (const tag of spec.groupTags ?? []) tags.set(tag.key, { ...tag });
  const scaler =
    spec.scaler === false
      ? (false as const)
      : {
          demand: spec.scaler?.demand ?? instances,
          delayMs: spec.scaler?.delayMs ?? state.settings.replaceMs,
        };
  const group: GroupState = {
    region,
    name,
    arn: `arn:aws:autoscaling:${region}:${ACCOUNT_ID}:autoScalingGroup:${asUuid(digest)}:autoScalingGroupName/${name}`,
    minSize,
    maxSize,
    desiredCapacity: instances,
    createdTime: new Date(state.timers.now()),
    launchTemplate: {
      launchTemplateId: `lt-${digest.slice(0, 17)}`,
      launchTemplateName: name,
      version: "1",
    },
    newInstancesProtectedFromScaleIn: spec.newInstancesProtectedFromScaleIn ?? true,
    instances: [],
    tags,
    platform: spec.platform ?? "Linux",
    idlePeriodMs: spec.idlePeriodMs ?? Number.POSITIVE_INFINITY,
    jobs: {
      busyOnBoot,
      ...(spec.jobs?.durationMs === undefined ? {} : { durationMs: spec.jobs.durationMs }),
      ...(spec.jobs?.schedule === undefined ? {} : { schedule: spec.jobs.schedule }),
    },
    scaler,
    ssmAgent: spec.ssmAgent ?? "online",
    stackName: tags.get("aws:cloudformation:stack-name")?.value ?? name,
    random: seededRandom(spec.jobs?.seed ?? Number.parseInt(digest.slice(0, 8), 16)),
    scheduleIndex: 0,
    spec,
  };
  regionGroups.set(name, group);
  if (!launch) {
    for (let index = 0; index < instances; index += 1) {
      const instance = state.newInstance(group, "InService", group.newInstancesProtectedFromScaleIn, true);
      instance.busyAtBoot = index < busyAtStart;
      group.instances.push(instance);
    }
  }
  return group;
}

export function groupView(group: GroupState): GroupView {
  return {
    region: group.region,
    name: group.name,
    arn: group.arn,
    minSize: group.minSize,
    maxSize: group.maxSize,
    desiredCapacity: group.desiredCapacity,
    createdTime: group.createdTime,
    launchTemplate: { ...group.launchTemplate },
    newInstancesProtectedFromScaleIn: group.newInstancesProtectedFromScaleIn,
    instances: group.instances.map(instanceView),
    tags: [...group.tags.values()].sort((a, b) => a.key.localeCompare(b.key)).map((tag) => ({ ...tag })),
  };
}

export function instanceView(instance: InstanceState): InstanceView {
  return {
    instanceId: instance.id,
    availabilityZone: instance.availabilityZone,
    lifecycleState: instance.state,
    healthStatus: "Healthy",
    protectedFromScaleIn: instance.protectedFromScaleIn,
    launchTemplateVersion: instance.launchTemplateVersion,
    launchTime: new Date(instance.launchTime),
    platform: instance.platform,
    ssmAgent: instance.ssmAgent,
    bootFinished: instance.bootFinished,
    busy: instance.job !== undefined,
    restarts: instance.restarts,
    configPath: instance.configPath,
  };
}

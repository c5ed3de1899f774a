/**
 * EC2 DescribeInstances over the simulated fleet, as the API reference documents it
 * (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html):
 * - `InstanceId.N`: only those instances; an id that does not exist fails the whole call with
 *   InvalidInstanceID.NotFound, a malformed one with InvalidInstanceID.Malformed.
 * - `Filter.N.Name` / `Filter.N.Value.M`: filters AND together, values of one filter OR together;
 *   supported here: `instance-id`, `instance-state-name`, `tag:<key>`, `tag-key`, `tag-value`.
 * - `MaxResults` 5..1000 with `NextToken`; "You cannot specify this parameter and the instance IDs
 *   parameter in the same request."
 * - "Recently terminated instances might appear in the returned results" (the fleet keeps them
 *   visible for a while).
 * Each instance is its own reservation, as instances an Auto Scaling group launches are.
 */
import { createHash } from "node:crypto";
import type { Ec2InstanceView, Ec2State } from "../autoscaling/types";
import { Ec2Error } from "./errors";
import type { Ec2Params } from "./params";
import type { XmlNode } from "./xml";

export interface InstanceSource {
  ec2Instances(region: string): Ec2InstanceView[];
}

const STATE_CODES: Readonly<Record<Ec2State, number>> = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
};

const MIN_RESULTS = 5;
const MAX_RESULTS = 1000;
const INSTANCE_ID = /^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$/;
const ACCOUNT_ID = "123456789012";

export function describeInstances(source: InstanceSource, region: string, params: Ec2Params): XmlNode {
  const ids = params.list("InstanceId");
  const filters = params.filters();
  const maxResults = params.integer("MaxResults");
  const nextToken = params.string("NextToken");
  if (maxResults !== undefined && ids.length > 0) {
    throw new Ec2Error(
      "InvalidParameterCombination",
      "The parameter instancesSet cannot be used with the parameter maxResults",
    );
  }
  if (maxResults !== undefined && (maxResults < MIN_RESULTS || maxResults > MAX_RESULTS)) {
    throw new Ec2Error(
      "InvalidParameterValue",
      `Value ( ${maxResults} ) for parameter maxResults is invalid. Expecting a value between ${MIN_RESULTS} and ${MAX_RESULTS}.`,
    );
  }
  for (const id of ids) {
    if (!INSTANCE_ID.test(id)) throw new Ec2Error("InvalidInstanceID.Malformed", `Invalid id: "${id}"`);
  }
  let instances = source.ec2Instances(region);
  if (ids.length > 0) {
    const known = new Set(instances.map((instance) => instance.instanceId));
    const missing = ids.filter((id) => !known.has(id));
    if (missing.length === 1) {
      throw new Ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing[0]}' does not exist`);
    }
    if (missing.length > 1) {
      throw new Ec2Error(
        "InvalidInstanceID.NotFound",
        `The instance IDs '${missing.join(", ")}' do not exist`,
      );
    }
    const wanted = new Set(ids);
    instances = instances.filter((instance) => wanted.has(instance.instanceId));
  }
  for (const filter of filters) instances = instances.filter((instance) => matches(instance, filter));

  const offset = nextToken === undefined ? 0 : decodeToken(nextToken, region);
  const limit = maxResults ?? instances.length;
  const page = instances.slice(offset, offset + limit);
  const end = offset + page.length;
  return {
    reservationSet: page.map(reservationXml),
    ...(maxResults !== undefined && end < instances.length ? { nextToken: encodeToken(end, region) } : {}),
  };
}

function matches(instance: Ec2InstanceView, filter: { name: string; values: string[] }): boolean {
  const { name, values } = filter;
  if (name === "instance-id") return values.includes(instance.instanceId);
  if (name === "instance-state-name") return values.includes(instance.state);
  if (name === "tag-key") return instance.tags.some((tag) => values.includes(tag.key));
  if (name === "tag-value") return instance.tags.some((tag) => values.includes(tag.value));
  if (name.startsWith("tag:")) {
    const key = name.slice("tag:".length);
    return instance.tags.some((tag) => tag.key === key && values.includes(tag.value));
  }
  throw new Ec2Error("InvalidParameterValue", `The filter '${name}' is invalid`);
}

function reservationXml(instance: Ec2InstanceView): XmlNode {
  const windows = instance.platform === "Windows";
  const digest = createHash("sha256").update(instance.instanceId).digest("hex");
  return {
    reservationId: `r-${digest.slice(0, 17)}`,
    ownerId: ACCOUNT_ID,
    groupSet: [],
    instancesSet: [
      {
        instanceId: instance.instanceId,
        imageId: windows ? "ami-0windows00000000" : "ami-0linux000000000",
        instanceState: { code: STATE_CODES[instance.state], name: instance.state },
        privateDnsName: `ip-10-0-${parseInt(digest.slice(0, 2), 16)}-${parseInt(digest.slice(2, 4), 16)}.ec2.internal`,
        instanceType: "t3.large",
        launchTime: instance.launchTime,
        placement: { availabilityZone: instance.availabilityZone, tenancy: "default" },
        // `platform` is "windows" for Windows instances and absent otherwise (API_Instance).
        ...(windows ? { platform: "windows" } : {}),
        platformDetails: windows ? "Windows" : "Linux/UNIX",
        architecture: "x86_64",
        rootDeviceType: "ebs",
        tagSet: instance.tags.map((tag) => ({ key: tag.key, value: tag.value })),
      },
    ],
  };
}

/** Opaque, but bound to the region: a token from another region is refused. */
function encodeToken(offset: number, region: string): string {
  return Buffer.from(`${region}:${offset}`).toString("base64url");
}

function decodeToken(token: string, region: string): number {
  const match = /^([a-z0-9-]+):(\d+)$/.exec(Buffer.from(token, "base64url").toString());
  if (match?.[1] !== region || match[2] === undefined) {
    throw new Ec2Error("InvalidParameterValue", "The specified NextToken is not valid.");
  }
  return Number(match[2]);
}

/**
 * Amazon Resource Names, one grammar for every part of the project. The general form is
 * `arn:partition:service:region:account-id:resource`, where some resources omit the region, the
 * account or both (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html).
 * Only the typed readers below say which parts a given kind of ARN must carry.
 */

/**
 * Every partition the AWS SDK knows (aws/aws-sdk-js-v3, packages/util-endpoints/src/lib/aws/partitions.json,
 * shipped as @aws-sdk/core's partitions): the commercial regions, China, GovCloud, the ISO
 * (isolated) partitions and the European Sovereign Cloud. Nothing else is a partition, so
 * `arn:awsfoo:…` is no ARN.
 */
export const PARTITIONS = [
  "aws",
  "aws-cn",
  "aws-us-gov",
  "aws-iso",
  "aws-iso-b",
  "aws-iso-e",
  "aws-iso-f",
  "aws-eusc",
] as const;
export type Partition = (typeof PARTITIONS)[number];

/**
 * A region code: the union of the partitions' `regionRegex` in the same partitions file
 * (us-east-1, cn-north-1, us-gov-west-1, us-isob-east-1, eu-isoe-west-1, eusc-de-east-1).
 */
const REGION = /^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$/;
const ACCOUNT = /^\d{12}$/;
const SERVICE = /^[a-z0-9-]+$/;

/** Whether `name` is an AWS region code (us-east-1, ap-southeast-2, us-gov-west-1, eusc-de-east-1). */
export function isRegionName(name: string): boolean {
  return REGION.test(name);
}

/** Whether `id` is an AWS account id: 12 digits, no hyphens. */
export function isAccountId(id: string): boolean {
  return ACCOUNT.test(id);
}

export interface Arn {
  arn: string;
  partition: Partition;
  service: string;
  /** Empty for global resources (IAM, STS principals). */
  region: string;
  /** Empty for resources that omit it. */
  account: string;
  /** Everything after the account: `secret:name-AbCdEf`, `role/path/name`. */
  resource: string;
}

const isPartition = (p: string): p is Partition => (PARTITIONS as readonly string[]).includes(p);

/** The parts of any ARN; undefined when `value` is not one (unknown partition, bad region or account). */
export function parseArn(value: string): Arn | undefined {
  const parts = value.split(":");
  if (parts.length < 6 || parts[0] !== "arn") return undefined;
  const [, partition = "", service = "", region = "", account = ""] = parts;
  const resource = parts.slice(5).join(":");
  if (!isPartition(partition) || !SERVICE.test(service) || !resource) return undefined;
  if (region && !isRegionName(region)) return undefined;
  if (account && !isAccountId(account)) return undefined;
  return { arn: value, partition, service, region, account, resource };
}

/**
 * An ARN of `service` with an account, and with a region exactly when `regional` (IAM and STS
 * principals are global: `arn:aws:iam::123456789012:role/name`).
 */
export function parseServiceArn(value: string, service: string, regional: boolean): Arn | undefined {
  const arn = parseArn(value);
  return arn?.service === service && arn.account && Boolean(arn.region) === regional ? arn : undefined;
}

export interface SecretArn {
  arn: string;
  partition: Partition;
  region: string;
  account: string;
  /** The secret's name: the resource without the six-character suffix Secrets Manager appends. */
  name: string;
}

/**
 * A secret's name: 1 to 512 ASCII letters, digits and /_+=.@-
 * (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html, Name).
 * The ARN adds a hyphen and six random characters ("The ARN includes the name of the secret
 * followed by six random characters", CreateSecret response, ARN), so a complete secret ARN always
 * ends with `-XXXXXX`. An ARN without it is a partial ARN, which is not a secret's ARN.
 */
const SECRET_RESOURCE = /^secret:([A-Za-z0-9/_+=.@-]{1,512})-[A-Za-z0-9]{6}$/;

/** A complete Secrets Manager secret ARN (region, account and the six-character suffix required). */
export function parseSecretArn(value: string): SecretArn | undefined {
  const arn = parseServiceArn(value, "secretsmanager", true);
  const name = arn && SECRET_RESOURCE.exec(arn.resource)?.[1];
  if (!arn || !name) return undefined;
  return { arn: value, partition: arn.partition, region: arn.region, account: arn.account, name };
}

/**
 * Any Secrets Manager ARN, complete or partial (a partial ARN names the secret without the suffix;
 * Secrets Manager accepts it as a SecretId). For ids the user gives, not for configuration.
 */
export function parseSecretIdArn(value: string): (Arn & { service: "secretsmanager" }) | undefined {
  const arn = parseServiceArn(value, "secretsmanager", true);
  return arn && /^secret:./.test(arn.resource) ? { ...arn, service: "secretsmanager" } : undefined;
}

/** The same ARN in another region (a replica's ARN differs from the primary's only in its region). */
export function arnInRegion(arn: Arn, region: string): string {
  return ["arn", arn.partition, arn.service, region, arn.account, arn.resource].join(":");
}

export interface RoleArn {
  arn: string;
  partition: Partition;
  account: string;
  /** `/` when the role has no path, else `/a/b/`. */
  path: string;
  name: string;
}

/**
 * `role/[path/]name` (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns).
 * CreateRole (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html): RoleName is
 * 1 to 64 of [\w+=,.@-]; Path is `/` or `/`…`/` of printable ASCII (U+0021 to U+007E), at most 512
 * characters in all.
 */
const ROLE_RESOURCE = /^role(\/|\/[\x21-\x7e]+\/)([\w+=,.@-]{1,64})$/;
const MAX_ROLE_PATH = 512;

/** An IAM role ARN: global (no region), with an account, an optional path and a name. */
export function parseRoleArn(value: string): RoleArn | undefined {
  const arn = parseServiceArn(value, "iam", false);
  const m = arn && ROLE_RESOURCE.exec(arn.resource);
  const [, path = "", name = ""] = m ?? [];
  if (!arn || !m || path.length > MAX_ROLE_PATH) return undefined;
  return { arn: value, partition: arn.partition, account: arn.account, path, name };
}

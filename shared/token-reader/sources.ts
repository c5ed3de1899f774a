import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { SSMClient } from "@aws-sdk/client-ssm";
import { arnInRegion, parseSecretArn, parseSecretIdArn } from "../lib/arn";
import { type VersionStages, versionHolding } from "../secrets/stages";
import { InvalidTokenValueError } from "./errors";

/**
 * Where the token is read from. A source fetches one version of the token in one region; nothing
 * here caches, retries across regions or logs (reader.ts does). The two implementations live in
 * their own modules (secrets-manager-source.ts, ssm-source.ts) so that a bundle carries only the
 * SDK client it uses.
 */

export type TokenSource = "secretsmanager" | "ssm";
export const TOKEN_SOURCES: readonly TokenSource[] = ["secretsmanager", "ssm"];

/** Only `send` is used, so tests can pass a fake or a client mocked with aws-sdk-client-mock. */
export type SecretsManagerLike = Pick<SecretsManagerClient, "send">;
export type SsmLike = Pick<SSMClient, "send">;

export interface FetchedToken {
  token: string;
  /** The Secrets Manager version id (replicas keep the primary's ids); undefined if not reported. */
  versionId: string | undefined;
}

export interface TokenFetcher {
  name: TokenSource;
  /** Read `versionStage` of `secretId` (already rewritten for `region`) in `region`. */
  fetch(region: string, secretId: string, versionStage: string): Promise<FetchedToken>;
}

export const REFERENCE_PREFIX = "/aws/reference/secretsmanager/";

/**
 * The id to use in `region`: a name is the same in every region; a replica's ARN differs from the
 * primary's only in its region, so an ARN is rewritten.
 */
export function secretIdForRegion(secretId: string, region: string): string {
  const arn = parseSecretIdArn(secretId);
  return arn ? arnInRegion(arn, region) : secretId;
}

/**
 * The secret's name: a complete ARN's resource without the six-character suffix Secrets Manager
 * adds; a partial ARN's resource as it is (it has no suffix); any other id is a name already.
 */
export function secretName(secretId: string): string {
  const complete = parseSecretArn(secretId);
  if (complete) return complete.name;
  const partial = parseSecretIdArn(secretId);
  return partial ? partial.resource.slice("secret:".length) : secretId;
}

/**
 * The Parameter Store name that resolves the secret. It takes the secret's name (a full ARN is
 * reduced to its name), and a `:label` selector for any stage other than AWSCURRENT, which is what
 * the bare reference resolves to.
 */
export function referenceParameterName(secretId: string, versionStage: string): string {
  const selector = versionStage === "AWSCURRENT" ? "" : `:${versionStage}`;
  return `${REFERENCE_PREFIX}${secretName(secretId)}${selector}`;
}

export function checkedToken(value: string | undefined, what: string): string {
  // The secret holds the bare token; surrounding whitespace (a stray newline pasted by a human)
  // is never part of a Buildkite token.
  const token = value?.trim();
  if (!token) throw new InvalidTokenValueError(`${what} has no string value`);
  return token;
}

/**
 * Parameter Store returns the Secrets Manager response as JSON in SourceResult. Only ids are taken
 * from it (it is never logged: it could carry the value).
 */
export function versionIdFromSourceResult(
  sourceResult: string | undefined,
  stage: string,
): string | undefined {
  if (!sourceResult) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(sourceResult);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== "object") return undefined;
  const r = parsed as { VersionId?: unknown; VersionIdsToStages?: unknown };
  if (typeof r.VersionId === "string" && r.VersionId) return r.VersionId;
  if (!r.VersionIdsToStages || typeof r.VersionIdsToStages !== "object") return undefined;
  const stages: VersionStages = {};
  for (const [id, labels] of Object.entries(r.VersionIdsToStages as Record<string, unknown>)) {
    if (Array.isArray(labels)) stages[id] = labels.filter((l): l is string => typeof l === "string");
  }
  return versionHolding(stages, stage);
}

import { isRegionName, type SecretArn } from "../lib/arn";
import { type Env, integer, regionList, required, secretArnSetting } from "../lib/config";
import { ConfigError } from "../lib/errors";
import { type AllowedPrincipals, parseAllowedPrincipals } from "./principals";

/**
 * Settings of the read-token Lambda, parsed once at cold start; errors name the variable.
 *
 * - TOKEN_SECRET_ARN (required): the agent token secret (its ARN names the primary region).
 * - ALLOWED_PRINCIPALS (required): comma list of 12-digit account ids and IAM role ARNs.
 * - CACHE_MAX_AGE_SECONDS (default 60): how long a read token is served from memory.
 * - MAX_STALE_SECONDS (default 300): how long past its max age the last good token may be served
 *   while Secrets Manager fails transiently (0 = never).
 * - FALLBACK_REGIONS (optional): regions to try after the function's own region (AWS_REGION) and
 *   before the secret's primary region, which is always tried last.
 */

export interface ReadTokenConfig {
  secret: SecretArn;
  /** Read order: own region, FALLBACK_REGIONS, primary; no duplicates. */
  regions: string[];
  allowed: AllowedPrincipals;
  cacheMaxAgeSeconds: number;
  maxStaleSeconds: number;
}

export function loadReadTokenConfig(env: Env): ReadTokenConfig {
  const secret = secretArnSetting("TOKEN_SECRET_ARN", required(env, "TOKEN_SECRET_ARN"));
  const allowed = parseAllowedPrincipals("ALLOWED_PRINCIPALS", required(env, "ALLOWED_PRINCIPALS"));
  const fallback = regionList(env, "FALLBACK_REGIONS");
  const own = env.AWS_REGION?.trim();
  if (own && !isRegionName(own)) throw new ConfigError("AWS_REGION", `"${own}" is not an AWS region name`);
  return {
    secret,
    regions: [...new Set([own || secret.region, ...fallback, secret.region])],
    allowed,
    cacheMaxAgeSeconds: integer(env, "CACHE_MAX_AGE_SECONDS", 60, 0, 3600),
    maxStaleSeconds: integer(env, "MAX_STALE_SECONDS", 300, 0, 86_400),
  };
}

import { type Env, parseSecretArn, type SecretRef } from "../config";
import { ConfigError } from "../errors";
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
  secret: SecretRef;
  /** Read order: own region, FALLBACK_REGIONS, primary; no duplicates. */
  regions: string[];
  allowed: AllowedPrincipals;
  cacheMaxAgeSeconds: number;
  maxStaleSeconds: number;
}

const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;

function required(env: Env, name: string): string {
  const v = env[name]?.trim();
  if (!v) throw new ConfigError(name, "is required");
  return v;
}

function wholeNumber(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function parseRegionList(variable: string, raw: string | undefined): string[] {
  const regions = (raw ?? "")
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  for (const r of regions)
    if (!REGION.test(r)) throw new ConfigError(variable, `"${r}" is not an AWS region name`);
  return [...new Set(regions)];
}

export function loadReadTokenConfig(env: Env): ReadTokenConfig {
  const secret = parseSecretArn("TOKEN_SECRET_ARN", required(env, "TOKEN_SECRET_ARN"));
  const allowed = parseAllowedPrincipals("ALLOWED_PRINCIPALS", required(env, "ALLOWED_PRINCIPALS"));
  const fallback = parseRegionList("FALLBACK_REGIONS", env.FALLBACK_REGIONS);
  const own = env.AWS_REGION?.trim();
  if (own && !REGION.test(own)) throw new ConfigError("AWS_REGION", `"${own}" is not an AWS region name`);
  return {
    secret,
    regions: [...new Set([own || secret.region, ...fallback, secret.region])],
    allowed,
    cacheMaxAgeSeconds: wholeNumber(env, "CACHE_MAX_AGE_SECONDS", 60, 0, 3600),
    maxStaleSeconds: wholeNumber(env, "MAX_STALE_SECONDS", 300, 0, 86_400),
  };
}

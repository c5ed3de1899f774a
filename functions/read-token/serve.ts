import type { LambdaFunctionURLResult } from "aws-lambda";
import type { Logger } from "../../shared/lib/log";
import { describeReadError, TokenReadError } from "../../shared/token-reader/errors";
import { type AllowedPrincipals, authorize, type CallerIdentity } from "../../shared/token-reader/principals";
import type { TokenReader } from "../../shared/token-reader/reader";

/**
 * Hands the current agent token to allowed principals behind a function URL with AWS_IAM auth.
 * Lambda has already verified the SigV4 signature; the caller's identity arrives in
 * `event.requestContext.authorizer.iam`. Who asked is logged; the token never is.
 */

export interface ServeDeps {
  reader: Pick<TokenReader, "read">;
  allowed: AllowedPrincipals;
  logger: Logger;
}

export interface RequestInfo {
  method: string;
  requestId: string | undefined;
  sourceIp: string | undefined;
  caller: CallerIdentity | undefined;
}

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

function respond(
  statusCode: number,
  body: unknown,
  headers: Record<string, string> = {},
): LambdaFunctionURLResult {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v ? v : undefined);

/** Reads only what we need from a function URL (payload 2.0) event, defensively. */
export function parseRequest(event: unknown): RequestInfo {
  const e = (event && typeof event === "object" ? event : {}) as {
    requestContext?: {
      requestId?: unknown;
      http?: { method?: unknown; sourceIp?: unknown };
      authorizer?: { iam?: Record<string, unknown> | null } | null;
    };
  };
  const ctx = e.requestContext;
  const iam = ctx?.authorizer?.iam;
  return {
    method: (str(ctx?.http?.method) ?? "").toUpperCase(),
    requestId: str(ctx?.requestId),
    sourceIp: str(ctx?.http?.sourceIp),
    caller: iam
      ? {
          accountId: str(iam.accountId),
          userArn: str(iam.userArn),
          userId: str(iam.userId),
          callerId: str(iam.callerId),
          principalOrgId: str(iam.principalOrgId),
        }
      : undefined,
  };
}

export async function serveToken(event: unknown, deps: ServeDeps): Promise<LambdaFunctionURLResult> {
  const request = parseRequest(event);
  const who = {
    caller: request.caller ?? null,
    sourceIp: request.sourceIp,
    requestId: request.requestId,
    method: request.method,
  };
  if (request.method !== "GET") {
    deps.logger.warn("method not allowed", who);
    return respond(405, { message: "only GET is supported" }, { allow: "GET" });
  }
  const decision = authorize(deps.allowed, request.caller);
  if (!decision.allowed) {
    deps.logger.warn("caller denied", { ...who, reason: decision.reason });
    return respond(403, { message: "this caller is not allowed to read the agent token" });
  }
  try {
    const value = await deps.reader.read();
    deps.logger.info("token served", {
      ...who,
      reason: decision.reason,
      versionId: value.versionId,
      region: value.region,
      stale: value.stale,
    });
    return respond(200, {
      token: value.token,
      versionId: value.versionId ?? null,
      fetchedAt: value.fetchedAt.toISOString(),
    });
  } catch (error) {
    const transient = error instanceof TokenReadError && error.transient;
    deps.logger.error("could not serve the token", { ...who, error: describeReadError(error) });
    return transient
      ? respond(503, { message: "the agent token is temporarily unavailable" }, { "retry-after": "5" })
      : respond(500, { message: "the agent token could not be read" });
  }
}

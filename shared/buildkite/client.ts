import { BuildkiteApiError, DeadlineError, sanitizeSnippet } from "../lib/errors";
import { registerSecret } from "../lib/log";
import { truncate } from "../lib/redact";
import { backoffDelay, sleep as realSleep, type Sleep } from "../lib/sleep";

/** A cluster agent token as the REST API lists it: never includes the value. */
export interface ClusterToken {
  id: string;
  description: string;
  createdAt: string | undefined;
  expiresAt: string | undefined;
}

/** Only the create response carries the value. */
export interface CreatedClusterToken extends ClusterToken {
  token: string;
}

export type AgentTokenCheck =
  | { valid: true; organizationSlug: string | undefined }
  | { valid: false; status: number };

export interface AgentInfo {
  id: string;
  connectionState: string;
  instanceId: string | undefined;
}

export interface AccessTokenInfo {
  uuid: string | undefined;
  scopes: string[];
}

export interface BuildkiteClientOptions {
  apiUrl: string;
  agentApiUrl: string;
  organization: string;
  clusterId: string;
  /** Resolved lazily so a cold start does not read the API token secret unless it is needed. */
  apiToken: () => Promise<string>;
  fetch?: typeof fetch;
  sleep?: Sleep;
  /** Per-request timeout. */
  timeoutMs?: number;
  /** Attempts for idempotent calls (GET, DELETE). */
  maxAttempts?: number;
  baseDelayMs?: number;
  /** The longest we wait between attempts, even when RateLimit-Reset asks for longer. */
  maxDelayMs?: number;
  /** Milliseconds left before the caller must stop (for example the Lambda deadline). */
  remainingMs?: () => number;
  /** Seen on each retry: for logging; carries no token. */
  onRetry?: (info: {
    method: string;
    path: string;
    attempt: number;
    status: number;
    delayMs: number;
  }) => void;
}

const MAX_PAGES = 100;

export class BuildkiteClient {
  private readonly fetchImpl: typeof fetch;
  private readonly sleep: Sleep;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly options: BuildkiteClientOptions) {
    this.fetchImpl = options.fetch ?? fetch;
    this.sleep = options.sleep ?? realSleep;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.maxAttempts = options.maxAttempts ?? 5;
    this.baseDelayMs = options.baseDelayMs ?? 250;
    this.maxDelayMs = options.maxDelayMs ?? 20_000;
  }

  private get tokensPath(): string {
    const { organization, clusterId } = this.options;
    return `/v2/organizations/${encodeURIComponent(organization)}/clusters/${encodeURIComponent(clusterId)}/tokens`;
  }

  /**
   * Create a cluster agent token. Never retried after the server may have acted on it: a retry
   * could mint a second live token we would not know the value of. A 429 is the one exception:
   * the rate limiter answered, so nothing was created.
   */
  async createToken(input: { description: string; expiresAt?: Date }): Promise<CreatedClusterToken> {
    const body = JSON.stringify({
      description: input.description,
      ...(input.expiresAt ? { expires_at: input.expiresAt.toISOString() } : {}),
    });
    const res = await this.request("POST", this.tokensPath, { body, retryOn: (status) => status === 429 });
    const json = this.object(res, "POST", this.tokensPath);
    const token = json.token;
    if (typeof token !== "string" || token.length === 0) {
      throw new BuildkiteApiError("POST", this.tokensPath, res.status, "response carried no token value");
    }
    registerSecret(token);
    return { ...toClusterToken(json, "POST", this.tokensPath), token };
  }

  /** Every token of the cluster, following the Link header across pages. */
  async listTokens(): Promise<ClusterToken[]> {
    const all: ClusterToken[] = [];
    let next: string | undefined = `${this.tokensPath}?per_page=100`;
    for (let page = 0; next && page < MAX_PAGES; page++) {
      const res = await this.request("GET", next);
      const items = this.parse(res, "GET", this.tokensPath);
      if (!Array.isArray(items))
        throw new BuildkiteApiError("GET", this.tokensPath, res.status, "expected a list");
      items.forEach((item, i) => {
        if (!isRecord(item)) {
          throw new BuildkiteApiError(
            "GET",
            this.tokensPath,
            res.status,
            `list item ${page * 100 + i} is ${item === null ? "null" : typeof item}, not a token`,
          );
        }
        all.push(toClusterToken(item, "GET", this.tokensPath));
      });
      // A next page we must not follow is an error, not the end: a partial list could hide a
      // token we would then never revoke, or count as gone.
      next = nextLink(res.headers.get("link"), this.options.apiUrl, this.tokensPath);
    }
    if (next)
      throw new BuildkiteApiError("GET", this.tokensPath, 200, `more than ${MAX_PAGES} pages of tokens`);
    return all;
  }

  /** undefined when the token does not exist (or was revoked). */
  async getToken(id: string): Promise<ClusterToken | undefined> {
    const path = `${this.tokensPath}/${encodeURIComponent(id)}`;
    const res = await this.request("GET", path, { accept404: true });
    if (res.status === 404) return undefined;
    return toClusterToken(this.object(res, "GET", path), "GET", path);
  }

  /** Revoke a token. One that is already gone counts as revoked. */
  async deleteToken(id: string): Promise<"deleted" | "already-gone"> {
    const path = `${this.tokensPath}/${encodeURIComponent(id)}`;
    const res = await this.request("DELETE", path, { accept404: true });
    return res.status === 404 ? "already-gone" : "deleted";
  }

  /** The API token's own scopes (used by preflight checks). */
  async accessToken(): Promise<AccessTokenInfo> {
    const res = await this.request("GET", "/v2/access-token");
    const json = this.object(res, "GET", "/v2/access-token");
    const scopes = Array.isArray(json.scopes)
      ? json.scopes.filter((s): s is string => typeof s === "string")
      : [];
    return { uuid: typeof json.uuid === "string" ? json.uuid : undefined, scopes };
  }

  /**
   * Does this agent token authenticate? Uses the documented public agent endpoint `GET /v3/metrics`
   * (200 with the organization for a valid token, 401 for an invalid one).
   */
  async verifyAgentToken(agentToken: string): Promise<AgentTokenCheck> {
    registerSecret(agentToken);
    const res = await this.request("GET", "/v3/metrics", {
      base: this.options.agentApiUrl,
      authorization: `Token ${agentToken}`,
      accept401: true,
    });
    if (res.status === 401 || res.status === 403) return { valid: false, status: res.status };
    const json = this.object(res, "GET", "/v3/metrics");
    const organization = json.organization;
    const slug = isRecord(organization) ? organization.slug : undefined;
    return { valid: true, organizationSlug: typeof slug === "string" ? slug : undefined };
  }

  /**
   * Every agent of the organization with the EC2 instance it runs on: the Elastic CI Stack starts
   * agents with `tags-from-ec2-meta-data`, which adds `aws:instance-id=<id>` to their meta-data.
   * `GET /v2/organizations/{org}/agents` (read_agents), paginated by Link.
   */
  async listAgents(): Promise<AgentInfo[]> {
    const path = `/v2/organizations/${encodeURIComponent(this.options.organization)}/agents`;
    const all: AgentInfo[] = [];
    let next: string | undefined = `${path}?per_page=100`;
    for (let page = 0; next && page < MAX_PAGES; page++) {
      const res = await this.request("GET", next);
      const items = this.parse(res, "GET", path);
      if (!Array.isArray(items)) throw new BuildkiteApiError("GET", path, res.status, "expected a list");
      items.forEach((item, i) => {
        if (!isRecord(item) || typeof item.id !== "string") {
          throw new BuildkiteApiError("GET", path, res.status, `list item ${page * 100 + i} is not an agent`);
        }
        const meta = Array.isArray(item.meta_data)
          ? item.meta_data.filter((m): m is string => typeof m === "string")
          : [];
        const instance = meta.find((m) => m.startsWith("aws:instance-id="))?.slice("aws:instance-id=".length);
        all.push({
          id: item.id,
          connectionState: typeof item.connection_state === "string" ? item.connection_state : "unknown",
          instanceId: instance || undefined,
        });
      });
      // As for tokens: a next page we must not follow is an error, never the end of the list.
      next = nextLink(res.headers.get("link"), this.options.apiUrl, path);
    }
    if (next) throw new BuildkiteApiError("GET", path, 200, `more than ${MAX_PAGES} pages of agents`);
    return all;
  }

  /**
   * Asks an agent to stop once its current job (if any) has finished: `PUT …/agents/{id}/stop` with
   * `{"force": false}` (write_agents). Idempotent: stopping a stopping agent changes nothing.
   */
  async stopAgent(id: string): Promise<void> {
    const path = `/v2/organizations/${encodeURIComponent(this.options.organization)}/agents/${encodeURIComponent(id)}/stop`;
    await this.request("PUT", path, { body: JSON.stringify({ force: false }) });
  }

  private async request(
    method: "GET" | "POST" | "PUT" | "DELETE",
    pathOrUrl: string,
    opts: {
      body?: string;
      base?: string;
      authorization?: string;
      accept404?: boolean;
      accept401?: boolean;
      /** Which failures may be retried; default: idempotent methods retry every retryable failure. */
      retryOn?: (status: number) => boolean;
    } = {},
  ): Promise<ReadResponse> {
    const url = pathOrUrl.startsWith("http") ? pathOrUrl : `${opts.base ?? this.options.apiUrl}${pathOrUrl}`;
    const path = new URL(url).pathname;
    const retryOn =
      opts.retryOn ??
      ((status: number) => method !== "POST" && (status === 0 || status === 429 || status >= 500));
    const authorization = opts.authorization ?? `Bearer ${await this.options.apiToken()}`;

    for (let attempt = 1; ; attempt++) {
      this.checkDeadline(method, path, 0);
      const outcome = await this.attempt(method, url, path, authorization, opts);
      if (outcome.accepted) return outcome.res;
      const { error, res } = outcome;
      if (!retryOn(error.status) || attempt >= this.maxAttempts) throw error;
      const delayMs = this.retryDelay(attempt, res);
      this.checkDeadline(method, path, delayMs, error);
      this.options.onRetry?.({ method, path, attempt, status: error.status, delayMs });
      await this.sleep(delayMs);
    }
  }

  /** One HTTP exchange: the response when it is one the caller accepts, otherwise the failure. */
  private async attempt(
    method: string,
    url: string,
    path: string,
    authorization: string,
    opts: { body?: string; accept404?: boolean; accept401?: boolean },
  ): Promise<
    { accepted: true; res: ReadResponse } | { accepted: false; error: BuildkiteApiError; res?: ReadResponse }
  > {
    // One deadline for the whole exchange, body included: a server that sends headers and then
    // stalls is as dead as one that never answers.
    const signal = AbortSignal.timeout(this.timeoutMs);
    let raw: Response;
    try {
      raw = await this.fetchImpl(url, {
        method,
        headers: {
          authorization,
          accept: "application/json",
          ...(opts.body ? { "content-type": "application/json" } : {}),
        },
        ...(opts.body ? { body: opts.body } : {}),
        // A redirect would send our bearer token (and the create's answer would come) from
        // wherever the server points: never follow one.
        redirect: "error",
        signal,
      });
    } catch (cause) {
      // Timeouts, connection errors and refused redirects: status 0. The cause names no credential.
      return {
        accepted: false,
        error: new BuildkiteApiError(method, path, 0, "", { cause: stripCause(cause) }),
      };
    }
    if (raw.status >= 300 && raw.status < 400) {
      // A fetch that does not enforce `redirect: "error"` (or an opaque redirect) still fails here.
      await raw.body?.cancel().catch(() => {});
      return {
        accepted: false,
        error: new BuildkiteApiError(method, path, raw.status, "redirects are not followed"),
      };
    }
    const accepted =
      raw.ok ||
      (raw.status === 404 && opts.accept404) ||
      ((raw.status === 401 || raw.status === 403) && opts.accept401);
    let text: string;
    try {
      text = await readCapped(raw, accepted ? MAX_BODY_BYTES : MAX_ERROR_BODY_BYTES, !accepted);
    } catch (cause) {
      if (cause instanceof BodyTooLargeError) {
        return {
          accepted: false,
          error: new BuildkiteApiError(
            method,
            path,
            raw.status,
            `response body larger than ${cause.limit} bytes`,
          ),
        };
      }
      // The body did not arrive (timeout, reset): a transport failure, retried like one for
      // idempotent calls; the create POST is never retried on it (it may have committed).
      return {
        accepted: false,
        error: new BuildkiteApiError(method, path, 0, "the response body could not be read", {
          cause: stripCause(cause),
        }),
      };
    }
    const res: ReadResponse = { status: raw.status, headers: raw.headers, text };
    if (accepted) return { accepted: true, res };
    return {
      accepted: false,
      error: new BuildkiteApiError(method, path, raw.status, sanitizeSnippet(text)),
      res,
    };
  }

  /** Rate limited: wait for the window named by RateLimit-Reset (org or user, whichever is later). */
  private retryDelay(attempt: number, res: ReadResponse | undefined): number {
    const backoff = backoffDelay(attempt - 1, this.baseDelayMs, this.maxDelayMs);
    if (res?.status !== 429) return backoff;
    const resets = ["ratelimit-reset", "ratelimit-user-reset"]
      .map((h) => Number(res.headers.get(h)))
      .filter((n) => Number.isFinite(n) && n >= 0);
    const resetMs = resets.length ? Math.max(...resets) * 1000 + 100 : backoff;
    return Math.min(this.maxDelayMs, Math.max(resetMs, this.baseDelayMs));
  }

  private checkDeadline(method: string, path: string, delayMs: number, cause?: Error): void {
    const left = this.options.remainingMs?.();
    // Keep a margin for the request itself and for the caller to record its outcome.
    if (left !== undefined && left < delayMs + this.timeoutMs / 2) {
      throw new DeadlineError(`no time left for Buildkite API ${method} ${path} before the deadline`, {
        cause,
      });
    }
  }

  private parse(res: ReadResponse, method: string, path: string): unknown {
    try {
      return JSON.parse(res.text);
    } catch {
      throw new BuildkiteApiError(method, path, res.status, `invalid JSON: ${sanitizeSnippet(res.text)}`);
    }
  }

  private object(res: ReadResponse, method: string, path: string): Record<string, unknown> {
    const json = this.parse(res, method, path);
    if (!isRecord(json)) {
      throw new BuildkiteApiError(method, path, res.status, `expected an object, got ${describeJson(json)}`);
    }
    return json;
  }
}

/** A response whose body has been read (bounded) within the request's deadline. */
interface ReadResponse {
  status: number;
  headers: Headers;
  text: string;
}

/**
 * Bounds on what a server can make us hold in memory. A page of 100 tokens is about 60 KB; the
 * function has 256 MB. Error bodies only feed a 200-character snippet.
 */
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 16 * 1024;

class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`body larger than ${limit} bytes`);
  }
}

/**
 * The body as text, reading at most `limit` bytes. Over the limit: BodyTooLargeError, or (for an
 * error body, which only feeds a snippet) the first `limit` bytes.
 */
async function readCapped(res: Response, limit: number, truncateOk: boolean): Promise<string> {
  const declared = Number(res.headers.get("content-length"));
  if (!truncateOk && Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => {});
    throw new BodyTooLargeError(limit);
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        if (!truncateOk) throw new BodyTooLargeError(limit);
        chunks.push(value.subarray(0, value.byteLength - (size - limit)));
        break;
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return Buffer.concat(chunks).toString("utf8");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describeJson(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "a list" : typeof value;
}

function toClusterToken(json: Record<string, unknown>, method: string, path: string): ClusterToken {
  const str = (v: unknown) => (typeof v === "string" && v.length > 0 ? v : undefined);
  const id = str(json.id);
  if (!id) throw new BuildkiteApiError(method, path, 200, "token without an id");
  if (json.description !== undefined && json.description !== null && typeof json.description !== "string") {
    throw new BuildkiteApiError(method, path, 200, `token ${truncate(id, 64)} has a non-string description`);
  }
  return {
    id,
    description: str(json.description) ?? "",
    createdAt: str(json.created_at),
    expiresAt: str(json.expires_at),
  };
}

/**
 * The rel="next" target of an RFC 8288 Link header. A target on another origin than the
 * configured API is an error (we would send our bearer token there, and stopping instead would
 * silently truncate the list); so is one outside the list being paged, when `listPath` is given.
 */
export function nextLink(header: string | null, apiUrl: string, listPath?: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.slice(0, 8_192).split(",")) {
    const m = /<([^>]+)>\s*;(.*)/.exec(part.trim());
    if (m?.[1] && /rel="?next"?/.test(m[2] ?? "")) {
      let target: URL;
      try {
        target = new URL(m[1], apiUrl);
      } catch {
        throw new BuildkiteApiError(
          "GET",
          listPath ?? "list",
          200,
          "the Link header's next page is not a URL",
        );
      }
      if (target.origin !== new URL(apiUrl).origin) {
        throw new BuildkiteApiError(
          "GET",
          listPath ?? "list",
          200,
          `the Link header's next page is on another origin (${truncate(target.origin, 100)}); refusing to follow it or to stop at a partial list`,
        );
      }
      if (listPath !== undefined && target.pathname !== listPath) {
        throw new BuildkiteApiError(
          "GET",
          listPath,
          200,
          "the Link header's next page is not a page of this list",
        );
      }
      return target.toString();
    }
  }
  return undefined;
}

function stripCause(cause: unknown): Error {
  if (cause instanceof Error) {
    const inner = cause.cause instanceof Error ? `: ${cause.cause.message}` : "";
    return new Error(`${cause.name}: ${cause.message}${inner}`);
  }
  return new Error(String(cause));
}

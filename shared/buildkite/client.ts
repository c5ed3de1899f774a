import { BuildkiteApiError, DeadlineError, sanitizeSnippet } from "../errors";
import { registerSecret } from "../log";
import { backoffDelay, sleep as realSleep, type Sleep } from "../sleep";

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
    const json = (await this.json(res, "POST", this.tokensPath)) as Record<string, unknown>;
    const token = json.token;
    if (typeof token !== "string" || token.length === 0) {
      throw new BuildkiteApiError("POST", this.tokensPath, res.status, "response carried no token value");
    }
    registerSecret(token);
    return { ...toClusterToken(json), token };
  }

  /** Every token of the cluster, following the Link header across pages. */
  async listTokens(): Promise<ClusterToken[]> {
    const all: ClusterToken[] = [];
    let next: string | undefined = `${this.tokensPath}?per_page=100`;
    for (let page = 0; next && page < MAX_PAGES; page++) {
      const res = await this.request("GET", next);
      const items = await this.json(res, "GET", this.tokensPath);
      if (!Array.isArray(items))
        throw new BuildkiteApiError("GET", this.tokensPath, res.status, "expected a list");
      for (const item of items) all.push(toClusterToken(item as Record<string, unknown>));
      next = nextLink(res.headers.get("link"), this.options.apiUrl);
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
    return toClusterToken((await this.json(res, "GET", path)) as Record<string, unknown>);
  }

  /** Revoke a token. One that is already gone counts as revoked. */
  async deleteToken(id: string): Promise<"deleted" | "already-gone"> {
    const path = `${this.tokensPath}/${encodeURIComponent(id)}`;
    const res = await this.request("DELETE", path, { accept404: true });
    await res.body?.cancel();
    return res.status === 404 ? "already-gone" : "deleted";
  }

  /** The API token's own scopes (used by preflight checks). */
  async accessToken(): Promise<AccessTokenInfo> {
    const res = await this.request("GET", "/v2/access-token");
    const json = (await this.json(res, "GET", "/v2/access-token")) as Record<string, unknown>;
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
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      return { valid: false, status: res.status };
    }
    const json = (await this.json(res, "GET", "/v3/metrics")) as { organization?: { slug?: unknown } };
    const slug = json.organization?.slug;
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
      const items = await this.json(res, "GET", path);
      if (!Array.isArray(items)) throw new BuildkiteApiError("GET", path, res.status, "expected a list");
      for (const item of items) {
        if (typeof item !== "object" || item === null) {
          throw new BuildkiteApiError("GET", path, res.status, "agent list holds a non-object");
        }
        const a = item as Record<string, unknown>;
        const meta = Array.isArray(a.meta_data)
          ? a.meta_data.filter((m): m is string => typeof m === "string")
          : [];
        const instance = meta.find((m) => m.startsWith("aws:instance-id="))?.slice("aws:instance-id=".length);
        all.push({
          id: typeof a.id === "string" ? a.id : "",
          connectionState: typeof a.connection_state === "string" ? a.connection_state : "unknown",
          instanceId: instance || undefined,
        });
      }
      next = nextLink(res.headers.get("link"), this.options.apiUrl);
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
    const res = await this.request("PUT", path, { body: JSON.stringify({ force: false }) });
    await res.body?.cancel();
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
  ): Promise<Response> {
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
    { accepted: true; res: Response } | { accepted: false; error: BuildkiteApiError; res?: Response }
  > {
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        method,
        headers: {
          authorization,
          accept: "application/json",
          ...(opts.body ? { "content-type": "application/json" } : {}),
        },
        ...(opts.body ? { body: opts.body } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      // Timeouts and connection errors: status 0. The cause's message names no credential.
      return {
        accepted: false,
        error: new BuildkiteApiError(method, path, 0, "", { cause: stripCause(cause) }),
      };
    }
    const accepted =
      res.ok ||
      (res.status === 404 && opts.accept404) ||
      ((res.status === 401 || res.status === 403) && opts.accept401);
    if (accepted) return { accepted: true, res };
    const text = await res.text().catch(() => "");
    return {
      accepted: false,
      error: new BuildkiteApiError(method, path, res.status, sanitizeSnippet(text)),
      res,
    };
  }

  /** Rate limited: wait for the window named by RateLimit-Reset (org or user, whichever is later). */
  private retryDelay(attempt: number, res: Response | undefined): number {
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

  private async json(res: Response, method: string, path: string): Promise<unknown> {
    const text = await res.text();
    try {
      return JSON.parse(text);
    } catch {
      throw new BuildkiteApiError(method, path, res.status, `invalid JSON: ${sanitizeSnippet(text)}`);
    }
  }
}

function toClusterToken(json: Record<string, unknown>): ClusterToken {
  const str = (v: unknown) => (typeof v === "string" && v.length > 0 ? v : undefined);
  const id = str(json.id);
  if (!id) throw new BuildkiteApiError("GET", "tokens", 200, "token without an id");
  return {
    id,
    description: str(json.description) ?? "",
    createdAt: str(json.created_at),
    expiresAt: str(json.expires_at),
  };
}

/** The rel="next" target of an RFC 8288 Link header, kept on the configured API origin. */
export function nextLink(header: string | null, apiUrl: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(",")) {
    const m = /<([^>]+)>\s*;(.*)/.exec(part.trim());
    if (m?.[1] && /rel="?next"?/.test(m[2] ?? "")) {
      const target = new URL(m[1], apiUrl);
      // Never send our bearer token to a host the Link header names but we were not configured for.
      if (target.origin !== new URL(apiUrl).origin) return undefined;
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

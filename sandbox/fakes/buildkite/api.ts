/**
 * A local stand-in for the Buildkite REST API (/v2, cluster agent tokens) and the agent API (/v3,
 * metrics and register), served by one node:http server. Integration tests and the local sandbox
 * point the real client at it; knobs inject the failures the client must survive, and inspection
 * methods let tests assert on what happened.
 *
 * Token values are secrets even here: they appear only in the create response and in the
 * inspection methods. Nothing in this file writes to stdout/stderr, and the request log records
 * neither headers nor bodies.
 */
import { randomBytes, randomUUID } from "node:crypto";
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import { listen } from "../../lib/listen";
import { seededRandom } from "../../lib/seeded-random";

export interface BuildkiteApiOptions {
  organization: string;
  clusterId: string;
  /** The REST API token (`Authorization: Bearer <apiToken>`). */
  apiToken: string;
  /** Default `["read_clusters", "write_clusters"]`. */
  apiTokenScopes?: readonly string[];
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0: the OS picks a free port. */
  port?: number;
  /** Millisecond clock for created_at, expiry, validity and rate-limit windows. Default `Date.now`. */
  now?: () => number;
  /** Enforce the real 200 (org) / 50 (user) requests-per-minute budgets. Default false. */
  enforceRateLimits?: boolean;
}

/** The fleet's side of the agents the REST API lists (`name` is the instance id agents register with). */
export interface AgentHooks {
  connected(name: string): boolean;
  /** `PUT …/agents/{id}/stop` with `force: false`: the agent finishes its job, then exits. */
  stop(name: string): void;
}

export interface SandboxToken {
  id: string;
  description: string;
  value: string;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  /** Exists, not revoked, and not expired at the time of the call. */
  valid: boolean;
}

export interface SandboxRegistration {
  at: Date;
  name: string;
  /** The token the Authorization header named, valid or not; null when it named none. */
  tokenId: string | null;
  ok: boolean;
  status: number;
  /** The agent's `meta_data` (`key=value` strings) as it registered; empty when it sent none. */
  metaData: string[];
}

export interface SandboxRequest {
  method: string;
  path: string;
  /** 0 while the response is pending, or when the socket was dropped by `dropNext`. */
  status: number;
  at: Date;
}

export interface FlakyOptions {
  /** Chance in [0, 1] that a request fails (half the failures are 502, half 429). */
  probability: number;
  seed: number;
}

export interface SeedToken {
  description: string;
  /** May already be in the past: seeds skip the 10-minute rule the REST API enforces. */
  expiresAt?: Date | null;
  /** Default: a fresh `bkct_` value. */
  value?: string;
}

export interface BuildkiteApi {
  /** Base URL of both APIs, e.g. `http://127.0.0.1:PORT` (REST under /v2, agent under /v3). */
  readonly url: string;
  /** Stops listening and destroys every socket, keep-alive ones included. Idempotent. */
  close(): Promise<void>;

  /** Delay every response by `ms`. */
  setLatency(ms: number): void;
  /** The next `count` requests answer `status` (default 500) with a short JSON body. */
  failNext(count: number, status?: number): void;
  /** The next `count` requests answer 429 with Remaining 0 and Reset `resetSeconds`. */
  rateLimitNext(count: number, resetSeconds: number): void;
  /** The next `count` requests get their socket destroyed without a response. */
  dropNext(count: number): void;
  /** Fail requests at random, deterministically for a given seed; `undefined` turns it off. */
  setFlaky(options: FlakyOptions | undefined): void;
  /** The next `count` successful POST /tokens create the token, then answer 502. */
  failNextCreateAfterCommit(count: number): void;
  /** Turn enforcement of the real per-minute budgets on or off (headers are sent either way). */
  setRateLimitEnforcement(enabled: boolean): void;
  setScopes(scopes: readonly string[]): void;
  /**
   * Where agents' live state comes from (the fleet): whether the agent an instance registered is
   * still connected, and what happens when the REST API is asked to stop it.
   */
  setAgentHooks(hooks: AgentHooks | undefined): void;
  /** Seed a token directly, as if created outside the tool under test. */
  addToken(input: SeedToken): { id: string; value: string };
  /** Revoke directly, as a human in the UI would. Throws for an unknown id; idempotent otherwise. */
  revokeToken(id: string): void;
  /**
   * Calls `listener` synchronously each time a token goes from live to revoked (REST DELETE or
   * `revokeToken`), before the response is sent: an observer can record the world at that
   * instant. The listener gets the token id only; it must not throw (errors are swallowed).
   * Returns a function that removes it.
   */
  onRevoke(listener: (tokenId: string) => void): () => void;
  /** Clears every knob (latency, queued faults, flaky, scopes, enforcement, rate-limit window); keeps tokens and logs. */
  reset(): void;

  tokens(): SandboxToken[];
  validTokens(): SandboxToken[];
  registrations(): SandboxRegistration[];
  requests(): SandboxRequest[];
}

export async function startBuildkiteApi(options: BuildkiteApiOptions): Promise<BuildkiteApi> {
  const api = new SandboxBuildkiteApi(options);
  await api.listen(options.host ?? "127.0.0.1", options.port ?? 0);
  return api;
}

// ---------------------------------------------------------------------------------------------
// Internals

const DEFAULT_SCOPES = ["read_clusters", "write_clusters"] as const;
const ORG_LIMIT = 200;
const USER_LIMIT = 50;
const WINDOW_MS = 60_000;
const MIN_EXPIRY_LEAD_MS = 10 * 60_000;
const DEFAULT_PER_PAGE = 30;
const MAX_PER_PAGE = 100; // larger values are clamped, not rejected
const MAX_BODY_BYTES = 1024 * 1024;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

interface StoredToken {
  id: string;
  description: string;
  value: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

interface Reply {
  status: number;
  /** JSON-encoded when defined; 204 replies leave it undefined. */
  body?: unknown;
  headers?: Record<string, string>;
}

interface Context {
  req: IncomingMessage;
  url: URL;
  /** Capture groups of the route pattern, already URI-decoded. */
  params: string[];
  /** Scheme and host as the client addressed us, for the absolute URLs in bodies and Link headers. */
  base: string;
}

interface Route {
  method: string;
  pattern: RegExp;
  handle(ctx: Context): Reply | Promise<Reply>;
}

const json = (status: number, body: unknown, headers?: Record<string, string>): Reply => ({
  status,
  body,
  ...(headers ? { headers } : {}),
});
const message = (status: number, text: string): Reply => json(status, { message: text });
const notFound = (): Reply => message(404, "Not Found");
const invalidAgentToken = (): Reply => message(401, "Invalid token");

function rateLimitHeaders(orgRemaining: number, userRemaining: number, resetSeconds: number) {
  return {
    "RateLimit-Limit": String(ORG_LIMIT),
    "RateLimit-Remaining": String(orgRemaining),
    "RateLimit-Reset": String(resetSeconds),
    "RateLimit-User-Limit": String(USER_LIMIT),
    "RateLimit-User-Remaining": String(userRemaining),
    "RateLimit-User-Reset": String(resetSeconds),
  };
}

function tooManyRequests(resetSeconds: number): Reply {
  return json(
    429,
    { message: "You have hit the rate limit for this organization. Please wait before retrying." },
    rateLimitHeaders(0, 0, resetSeconds),
  );
}

/**
 * Fixed one-minute windows aligned to the clock, like "requests this minute". There is a single
 * API token, so the user and org budgets count the same requests against different limits.
 */
class RateLimitWindow {
  private start = Number.NEGATIVE_INFINITY;
  private count = 0;

  hit(nowMs: number): { headers: Record<string, string>; exceeded: boolean; resetSeconds: number } {
    const start = Math.floor(nowMs / WINDOW_MS) * WINDOW_MS;
    if (start !== this.start) {
      this.start = start;
      this.count = 0;
    }
    this.count++;
    const resetSeconds = Math.max(1, Math.ceil((start + WINDOW_MS - nowMs) / 1000));
    return {
      headers: rateLimitHeaders(
        Math.max(0, ORG_LIMIT - this.count),
        Math.max(0, USER_LIMIT - this.count),
        resetSeconds,
      ),
      exceeded: this.count > USER_LIMIT || this.count > ORG_LIMIT,
      resetSeconds,
    };
  }

  clear(): void {
    this.start = Number.NEGATIVE_INFINITY;
    this.count = 0;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function credential(header: string | undefined, scheme: "Bearer" | "Token"): string | undefined {
  const match = new RegExp(`^${scheme}\\s+(\\S+)\\s*$`, "i").exec(header ?? "");
  return match?.[1];
}

async function readJson(
  req: IncomingMessage,
): Promise<{ ok: true; value: unknown } | { ok: false; reply: Reply }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > MAX_BODY_BYTES) return { ok: false, reply: message(413, "Request body too large") };
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, reply: message(400, "Body couldn't be parsed as JSON") };
  }
}

function positiveInt(raw: string | null, fallback: number): number {
  const n = raw === null ? Number.NaN : Number(raw);
  return Number.isInteger(n) && n >= 1 ? n : fallback;
}

function linkHeader(base: string, page: number, perPage: number, lastPage: number): string | undefined {
  const link = (p: number, rel: string) => `<${base}?page=${p}&per_page=${perPage}>; rel="${rel}"`;
  const parts: string[] = [];
  if (page < lastPage) parts.push(link(page + 1, "next"), link(lastPage, "last"));
  if (page > 1) parts.push(link(1, "first"), link(Math.min(page - 1, lastPage), "prev"));
  return parts.length > 0 ? parts.join(", ") : undefined;
}

function knobCount(count: number): number {
  if (!Number.isInteger(count) || count < 0)
    throw new RangeError(`count must be a non-negative integer: ${count}`);
  return count;
}

class SandboxBuildkiteApi implements BuildkiteApi {
  private readonly server: Server;
  private readonly now: () => number;
  private readonly store = new Map<string, StoredToken>(); // by id, in creation order
  private readonly byValue = new Map<string, StoredToken>();
  private readonly requestLog: SandboxRequest[] = [];
  private readonly registrationLog: SandboxRegistration[] = [];
  private readonly agentIds = new Map<string, string>();
  private readonly stopping = new Set<string>();
  private agentHooks: AgentHooks | undefined;
  private readonly rateLimit = new RateLimitWindow();
  private readonly sleeps = new Set<NodeJS.Timeout>();
  private readonly apiTokenId = randomUUID();
  private readonly creator = { id: randomUUID(), name: "Sandbox User", email: "sandbox@example.com" };
  private readonly routes: Route[];
  private address = "";
  private closing: Promise<void> | undefined;

  // Knobs; `reset()` puts them all back.
  private scopes: string[] = [];
  private enforceRateLimits = false;
  private latencyMs = 0;
  private dropQueue = 0;
  private failQueue: number[] = []; // one status per request to fail
  private rateLimitQueue: number[] = []; // one resetSeconds per request to throttle
  private createAfterCommitQueue = 0;
  private flaky: { probability: number; random: () => number } | undefined;

  constructor(private readonly options: BuildkiteApiOptions) {
    this.now = options.now ?? Date.now;
    this.reset();
    const tokens = "^/v2/organizations/([^/]+)/clusters/([^/]+)/tokens";
    this.routes = [
      {
        method: "GET",
        pattern: /^\/v2\/access-token$/,
        handle: (c) => this.rest(c, undefined, () => this.accessToken()),
      },
      {
        method: "GET",
        pattern: new RegExp(`${tokens}$`),
        handle: (c) => this.cluster(c, "read_clusters", this.list),
      },
      {
        method: "POST",
        pattern: new RegExp(`${tokens}$`),
        handle: (c) => this.cluster(c, "write_clusters", this.create),
      },
      {
        method: "GET",
        pattern: new RegExp(`${tokens}/([^/]+)$`),
        handle: (c) => this.cluster(c, "read_clusters", this.get),
      },
      {
        method: "DELETE",
        pattern: new RegExp(`${tokens}/([^/]+)$`),
        handle: (c) => this.cluster(c, "write_clusters", this.revoke),
      },
      // Agents REST API (https://buildkite.com/docs/apis/rest-api/agents): list needs read_agents,
      // stop (PUT …/stop, {"force": false} lets the current job finish) needs write_agents.
      {
        method: "GET",
        pattern: /^\/v2\/organizations\/([^/]+)\/agents$/,
        handle: (c) => this.rest(c, "read_agents", () => this.listAgents(c)),
      },
      {
        method: "PUT",
        pattern: /^\/v2\/organizations\/([^/]+)\/agents\/([^/]+)\/stop$/,
        handle: (c) => this.rest(c, "write_agents", () => this.stopAgent(c)),
      },
      { method: "GET", pattern: /^\/v3\/metrics$/, handle: (c) => this.metrics(c) },
      { method: "POST", pattern: /^\/v3\/register$/, handle: (c) => this.register(c) },
    ];
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  get url(): string {
    return this.address;
  }

  async listen(host: string, port: number): Promise<void> {
    this.address = await listen(this.server, host, port);
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve, reject) => {
      for (const timer of this.sleeps) clearTimeout(timer); // their requests die with their sockets
      this.sleeps.clear();
      this.server.close((error) => (error ? reject(error) : resolve()));
      // close() alone waits for idle keep-alive sockets to time out; tests must not.
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  // --- Knobs ----------------------------------------------------------------------------------

  setLatency(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency must be a non-negative number: ${ms}`);
    this.latencyMs = ms;
  }

  failNext(count: number, status = 500): void {
    if (!Number.isInteger(status) || status < 400 || status > 599)
      throw new RangeError(`not an error status: ${status}`);
    for (let i = knobCount(count); i > 0; i--) this.failQueue.push(status);
  }

  rateLimitNext(count: number, resetSeconds: number): void {
    for (let i = knobCount(count); i > 0; i--) this.rateLimitQueue.push(resetSeconds);
  }

  dropNext(count: number): void {
    this.dropQueue += knobCount(count);
  }

  setFlaky(options: FlakyOptions | undefined): void {
    if (options && !(options.probability >= 0 && options.probability <= 1)) {
      throw new RangeError(`probability must be in [0, 1]: ${options.probability}`);
    }
    this.flaky = options && { probability: options.probability, random: seededRandom(options.seed) };
  }

  failNextCreateAfterCommit(count: number): void {
    this.createAfterCommitQueue += knobCount(count);
  }

  setRateLimitEnforcement(enabled: boolean): void {
    this.enforceRateLimits = enabled;
  }

  setAgentHooks(hooks: AgentHooks | undefined): void {
    this.agentHooks = hooks;
  }

  /** One agent per instance that registered successfully: its latest registration. */
  private agents(): Array<{ id: string; name: string; metaData: string[]; state: string }> {
    const latest = new Map<string, SandboxRegistration>();
    for (const r of this.registrationLog) if (r.ok) latest.set(r.name, r);
    return [...latest.values()].map((r) => {
      let id = this.agentIds.get(r.name);
      if (!id) {
        id = randomUUID();
        this.agentIds.set(r.name, id);
      }
      const connected = this.agentHooks?.connected(r.name) ?? false;
      const state = connected ? (this.stopping.has(r.name) ? "stopping" : "connected") : "disconnected";
      return { id, name: r.name, metaData: [...r.metaData], state };
    });
  }

  private listAgents(ctx: Context): Reply {
    if (ctx.params[0] !== this.options.organization) return notFound();
    const all = this.agents();
    const perPage = Math.min(
      MAX_PER_PAGE,
      positiveInt(ctx.url.searchParams.get("per_page"), DEFAULT_PER_PAGE),
    );
    const page = positiveInt(ctx.url.searchParams.get("page"), 1);
    const lastPage = Math.max(1, Math.ceil(all.length / perPage));
    const items = all.slice((page - 1) * perPage, page * perPage).map((a) => ({
      id: a.id,
      name: a.name,
      connection_state: a.state,
      meta_data: a.metaData,
    }));
    const link = linkHeader(`${ctx.base}${ctx.url.pathname}`, page, perPage, lastPage);
    return json(200, items, link ? { Link: link } : undefined);
  }

  private stopAgent(ctx: Context): Reply {
    const [org, id] = ctx.params;
    if (org !== this.options.organization) return notFound();
    const agent = this.agents().find((a) => a.id === id);
    if (!agent) return notFound();
    // Not documented in detail; a stand-in choice: only a connected agent can be asked to stop.
    if (agent.state === "disconnected") return message(422, "Agent is not connected");
    if (!this.stopping.has(agent.name)) {
      this.stopping.add(agent.name);
      this.agentHooks?.stop(agent.name);
    }
    return { status: 204, body: undefined };
  }

  setScopes(scopes: readonly string[]): void {
    this.scopes = [...scopes];
  }

  addToken(input: SeedToken): { id: string; value: string } {
    if (input.value !== undefined && this.byValue.has(input.value))
      throw new Error("a token with that value exists");
    const token = this.commitToken(input.description, input.expiresAt?.getTime() ?? null, input.value);
    return { id: token.id, value: token.value };
  }

  revokeToken(id: string): void {
    const token = this.store.get(id);
    if (!token) throw new Error(`no token with id ${id}`);
    if (token.revokedAt !== null) return;
    token.revokedAt = this.now();
    this.notifyRevoked(token.id);
  }

  private readonly revokeListeners = new Set<(tokenId: string) => void>();

  onRevoke(listener: (tokenId: string) => void): () => void {
    this.revokeListeners.add(listener);
    return () => this.revokeListeners.delete(listener);
  }

  private notifyRevoked(id: string): void {
    for (const listener of this.revokeListeners) {
      try {
        listener(id);
      } catch {
        // an observer must never change what the API answers
      }
    }
  }

  reset(): void {
    this.scopes = [...(this.options.apiTokenScopes ?? DEFAULT_SCOPES)];
    this.enforceRateLimits = this.options.enforceRateLimits ?? false;
    this.latencyMs = 0;
    this.dropQueue = 0;
    this.failQueue = [];
    this.rateLimitQueue = [];
    this.createAfterCommitQueue = 0;
    this.flaky = undefined;
    this.rateLimit.clear();
  }

  // --- Inspection -----------------------------------------------------------------------------

  tokens(): SandboxToken[] {
    const nowMs = this.now();
    return [...this.store.values()].map((t) => ({
      id: t.id,
      description: t.description,
      value: t.value,
      createdAt: new Date(t.createdAt),
      expiresAt: t.expiresAt === null ? null : new Date(t.expiresAt),
      revokedAt: t.revokedAt === null ? null : new Date(t.revokedAt),
      valid: this.isValid(t, nowMs),
    }));
  }

  validTokens(): SandboxToken[] {
    return this.tokens().filter((t) => t.valid);
  }

  registrations(): SandboxRegistration[] {
    return this.registrationLog.map((r) => ({ ...r, at: new Date(r.at), metaData: [...r.metaData] }));
  }

  requests(): SandboxRequest[] {
    return this.requestLog.map((r) => ({ ...r, at: new Date(r.at) }));
  }

  // --- Request pipeline -----------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://sandbox.invalid");
    const entry: SandboxRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      status: 0,
      at: new Date(this.now()),
    };
    this.requestLog.push(entry);

    if (this.latencyMs > 0) await this.sleep(this.latencyMs);
    if (this.dropQueue > 0) {
      this.dropQueue--;
      req.socket.destroy();
      return;
    }

    const base = `http://${req.headers.host ?? new URL(this.address).host}`;
    let reply: Reply;
    try {
      reply = await this.respond({ req, url, params: [], base });
    } catch {
      // Deliberately not logged: the error could quote a request body, i.e. a token value. The
      // usual cause is a client that hung up mid-body, whose socket is gone anyway.
      reply = message(500, "Internal Server Error");
    }
    entry.status = reply.status;
    this.send(res, reply);
  }

  /**
   * Every REST request counts against the rate-limit window and carries its headers, injected
   * failures included. Explicit knobs win over flakiness, and all of them come before auth, as a
   * load balancer or rate limiter in front of the real API would.
   */
  private async respond(ctx: Context): Promise<Reply> {
    const window = ctx.url.pathname.startsWith("/v2/") ? this.rateLimit.hit(this.now()) : undefined;
    let reply = this.injectedFault();
    if (!reply && window?.exceeded && this.enforceRateLimits) reply = tooManyRequests(window.resetSeconds);
    reply ??= await this.route(ctx);
    return { ...reply, headers: { ...window?.headers, ...reply.headers } };
  }

  private injectedFault(): Reply | undefined {
    const status = this.failQueue.shift();
    if (status !== undefined) return message(status, STATUS_CODES[status] ?? "Injected failure");
    const resetSeconds = this.rateLimitQueue.shift();
    if (resetSeconds !== undefined) return tooManyRequests(resetSeconds);
    if (this.flaky && this.flaky.random() < this.flaky.probability) {
      return this.flaky.random() < 0.5 ? message(502, "Bad Gateway") : tooManyRequests(1);
    }
    return undefined;
  }

  private route(ctx: Context): Reply | Promise<Reply> {
    for (const route of this.routes) {
      const match = route.pattern.exec(ctx.url.pathname);
      if (!match || route.method !== ctx.req.method) continue;
      let params: string[];
      try {
        params = match.slice(1).map((p) => decodeURIComponent(p ?? ""));
      } catch {
        return notFound(); // malformed percent-encoding names nothing that exists
      }
      return route.handle({ ...ctx, params });
    }
    return notFound();
  }

  private send(res: ServerResponse, reply: Reply): void {
    if (res.destroyed) return; // closed while we were sleeping
    const body = reply.body === undefined ? undefined : JSON.stringify(reply.body);
    res.writeHead(reply.status, {
      ...reply.headers,
      ...(body === undefined ? {} : { "Content-Type": "application/json; charset=utf-8" }),
    });
    res.end(body);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeps.delete(timer);
        resolve();
      }, ms);
      this.sleeps.add(timer);
    });
  }

  // --- REST API -------------------------------------------------------------------------------

  /** Authenticate the API token and check a scope before running the handler. */
  private rest(
    ctx: Context,
    scope: string | undefined,
    handler: () => Reply | Promise<Reply>,
  ): Reply | Promise<Reply> {
    if (credential(ctx.req.headers.authorization, "Bearer") !== this.options.apiToken) {
      return message(
        401,
        "Authentication required. Please supply a valid API Access Token: https://buildkite.com/docs/apis/rest-api#authentication",
      );
    }
    if (scope && !this.scopes.includes(scope)) {
      return message(
        403,
        `Your access token is missing the required scope(s) to access this resource: ${scope}`,
      );
    }
    return handler();
  }

  /** `rest()` plus the org/cluster in the path: a route under a cluster we do not serve is a 404. */
  private cluster(
    ctx: Context,
    scope: string,
    handler: (this: SandboxBuildkiteApi, ctx: Context, clusterUrl: string) => Reply | Promise<Reply>,
  ): Reply | Promise<Reply> {
    return this.rest(ctx, scope, () => {
      const [org, clusterId] = ctx.params;
      if (org !== this.options.organization || clusterId !== this.options.clusterId) {
        return message(404, "No cluster found");
      }
      const clusterUrl = `${ctx.base}/v2/organizations/${encodeURIComponent(org)}/clusters/${encodeURIComponent(clusterId)}`;
      return handler.call(this, ctx, clusterUrl);
    });
  }

  private accessToken(): Reply {
    return json(200, { uuid: this.apiTokenId, scopes: [...this.scopes] });
  }

  private list(ctx: Context, clusterUrl: string): Reply {
    const live = [...this.store.values()].filter((t) => t.revokedAt === null);
    const perPage = Math.min(
      MAX_PER_PAGE,
      positiveInt(ctx.url.searchParams.get("per_page"), DEFAULT_PER_PAGE),
    );
    const page = positiveInt(ctx.url.searchParams.get("page"), 1);
    const lastPage = Math.max(1, Math.ceil(live.length / perPage));
    const items = live.slice((page - 1) * perPage, page * perPage).map((t) => this.item(t, clusterUrl));
    const link = linkHeader(`${ctx.base}${ctx.url.pathname}`, page, perPage, lastPage);
    return json(200, items, link ? { Link: link } : undefined);
  }

  private get(ctx: Context, clusterUrl: string): Reply {
    const token = this.liveToken(ctx.params[2]);
    return token ? json(200, this.item(token, clusterUrl)) : notFound();
  }

  private async create(ctx: Context, clusterUrl: string): Promise<Reply> {
    const body = await readJson(ctx.req);
    if (!body.ok) return body.reply;
    const input = isRecord(body.value) ? body.value : {};

    const { description } = input;
    if (typeof description !== "string" || description.trim() === "") {
      return validationFailed("description", "blank", "Description can't be blank");
    }
    let expiresAt: number | null = null;
    if (input.expires_at !== undefined && input.expires_at !== null) {
      const raw = input.expires_at;
      expiresAt = typeof raw === "string" && ISO_8601.test(raw) ? Date.parse(raw) : Number.NaN;
      if (!Number.isFinite(expiresAt))
        return validationFailed("expires_at", "invalid", "Expires at is invalid");
      if (expiresAt < this.now() + MIN_EXPIRY_LEAD_MS) {
        return validationFailed(
          "expires_at",
          "too_soon",
          "Expires at must be at least 10 minutes in the future",
        );
      }
    }

    const token = this.commitToken(description, expiresAt);
    if (this.createAfterCommitQueue > 0) {
      this.createAfterCommitQueue--;
      return message(502, "Bad Gateway"); // committed, but the client never learns the value
    }
    return json(201, { ...this.item(token, clusterUrl), token: token.value });
  }

  private revoke(ctx: Context): Reply {
    const token = this.liveToken(ctx.params[2]);
    if (!token) return notFound();
    token.revokedAt = this.now();
    this.notifyRevoked(token.id);
    return { status: 204 };
  }

  /** The REST shape of a token. Never includes the value. */
  private item(t: StoredToken, clusterUrl: string) {
    return {
      id: t.id,
      graphql_id: Buffer.from(`ClusterToken---${t.id}`).toString("base64"),
      description: t.description,
      allowed_ip_addresses: null,
      expires_at: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(),
      url: `${clusterUrl}/tokens/${t.id}`,
      cluster_url: clusterUrl,
      created_at: new Date(t.createdAt).toISOString(),
      created_by: { ...this.creator },
    };
  }

  /** A revoked token no longer exists as far as the REST API is concerned. */
  private liveToken(id: string | undefined): StoredToken | undefined {
    const token = id === undefined ? undefined : this.store.get(id);
    return token?.revokedAt === null ? token : undefined;
  }

  private commitToken(description: string, expiresAt: number | null, value?: string): StoredToken {
    const token: StoredToken = {
      id: randomUUID(),
      description,
      value: value ?? `bkct_${randomBytes(20).toString("hex")}`,
      createdAt: this.now(),
      expiresAt,
      revokedAt: null,
    };
    this.store.set(token.id, token);
    this.byValue.set(token.value, token);
    return token;
  }

  private isValid(t: StoredToken, nowMs: number): boolean {
    return t.revokedAt === null && (t.expiresAt === null || t.expiresAt > nowMs);
  }

  // --- Agent API ------------------------------------------------------------------------------

  /** The token the `Authorization: Token ...` header names, whether or not it is still valid. */
  private agentToken(req: IncomingMessage): StoredToken | undefined {
    const value = credential(req.headers.authorization, "Token");
    return value === undefined ? undefined : this.byValue.get(value);
  }

  private metrics(ctx: Context): Reply {
    const token = this.agentToken(ctx.req);
    if (!token || !this.isValid(token, this.now())) return invalidAgentToken();
    return json(200, {
      agents: { idle: 0, busy: 0, total: 0, queues: {} },
      jobs: { scheduled: 0, running: 0, waiting: 0, total: 0, queues: {} },
      organization: { slug: this.options.organization },
    });
  }

  private async register(ctx: Context): Promise<Reply> {
    const at = new Date(this.now());
    const token = this.agentToken(ctx.req);
    const body = await readJson(ctx.req);
    const input = body.ok && isRecord(body.value) ? body.value : {};
    const name = typeof input.name === "string" ? input.name : "";
    const metaData = Array.isArray(input.meta_data)
      ? input.meta_data.filter((item): item is string => typeof item === "string")
      : [];

    let reply: Reply;
    if (!token || !this.isValid(token, this.now())) reply = invalidAgentToken();
    else if (!body.ok) reply = body.reply;
    else if (name.trim() === "") reply = validationFailed("name", "blank", "Name can't be blank");
    else {
      reply = json(200, {
        id: randomUUID(),
        name,
        access_token: randomBytes(24).toString("base64url"),
        endpoint: `${ctx.base}/v3`,
      });
    }
    // A new registration is a new agent process: a stop asked of the old one no longer applies.
    if (reply.status === 200) this.stopping.delete(name);
    this.registrationLog.push({
      at,
      name,
      tokenId: token?.id ?? null,
      ok: reply.status === 200,
      status: reply.status,
      metaData,
    });
    return reply;
  }
}

function validationFailed(field: string, code: string, text: string): Reply {
  return json(422, { message: `Validation failed: ${text}`, errors: [{ field, code }] });
}

/**
 * The route table of the Buildkite stand-in: the REST API's cluster agent tokens
 * (https://buildkite.com/docs/apis/rest-api/clusters/agent-tokens) and agents
 * (https://buildkite.com/docs/apis/rest-api/agents), and the agent API's metrics and register.
 * Each REST route names the scope it needs; server.ts authenticates before a handler runs.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Faults } from "./faults";
import {
  credential,
  isRecord,
  json,
  message,
  notFound,
  type Reply,
  readJson,
  validationFailed,
} from "./reply";
import type { BuildkiteStore, StoredToken } from "./store";

const MIN_EXPIRY_LEAD_MS = 10 * 60_000;
const DEFAULT_PER_PAGE = 30;
const MAX_PER_PAGE = 100; // larger values are clamped, not rejected
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;

export interface Context {
  req: IncomingMessage;
  url: URL;
  /** Capture groups of the route pattern, already URI-decoded. */
  params: string[];
  /** Scheme and host as the client addressed us, for the absolute URLs in bodies and Link headers. */
  base: string;
}

export interface Route {
  method: string;
  pattern: RegExp;
  /** A REST route: it needs the API token (`Bearer`), and `scope` when set. Agent routes have none. */
  rest?: { scope?: string };
  handle(ctx: Context): Reply | Promise<Reply>;
}

export interface RouteDeps {
  organization: string;
  clusterId: string;
  store: BuildkiteStore;
  faults: Faults;
}

const invalidAgentToken = (): Reply => message(401, "Invalid token");

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

/** One page of `all` as `page`/`per_page` ask (per_page defaults to 30, at most 100), with its Link header. */
function paged<T, U>(ctx: Context, all: T[], shape: (item: T) => U): Reply {
  const perPage = Math.min(MAX_PER_PAGE, positiveInt(ctx.url.searchParams.get("per_page"), DEFAULT_PER_PAGE));
  const page = positiveInt(ctx.url.searchParams.get("page"), 1);
  const lastPage = Math.max(1, Math.ceil(all.length / perPage));
  const items = all.slice((page - 1) * perPage, page * perPage).map(shape);
  const link = linkHeader(`${ctx.base}${ctx.url.pathname}`, page, perPage, lastPage);
  return json(200, items, link ? { Link: link } : undefined);
}

export function buildkiteRoutes({ organization, clusterId, store, faults }: RouteDeps): Route[] {
  const apiTokenId = randomUUID();
  const creator = { id: randomUUID(), name: "Sandbox User", email: "sandbox@example.com" };

  /** The org/cluster in the path: a route under a cluster we do not serve is a 404. */
  const cluster =
    (handler: (ctx: Context, clusterUrl: string) => Reply | Promise<Reply>) =>
    (ctx: Context): Reply | Promise<Reply> => {
      const [org, id] = ctx.params;
      if (org !== organization || id !== clusterId) return message(404, "No cluster found");
      const clusterUrl = `${ctx.base}/v2/organizations/${encodeURIComponent(org)}/clusters/${encodeURIComponent(id)}`;
      return handler(ctx, clusterUrl);
    };

  /** The REST shape of a token. Never includes the value. */
  const item = (t: StoredToken, clusterUrl: string) => ({
    id: t.id,
    graphql_id: Buffer.from(`ClusterToken---${t.id}`).toString("base64"),
    description: t.description,
    allowed_ip_addresses: null,
    expires_at: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(),
    url: `${clusterUrl}/tokens/${t.id}`,
    cluster_url: clusterUrl,
    created_at: new Date(t.createdAt).toISOString(),
    created_by: { ...creator },
  });

  const create = async (ctx: Context, clusterUrl: string): Promise<Reply> => {
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
      if (expiresAt < store.now() + MIN_EXPIRY_LEAD_MS) {
        return validationFailed(
          "expires_at",
          "too_soon",
          "Expires at must be at least 10 minutes in the future",
        );
      }
    }

    const token = store.commitToken(description, expiresAt);
    if (faults.takeCreateAfterCommit()) {
      return message(502, "Bad Gateway"); // committed, but the client never learns the value
    }
    return json(201, { ...item(token, clusterUrl), token: token.value });
  };

  const stopAgent = (ctx: Context): Reply => {
    const [org, id] = ctx.params;
    if (org !== organization) return notFound();
    const agent = store.agents().find((a) => a.id === id);
    if (!agent) return notFound();
    // Not documented in detail; a stand-in choice: only a connected agent can be asked to stop.
    if (agent.state === "disconnected") return message(422, "Agent is not connected");
    store.stopAgent(agent.name);
    return { status: 204, body: undefined };
  };

  /** The token the `Authorization: Token ...` header names, whether or not it is still valid. */
  const agentToken = (req: IncomingMessage): StoredToken | undefined =>
    store.tokenByValue(credential(req.headers.authorization, "Token"));

  const metrics = (ctx: Context): Reply => {
    const token = agentToken(ctx.req);
    if (!token || !store.isValid(token)) return invalidAgentToken();
    return json(200, {
      agents: { idle: 0, busy: 0, total: 0, queues: {} },
      jobs: { scheduled: 0, running: 0, waiting: 0, total: 0, queues: {} },
      organization: { slug: organization },
    });
  };

  const register = async (ctx: Context): Promise<Reply> => {
    const at = new Date(store.now());
    const token = agentToken(ctx.req);
    const body = await readJson(ctx.req);
    const input = body.ok && isRecord(body.value) ? body.value : {};
    const name = typeof input.name === "string" ? input.name : "";
    const metaData = Array.isArray(input.meta_data)
      ? input.meta_data.filter((item): item is string => typeof item === "string")
      : [];

    let reply: Reply;
    if (!token || !store.isValid(token)) reply = invalidAgentToken();
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
    const ok = reply.status === 200;
    store.recordRegistration({ at, name, tokenId: token?.id ?? null, ok, status: reply.status, metaData });
    return reply;
  };

  const tokens = "^/v2/organizations/([^/]+)/clusters/([^/]+)/tokens";
  return [
    {
      method: "GET",
      pattern: /^\/v2\/access-token$/,
      rest: {},
      handle: () => json(200, { uuid: apiTokenId, scopes: [...store.scopes] }),
    },
    {
      method: "GET",
      pattern: new RegExp(`${tokens}$`),
      rest: { scope: "read_clusters" },
      handle: cluster((ctx, url) => paged(ctx, store.liveTokens(), (t) => item(t, url))),
    },
    {
      method: "POST",
      pattern: new RegExp(`${tokens}$`),
      rest: { scope: "write_clusters" },
      handle: cluster(create),
    },
    {
      method: "GET",
      pattern: new RegExp(`${tokens}/([^/]+)$`),
      rest: { scope: "read_clusters" },
      handle: cluster((ctx, url) => {
        const token = store.liveToken(ctx.params[2]);
        return token ? json(200, item(token, url)) : notFound();
      }),
    },
    {
      method: "DELETE",
      pattern: new RegExp(`${tokens}/([^/]+)$`),
      rest: { scope: "write_clusters" },
      handle: cluster((ctx) => {
        const token = store.liveToken(ctx.params[2]);
        if (!token) return notFound();
        store.revoke(token);
        return { status: 204 };
      }),
    },
    // Agents REST API (https://buildkite.com/docs/apis/rest-api/agents): list needs read_agents,
    // stop (PUT …/stop, {"force": false} lets the current job finish) needs write_agents.
    {
      method: "GET",
      pattern: /^\/v2\/organizations\/([^/]+)\/agents$/,
      rest: { scope: "read_agents" },
      handle: (ctx) => {
        if (ctx.params[0] !== organization) return notFound();
        return paged(ctx, store.agents(), (a) => ({
          id: a.id,
          name: a.name,
          connection_state: a.state,
          meta_data: a.metaData,
        }));
      },
    },
    {
      method: "PUT",
      pattern: /^\/v2\/organizations\/([^/]+)\/agents\/([^/]+)\/stop$/,
      rest: { scope: "write_agents" },
      handle: stopAgent,
    },
    { method: "GET", pattern: /^\/v3\/metrics$/, handle: metrics },
    { method: "POST", pattern: /^\/v3\/register$/, handle: register },
  ];
}

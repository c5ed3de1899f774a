/**
 * The HTTP side of the Buildkite stand-in: one node:http server, the request log, injected faults
 * and rate limits in front of everything, REST authentication (`Authorization: Bearer`, scopes;
 * https://buildkite.com/docs/apis/rest-api#authentication), then the route table.
 *
 * Nothing in this file writes to stdout/stderr, and the request log records neither headers nor
 * bodies: a body may carry a token value.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { listen } from "../../lib/listen";
import type { Faults } from "./faults";
import { credential, message, notFound, type Reply } from "./reply";
import type { Context, Route } from "./routes";
import type { BuildkiteStore } from "./store";
import type { SandboxRequest } from "./types";

export interface BuildkiteServerDeps {
  apiToken: string;
  routes: Route[];
  store: BuildkiteStore;
  faults: Faults;
}

export class BuildkiteServer {
  private readonly server: Server;
  private readonly requestLog: SandboxRequest[] = [];
  private readonly sleeps = new Set<NodeJS.Timeout>();
  private address = "";
  private closing: Promise<void> | undefined;

  constructor(private readonly deps: BuildkiteServerDeps) {
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

  requests(): SandboxRequest[] {
    return this.requestLog.map((r) => ({ ...r, at: new Date(r.at) }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { faults, store } = this.deps;
    const url = new URL(req.url ?? "/", "http://sandbox.invalid");
    const entry: SandboxRequest = {
      method: req.method ?? "GET",
      path: url.pathname,
      status: 0,
      at: new Date(store.now()),
    };
    this.requestLog.push(entry);

    if (faults.latencyMs > 0) await this.sleep(faults.latencyMs);
    if (faults.takeDrop()) {
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
    const { faults, store } = this.deps;
    const window = ctx.url.pathname.startsWith("/v2/") ? faults.rateLimit.hit(store.now()) : undefined;
    const reply = faults.injected(window) ?? (await this.route(ctx));
    return { ...reply, headers: { ...window?.headers, ...reply.headers } };
  }

  private route(ctx: Context): Reply | Promise<Reply> {
    for (const route of this.deps.routes) {
      const match = route.pattern.exec(ctx.url.pathname);
      if (!match || route.method !== ctx.req.method) continue;
      let params: string[];
      try {
        params = match.slice(1).map((p) => decodeURIComponent(p ?? ""));
      } catch {
        return notFound(); // malformed percent-encoding names nothing that exists
      }
      return (route.rest && this.authenticate(ctx, route.rest.scope)) ?? route.handle({ ...ctx, params });
    }
    return notFound();
  }

  /** The REST API's refusal of this request (401 without the API token, 403 without `scope`), if any. */
  private authenticate(ctx: Context, scope: string | undefined): Reply | undefined {
    if (credential(ctx.req.headers.authorization, "Bearer") !== this.deps.apiToken) {
      return message(
        401,
        "Authentication required. Please supply a valid API Access Token: https://buildkite.com/docs/apis/rest-api#authentication",
      );
    }
    if (scope && !this.deps.store.scopes.includes(scope)) {
      return message(
        403,
        `Your access token is missing the required scope(s) to access this resource: ${scope}`,
      );
    }
    return undefined;
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
}

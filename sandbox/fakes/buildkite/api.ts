/**
 * A local stand-in for the Buildkite REST API (/v2, cluster agent tokens) and the agent API (/v3,
 * metrics and register), served by one node:http server. Integration tests and the local sandbox
 * point the real client at it; knobs inject the failures the client must survive, and inspection
 * methods let tests assert on what happened.
 *
 * This file composes the parts: server.ts (HTTP, listen, auth), routes.ts (the route handlers),
 * store.ts (tokens, agents, scopes) and faults.ts (injected failures, rate limits).
 *
 * Token values are secrets even here: they appear only in the create response and in the
 * inspection methods. Nothing in the stand-in writes to stdout/stderr, and the request log records
 * neither headers nor bodies.
 */
import { Faults } from "./faults";
import { buildkiteRoutes } from "./routes";
import { BuildkiteServer } from "./server";
import { BuildkiteStore } from "./store";
import type {
  AgentHooks,
  BuildkiteApiOptions,
  FlakyOptions,
  SandboxRegistration,
  SandboxRequest,
  SandboxToken,
  SeedToken,
} from "./types";

export type * from "./types";

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
  const store = new BuildkiteStore(options.now ?? Date.now, options.apiTokenScopes);
  const faults = new Faults(options.enforceRateLimits ?? false);
  const routes = buildkiteRoutes({
    organization: options.organization,
    clusterId: options.clusterId,
    store,
    faults,
  });
  const server = new BuildkiteServer({ apiToken: options.apiToken, routes, store, faults });
  await server.listen(options.host ?? "127.0.0.1", options.port ?? 0);
  return {
    get url() {
      return server.url;
    },
    close: () => server.close(),
    setLatency: (ms) => faults.setLatency(ms),
    failNext: (count, status) => faults.failNext(count, status),
    rateLimitNext: (count, resetSeconds) => faults.rateLimitNext(count, resetSeconds),
    dropNext: (count) => faults.dropNext(count),
    setFlaky: (flaky) => faults.setFlaky(flaky),
    failNextCreateAfterCommit: (count) => faults.failNextCreateAfterCommit(count),
    setRateLimitEnforcement: (enabled) => {
      faults.enforceRateLimits = enabled;
    },
    setScopes: (scopes) => store.setScopes(scopes),
    setAgentHooks: (hooks) => store.setAgentHooks(hooks),
    addToken: (input) => store.addToken(input),
    revokeToken: (id) => store.revokeToken(id),
    onRevoke: (listener) => store.onRevoke(listener),
    reset: () => {
      faults.reset();
      store.resetScopes();
    },
    tokens: () => store.tokens(),
    validTokens: () => store.tokens().filter((t) => t.valid),
    registrations: () => store.registrations(),
    requests: () => server.requests(),
  };
}

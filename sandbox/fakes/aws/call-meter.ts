/**
 * A call meter: counting HTTP proxies on loopback that the handlers' configured endpoints point at
 * (AWS_ENDPOINT_URL*, BUILDKITE_API_URL, BUILDKITE_AGENT_API_URL), so every call a handler makes is
 * counted by service and action (AWS) or by method and route (Buildkite), and nothing else is: the
 * fleet's instances, the replicator and the test harness talk to the stand-ins directly.
 *
 * - AWS: the service is the SigV4 credential scope's service (`Credential=AKID/DATE/REGION/SERVICE/
 *   aws4_request`, https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html),
 *   so one endpoint in front of moto tells Secrets Manager, SNS and SQS apart; the action is the
 *   `X-Amz-Target` suffix (JSON protocols) or the `Action` form parameter (Query protocol), as the
 *   fault proxy reads it (`operationOf`). Keys look like `secretsmanager:GetSecretValue`.
 * - Buildkite: `METHOD /route` with the path's ids replaced by their names, e.g.
 *   `GET /v2/organizations/{org}/clusters/{cluster}/tokens` (routes of
 *   https://buildkite.com/docs/apis/rest-api/clusters#agent-tokens). The proxy passes the caller's
 *   Host header on, so the API's `Link` pagination URLs point back at the meter and every page
 *   is counted.
 *
 * Every HTTP request is one call: an SDK retry (after a throttle, say) is another call, as AWS
 * meters it against the quota. A connection the upstream drops is dropped towards the caller too.
 * Nothing is logged and no body is kept (bodies carry token values).
 */
import {
  Agent,
  createServer,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from "node:http";
import { listen, readTextOrUndefined } from "../../lib/listen";
import { operationOf } from "./aws-fault-proxy";

export interface MeterCounts {
  /** `service:Action` → calls, e.g. `autoscaling:DescribeAutoScalingGroups`. */
  aws: Record<string, number>;
  /** `METHOD /route` → calls, e.g. `DELETE /v2/organizations/{org}/clusters/{cluster}/tokens/{id}`. */
  buildkite: Record<string, number>;
}

export interface CallMeter {
  /** A metered endpoint in front of an AWS upstream; `service` names calls without a credential scope. */
  aws(upstream: string, service: string): Promise<string>;
  /** A metered endpoint in front of the Buildkite API (REST and agent API). */
  buildkite(upstream: string): Promise<string>;
  /** The counts since the start or the last reset (a copy). */
  counts(): MeterCounts;
  reset(): void;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 8 * 1024 * 1024;
/** Longer than any call a handler makes (SQS long polls are at most 20 s). */
const UPSTREAM_TIMEOUT_MS = 60_000;

/** The service of `Credential=AKID/20260101/us-east-1/autoscaling/aws4_request`. */
export function signingService(authorization: string | undefined): string | undefined {
  return /Credential=[^/,\s]+\/\d{8}\/[^/,\s]+\/([^/,\s]+)\/aws4_request/.exec(authorization ?? "")?.[1];
}

/** `/v2/organizations/acme/clusters/c1/tokens/t1` → `/v2/organizations/{org}/clusters/{cluster}/tokens/{id}`. */
export function buildkiteRoute(path: string): string {
  const names: Record<string, string> = {
    organizations: "{org}",
    clusters: "{cluster}",
    tokens: "{id}",
    agents: "{id}",
  };
  const parts = path.split("/");
  return parts.map((part, i) => (i > 0 && part !== "" && names[parts[i - 1] ?? ""]) || part).join("/");
}

export function createCallMeter(options: { host?: string } = {}): CallMeter {
  const host = options.host ?? "127.0.0.1";
  const servers: Server[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  let aws = new Map<string, number>();
  let buildkite = new Map<string, number>();
  const bump = (counts: Map<string, number>, key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);

  const start = async (
    upstream: string,
    keyOf: (req: IncomingMessage, body: string) => { counts: Map<string, number>; key: string },
    keepHost: boolean,
  ): Promise<string> => {
    const target = new URL(upstream);
    const server = createServer((req, res) => void forward(req, res));
    const forward = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const body = await readTextOrUndefined(req, MAX_BODY_BYTES).catch(() => undefined);
      if (body === undefined) {
        req.socket.destroy();
        return;
      }
      const { counts, key } = keyOf(req, body);
      bump(counts, key);
      const headers = { ...req.headers };
      delete headers["content-length"];
      delete headers.connection;
      if (!keepHost) delete headers.host;
      const out = request(
        {
          host: target.hostname,
          port: target.port,
          path: req.url ?? "/",
          method: req.method ?? "GET",
          headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
          agent,
          timeout: UPSTREAM_TIMEOUT_MS,
        },
        (upstreamRes) => {
          const responseHeaders = { ...upstreamRes.headers };
          delete responseHeaders.connection;
          delete responseHeaders["keep-alive"];
          res.writeHead(upstreamRes.statusCode ?? 502, responseHeaders);
          upstreamRes.pipe(res);
          upstreamRes.on("error", () => res.destroy());
        },
      );
      // The caller sees what a direct caller would: a reset when the upstream resets or hangs.
      out.on("timeout", () => out.destroy(new Error("upstream timed out")));
      out.on("error", () => {
        if (!res.headersSent) req.socket.destroy();
        else res.destroy();
      });
      out.end(body);
    };
    servers.push(server);
    return listen(server, host, 0);
  };

  return {
    aws: (upstream, service) =>
      start(
        upstream,
        (req, body) => ({
          counts: aws,
          key: `${signingService(req.headers.authorization) ?? service}:${operationOf(req.headers, body) || "?"}`,
        }),
        false,
      ),
    buildkite: (upstream) =>
      start(
        upstream,
        (req) => ({
          counts: buildkite,
          key: `${req.method ?? "GET"} ${buildkiteRoute(new URL(req.url ?? "/", "http://meter.invalid").pathname)}`,
        }),
        true,
      ),
    counts: () => ({ aws: Object.fromEntries(aws), buildkite: Object.fromEntries(buildkite) }),
    reset() {
      aws = new Map();
      buildkite = new Map();
    },
    async close() {
      await Promise.all(
        servers.splice(0).map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
      agent.destroy();
    },
  };
}

/** The total of a count table. */
export function totalCalls(counts: Record<string, number>): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}

/**
 * A fault layer in front of an AWS stand-in (moto server): an HTTP proxy on loopback that the real
 * SDK clients talk to (`endpoint: proxy.url`), forwarding every call to the upstream unless a fault
 * rule or a strict rule says otherwise.
 *
 * Faults (each rule matches one operation, skips `skip` matching calls, then fires `times` times):
 * - `drop-response`: the call is forwarded and committed upstream, then the connection is reset
 *   before any response byte is sent: the client cannot know it succeeded.
 * - `delay-response`: forwarded and committed, the answer held back `ms` (past the SDK's request
 *   timeout, the client gives up on a call that succeeded).
 * - `delay-request`: held `ms` before forwarding: the commit lands after the client gave up.
 * - `throttle`: answered as the service answers a throttled call (HTTP 400), not forwarded:
 *   `ThrottlingException` in a JSON protocol's error, `Throttling` in the awsQuery protocol's XML
 *   error envelope (Auto Scaling: sandbox/fakes/autoscaling/server.ts says where that is sourced).
 * - `error`: answered with the given status and error type, not forwarded.
 *
 * Strict rules (on by default; each can be switched off) enforce what AWS does and moto does not
 * (see /work/shared/DESIGN.md, "what moto does differently"):
 * - `immutableVersions`: PutSecretValue with a ClientRequestToken naming a version that already
 *   holds a different value fails: "If a version with this value already exists and that
 *   version's SecretString and SecretBinary values are different from those in the request, then
 *   the request fails because you cannot modify an existing version"
 *   (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html,
 *   ClientRequestToken). The same value is idempotent and forwarded.
 * - `rotationInProgress`: RotateSecret fails while AWSPENDING sits on a version that is not
 *   AWSCURRENT: "If the AWSPENDING staging label is present but not attached to the same version
 *   as AWSCURRENT, then any later invocation of RotateSecret assumes that a previous rotation
 *   request is still in progress and returns an error"
 *   (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotateSecret.html).
 * - `noEmptyPromotion`: UpdateSecretVersionStage moving AWSCURRENT to a version id that holds no
 *   value fails. "During rotation, Secrets Manager creates an AWSPENDING version ID before
 *   creating the new secret version. To check if a secret version exists, call GetSecretValue."
 *   (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html,
 *   VersionIdsToStages): before PutSecretValue there is no version to move the label to. The
 *   exact error AWS returns here is not documented; InvalidRequestException is our choice, and the
 *   rule is switchable so a test can run both ways.
 *
 * Protocols: the operation is read from `X-Amz-Target` (JSON protocols: Secrets Manager, SSM)
 * or from the `Action` parameter of a Query-protocol form body. Strict
 * rules only concern Secrets Manager (JSON 1.1). Upstream checks reuse the caller's headers, so
 * moto answers for the caller's region and account.
 *
 * Nothing here logs; bodies are never recorded (they carry secret values).
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { versionHolding } from "../../../shared/secrets/stages";
import { listen, readTextOrUndefined } from "../../lib/listen";
import { isQueryProtocol, sendError } from "./error-response";

export type FaultAction =
  | { kind: "drop-response" }
  | { kind: "delay-response"; ms: number }
  | { kind: "delay-request"; ms: number }
  | { kind: "throttle" }
  | { kind: "error"; status: number; type: string; message?: string };

export interface FaultRule {
  /** Operation name, e.g. "PutSecretValue". */
  operation: string;
  action: FaultAction;
  /** How many matching calls fire the fault (default 1; Infinity for all). */
  times?: number;
  /** Matching calls to let through untouched first (default 0). */
  skip?: number;
}

export interface StrictRules {
  immutableVersions: boolean;
  rotationInProgress: boolean;
  noEmptyPromotion: boolean;
}

export type CallOutcome =
  | "forwarded"
  | "dropped"
  | "delayed-response"
  | "delayed-request"
  | "throttled"
  | "error"
  | "refused-strict";

export interface ProxiedCall {
  operation: string;
  outcome: CallOutcome;
  /** Set for `refused-strict`: which rule refused it. */
  rule?: keyof StrictRules;
}

export interface AwsFaultProxy {
  readonly url: string;
  addFault(rule: FaultRule): void;
  clearFaults(): void;
  /** Current strict rules; assign to switch one off. */
  strict: StrictRules;
  /** Every call seen, oldest first. */
  calls(): ProxiedCall[];
  close(): Promise<void>;
}

interface ActiveRule extends FaultRule {
  seen: number;
  fired: number;
}

const MAX_BODY_BYTES = 8 * 1024 * 1024;
const UPSTREAM_TIMEOUT_MS = 10_000;

export async function startAwsFaultProxy(options: {
  upstream: string;
  strict?: Partial<StrictRules>;
  host?: string;
}): Promise<AwsFaultProxy> {
  const proxy = new FaultProxy(options.upstream, {
    immutableVersions: true,
    rotationInProgress: true,
    noEmptyPromotion: true,
    ...options.strict,
  });
  await proxy.listen(options.host ?? "127.0.0.1");
  return proxy;
}

/** The operation a request names: `X-Amz-Target: secretsmanager.PutSecretValue` or `Action=…`. */
export function operationOf(headers: IncomingMessage["headers"], body: string): string {
  const target = headers["x-amz-target"];
  if (typeof target === "string" && target.includes(".")) return target.slice(target.lastIndexOf(".") + 1);
  const type = String(headers["content-type"] ?? "");
  if (type.includes("x-www-form-urlencoded")) return new URLSearchParams(body).get("Action") ?? "";
  return "";
}

class FaultProxy implements AwsFaultProxy {
  private readonly server: Server;
  private rules: ActiveRule[] = [];
  private readonly log: ProxiedCall[] = [];
  private address = "";
  private lock: Promise<void> = Promise.resolve();

  constructor(
    private readonly upstream: string,
    public strict: StrictRules,
  ) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  get url(): string {
    return this.address;
  }

  async listen(host: string): Promise<void> {
    this.address = await listen(this.server, host, 0);
  }

  addFault(rule: FaultRule): void {
    this.rules.push({ ...rule, seen: 0, fired: 0 });
  }

  clearFaults(): void {
    this.rules = [];
  }

  calls(): ProxiedCall[] {
    return this.log.map((c) => ({ ...c }));
  }

  close(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private exclusive<T>(run: () => Promise<T>): Promise<T> {
    const next = this.lock.then(run, run);
    this.lock = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  private faultFor(operation: string): FaultAction | undefined {
    for (const rule of this.rules) {
      if (rule.operation !== operation) continue;
      rule.seen++;
      if (rule.seen <= (rule.skip ?? 0)) continue;
      if (rule.fired >= (rule.times ?? 1)) continue;
      rule.fired++;
      return rule.action;
    }
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const body = await readBody(req);
      if (body === undefined) return sendError(res, 413, "RequestEntityTooLarge", "request too large");
      const operation = operationOf(req.headers, body);
      const record = (outcome: CallOutcome, rule?: keyof StrictRules) =>
        this.log.push({ operation, outcome, ...(rule ? { rule } : {}) });

      const fault = this.faultFor(operation);
      // awsQuery callers (Auto Scaling, SNS) parse errors from XML, JSON-protocol callers from JSON.
      const query = isQueryProtocol(req.headers);
      switch (fault?.kind) {
        case "throttle":
          record("throttled");
          return sendError(res, 400, query ? "Throttling" : "ThrottlingException", "Rate exceeded", query);
        case "error":
          record("error");
          return sendError(res, fault.status, fault.type, fault.message ?? fault.type, query);
        case "delay-request":
          record("delayed-request");
          await delay(fault.ms);
          break;
        default:
          break;
      }
      // A strict check and the call it admits run as one step: two overlapping writes must not
      // both pass the check before either commits (AWS decides each atomically).
      const outcome = await this.exclusive(async () => {
        const refusal = await this.strictRefusal(operation, req, body);
        return refusal
          ? { refused: true as const, refusal }
          : { refused: false as const, upstream: await this.forward(req, body) };
      });
      if (outcome.refused) {
        record("refused-strict", outcome.refusal.rule);
        return sendError(res, 400, outcome.refusal.type, outcome.refusal.message);
      }
      const upstream = outcome.upstream;
      if (fault?.kind === "drop-response") {
        // Committed upstream; the client sees a reset connection and no answer.
        record("dropped");
        req.socket.destroy();
        return;
      }
      if (fault?.kind === "delay-response") {
        record("delayed-response");
        await delay(fault.ms);
      } else if (fault?.kind !== "delay-request") {
        record("forwarded");
      }
      if (res.destroyed) return;
      res.writeHead(upstream.status, upstream.headers);
      res.end(upstream.body);
    } catch {
      if (!res.headersSent && !res.destroyed) sendError(res, 502, "ServiceUnavailable", "proxy failed");
    }
  }

  private async forward(
    req: IncomingMessage,
    body: string,
  ): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    const headers = forwardableHeaders(req.headers);
    const res = await fetch(`${this.upstream}${req.url ?? "/"}`, {
      method: req.method ?? "POST",
      headers,
      ...(req.method === "GET" || req.method === "HEAD" ? {} : { body }),
      signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
    });
    const out: Record<string, string> = {};
    res.headers.forEach((value, key) => {
      // fetch decoded the body: its framing and encoding headers no longer apply.
      if (!["content-length", "transfer-encoding", "connection", "content-encoding"].includes(key)) {
        out[key] = value;
      }
    });
    return { status: res.status, headers: out, body: Buffer.from(await res.arrayBuffer()) };
  }

  /** A Secrets Manager call against the upstream with the caller's headers (region, account). */
  private async upstreamCall(
    req: IncomingMessage,
    operation: string,
    input: Record<string, unknown>,
  ): Promise<{ ok: boolean; type: string; json: Record<string, unknown> }> {
    const headers = forwardableHeaders(req.headers);
    headers["x-amz-target"] = `secretsmanager.${operation}`;
    const res = await fetch(`${this.upstream}/`, {
      method: "POST",
      headers,
      body: JSON.stringify(input),
      signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
    });
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    const type = String(res.headers.get("x-amzn-errortype") ?? json.__type ?? "").split(":")[0] ?? "";
    return { ok: res.ok, type: type.split("#").pop() ?? type, json };
  }

  private async strictRefusal(
    operation: string,
    req: IncomingMessage,
    body: string,
  ): Promise<{ rule: keyof StrictRules; type: string; message: string } | undefined> {
    const target = String(req.headers["x-amz-target"] ?? "");
    if (!target.startsWith("secretsmanager.")) return undefined;
    let input: Record<string, unknown>;
    try {
      input = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    const secretId = input.SecretId;
    if (typeof secretId !== "string") return undefined;

    if (operation === "PutSecretValue" && this.strict.immutableVersions) {
      const versionId = input.ClientRequestToken;
      if (typeof versionId !== "string") return undefined;
      const existing = await this.upstreamCall(req, "GetSecretValue", {
        SecretId: secretId,
        VersionId: versionId,
      });
      const stored = existing.ok ? existing.json.SecretString : undefined;
      if (typeof stored === "string" && stored !== input.SecretString) {
        return {
          rule: "immutableVersions",
          type: "ResourceExistsException",
          message: "You can't modify an existing version, you can only create a new version.",
        };
      }
      return undefined;
    }
    if (operation === "RotateSecret" && this.strict.rotationInProgress) {
      const d = await this.upstreamCall(req, "DescribeSecret", { SecretId: secretId });
      const stages = (d.json.VersionIdsToStages ?? {}) as Record<string, string[]>;
      const pending = versionHolding(stages, "AWSPENDING");
      const pendingElsewhere = pending !== undefined && pending !== versionHolding(stages, "AWSCURRENT");
      if (pendingElsewhere) {
        return {
          rule: "rotationInProgress",
          type: "InvalidRequestException",
          message: "A previous rotation isn't complete. That rotation will be reattempted.",
        };
      }
      return undefined;
    }
    if (
      operation === "UpdateSecretVersionStage" &&
      this.strict.noEmptyPromotion &&
      input.VersionStage === "AWSCURRENT" &&
      typeof input.MoveToVersionId === "string"
    ) {
      const value = await this.upstreamCall(req, "GetSecretValue", {
        SecretId: secretId,
        VersionId: input.MoveToVersionId,
      });
      const has = value.ok && (typeof value.json.SecretString === "string" || value.json.SecretBinary);
      if (!has) {
        return {
          rule: "noEmptyPromotion",
          type: "InvalidRequestException",
          message: `Version ${input.MoveToVersionId} holds no secret value; AWSCURRENT cannot be moved to it.`,
        };
      }
    }
    return undefined;
  }
}

function forwardableHeaders(headers: IncomingMessage["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (key === "host" || key === "content-length" || key === "connection" || key === "expect") continue;
    out[key] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

const readBody = (req: IncomingMessage) => readTextOrUndefined(req, MAX_BODY_BYTES);

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The sandbox's one Systems Manager endpoint, speaking AWS JSON 1.1 (POST, `X-Amz-Target:
 * AmazonSSM.<Operation>`, `Content-Type: application/x-amz-json-1.1`; errors as HTTP 4xx/5xx with
 * `{"__type": "...", "message": "..."}`; https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html).
 * The SDK uses one endpoint for all of SSM, so Run Command targets are served here and every other
 * target (Parameter Store, ...) is passed to moto with its body and headers.
 *
 * One rewrite on the way back, because a safety decision depends on it: for a Secrets Manager
 * reference (`/aws/reference/secretsmanager/...`), AWS's GetParameter returns the secret's name as
 * Name and the GetSecretValue response (VersionId, VersionStages, SecretString, ...) as SourceResult
 * (https://docs.aws.amazon.com/systems-manager/latest/userguide/integration-ps-secretsmanager.html);
 * moto 5.2.1 returns the bare secret name and a DescribeSecret document without VersionId. The
 * proxy reshapes moto's answer to AWS's (option `awsShapedSecretReferences`, default on).
 */

import { randomUUID } from "node:crypto";
import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { versionHolding } from "../../../shared/secrets/stages";
import { readBodyCapped, serve, signingRegion } from "../../lib/listen";
import type { RegionThrottle } from "../aws/throttle";
import { SsmError } from "./errors";
import type { RunCommand } from "./run-command";

type Json = Record<string, unknown>;
const MAX_BODY_BYTES = 1024 * 1024;
const PROXY_TIMEOUT_MS = 30_000;
const REFERENCE_PREFIX = "/aws/reference/secretsmanager/";

export const RUN_COMMAND_OPERATIONS = [
  "SendCommand",
  "ListCommands",
  "ListCommandInvocations",
  "GetCommandInvocation",
  "DescribeInstanceInformation",
  "CancelCommand",
] as const;

export interface SsmServerOptions {
  runCommand: RunCommand;
  motoUrl: string;
  throttle: RegionThrottle | undefined;
  awsShapedSecretReferences: boolean;
  log: (line: string) => void;
  host?: string;
  port?: number;
}

export interface SsmServer {
  url: string;
  close(): Promise<void>;
}

export async function startSsmServer(options: SsmServerOptions): Promise<SsmServer> {
  return serve((req, res) => handle(options, req, res), options.host, options.port);
}

async function handle(options: SsmServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId = randomUUID();
  try {
    const body = await readBody(req);
    const target = String(req.headers["x-amz-target"] ?? "");
    const operation = target.startsWith("AmazonSSM.") ? target.slice("AmazonSSM.".length) : "";
    if (!(RUN_COMMAND_OPERATIONS as readonly string[]).includes(operation)) {
      await proxy(options, req, body, res, operation);
      return;
    }
    if (req.method !== "POST") throw new SsmError("UnknownOperationException", "Only POST is accepted.", 404);
    const region = regionFromAuthorization(req.headers.authorization);
    // AWS answers a call over the account's per-region rate with HTTP 400 ThrottlingException
    // "Rate exceeded" (https://docs.aws.amazon.com/general/latest/gr/ssm.html); the SDK retries it.
    if (options.throttle?.applies(operation) && !options.throttle.tryTake(region)) {
      throw new SsmError("ThrottlingException", "Rate exceeded", 400);
    }
    const input = (body.length > 0 ? JSON.parse(body.toString("utf8")) : {}) as Json;
    const rc = options.runCommand;
    const output =
      operation === "SendCommand"
        ? rc.sendCommand(region, input)
        : operation === "ListCommands"
          ? rc.listCommands(region, input)
          : operation === "ListCommandInvocations"
            ? rc.listCommandInvocations(region, input)
            : operation === "GetCommandInvocation"
              ? rc.getCommandInvocation(region, input)
              : operation === "CancelCommand"
                ? rc.cancelCommand(region, input)
                : rc.describeInstanceInformation(region, input);
    send(res, 200, output, requestId);
  } catch (error) {
    const failure =
      error instanceof SsmError
        ? error
        : error instanceof SyntaxError
          ? new SsmError("SerializationException", "The request body is not valid JSON.")
          : new SsmError("InternalServerError", error instanceof Error ? error.message : String(error), 500);
    if (failure.httpStatus >= 500) options.log(`ssm stand-in: ${failure.type}: ${failure.message}`);
    send(
      res,
      failure.httpStatus,
      { __type: failure.type, message: failure.message },
      requestId,
      failure.type,
    );
  }
}

/** Passes a non-Run-Command request to moto unchanged and relays its answer. */
async function proxy(
  options: SsmServerOptions,
  req: IncomingMessage,
  body: Buffer,
  res: ServerResponse,
  operation: string,
): Promise<void> {
  const upstream = new URL(req.url ?? "/", options.motoUrl);
  const headers = { ...req.headers, host: upstream.host, "content-length": String(body.length) };
  const answer = await new Promise<{ status: number; headers: IncomingMessage["headers"]; body: Buffer }>(
    (resolve, reject) => {
      const forward = httpRequest(
        upstream,
        { method: req.method, headers, timeout: PROXY_TIMEOUT_MS },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (c: Buffer) => chunks.push(c));
          response.on("end", () =>
            resolve({
              status: response.statusCode ?? 502,
              headers: response.headers,
              body: Buffer.concat(chunks),
            }),
          );
          response.on("error", reject);
        },
      );
      forward.on("timeout", () =>
        forward.destroy(new Error(`moto did not answer within ${PROXY_TIMEOUT_MS} ms`)),
      );
      forward.on("error", reject);
      forward.end(body);
    },
  ).catch((error: unknown) => {
    options.log(`ssm stand-in: proxy to moto failed for ${operation || "(no target)"}`);
    throw new SsmError("InternalServerError", error instanceof Error ? error.message : String(error), 503);
  });
  let out = answer.body;
  if (options.awsShapedSecretReferences && answer.status === 200 && operation === "GetParameter") {
    out = reshapeReference(body, answer.body);
  }
  const relayed: Record<string, string> = {};
  for (const [key, value] of Object.entries(answer.headers)) {
    if (
      value === undefined ||
      ["content-length", "transfer-encoding", "connection", "keep-alive"].includes(key)
    )
      continue;
    relayed[key] = Array.isArray(value) ? value.join(", ") : value;
  }
  res.writeHead(answer.status, { ...relayed, "content-length": String(out.length) });
  res.end(out);
}

/** moto's GetParameter answer for a Secrets Manager reference, in the shape AWS gives it. */
export function reshapeReference(requestBody: Buffer, responseBody: Buffer): Buffer {
  let request: { Name?: unknown };
  let response: { Parameter?: Json };
  try {
    request = JSON.parse(requestBody.toString("utf8")) as { Name?: unknown };
    response = JSON.parse(responseBody.toString("utf8")) as { Parameter?: Json };
  } catch {
    return responseBody;
  }
  const name = typeof request.Name === "string" ? request.Name : "";
  const parameter = response.Parameter;
  if (!name.startsWith(REFERENCE_PREFIX) || parameter === undefined) return responseBody;
  let source: Json;
  try {
    source = JSON.parse(String(parameter.SourceResult ?? "{}")) as Json;
  } catch {
    return responseBody;
  }
  if (typeof source.VersionId === "string") return responseBody; // already AWS-shaped
  const [path, selector] = splitSelector(name);
  const stages = (source.VersionIdsToStages ?? {}) as Record<string, string[]>;
  const wanted = selector ?? "AWSCURRENT";
  const versionId = wanted in stages ? wanted : versionHolding(stages, wanted);
  if (versionId === undefined) return responseBody;
  const reshaped: Json = {
    ...parameter,
    Name: path,
    SourceResult: JSON.stringify({
      ARN: source.ARN,
      CreatedDate: source.CreatedDate,
      Name: source.Name,
      SecretString: parameter.Value,
      VersionId: versionId,
      VersionStages: stages[versionId] ?? [],
    }),
    ...(selector !== undefined ? { Selector: `:${selector}` } : {}),
    ARN: source.ARN,
  };
  return Buffer.from(JSON.stringify({ ...response, Parameter: reshaped }));
}

function splitSelector(name: string): [string, string | undefined] {
  const rest = name.slice(REFERENCE_PREFIX.length);
  const colon = rest.lastIndexOf(":");
  return colon < 0 ? [name, undefined] : [REFERENCE_PREFIX + rest.slice(0, colon), rest.slice(colon + 1)];
}

/** The region of `Credential=AKID/20260101/<region>/ssm/aws4_request` (signatures are not verified). */
export function regionFromAuthorization(authorization: string | undefined): string {
  const region = signingRegion(authorization);
  if (region === undefined) {
    throw new SsmError(
      "MissingAuthenticationTokenException",
      "Request is missing a SigV4 Authorization header.",
      403,
    );
  }
  return region;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return readBodyCapped(
    req,
    MAX_BODY_BYTES,
    () => new SsmError("RequestEntityTooLarge", "Request body too large.", 413),
  );
}

function send(res: ServerResponse, status: number, body: Json, requestId: string, errorType?: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/x-amz-json-1.1",
    "content-length": Buffer.byteLength(text),
    "x-amzn-requestid": requestId,
    ...(errorType ? { "x-amzn-errortype": errorType } : {}),
  });
  res.end(text);
}

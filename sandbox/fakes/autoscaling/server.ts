/**
 * HTTP front of the stand-in: accepts AWS Query requests (POST, form-encoded), takes the region
 * from the SigV4 credential scope (signatures are not verified), dispatches to `operations` and
 * answers with the protocol's XML envelopes.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBodyCapped, serve, signingRegion } from "../../lib/listen";
import type { RegionThrottle } from "../aws/throttle";
import { AutoScalingError } from "./errors";
import type { Fleet } from "./fleet";
import { operations } from "./operations";
import { QueryParams } from "./query";
import { errorDocument, responseDocument } from "./xml";

const API_VERSION = "2011-01-01";
const MAX_BODY_BYTES = 1024 * 1024;

export interface QueryServerOptions {
  host?: string;
  port?: number;
  /** Per-region request bucket (see ../throttle.ts); off when undefined. */
  throttle?: RegionThrottle;
}

export interface QueryServer {
  url: string;
  close(): Promise<void>;
}

export async function startQueryServer(fleet: Fleet, options: QueryServerOptions = {}): Promise<QueryServer> {
  const host = options.host ?? "127.0.0.1";
  return serve(
    (request, response) => handle(fleet, options.throttle, request, response),
    host,
    options.port ?? 0,
  );
}

async function handle(
  fleet: Fleet,
  throttle: RegionThrottle | undefined,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const requestId = randomUUID();
  try {
    if (request.method !== "POST") {
      throw new AutoScalingError("MethodNotAllowed", "The stand-in only accepts POST requests.", 405);
    }
    const params = QueryParams.parse(await readBody(request));
    const region = regionFromAuthorization(request.headers.authorization);
    const action = params.string("Action") ?? "";
    const operation = params.string("Version") === API_VERSION ? operations.get(action) : undefined;
    if (operation === undefined) {
      throw new AutoScalingError(
        "InvalidAction",
        `Could not find operation ${action} for version ${params.string("Version") ?? "(none)"}`,
      );
    }
    // Over the account's per-region rate, EC2 Auto Scaling answers HTTP 400 with the Query error
    // code `Throttling` and "Rate exceeded" (not `ThrottlingException`, which is the JSON services'
    // code), as SDK logs of real calls show: "Throttling: Rate exceeded status code: 400 ...
    // autoscaling/DescribeAutoScalingGroups" (github.com/keikoproj/upgrade-manager/issues/142,
    // github.com/kubernetes/kops/issues/7111). The SDK's retry strategy treats `Throttling` as a
    // throttling error and retries it with backoff.
    if (throttle?.applies(action) && !throttle.tryTake(region)) {
      throw new AutoScalingError("Throttling", "Rate exceeded", 400);
    }
    const result = operation(fleet, region, params);
    send(response, 200, responseDocument(action, result, requestId), requestId);
  } catch (error) {
    const failure =
      error instanceof AutoScalingError
        ? error
        : new AutoScalingError(
            "InternalFailure",
            error instanceof Error ? error.message : String(error),
            500,
          );
    send(response, failure.httpStatus, errorDocument(failure, requestId), requestId);
  }
}

/** The region of `Credential=AKID/20260101/<region>/autoscaling/aws4_request`. */
export function regionFromAuthorization(authorization: string | undefined): string {
  const region = signingRegion(authorization);
  if (region === undefined) {
    throw new AutoScalingError(
      "MissingAuthenticationToken",
      "Request is missing a SigV4 Authorization header.",
      403,
    );
  }
  return region;
}

/** The request body as text, refused past 1 MiB (shared by the Query-protocol stand-ins). */
export async function readBody(request: IncomingMessage): Promise<string> {
  const body = await readBodyCapped(
    request,
    MAX_BODY_BYTES,
    () => new AutoScalingError("RequestEntityTooLarge", "Request body too large.", 413),
  );
  return body.toString("utf8");
}

function send(response: ServerResponse, status: number, body: string, requestId: string): void {
  response.writeHead(status, {
    "content-type": "text/xml",
    "content-length": Buffer.byteLength(body),
    "x-amzn-requestid": requestId,
  });
  response.end(body);
}

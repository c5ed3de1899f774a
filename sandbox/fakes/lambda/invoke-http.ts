/**
 * The Invoke REST API as the local Lambda serves it (see local-lambda.ts's header for the
 * behaviours): `POST /2015-03-31/functions/{FunctionName}/invocations`, the invocation types, and
 * the errors Lambda answers with. The queue and the handlers are the backend's business.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { readTextOrUndefined } from "../../lib/listen";
import { functionNameOf, type InvocationType, type InvokeResult } from "./local-lambda";

const MAX_BODY_BYTES = 6 * 1024 * 1024; // Lambda's synchronous payload limit
const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations\/?$/;

/** What the HTTP side needs of the local Lambda: its functions, whether it is closing, its queue. */
export interface InvokeBackend<F> {
  find(name: string): F | undefined;
  closed(): boolean;
  enqueue(fn: F, invocationType: InvocationType, event: unknown): Promise<InvokeResult>;
}

export async function handleInvoke<F>(
  backend: InvokeBackend<F>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    const path = new URL(req.url ?? "/", "http://lambda.invalid").pathname;
    const match = INVOKE_PATH.exec(path);
    if (req.method !== "POST" || !match?.[1]) {
      await drain(req);
      return sendError(res, 404, "UnknownOperationException", `Unknown operation ${req.method} ${path}`);
    }
    let requested: string;
    try {
      requested = decodeURIComponent(match[1]);
    } catch {
      return sendError(res, 400, "InvalidParameterValueException", "FunctionName is not valid");
    }
    const body = await readBody(req);
    if (body === undefined) {
      return sendError(res, 413, "RequestTooLargeException", "Request must be smaller than 6291456 bytes");
    }
    const fn = backend.find(functionNameOf(requested));
    if (!fn) {
      return sendError(res, 404, "ResourceNotFoundException", `Function not found: ${requested}`);
    }
    let event: unknown = {};
    if (body.trim() !== "") {
      try {
        event = JSON.parse(body) as unknown;
      } catch {
        return sendError(
          res,
          400,
          "InvalidRequestContentException",
          "Could not parse request body into json",
        );
      }
    }
    const type = String(req.headers["x-amz-invocation-type"] ?? "RequestResponse");
    if (type === "DryRun") return send(res, 204, undefined);
    if (type !== "Event" && type !== "RequestResponse") {
      return sendError(res, 400, "InvalidParameterValueException", `Unsupported invocation type: ${type}`);
    }
    if (backend.closed()) return sendError(res, 503, "ServiceException", "local Lambda is closing");
    if (type === "Event") {
      void backend.enqueue(fn, "Event", event);
      return send(res, 202, undefined);
    }
    const outcome = await backend.enqueue(fn, "RequestResponse", event);
    if (outcome.ok) {
      return send(res, 200, JSON.stringify(outcome.result ?? null), {
        "X-Amz-Executed-Version": "$LATEST",
      });
    }
    return send(
      res,
      200,
      JSON.stringify({
        errorType: outcome.errorType,
        errorMessage: outcome.errorMessage,
        trace: outcome.trace ?? [],
      }),
      {
        "X-Amz-Executed-Version": "$LATEST",
        "X-Amz-Function-Error": "Unhandled",
      },
    );
  } catch {
    if (!res.headersSent)
      sendError(res, 500, "ServiceException", "local Lambda failed to handle the request");
  }
}

const readBody = (req: IncomingMessage) => readTextOrUndefined(req, MAX_BODY_BYTES);

async function drain(req: IncomingMessage): Promise<void> {
  for await (const _ of req) {
    // discard
  }
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  send(res, status, JSON.stringify({ Type: "User", message }), { "x-amzn-errortype": type });
}

function send(
  res: ServerResponse,
  status: number,
  body: string | undefined,
  headers: Record<string, string> = {},
) {
  if (res.destroyed) return;
  res.writeHead(status, {
    ...headers,
    "x-amzn-RequestId": randomUUID(),
    ...(body === undefined ? { "content-length": "0" } : { "content-type": "application/json" }),
  });
  res.end(body);
}

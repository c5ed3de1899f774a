/** AWS error responses in the two wire formats the SDK clients parse (the fault proxy's answers). */
import type { IncomingMessage, ServerResponse } from "node:http";
import { errorDocument } from "../autoscaling/xml";

export function isQueryProtocol(headers: IncomingMessage["headers"]): boolean {
  return (
    typeof headers["x-amz-target"] !== "string" &&
    String(headers["content-type"] ?? "").includes("x-www-form-urlencoded")
  );
}

/**
 * An AWS error as the SDK parses it: JSON protocols read `x-amzn-errortype` and `__type`; awsQuery
 * reads the `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>` envelope
 * (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/CommonErrors.html lists the codes).
 */
export function sendError(
  res: ServerResponse,
  status: number,
  type: string,
  message: string,
  query = false,
): void {
  if (res.destroyed) return;
  const requestId = crypto.randomUUID();
  if (query) {
    res.writeHead(status, { "content-type": "text/xml", "x-amzn-requestid": requestId });
    // The awsQuery envelope the Auto Scaling and CloudFormation stand-ins answer with.
    res.end(errorDocument({ type: status >= 500 ? "Receiver" : "Sender", code: type, message }, requestId));
    return;
  }
  res.writeHead(status, {
    "content-type": "application/x-amz-json-1.1",
    "x-amzn-errortype": type,
    "x-amzn-requestid": requestId,
  });
  res.end(JSON.stringify({ __type: type, message }));
}

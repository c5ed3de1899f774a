/**
 * Local stand-in for the EC2 API's DescribeInstances, fed by the simulated fleet (Auto Scaling
 * reports no launch times; the rollout needs them). It speaks EC2's Query protocol
 * (`Action=DescribeInstances&Version=2016-11-15`, XML with `reservationSet/item/instancesSet/item`),
 * so the real `@aws-sdk/client-ec2` works unchanged; one port serves every region (taken from the
 * SigV4 credential scope).
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { serve } from "../../lib/listen";
import { AutoScalingError } from "../autoscaling/errors";
import { readBody, regionFromAuthorization } from "../autoscaling/server";
import { describeInstances, type InstanceSource } from "./describe-instances";
import { Ec2Error } from "./errors";
import { Ec2Params } from "./params";
import { ec2ErrorDocument, ec2Response } from "./xml";

export type { InstanceSource } from "./describe-instances";

const API_VERSION = "2016-11-15";

export interface Ec2StandInOptions {
  instances: InstanceSource;
  host?: string;
  port?: number;
}

export interface Ec2StandIn {
  url: string;
  close(): Promise<void>;
}

export async function startEc2StandIn(options: Ec2StandInOptions): Promise<Ec2StandIn> {
  return serve(
    (request, response) => handle(options.instances, request, response),
    options.host,
    options.port,
  );
}

async function handle(
  source: InstanceSource,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const requestId = randomUUID();
  try {
    if (request.method !== "POST")
      throw new Ec2Error("InvalidAction", "The stand-in only accepts POST requests.");
    const region = ec2Region(request.headers.authorization);
    const params = Ec2Params.parse(await readBody(request));
    const action = params.string("Action") ?? "";
    if (action !== "DescribeInstances" || params.string("Version") !== API_VERSION) {
      throw new Ec2Error("InvalidAction", `The action ${action} is not valid for this web service.`);
    }
    send(response, 200, ec2Response(action, describeInstances(source, region, params), requestId));
  } catch (error) {
    const failure =
      error instanceof Ec2Error
        ? error
        : new Ec2Error("InternalError", error instanceof Error ? error.message : String(error), 500);
    send(response, failure.httpStatus, ec2ErrorDocument(failure, requestId));
  }
}

function ec2Region(authorization: string | undefined): string {
  try {
    return regionFromAuthorization(authorization);
  } catch (error) {
    if (error instanceof AutoScalingError) throw new Ec2Error("AuthFailure", error.message, 401);
    throw error;
  }
}

function send(response: ServerResponse, status: number, body: string): void {
  response.writeHead(status, {
    "content-type": "text/xml;charset=UTF-8",
    "content-length": Buffer.byteLength(body),
  });
  response.end(body);
}

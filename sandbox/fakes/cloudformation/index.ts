/**
 * Local stand-in for CloudFormation's DescribeStacks over the simulated Elastic CI Stacks. It speaks
 * the awsQuery protocol (`Action=DescribeStacks&Version=2010-05-15`, `<Stacks><member>…`), so the
 * real `@aws-sdk/client-cloudformation` works unchanged; one port serves every region.
 *
 * DescribeStacks (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html):
 * StackName is optional (all stacks of the region); it takes a name or a stack id; an unknown one
 * is a ValidationError "Stack with id <name> does not exist".
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { serve } from "../../lib/listen";
import { AutoScalingError, validationError } from "../autoscaling/errors";
import { QueryParams } from "../autoscaling/query";
import { readBody, regionFromAuthorization } from "../autoscaling/server";
import { errorDocument, responseDocument, type XmlObject } from "../autoscaling/xml";
import type { ElasticStacks, StackView } from "./stacks";

export {
  type ElasticStackSpec,
  ElasticStacks,
  GROUP_LOGICAL_ID,
  type StackStatus,
  type StackView,
} from "./stacks";

const API_VERSION = "2010-05-15";
const NAMESPACE = "http://cloudformation.amazonaws.com/doc/2010-05-15/";
const PAGE_SIZE = 100;

export interface CloudFormationStandInOptions {
  stacks: ElasticStacks;
  host?: string;
  port?: number;
}

export interface CloudFormationStandIn {
  url: string;
  stacks: ElasticStacks;
  close(): Promise<void>;
}

export async function startCloudFormationStandIn(
  options: CloudFormationStandInOptions,
): Promise<CloudFormationStandIn> {
  const server = await serve(
    (request, response) => handle(options.stacks, request, response),
    options.host,
    options.port,
  );
  return {
    url: server.url,
    stacks: options.stacks,
    close: () => {
      options.stacks.close();
      return server.close();
    },
  };
}

async function handle(
  stacks: ElasticStacks,
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
    if (action !== "DescribeStacks" || params.string("Version") !== API_VERSION) {
      throw new AutoScalingError(
        "InvalidAction",
        `Could not find operation ${action} for version ${params.string("Version") ?? "(none)"}`,
      );
    }
    send(
      response,
      200,
      responseDocument(action, describeStacks(stacks, region, params), requestId, NAMESPACE),
    );
  } catch (error) {
    const failure =
      error instanceof AutoScalingError
        ? error
        : new AutoScalingError(
            "InternalFailure",
            error instanceof Error ? error.message : String(error),
            500,
          );
    send(response, failure.httpStatus, errorDocument(failure, requestId, NAMESPACE));
  }
}

function describeStacks(stacks: ElasticStacks, region: string, params: QueryParams): XmlObject {
  const name = params.string("StackName");
  const found = stacks.describe(region, name);
  if (name !== undefined && found.length === 0) throw validationError(`Stack with id ${name} does not exist`);
  const token = params.string("NextToken");
  const offset = token === undefined ? 0 : decodeToken(token);
  const page = found.slice(offset, offset + PAGE_SIZE);
  const end = offset + page.length;
  return {
    Stacks: page.map(stackXml),
    ...(end < found.length ? { NextToken: Buffer.from(`offset:${end}`).toString("base64url") } : {}),
  };
}

function decodeToken(token: string): number {
  const match = /^offset:(\d+)$/.exec(Buffer.from(token, "base64url").toString());
  if (match?.[1] === undefined) throw validationError("Invalid NextToken");
  return Number(match[1]);
}

function stackXml(stack: StackView): XmlObject {
  return {
    StackId: stack.stackId,
    StackName: stack.stackName,
    Description: "Buildkite stack",
    Parameters: stack.parameters.map((p) => ({ ParameterKey: p.key, ParameterValue: p.value })),
    CreationTime: stack.creationTime,
    LastUpdatedTime: stack.lastUpdatedTime,
    StackStatus: stack.status,
    StackStatusReason: stack.statusReason,
    DisableRollback: false,
    Capabilities: ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    Outputs: stack.outputs.map((o) => ({
      OutputKey: o.key,
      OutputValue: o.value,
      Description: o.description,
      ExportName: o.exportName,
    })),
    Tags: stack.tags.map((t) => ({ Key: t.key, Value: t.value })),
    EnableTerminationProtection: false,
    DriftInformation: { StackDriftStatus: "NOT_CHECKED" },
  };
}

function send(response: ServerResponse, status: number, body: string): void {
  response.writeHead(status, { "content-type": "text/xml", "content-length": Buffer.byteLength(body) });
  response.end(body);
}

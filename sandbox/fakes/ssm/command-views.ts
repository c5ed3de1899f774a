/**
 * What the Run Command operations answer: the JSON shapes of a command and an invocation (with
 * the documented output caps), the request members they parse (filters, MaxResults / NextToken),
 * and the SSM Agent version DescribeInstanceInformation reports.
 */
import type { InstanceHost } from "../instances/instance-host";
import { SsmError, validationError } from "./errors";
import {
  type Command,
  commandState,
  errorCount,
  type InvocationRecord,
  type InvocationStatus,
  type PluginRecord,
  TERMINAL,
} from "./invocations";

export type Json = Record<string, unknown>;

/** Plugin Output in ListCommandInvocations (Details=true); GetCommandInvocation's two contents. */
const PLUGIN_OUTPUT_LIMIT = 2500;
export const STDOUT_CONTENT_LIMIT = 24000;
export const STDERR_CONTENT_LIMIT = 8000;
const COMMAND_STATUSES = [
  "Pending",
  "InProgress",
  "Success",
  "Cancelled",
  "Failed",
  "TimedOut",
  "Cancelling",
];

export function commandJson(command: Command): Json {
  const state = commandState(command);
  const invocations = command.invocations;
  return {
    CommandId: command.id,
    DocumentName: command.document.name,
    DocumentVersion: "$DEFAULT",
    Comment: command.comment,
    ExpiresAfter: (command.requestedAt + command.timeoutSeconds * 1000) / 1000,
    Parameters: command.parameters,
    InstanceIds: command.instanceIds,
    Targets: [],
    RequestedDateTime: command.requestedAt / 1000,
    Status: state.status,
    StatusDetails: state.details,
    OutputS3Region: command.region,
    OutputS3BucketName: "",
    OutputS3KeyPrefix: "",
    MaxConcurrency: command.maxConcurrency,
    MaxErrors: command.maxErrors,
    TargetCount: invocations.length,
    CompletedCount: invocations.filter((i) => TERMINAL.has(i.status)).length,
    ErrorCount: errorCount(command),
    DeliveryTimedOutCount: invocations.filter((i) => i.statusDetails === "Delivery Timed Out").length,
    ServiceRole: "",
    NotificationConfig: { NotificationArn: "", NotificationEvents: [], NotificationType: "" },
    CloudWatchOutputConfig: { CloudWatchLogGroupName: "", CloudWatchOutputEnabled: false },
    TimeoutSeconds: command.timeoutSeconds,
  };
}

export function invocationJson(command: Command, invocation: InvocationRecord, details: boolean): Json {
  return {
    CommandId: command.id,
    InstanceId: invocation.instanceId,
    InstanceName: "",
    Comment: command.comment,
    DocumentName: command.document.name,
    DocumentVersion: "$DEFAULT",
    RequestedDateTime: invocation.requestedAt / 1000,
    Status: invocation.status,
    StatusDetails: invocation.statusDetails,
    TraceOutput: "",
    StandardOutputUrl: "",
    StandardErrorUrl: "",
    CommandPlugins: details
      ? invocation.plugins.map((p) => ({
          Name: p.name,
          Status: p.status,
          StatusDetails: p.statusDetails,
          ResponseCode: p.responseCode,
          ...(p.startedAt !== undefined ? { ResponseStartDateTime: p.startedAt / 1000 } : {}),
          ...(p.endedAt !== undefined ? { ResponseFinishDateTime: p.endedAt / 1000 } : {}),
          Output: pluginOutput(p).slice(0, PLUGIN_OUTPUT_LIMIT),
          StandardOutputUrl: "",
          StandardErrorUrl: "",
          OutputS3Region: command.region,
          OutputS3BucketName: "",
          OutputS3KeyPrefix: "",
        }))
      : [],
    ServiceRole: "",
    NotificationConfig: { NotificationArn: "", NotificationEvents: [], NotificationType: "" },
    CloudWatchOutputConfig: { CloudWatchLogGroupName: "", CloudWatchOutputEnabled: false },
  };
}

export const AGENT_VERSION = "3.3.1142.0";

/** A plugin's Output as Run Command shows it: stdout, then stderr under its separator. */
export function pluginOutput(plugin: Pick<PluginRecord, "stdout" | "stderr">): string {
  return plugin.stderr.length > 0
    ? `${plugin.stdout}\n----------ERROR-------\n${plugin.stderr}`
    : plugin.stdout;
}

export type CommandFilter = { key: string; value: string };

export function commandFilters(raw: unknown): CommandFilter[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw validationError("filters", raw, "Member must be a list");
  if (raw.length > 5)
    throw validationError("filters", "[...]", "Member must have length less than or equal to 5");
  return raw.map((f: { key?: unknown; value?: unknown }) => {
    const key = String(f.key);
    const value = String(f.value);
    if (!["InvokedAfter", "InvokedBefore", "Status", "ExecutionStage", "DocumentName"].includes(key)) {
      throw new SsmError("InvalidFilterKey", `The filter key ${key} is not valid.`);
    }
    if ((key === "InvokedAfter" || key === "InvokedBefore") && Number.isNaN(Date.parse(value))) {
      throw new SsmError("InvalidFilterValue", `The value ${value} of ${key} is not an ISO 8601 timestamp.`);
    }
    if (key === "Status" && !COMMAND_STATUSES.includes(value)) {
      throw new SsmError("InvalidFilterValue", `The status ${value} is not valid.`);
    }
    if (key === "ExecutionStage" && value !== "Executing" && value !== "Complete") {
      throw new SsmError("InvalidFilterValue", `The execution stage ${value} is not valid.`);
    }
    return { key, value };
  });
}

export function matchesCommandFilter(
  f: CommandFilter,
  documentName: string,
  requestedAt: number,
  status: InvocationStatus,
): boolean {
  switch (f.key) {
    case "InvokedAfter":
      return requestedAt >= Date.parse(f.value);
    case "InvokedBefore":
      return requestedAt <= Date.parse(f.value);
    case "Status":
      return status === f.value;
    case "ExecutionStage":
      return f.value === "Complete" ? TERMINAL.has(status) : !TERMINAL.has(status);
    default:
      return documentName === f.value;
  }
}

/** MaxResults / NextToken as the SSM list operations take them (the token is opaque to clients). */
export function paginate<T>(
  items: T[],
  input: Json,
  defaultSize: number,
  min: number,
  max: number,
  scope: string,
): { items: T[]; next: string | undefined } {
  const size = input.MaxResults === undefined ? defaultSize : Number(input.MaxResults);
  if (!Number.isInteger(size) || size < min || size > max) {
    throw validationError("maxResults", input.MaxResults, `Member must have value between ${min} and ${max}`);
  }
  let offset = 0;
  const token = str(input.NextToken);
  if (token !== undefined) {
    const decoded = Buffer.from(token, "base64url").toString("utf8");
    const match = /^(.+)#(\d+)$/.exec(decoded);
    if (match === null || match[1] !== scope)
      throw new SsmError("InvalidNextToken", "The specified token isn't valid.");
    offset = Number(match[2]);
  }
  const page = items.slice(offset, offset + size);
  const nextOffset = offset + page.length;
  return {
    items: page,
    next: nextOffset < items.length ? Buffer.from(`${scope}#${nextOffset}`).toString("base64url") : undefined,
  };
}

export function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

export function strList(value: unknown, member: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw validationError(member, value, "Member must be a list of strings");
  }
  return value;
}

/** DescribeInstanceInformation's filters, from either of its two (mutually exclusive) members. */
export function instanceInformationFilters(input: Json): Array<{ key: string; values: string[] }> {
  if (input.InstanceInformationFilterList !== undefined && input.Filters !== undefined) {
    throw new SsmError("InvalidFilter", "InstanceInformationFilterList and Filters can't be used together.");
  }
  const filters: Array<{ key: string; values: string[] }> = [];
  for (const f of (input.InstanceInformationFilterList ?? []) as Array<{
    key?: unknown;
    valueSet?: unknown;
  }>) {
    filters.push({ key: String(f.key), values: strList(f.valueSet, "valueSet") });
  }
  for (const f of (input.Filters ?? []) as Array<{ Key?: unknown; Values?: unknown }>) {
    filters.push({ key: String(f.Key), values: strList(f.Values, "values") });
  }
  for (const f of filters) {
    if (!["InstanceIds", "PingStatus", "PlatformTypes", "ResourceType", "AgentVersion"].includes(f.key)) {
      throw new SsmError(
        "InvalidInstanceInformationFilterValue",
        `The filter key ${f.key} is not supported.`,
      );
    }
    if (f.values.length === 0)
      throw new SsmError("InvalidInstanceInformationFilterValue", `The filter ${f.key} has no values.`);
  }
  return filters;
}

/** One instance as DescribeInstanceInformation lists it. */
export function instanceInformationJson(host: InstanceHost, ping: string, now: number): Json {
  return {
    InstanceId: host.instanceId,
    PingStatus: ping,
    LastPingDateTime: (ping === "Online" ? now : now - 5 * 60_000) / 1000,
    AgentVersion: AGENT_VERSION,
    IsLatestVersion: true,
    PlatformType: host.platform,
    PlatformName: host.platform === "Linux" ? "Amazon Linux" : "Microsoft Windows Server 2022 Datacenter",
    PlatformVersion: host.platform === "Linux" ? "2023" : "10.0.20348",
    ResourceType: "EC2Instance",
    ComputerName: host.instanceId,
    SourceId: host.instanceId,
    SourceType: "AWS::EC2::Instance",
  };
}

/**
 * Systems Manager Run Command, simulated over the fleet's InstanceDirectory: what SendCommand,
 * ListCommands, ListCommandInvocations, GetCommandInvocation, CancelCommand and
 * DescribeInstanceInformation see. Its state is invocations.ts, the execution of each invocation
 * on its instance invocation-runner.ts, the shapes the operations answer command-views.ts.
 *
 * Modelled from the SSM API reference (https://docs.aws.amazon.com/systems-manager/latest/APIReference/)
 * and "Understanding command statuses"
 * (https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html):
 * - SendCommand takes at most 50 InstanceIds; an id whose SSM Agent is not registered, or whose
 *   instance is shutting down / terminated, fails the whole call with InvalidInstanceId (the
 *   exception's documented causes); a ConnectionLost instance is accepted (a stopped instance is a
 *   valid state) and its invocation is Delayed until delivered or the total timeout passes.
 * - Total timeout = TimeoutSeconds (delivery timeout, 30..2592000, default 3600) + the step's
 *   execution timeout (inputs.timeoutSeconds); then every Pending/InProgress/Delayed invocation turns
 *   `Delivery Timed Out`, as does one whose instance never sent a terminal response (terminated
 *   mid-run: "If Run Command doesn't receive a document terminal response from SSM Agent, the command
 *   invocation is marked as deliveryTimeout"). Which detail a mid-run termination ends with is an
 *   option (`midRunTermination`) because the reference describes it only indirectly.
 * - Undeliverable: the instance no longer exists when delivery is attempted.
 * - MaxErrors: once Failed + Execution Timed Out invocations exceed it, invocations not yet started
 *   are cancelled by the system (`Terminated`). Delivery timeouts and Undeliverable do not count.
 * - Invocations become visible in List/GetCommandInvocation only after `invocationDelayMs`
 *   (eventual consistency: GetCommandInvocation right after SendCommand answers InvocationDoesNotExist).
 * - Plugin Output in ListCommandInvocations (Details=true) is capped at 2500 characters;
 *   GetCommandInvocation's StandardOutputContent at 24000 and StandardErrorContent at 8000.
 */
import { randomUUID } from "node:crypto";
import {
  AGENT_VERSION,
  commandFilters,
  commandJson,
  instanceInformationFilters,
  instanceInformationJson,
  invocationJson,
  type Json,
  matchesCommandFilter,
  paginate,
  STDERR_CONTENT_LIMIT,
  STDOUT_CONTENT_LIMIT,
  str,
  strList,
} from "./command-views";
import type { CommandDocument } from "./documents";
import { resolveParameters } from "./documents";
import { SsmError, validationError } from "./errors";
import { InvocationRunner } from "./invocation-runner";
import {
  type Command,
  CommandLog,
  commandState,
  type InvocationRecord,
  type RunCommandSettings,
  TERMINAL,
} from "./invocations";

const MAX_INSTANCE_IDS = 50;
const MAX_CONCURRENCY = /^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$/;
const MAX_ERRORS = /^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$/;

export class RunCommand {
  private readonly documents = new Map<string, CommandDocument>();
  private readonly log: CommandLog;
  private readonly runner: InvocationRunner;

  constructor(private readonly settings: RunCommandSettings) {
    for (const document of settings.documents) this.documents.set(document.name, document);
    this.log = new CommandLog(settings);
    this.runner = new InvocationRunner(settings, this.log);
  }

  // ---- operations --------------------------------------------------------------------------------

  sendCommand(region: string, input: Json): Json {
    const documentName = str(input.DocumentName);
    if (documentName === undefined) throw validationError("documentName", "null", "Member must not be null");
    const document = this.documents.get(documentName);
    if (document === undefined)
      throw new SsmError("InvalidDocument", `Document with name ${documentName} does not exist.`);
    if (input.Targets !== undefined) {
      throw new SsmError(
        "InvalidParameters",
        "The Run Command stand-in supports InstanceIds only, not Targets.",
      );
    }
    const instanceIds = strList(input.InstanceIds, "instanceIds");
    if (instanceIds.length === 0)
      throw new SsmError("InvalidParameters", "InstanceIds or Targets must be specified.");
    if (instanceIds.length > MAX_INSTANCE_IDS) {
      throw validationError(
        "instanceIds",
        `[${instanceIds.join(", ")}]`,
        "Member must have length less than or equal to 50",
      );
    }
    if (new Set(instanceIds).size !== instanceIds.length) {
      throw new SsmError("DuplicateInstanceId", "You can't specify the same instance more than once.");
    }
    const invalid = instanceIds.filter((id) => {
      const host = this.settings.directory.find(region, id);
      return host === undefined || !host.running() || host.ssmAgent() === "unregistered";
    });
    if (invalid.length > 0) {
      throw new SsmError(
        "InvalidInstanceId",
        `Instances [[${invalid.join(", ")}]] not in a valid state for account 123456789012`,
      );
    }
    const comment = str(input.Comment) ?? "";
    if (comment.length > 100)
      throw validationError("comment", comment, "Member must have length less than or equal to 100");
    const timeoutSeconds = input.TimeoutSeconds === undefined ? 3600 : Number(input.TimeoutSeconds);
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 30 || timeoutSeconds > 2592000) {
      throw validationError(
        "timeoutSeconds",
        input.TimeoutSeconds,
        "Member must have value between 30 and 2592000",
      );
    }
    const maxConcurrency = str(input.MaxConcurrency) ?? "50";
    if (!MAX_CONCURRENCY.test(maxConcurrency)) {
      throw validationError(
        "maxConcurrency",
        maxConcurrency,
        `Member must satisfy regular expression pattern: ${MAX_CONCURRENCY.source}`,
      );
    }
    const maxErrors = str(input.MaxErrors) ?? "0";
    if (!MAX_ERRORS.test(maxErrors)) {
      throw validationError(
        "maxErrors",
        maxErrors,
        `Member must satisfy regular expression pattern: ${MAX_ERRORS.source}`,
      );
    }
    const parameters = (input.Parameters ?? {}) as Record<string, string[]>;
    const values = resolveParameters(document, parameters);

    const requestedAt = this.settings.now();
    const id = randomUUID();
    const invocations = instanceIds.map(
      (instanceId): InvocationRecord => ({
        commandId: id,
        instanceId,
        region,
        platform: this.settings.directory.find(region, instanceId)?.platform,
        documentName,
        requestedAt,
        visibleAt: requestedAt + this.settings.invocationDelayMs,
        status: "Pending",
        statusDetails: "Pending",
        plugins: document.steps.map((step) => ({
          name: step.name,
          status: "Pending",
          statusDetails: "Pending",
          responseCode: -1,
          stdout: "",
          stderr: "",
        })),
      }),
    );
    const command: Command = {
      id,
      region,
      document,
      comment,
      parameters,
      values,
      instanceIds,
      requestedAt,
      timeoutSeconds,
      maxConcurrency,
      maxErrors,
      invocations,
      done: Promise.resolve(),
      cancelRequested: false,
    };
    this.log.commands.push(command);
    command.done = this.runner.drive(command).catch((error: unknown) => {
      this.settings.log(
        `run-command ${id}: driver failed: ${error instanceof Error ? error.message : String(error)}`,
      );
    });
    this.settings.log(`SendCommand ${region} ${documentName} ${id} to ${instanceIds.length} instance(s)`);
    return { Command: commandJson(command) };
  }

  listCommands(region: string, input: Json): Json {
    const commandId = str(input.CommandId);
    if (commandId !== undefined) this.log.checkCommandId(region, commandId);
    const instanceId = str(input.InstanceId);
    const filters = commandFilters(input.Filters);
    const matching = this.log
      .regionCommands(region)
      .filter((c) => commandId === undefined || c.id === commandId)
      .filter((c) => instanceId === undefined || c.instanceIds.includes(instanceId))
      .filter((c) =>
        filters.every((f) => matchesCommandFilter(f, c.document.name, c.requestedAt, commandState(c).status)),
      );
    const page = paginate(matching, input, 50, 1, 50, `ListCommands:${region}`);
    return {
      Commands: page.items.map((c) => commandJson(c)),
      ...(page.next ? { NextToken: page.next } : {}),
    };
  }

  listCommandInvocations(region: string, input: Json): Json {
    const commandId = str(input.CommandId);
    if (commandId !== undefined) this.log.checkCommandId(region, commandId);
    const instanceId = str(input.InstanceId);
    const filters = commandFilters(input.Filters);
    const details = input.Details === true;
    const now = this.settings.now();
    const matching = this.log
      .regionCommands(region)
      .filter((c) => commandId === undefined || c.id === commandId)
      .flatMap((c) => c.invocations.map((i) => ({ c, i })))
      .filter(({ i }) => i.visibleAt <= now)
      .filter(({ i }) => instanceId === undefined || i.instanceId === instanceId)
      .filter(({ c, i }) =>
        filters.every((f) => matchesCommandFilter(f, c.document.name, c.requestedAt, i.status)),
      );
    const page = paginate(matching, input, 50, 1, 50, `ListCommandInvocations:${region}`);
    return {
      CommandInvocations: page.items.map(({ c, i }) => invocationJson(c, i, details)),
      ...(page.next ? { NextToken: page.next } : {}),
    };
  }

  getCommandInvocation(region: string, input: Json): Json {
    const commandId = str(input.CommandId);
    const instanceId = str(input.InstanceId);
    if (commandId === undefined) throw validationError("commandId", "null", "Member must not be null");
    if (instanceId === undefined) throw validationError("instanceId", "null", "Member must not be null");
    if (!/^[0-9a-f-]{36}$/.test(commandId)) throw new SsmError("InvalidCommandId", "Invalid command id.");
    const command = this.log.regionCommands(region).find((c) => c.id === commandId);
    const invocation = command?.invocations.find((i) => i.instanceId === instanceId);
    if (command === undefined || invocation === undefined || invocation.visibleAt > this.settings.now()) {
      throw new SsmError(
        "InvocationDoesNotExist",
        "An invocation for this command and instance does not exist.",
      );
    }
    const pluginName = str(input.PluginName);
    // "If the document contains more than one step, you must specify the name of the step."
    if (pluginName === undefined && command.document.steps.length > 1) {
      throw new SsmError("InvalidPluginName", "The document has more than one step: specify PluginName.");
    }
    const plugin =
      pluginName === undefined
        ? invocation.plugins[0]
        : invocation.plugins.find((p) => p.name === pluginName);
    if (plugin === undefined)
      throw new SsmError("InvalidPluginName", `Plugin ${pluginName ?? ""} does not exist.`);
    const elapsed =
      plugin.startedAt !== undefined
        ? ((plugin.endedAt ?? this.settings.now()) - plugin.startedAt) / 1000
        : undefined;
    return {
      CommandId: command.id,
      InstanceId: invocation.instanceId,
      Comment: command.comment,
      DocumentName: command.document.name,
      DocumentVersion: "$DEFAULT",
      PluginName: plugin.name,
      ResponseCode: plugin.responseCode,
      ExecutionStartDateTime: plugin.startedAt !== undefined ? new Date(plugin.startedAt).toISOString() : "",
      ExecutionElapsedTime: elapsed !== undefined ? `PT${elapsed.toFixed(3)}S` : "",
      ExecutionEndDateTime: plugin.endedAt !== undefined ? new Date(plugin.endedAt).toISOString() : "",
      Status: plugin.status,
      StatusDetails: plugin.statusDetails,
      StandardOutputContent: plugin.stdout.slice(0, STDOUT_CONTENT_LIMIT),
      StandardOutputUrl: "",
      StandardErrorContent: plugin.stderr.slice(0, STDERR_CONTENT_LIMIT),
      StandardErrorUrl: "",
      CloudWatchOutputConfig: { CloudWatchLogGroupName: "", CloudWatchOutputEnabled: false },
    };
  }

  describeInstanceInformation(region: string, input: Json): Json {
    const filters = instanceInformationFilters(input);
    const now = this.settings.now();
    const hosts = this.settings.directory
      .list(region)
      .filter((h) => h.running() && h.ssmAgent() !== "unregistered")
      .map((h) => ({ host: h, ping: h.ssmAgent() === "online" ? "Online" : "ConnectionLost" }))
      .filter(({ host, ping }) =>
        filters.every((f) => {
          switch (f.key) {
            case "InstanceIds":
              return f.values.includes(host.instanceId);
            case "PingStatus":
              return f.values.includes(ping);
            case "PlatformTypes":
              return f.values.includes(host.platform);
            case "ResourceType":
              return f.values.includes("EC2Instance");
            default:
              return f.values.includes(AGENT_VERSION);
          }
        }),
      );
    const page = paginate(hosts, input, 10, 5, 50, `DescribeInstanceInformation:${region}`);
    return {
      InstanceInformationList: page.items.map(({ host, ping }) => instanceInformationJson(host, ping, now)),
      ...(page.next ? { NextToken: page.next } : {}),
    };
  }

  /**
   * CancelCommand: "Attempts to cancel the command specified by the Command ID. There is no guarantee
   * that the command will be terminated and the underlying process stopped." Invocations not yet
   * delivered end Cancelled at once; a running one shows Cancelling until its process is stopped.
   */
  cancelCommand(region: string, input: Json): Json {
    const commandId = str(input.CommandId);
    if (commandId === undefined) throw validationError("commandId", "null", "Member must not be null");
    const command = this.log.regionCommands(region).find((c) => c.id === commandId);
    if (command === undefined) throw new SsmError("InvalidCommandId", "Invalid command id.");
    const instanceIds = strList(input.InstanceIds, "instanceIds");
    if (new Set(instanceIds).size !== instanceIds.length) {
      throw new SsmError("DuplicateInstanceId", "You can't specify the same instance more than once.");
    }
    const unknown = instanceIds.filter((id) => !command.instanceIds.includes(id));
    if (unknown.length > 0)
      throw new SsmError(
        "InvalidInstanceId",
        `Instances [[${unknown.join(", ")}]] are not targets of ${commandId}`,
      );
    if (instanceIds.length === 0) command.cancelRequested = true;
    for (const invocation of command.invocations) {
      if (instanceIds.length > 0 && !instanceIds.includes(invocation.instanceId)) continue;
      if (TERMINAL.has(invocation.status)) continue;
      this.log.cancelled.add(invocation);
      const stop = this.log.running.get(invocation);
      if (stop !== undefined) {
        this.log.transition(invocation, "Cancelling", "Cancelling");
        stop();
      } else {
        this.log.finishInvocation(invocation, "Cancelled", "Cancelled");
      }
    }
    this.settings.log(`CancelCommand ${region} ${commandId}`);
    return {};
  }

  // ---- records -----------------------------------------------------------------------------------

  /** `instanceId status` of every invocation not yet in a terminal state (cheap: no copies of outputs). */
  unfinished(): string[] {
    return this.log.unfinished();
  }

  invocations(): InvocationRecord[] {
    return this.log.invocations();
  }

  /** Resolves when every command sent so far has reached a terminal state on every instance. */
  settled(): Promise<void> {
    return this.log.settled();
  }

  close(): void {
    this.log.close();
  }
}

/**
 * Systems Manager Run Command, simulated over the fleet's InstanceDirectory: what SendCommand,
 * ListCommands, ListCommandInvocations, GetCommandInvocation, CancelCommand and
 * DescribeInstanceInformation see, and the execution of each invocation on its instance.
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
import { setMaxListeners } from "node:events";
import type { InstanceDirectory, InstanceHost } from "../instances/instance-host";
import type { CommandDocument, DocumentStep } from "./documents";
import { resolveParameters, substituteParameters } from "./documents";
import { SsmError, validationError } from "./errors";
import { runLinuxStep, type StepRun } from "./linux-step";
import { runWindowsStep } from "./windows-step";

export type InvocationStatus =
  | "Pending"
  | "InProgress"
  | "Delayed"
  | "Success"
  | "Cancelled"
  | "TimedOut"
  | "Failed"
  | "Cancelling";

export type MidRunTermination = "Delivery Timed Out" | "Undeliverable" | "Terminated";

export interface RunCommandSettings {
  directory: InstanceDirectory;
  documents: readonly CommandDocument[];
  /** The one SSM endpoint the instances' CLI calls (the stand-in's own URL). */
  ssmEndpoint: () => string;
  shimDirectory: string;
  /** Delay before an invocation shows in ListCommandInvocations / GetCommandInvocation. */
  invocationDelayMs: number;
  /** Time from SendCommand to delivery on an online instance. */
  commandLatencyMs: number;
  /** Milliseconds the sandbox spends for one AWS second of TimeoutSeconds / execution timeout. */
  msPerAwsSecond: number;
  /** How often a Delayed invocation retries delivery. */
  deliveryRetryMs: number;
  midRunTermination: MidRunTermination;
  /**
   * "bash" runs the Linux step for real (bash + AWS CLI); "mirror" runs its TypeScript mirror, for
   * fleets too large to spawn the CLI per instance on a small machine.
   */
  linuxStep: "bash" | "mirror";
  /** In-instance path of the Linux / Windows cfg: the value that maps to InstanceHost.configPath. */
  linuxConfigPath: string;
  windowsConfigPath: string;
  /** Where any other cfg path would live (nothing is there: the step finds it missing). */
  elsewhereRoot: string;
  log: (line: string) => void;
  /** Receives each invocation status change as the EventBridge event AWS sends for it. */
  onEvent?: (event: InvocationStatusEvent) => void;
  now: () => number;
}

export interface InvocationStatusEvent {
  version: "0";
  id: string;
  "detail-type": "EC2 Command Invocation Status-change Notification";
  source: "aws.ssm";
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: {
    "command-id": string;
    "document-name": string;
    "instance-id": string;
    "requested-date-time": string;
    status: InvocationStatus;
  };
}

export interface PluginRecord {
  name: string;
  status: InvocationStatus;
  statusDetails: string;
  responseCode: number;
  startedAt?: number;
  endedAt?: number;
  stdout: string;
  stderr: string;
}

/** One invocation as the stand-in recorded it (full output, untruncated), for tests and the sandbox. */
export interface InvocationRecord {
  commandId: string;
  instanceId: string;
  region: string;
  platform: InstanceHost["platform"] | undefined;
  documentName: string;
  requestedAt: number;
  visibleAt: number;
  status: InvocationStatus;
  statusDetails: string;
  plugins: PluginRecord[];
}

interface Command {
  id: string;
  region: string;
  document: CommandDocument;
  comment: string;
  parameters: Record<string, string[]>;
  values: Record<string, string>;
  instanceIds: string[];
  requestedAt: number;
  timeoutSeconds: number;
  maxConcurrency: string;
  maxErrors: string;
  invocations: InvocationRecord[];
  done: Promise<void>;
  /** CancelCommand without InstanceIds: the command as a whole was cancelled. */
  cancelRequested: boolean;
}

const MAX_INSTANCE_IDS = 50;
const PLUGIN_OUTPUT_LIMIT = 2500;
const STDOUT_CONTENT_LIMIT = 24000;
const STDERR_CONTENT_LIMIT = 8000;
const TERMINAL = new Set<InvocationStatus>(["Success", "Cancelled", "TimedOut", "Failed"]);
const MAX_CONCURRENCY = /^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$/;
const MAX_ERRORS = /^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$/;
const COMMAND_STATUSES = [
  "Pending",
  "InProgress",
  "Success",
  "Cancelled",
  "Failed",
  "TimedOut",
  "Cancelling",
];

type Json = Record<string, unknown>;

export class RunCommand {
  private readonly commands: Command[] = [];
  private readonly documents = new Map<string, CommandDocument>();
  private closed = false;
  private readonly closing = new AbortController();
  private readonly aborts = new Set<AbortController>();
  /** Invocations CancelCommand asked to stop, and the stop for the one step each may be running. */
  private readonly cancelled = new Set<InvocationRecord>();
  private readonly running = new Map<InvocationRecord, () => void>();

  constructor(private readonly settings: RunCommandSettings) {
    for (const document of settings.documents) this.documents.set(document.name, document);
    // Every pending simulated wait listens for close().
    setMaxListeners(0, this.closing.signal);
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
    this.commands.push(command);
    command.done = this.drive(command).catch((error: unknown) => {
      this.settings.log(
        `run-command ${id}: driver failed: ${error instanceof Error ? error.message : String(error)}`,
      );
    });
    this.settings.log(`SendCommand ${region} ${documentName} ${id} to ${instanceIds.length} instance(s)`);
    return { Command: this.commandJson(command) };
  }

  listCommands(region: string, input: Json): Json {
    const commandId = str(input.CommandId);
    if (commandId !== undefined) this.checkCommandId(region, commandId);
    const instanceId = str(input.InstanceId);
    const filters = commandFilters(input.Filters);
    const matching = this.regionCommands(region)
      .filter((c) => commandId === undefined || c.id === commandId)
      .filter((c) => instanceId === undefined || c.instanceIds.includes(instanceId))
      .filter((c) =>
        filters.every((f) => matchesCommandFilter(f, c.document.name, c.requestedAt, this.commandStatus(c))),
      );
    const page = paginate(matching, input, 50, 1, 50, `ListCommands:${region}`);
    return {
      Commands: page.items.map((c) => this.commandJson(c)),
      ...(page.next ? { NextToken: page.next } : {}),
    };
  }

  listCommandInvocations(region: string, input: Json): Json {
    const commandId = str(input.CommandId);
    if (commandId !== undefined) this.checkCommandId(region, commandId);
    const instanceId = str(input.InstanceId);
    const filters = commandFilters(input.Filters);
    const details = input.Details === true;
    const now = this.settings.now();
    const matching = this.regionCommands(region)
      .filter((c) => commandId === undefined || c.id === commandId)
      .flatMap((c) => c.invocations.map((i) => ({ c, i })))
      .filter(({ i }) => i.visibleAt <= now)
      .filter(({ i }) => instanceId === undefined || i.instanceId === instanceId)
      .filter(({ c, i }) =>
        filters.every((f) => matchesCommandFilter(f, c.document.name, c.requestedAt, i.status)),
      );
    const page = paginate(matching, input, 50, 1, 50, `ListCommandInvocations:${region}`);
    return {
      CommandInvocations: page.items.map(({ c, i }) => this.invocationJson(c, i, details)),
      ...(page.next ? { NextToken: page.next } : {}),
    };
  }

  getCommandInvocation(region: string, input: Json): Json {
    const commandId = str(input.CommandId);
    const instanceId = str(input.InstanceId);
    if (commandId === undefined) throw validationError("commandId", "null", "Member must not be null");
    if (instanceId === undefined) throw validationError("instanceId", "null", "Member must not be null");
    if (!/^[0-9a-f-]{36}$/.test(commandId)) throw new SsmError("InvalidCommandId", "Invalid command id.");
    const command = this.regionCommands(region).find((c) => c.id === commandId);
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
    if (input.InstanceInformationFilterList !== undefined && input.Filters !== undefined) {
      throw new SsmError(
        "InvalidFilter",
        "InstanceInformationFilterList and Filters can't be used together.",
      );
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
      InstanceInformationList: page.items.map(({ host, ping }) => ({
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
      })),
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
    const command = this.regionCommands(region).find((c) => c.id === commandId);
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
      this.cancelled.add(invocation);
      const stop = this.running.get(invocation);
      if (stop !== undefined) {
        this.transition(invocation, "Cancelling", "Cancelling");
        stop();
      } else {
        this.finishInvocation(invocation, "Cancelled", "Cancelled");
      }
    }
    this.settings.log(`CancelCommand ${region} ${commandId}`);
    return {};
  }

  // ---- records -----------------------------------------------------------------------------------

  /** `instanceId status` of every invocation not yet in a terminal state (cheap: no copies of outputs). */
  unfinished(): string[] {
    const out: string[] = [];
    for (const c of this.commands) {
      for (const i of c.invocations) {
        if (!TERMINAL_STATUSES.has(i.status)) out.push(`${i.instanceId} ${i.status}`);
      }
    }
    return out;
  }

  invocations(): InvocationRecord[] {
    return this.commands.flatMap((c) =>
      c.invocations.map((i) => ({ ...i, plugins: i.plugins.map((p) => ({ ...p })) })),
    );
  }

  /** Resolves when every command sent so far has reached a terminal state on every instance. */
  async settled(): Promise<void> {
    await Promise.all(this.commands.map((c) => c.done));
  }

  close(): void {
    this.closed = true;
    this.closing.abort();
    for (const a of this.aborts) a.abort();
  }

  // ---- execution ---------------------------------------------------------------------------------

  private async drive(command: Command): Promise<void> {
    await this.sleep(this.settings.commandLatencyMs);
    const concurrency = resolveCount(command.maxConcurrency, command.instanceIds.length, 1);
    const maxErrors = resolveCount(command.maxErrors, command.instanceIds.length, 0);
    const running = new Set<Promise<void>>();
    for (const invocation of command.invocations) {
      while (running.size >= concurrency) await Promise.race(running);
      if (TERMINAL.has(invocation.status)) continue; // cancelled before its turn
      if (this.errorCount(command) > maxErrors || this.closed) {
        this.finishInvocation(invocation, "Cancelled", "Terminated");
        continue;
      }
      const run: Promise<void> = this.runInvocation(command, invocation).finally(() => running.delete(run));
      running.add(run);
    }
    await Promise.all(running);
  }

  private async runInvocation(command: Command, invocation: InvocationRecord): Promise<void> {
    const scale = this.settings.msPerAwsSecond;
    const step = this.stepFor(command.document, invocation.platform);
    const executionTimeout = (step?.timeoutSeconds ?? 3600) * scale;
    const deadline = command.requestedAt + command.timeoutSeconds * scale + executionTimeout;
    // Delivery.
    for (;;) {
      if (this.cancelled.has(invocation)) return; // CancelCommand already ended it
      const host = this.settings.directory.find(command.region, invocation.instanceId);
      if (host === undefined || !host.running()) {
        this.finishInvocation(invocation, "Failed", "Undeliverable");
        return;
      }
      if (host.ssmAgent() === "online") break;
      if (this.closed || this.settings.now() >= deadline) {
        this.finishInvocation(invocation, "TimedOut", "Delivery Timed Out");
        return;
      }
      this.transition(invocation, "Delayed", "Delayed");
      for (const p of invocation.plugins) Object.assign(p, { status: "Delayed", statusDetails: "Delayed" });
      await this.sleep(Math.min(this.settings.deliveryRetryMs, Math.max(1, deadline - this.settings.now())));
    }
    const host = this.settings.directory.find(command.region, invocation.instanceId) as InstanceHost;
    this.transition(invocation, "InProgress", "InProgress");
    let outcome: { status: InvocationStatus; details: string } = { status: "Success", details: "Success" };
    for (const [index, documentStep] of command.document.steps.entries()) {
      const plugin = invocation.plugins[index] as PluginRecord;
      plugin.startedAt = this.settings.now();
      if (documentStep.platform !== undefined && documentStep.platform !== host.platform) {
        // A step whose precondition does not hold is skipped and reported successful.
        Object.assign(plugin, {
          status: "Success",
          statusDetails: "Success",
          responseCode: 0,
          endedAt: this.settings.now(),
          stdout: `Step execution skipped due to unsatisfied preconditions: '"StringEquals": [platformType, ${documentStep.platform}]'. Step name: ${documentStep.name}`,
        });
        continue;
      }
      if (this.cancelled.has(invocation)) {
        outcome = { status: "Cancelled", details: "Cancelled" };
        break;
      }
      Object.assign(plugin, { status: "InProgress", statusDetails: "InProgress" });
      const result = await this.execute(command, invocation, documentStep, host, executionTimeout, deadline);
      plugin.endedAt = this.settings.now();
      plugin.stdout = result.run.stdout;
      plugin.stderr = result.run.stderr;
      plugin.responseCode = result.run.exitCode;
      if (result.stoppedBy === "terminated") {
        const details = this.settings.midRunTermination;
        const status: InvocationStatus =
          details === "Delivery Timed Out"
            ? "TimedOut"
            : details === "Undeliverable"
              ? "Failed"
              : "Cancelled";
        if (details === "Delivery Timed Out") await this.sleep(Math.max(0, deadline - this.settings.now()));
        Object.assign(plugin, { status, statusDetails: details });
        outcome = { status, details };
        break;
      }
      if (result.stoppedBy === "cancelled") {
        Object.assign(plugin, { status: "Cancelled", statusDetails: "Cancelled" });
        outcome = { status: "Cancelled", details: "Cancelled" };
        break;
      }
      if (result.stoppedBy === "timeout") {
        Object.assign(plugin, { status: "TimedOut", statusDetails: "Execution Timed Out", responseCode: -1 });
        outcome = { status: "TimedOut", details: "Execution Timed Out" };
        break;
      }
      if (result.run.exitCode !== 0) {
        // A failed step does not stop the next ones unless it says `onFailure: exit` (SSM Agent's
        // default for schema 2.2 documents); the invocation ends Failed.
        Object.assign(plugin, { status: "Failed", statusDetails: "Failed" });
        outcome = { status: "Failed", details: "Failed" };
        continue;
      }
      Object.assign(plugin, { status: "Success", statusDetails: "Success" });
    }
    this.finishInvocation(invocation, outcome.status, outcome.details);
    this.settings.log(
      `invocation ${command.id} ${invocation.instanceId} ${invocation.status} (${invocation.statusDetails})`,
    );
  }

  private async execute(
    command: Command,
    invocation: InvocationRecord,
    step: DocumentStep,
    host: InstanceHost,
    executionTimeoutMs: number,
    deadline: number,
  ): Promise<{ run: StepRun; stoppedBy: "timeout" | "terminated" | "cancelled" | undefined }> {
    const abort = new AbortController();
    this.aborts.add(abort);
    let stoppedBy: "timeout" | "terminated" | "cancelled" | undefined;
    this.running.set(invocation, () => {
      stoppedBy ??= "cancelled";
      abort.abort();
    });
    const timer = setTimeout(
      () => {
        stoppedBy ??= "timeout";
        abort.abort();
      },
      Math.max(1, Math.min(executionTimeoutMs, deadline - this.settings.now())),
    );
    const watch = setInterval(() => {
      if (!host.running()) {
        stoppedBy ??= "terminated";
        abort.abort();
      }
    }, 25);
    try {
      const values = { ...command.values };
      let run: StepRun;
      // The mirror knows only the product's step; any other document runs for real.
      if (step.name === "InstallAgentTokenLinux" && this.settings.linuxStep === "mirror") {
        run = await runWindowsStep({
          host,
          flavour: "Linux",
          tokenParameterName: values.TokenParameterName ?? "",
          configPath: this.hostPath(host, values.LinuxConfigPath, this.settings.linuxConfigPath),
          ssmEndpoint: this.settings.ssmEndpoint(),
          signal: abort.signal,
        });
      } else if (step.action === "aws:runShellScript") {
        values.LinuxConfigPath = this.hostPath(host, values.LinuxConfigPath, this.settings.linuxConfigPath);
        run = await runLinuxStep({
          host,
          script: substituteParameters(step.script, values),
          ssmEndpoint: this.settings.ssmEndpoint(),
          shimDirectory: this.settings.shimDirectory,
          signal: abort.signal,
        });
      } else {
        run = await runWindowsStep({
          host,
          tokenParameterName: values.TokenParameterName ?? "",
          configPath: this.hostPath(host, values.WindowsConfigPath, this.settings.windowsConfigPath),
          ssmEndpoint: this.settings.ssmEndpoint(),
          signal: abort.signal,
        });
      }
      if (!host.running()) stoppedBy ??= "terminated";
      return { run, stoppedBy };
    } finally {
      clearTimeout(timer);
      clearInterval(watch);
      this.aborts.delete(abort);
      this.running.delete(invocation);
    }
  }

  /** The instance's own cfg path maps to its configPath on the sandbox's disk; any other is absent. */
  private hostPath(host: InstanceHost, value: string | undefined, instancePath: string): string {
    if (value === undefined || value === instancePath) return host.configPath;
    return `${this.settings.elsewhereRoot}/${host.instanceId}/${value.replace(/[:\\]/g, "/")}`;
  }

  private stepFor(
    document: CommandDocument,
    platform: InstanceHost["platform"] | undefined,
  ): DocumentStep | undefined {
    return document.steps.find((s) => s.platform === undefined || s.platform === platform);
  }

  /**
   * Every status change of an invocation goes through here; each one is also an EventBridge event
   * "EC2 Command Invocation Status-change Notification" from aws.ssm
   * (https://docs.aws.amazon.com/systems-manager/latest/userguide/monitoring-systems-manager-event-examples.html).
   */
  private transition(invocation: InvocationRecord, status: InvocationStatus, details: string): void {
    const changed = invocation.status !== status;
    invocation.status = status;
    invocation.statusDetails = details;
    if (!changed || this.settings.onEvent === undefined) return;
    this.settings.onEvent({
      version: "0",
      id: randomUUID(),
      "detail-type": "EC2 Command Invocation Status-change Notification",
      source: "aws.ssm",
      account: "123456789012",
      time: new Date(this.settings.now()).toISOString().replace(/\.\d{3}Z$/, "Z"),
      region: invocation.region,
      resources: [`arn:aws:ec2:${invocation.region}:123456789012:instance/${invocation.instanceId}`],
      detail: {
        "command-id": invocation.commandId,
        "document-name": invocation.documentName,
        "instance-id": invocation.instanceId,
        "requested-date-time": new Date(invocation.requestedAt).toISOString(),
        status,
      },
    });
  }

  private finishInvocation(invocation: InvocationRecord, status: InvocationStatus, details: string): void {
    this.transition(invocation, status, details);
    for (const p of invocation.plugins) {
      if (!TERMINAL.has(p.status)) Object.assign(p, { status, statusDetails: details });
    }
  }

  private errorCount(command: Command): number {
    return command.invocations.filter(
      (i) => i.statusDetails === "Failed" || i.statusDetails === "Execution Timed Out",
    ).length;
  }

  // ---- views -------------------------------------------------------------------------------------

  private regionCommands(region: string): Command[] {
    return this.commands.filter((c) => c.region === region).sort((a, b) => b.requestedAt - a.requestedAt);
  }

  private checkCommandId(region: string, commandId: string): void {
    if (!this.regionCommands(region).some((c) => c.id === commandId)) {
      throw new SsmError("InvalidCommandId", "Invalid command id.");
    }
  }

  /** The aggregated command status ("Detailed status for a command"). */
  private commandStatus(command: Command): InvocationStatus {
    return this.commandState(command).status;
  }

  private commandState(command: Command): { status: InvocationStatus; details: string } {
    const invocations = command.invocations;
    const maxErrors = resolveCount(command.maxErrors, invocations.length, 0);
    const terminal = invocations.filter((i) => TERMINAL.has(i.status));
    const errors = this.errorCount(command);
    if (terminal.length < invocations.length && command.cancelRequested) {
      return { status: "Cancelling", details: "Cancelling" };
    }
    if (command.cancelRequested) return { status: "Cancelled", details: "Cancelled" };
    if (terminal.length < invocations.length) {
      const started = invocations.some((i) => i.status !== "Pending");
      return started
        ? { status: "InProgress", details: "InProgress" }
        : { status: "Pending", details: "Pending" };
    }
    if (errors > maxErrors) {
      const timedOut = invocations.filter((i) => i.statusDetails === "Execution Timed Out").length;
      return timedOut > maxErrors && timedOut >= errors - timedOut
        ? { status: "TimedOut", details: "Execution Timed Out" }
        : { status: "Failed", details: "Failed" };
    }
    const counted = invocations.filter((i) => i.statusDetails !== "Undeliverable");
    if (counted.length === 0) return { status: "Failed", details: "Failed" };
    const deliveryTimedOut = invocations.filter((i) => i.statusDetails === "Delivery Timed Out").length;
    if (deliveryTimedOut > 0 && deliveryTimedOut >= Math.max(1, maxErrors)) {
      return { status: "TimedOut", details: "Delivery Timed Out" };
    }
    if (counted.every((i) => i.status === "Success")) return { status: "Success", details: "Success" };
    return { status: "Failed", details: "Incomplete" };
  }

  private commandJson(command: Command): Json {
    const state = this.commandState(command);
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
      ErrorCount: this.errorCount(command),
      DeliveryTimedOutCount: invocations.filter((i) => i.statusDetails === "Delivery Timed Out").length,
      ServiceRole: "",
      NotificationConfig: { NotificationArn: "", NotificationEvents: [], NotificationType: "" },
      CloudWatchOutputConfig: { CloudWatchLogGroupName: "", CloudWatchOutputEnabled: false },
      TimeoutSeconds: command.timeoutSeconds,
    };
  }

  private invocationJson(command: Command, invocation: InvocationRecord, details: boolean): Json {
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

  /** A timer that close() cuts short, so no simulated wait outlives the stand-in. */
  private sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.closing.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.closing.signal.addEventListener("abort", done, { once: true });
    });
  }
}

const AGENT_VERSION = "3.3.1142.0";

/** A plugin's Output as Run Command shows it: stdout, then stderr under its separator. */
export function pluginOutput(plugin: Pick<PluginRecord, "stdout" | "stderr">): string {
  return plugin.stderr.length > 0
    ? `${plugin.stdout}\n----------ERROR-------\n${plugin.stderr}`
    : plugin.stdout;
}

/** "10", "10%" → a count of `total` (percentages round up, at least `floor`). */
function resolveCount(value: string, total: number, floor: number): number {
  if (value.endsWith("%")) return Math.max(floor, Math.ceil((Number(value.slice(0, -1)) / 100) * total));
  return Number(value);
}

type CommandFilter = { key: string; value: string };

function commandFilters(raw: unknown): CommandFilter[] {
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

function matchesCommandFilter(
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
function paginate<T>(
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

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function strList(value: unknown, member: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw validationError(member, value, "Member must be a list of strings");
  }
  return value;
}

/** Invocation statuses that end an invocation (SSM "Understanding command statuses"). */
const TERMINAL_STATUSES: ReadonlySet<string> = new Set(["Success", "Failed", "Cancelled", "TimedOut"]);

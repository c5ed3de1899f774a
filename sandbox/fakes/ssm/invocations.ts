/**
 * Run Command's state: every command sent, its invocations and their plugins, the status rules
 * that aggregate them ("Understanding command statuses",
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html), and the
 * status changes, each also an EventBridge event. The operations are run-command.ts; the
 * execution of an invocation on its instance is invocation-runner.ts.
 */
import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import type { InstanceDirectory, InstanceHost } from "../instances/instance-host";
import type { CommandDocument } from "./documents";
import { SsmError } from "./errors";

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

export interface Command {
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

/** Invocation statuses that end an invocation (SSM "Understanding command statuses"). */
export const TERMINAL: ReadonlySet<InvocationStatus> = new Set<InvocationStatus>([
  "Success",
  "Cancelled",
  "TimedOut",
  "Failed",
]);

/** "10", "10%" → a count of `total` (percentages round up, at least `floor`). */
export function resolveCount(value: string, total: number, floor: number): number {
  if (value.endsWith("%")) return Math.max(floor, Math.ceil((Number(value.slice(0, -1)) / 100) * total));
  return Number(value);
}

export function errorCount(command: Command): number {
  return command.invocations.filter(
    (i) => i.statusDetails === "Failed" || i.statusDetails === "Execution Timed Out",
  ).length;
}

/** The aggregated command status ("Detailed status for a command"). */
export function commandState(command: Command): { status: InvocationStatus; details: string } {
  const invocations = command.invocations;
  const maxErrors = resolveCount(command.maxErrors, invocations.length, 0);
  const terminal = invocations.filter((i) => TERMINAL.has(i.status));
  const errors = errorCount(command);
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

export class CommandLog {
  readonly commands: Command[] = [];
  closed = false;
  readonly #closing = new AbortController();
  readonly aborts = new Set<AbortController>();
  /** Invocations CancelCommand asked to stop, and the stop for the one step each may be running. */
  readonly cancelled = new Set<InvocationRecord>();
  readonly running = new Map<InvocationRecord, () => void>();

  constructor(private readonly settings: Pick<RunCommandSettings, "onEvent" | "now">) {
    // Every pending simulated wait listens for close().
    setMaxListeners(0, this.#closing.signal);
  }

  regionCommands(region: string): Command[] {
    return this.commands.filter((c) => c.region === region).sort((a, b) => b.requestedAt - a.requestedAt);
  }

  checkCommandId(region: string, commandId: string): void {
    if (!this.regionCommands(region).some((c) => c.id === commandId)) {
      throw new SsmError("InvalidCommandId", "Invalid command id.");
    }
  }

  /**
   * Every status change of an invocation goes through here; each one is also an EventBridge event
   * "EC2 Command Invocation Status-change Notification" from aws.ssm
   * (https://docs.aws.amazon.com/systems-manager/latest/userguide/monitoring-systems-manager-event-examples.html).
   */
  transition(invocation: InvocationRecord, status: InvocationStatus, details: string): void {
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

  finishInvocation(invocation: InvocationRecord, status: InvocationStatus, details: string): void {
    this.transition(invocation, status, details);
    for (const p of invocation.plugins) {
      if (!TERMINAL.has(p.status)) Object.assign(p, { status, statusDetails: details });
    }
  }

  /** `instanceId status` of every invocation not yet in a terminal state (cheap: no copies of outputs). */
  unfinished(): string[] {
    const out: string[] = [];
    for (const c of this.commands) {
      for (const i of c.invocations) {
        if (!TERMINAL.has(i.status)) out.push(`${i.instanceId} ${i.status}`);
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
    this.#closing.abort();
    for (const a of this.aborts) a.abort();
  }

  /** A timer that close() cuts short, so no simulated wait outlives the stand-in. */
  sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#closing.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.#closing.signal.addEventListener("abort", done, { once: true });
    });
  }
}

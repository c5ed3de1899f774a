/**
 * The execution of a command's invocations on their instances: MaxConcurrency and MaxErrors,
 * delivery (Delayed while the SSM Agent is offline, Undeliverable once the instance is gone,
 * Delivery Timed Out at the total timeout), each step run for real (bash + AWS CLI) or by its
 * mirror, and how an execution timeout, a cancel or a mid-run termination ends it. The rules are
 * cited in run-command.ts's header.
 */
import type { InstanceHost } from "../instances/instance-host";
import type { CommandDocument, DocumentStep } from "./documents";
import { substituteParameters } from "./documents";
import {
  type Command,
  type CommandLog,
  errorCount,
  type InvocationRecord,
  type InvocationStatus,
  type PluginRecord,
  type RunCommandSettings,
  resolveCount,
  TERMINAL,
} from "./invocations";
import { runLinuxStep, type StepRun } from "./linux-step";
import { runWindowsStep } from "./windows-step";

export class InvocationRunner {
  constructor(
    private readonly settings: RunCommandSettings,
    private readonly log: CommandLog,
  ) {}

  async drive(command: Command): Promise<void> {
    await this.log.sleep(this.settings.commandLatencyMs);
    const concurrency = resolveCount(command.maxConcurrency, command.instanceIds.length, 1);
    const maxErrors = resolveCount(command.maxErrors, command.instanceIds.length, 0);
    const running = new Set<Promise<void>>();
    for (const invocation of command.invocations) {
      while (running.size >= concurrency) await Promise.race(running);
      if (TERMINAL.has(invocation.status)) continue; // cancelled before its turn
      if (errorCount(command) > maxErrors || this.log.closed) {
        this.log.finishInvocation(invocation, "Cancelled", "Terminated");
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
      if (this.log.cancelled.has(invocation)) return; // CancelCommand already ended it
      const host = this.settings.directory.find(command.region, invocation.instanceId);
      if (host === undefined || !host.running()) {
        this.log.finishInvocation(invocation, "Failed", "Undeliverable");
        return;
      }
      if (host.ssmAgent() === "online") break;
      if (this.log.closed || this.settings.now() >= deadline) {
        this.log.finishInvocation(invocation, "TimedOut", "Delivery Timed Out");
        return;
      }
      this.log.transition(invocation, "Delayed", "Delayed");
      for (const p of invocation.plugins) Object.assign(p, { status: "Delayed", statusDetails: "Delayed" });
      await this.log.sleep(
        Math.min(this.settings.deliveryRetryMs, Math.max(1, deadline - this.settings.now())),
      );
    }
    const host = this.settings.directory.find(command.region, invocation.instanceId) as InstanceHost;
    this.log.transition(invocation, "InProgress", "InProgress");
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
      if (this.log.cancelled.has(invocation)) {
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
        if (details === "Delivery Timed Out")
          await this.log.sleep(Math.max(0, deadline - this.settings.now()));
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
    this.log.finishInvocation(invocation, outcome.status, outcome.details);
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
    this.log.aborts.add(abort);
    let stoppedBy: "timeout" | "terminated" | "cancelled" | undefined;
    this.log.running.set(invocation, () => {
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
      this.log.aborts.delete(abort);
      this.log.running.delete(invocation);
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
}

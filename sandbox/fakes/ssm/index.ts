/**
 * The Systems Manager Run Command stand-in: one loopback SSM endpoint serving Run Command over the
 * fleet's InstanceDirectory (sandbox/fakes/instances/instance-host.ts) and passing everything else to moto.
 * Point every SSM client (the product's and the simulated instances') at `url`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RegionThrottle, type ThrottleProfile } from "../aws/throttle";
import type { InstanceDirectory } from "../instances/instance-host";
import { pluginOutput } from "./command-views";
import { type CommandDocument, loadCommandDocument } from "./documents";
import type { InvocationRecord, InvocationStatusEvent, MidRunTermination } from "./invocations";
import { createShims } from "./linux-step";
import { RunCommand } from "./run-command";
import { startSsmServer } from "./server";

export type { ThrottleProfile } from "../aws/throttle";
export type { CommandDocument } from "./documents";
export type {
  InvocationRecord,
  InvocationStatus,
  InvocationStatusEvent,
  MidRunTermination,
  PluginRecord,
} from "./invocations";

/** The product's document, registered under its fixed name. */
export const INSTALL_AGENT_TOKEN_DOCUMENT = "BuildkiteAgentTokenRotation-InstallAgentToken";
export const INSTALL_AGENT_TOKEN_DOCUMENT_PATH = new URL(
  "../../../infra/ssm/install-agent-token.yaml",
  import.meta.url,
).pathname;

export function installAgentTokenDocument(): CommandDocument {
  return loadCommandDocument(INSTALL_AGENT_TOKEN_DOCUMENT_PATH, INSTALL_AGENT_TOKEN_DOCUMENT);
}

export interface RunCommandStandInOptions {
  motoUrl: string;
  directory: InstanceDirectory;
  /** Registered command documents (default: the product's InstallAgentToken document). */
  documents?: readonly CommandDocument[];
  /** Delay before invocations show in ListCommandInvocations / GetCommandInvocation (default 500 ms). */
  invocationDelayMs?: number;
  /** Delivery latency to an online instance (default 200 ms). */
  commandLatencyMs?: number;
  /** Sandbox milliseconds per AWS second of TimeoutSeconds and execution timeouts (default 1000). */
  msPerAwsSecond?: number;
  /** How often a Delayed invocation retries delivery (default 100 ms). */
  deliveryRetryMs?: number;
  /** How an invocation ends when its instance terminates mid-run (default "Delivery Timed Out"). */
  midRunTermination?: MidRunTermination;
  /** "bash" (default) runs the Linux step for real; "mirror" runs its TypeScript mirror (fast). */
  linuxStep?: "bash" | "mirror";
  /** Per-region token bucket answering ThrottlingException; off by default. */
  throttle?: ThrottleProfile;
  /** Reshape moto's Secrets Manager reference answers to AWS's (default true; see server.ts). */
  awsShapedSecretReferences?: boolean;
  /** Receives each invocation status change as AWS's EventBridge event (for the sandbox's event bus). */
  onEvent?: (event: InvocationStatusEvent) => void;
  /** Receives every log line too (they never contain a token). */
  log?: (line: string) => void;
  host?: string;
  port?: number;
}

export interface RunCommandStandIn {
  /** The SSM endpoint. */
  url: string;
  close(): Promise<void>;
  /** Every invocation so far, with full (untruncated) plugin output. */
  invocations(): InvocationRecord[];
  /** `instanceId status` of every invocation not in a terminal state yet. */
  unfinished(): string[];
  /** Every plugin's Output text (stdout + stderr) of every invocation: what a token scan reads. */
  outputs(): string[];
  /** The stand-in's own log lines. */
  logs(): string[];
  /** Resolves once every command sent so far has finished on every instance. */
  settled(): Promise<void>;
  /** Requests answered with ThrottlingException so far. */
  throttled(): number;
}

export async function startRunCommandStandIn(options: RunCommandStandInOptions): Promise<RunCommandStandIn> {
  const lines: string[] = [];
  const log = (line: string) => {
    lines.push(line);
    options.log?.(line);
  };
  const shimDirectory = createShims();
  const elsewhereRoot = mkdtempSync(join(tmpdir(), "ssm-standin-elsewhere-"));
  let url = "";
  const runCommand = new RunCommand({
    directory: options.directory,
    documents: options.documents ?? [installAgentTokenDocument()],
    ssmEndpoint: () => url,
    shimDirectory,
    invocationDelayMs: options.invocationDelayMs ?? 500,
    commandLatencyMs: options.commandLatencyMs ?? 200,
    msPerAwsSecond: options.msPerAwsSecond ?? 1000,
    deliveryRetryMs: options.deliveryRetryMs ?? 100,
    midRunTermination: options.midRunTermination ?? "Delivery Timed Out",
    linuxStep: options.linuxStep ?? "bash",
    linuxConfigPath: "/etc/buildkite-agent/buildkite-agent.cfg",
    windowsConfigPath: "C:\\buildkite-agent\\buildkite-agent.cfg",
    elsewhereRoot,
    log,
    onEvent: options.onEvent,
    now: Date.now,
  });
  const throttle = options.throttle ? new RegionThrottle(options.throttle) : undefined;
  const server = await startSsmServer({
    runCommand,
    motoUrl: options.motoUrl,
    throttle,
    awsShapedSecretReferences: options.awsShapedSecretReferences ?? true,
    log,
    host: options.host,
    port: options.port,
  });
  url = server.url;
  return {
    url,
    close: async () => {
      runCommand.close();
      await server.close();
      await runCommand.settled();
      rmSync(shimDirectory, { recursive: true, force: true });
      rmSync(elsewhereRoot, { recursive: true, force: true });
    },
    invocations: () => runCommand.invocations(),
    unfinished: () => runCommand.unfinished(),
    outputs: () => runCommand.invocations().flatMap((i) => i.plugins.map((p) => pluginOutput(p))),
    logs: () => [...lines],
    settled: () => runCommand.settled(),
    throttled: () => throttle?.throttled ?? 0,
  };
}

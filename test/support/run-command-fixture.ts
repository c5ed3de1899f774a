/**
 * The Run Command stand-in with the real SSM client against it, moto behind it, and the product's
 * document executed for real (bash + the AWS CLI) on instances whose cfg files are temp files.
 * `useRunCommandStandIns()` registers a test file's hooks: moto with the agent-token secret, a
 * stand-in (`standIn`) and one scaled hard for the timeouts (`fast`), and, after all, the check that
 * no token reached any output, log line or anything the file printed.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import {
  type CommandInvocation,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, expect } from "vitest";
import { type MotoServer, startMoto } from "../../sandbox/fakes/aws/moto";
import { parseCommandDocument } from "../../sandbox/fakes/ssm/documents";
import {
  INSTALL_AGENT_TOKEN_DOCUMENT,
  type InvocationStatusEvent,
  installAgentTokenDocument,
  type RunCommandStandIn,
  startRunCommandStandIn,
} from "../../sandbox/fakes/ssm/index";
import { captureOutput } from "./capture-output";
import { FakeDirectory, type FakeInstance } from "./fake-instances";

export const REGION = "us-east-1";
export const SECRET = "buildkite/agent-token";
export const PARAMETER = `/aws/reference/secretsmanager/${SECRET}`;
export const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };
const newToken = () => `bkct_${randomUUID().replaceAll("-", "")}`;
export const PREVIOUS = newToken();
export const CURRENT = newToken();
export const FOREIGN = newToken();
export const TOKENS = [PREVIOUS, CURRENT, FOREIGN];
export const sha12 = (t: string) => createHash("sha256").update(t).digest("hex").slice(0, 12);

export const cfgWith = (token: string) =>
  [
    'name="stack-i-abc-%spawn"',
    `token="${token}"`,
    "tags=queue=default,os=linux",
    "endpoint=https://agent-edge.buildkite.com/v3",
    "signing-jwks-file=/etc/buildkite-agent/signing-key.json",
    "",
  ].join("\n");

export const printLotsYaml = [
  'schemaVersion: "2.2"',
  "description: prints 3000 characters, then sleeps if asked",
  "parameters:",
  "  Sleep: { type: String, default: '0', allowedPattern: '^[0-9]+$' }",
  "mainSteps:",
  "  - action: aws:runShellScript",
  "    name: Print",
  "    inputs:",
  "      runCommand:",
  "        - head -c 3000 /dev/zero | tr '\\0' x",
  "        - sleep {{ Sleep }}",
].join("\n");

export const ssm = (url: string, region = REGION, maxAttempts = 3) =>
  new SSMClient({ region, endpoint: url, credentials: CREDENTIALS, maxAttempts });

export async function waitForInvocations(client: SSMClient, commandId: string, count: number) {
  const deadline = Date.now() + 45_000;
  for (;;) {
    const listed = await client.send(
      new ListCommandInvocationsCommand({ CommandId: commandId, Details: true }),
    );
    const all = listed.CommandInvocations ?? [];
    const terminal = all.filter((i) =>
      ["Success", "Failed", "TimedOut", "Cancelled"].includes(i.Status ?? ""),
    );
    if (all.length === count && terminal.length === count) {
      client.destroy();
      return new Map(all.map((i) => [i.InstanceId ?? "", i]));
    }
    if (Date.now() > deadline) throw new Error(`command ${commandId} did not finish: ${JSON.stringify(all)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const linuxOutput = (i: CommandInvocation | undefined) =>
  i?.CommandPlugins?.find((p) => p.Name === "InstallAgentTokenLinux")?.Output ?? "";

export interface RunCommandStandIns {
  readonly moto: MotoServer;
  readonly fleet: FakeDirectory;
  readonly standIn: RunCommandStandIn;
  /** Scaled hard, for the timeouts; its invocation status events go to `events`. */
  readonly fast: RunCommandStandIn;
  /** The secret's AWSCURRENT version id. */
  readonly currentVersion: string;
  readonly events: InvocationStatusEvent[];
  /** Every stand-in the file started (push your own, so afterAll closes and checks it). */
  readonly standIns: RunCommandStandIn[];
  statusesOf(instanceId: string): string[];
  install(
    instances: FakeInstance[],
    options?: { via?: RunCommandStandIn; parameters?: Record<string, string[]>; timeoutSeconds?: number },
  ): Promise<Map<string, CommandInvocation>>;
}

/**
 * `expectOutput` (default true): the file runs invocations, so the token check after all must have
 * outputs to look at; a file that only calls other operations turns it off.
 */
export function useRunCommandStandIns(options: { expectOutput?: boolean } = {}): RunCommandStandIns {
  const output = captureOutput();
  let moto: MotoServer | undefined;
  let fleet: FakeDirectory | undefined;
  let standIn: RunCommandStandIn | undefined;
  let fast: RunCommandStandIn | undefined;
  let currentVersion: string | undefined;
  const events: InvocationStatusEvent[] = [];
  const standIns: RunCommandStandIn[] = [];
  const set = <T>(value: T | undefined, name: string): T => {
    if (value === undefined) throw new Error(`${name} is set up in beforeAll`);
    return value;
  };
  const rc: RunCommandStandIns = {
    get moto() {
      return set(moto, "moto");
    },
    get fleet() {
      return set(fleet, "fleet");
    },
    get standIn() {
      return set(standIn, "standIn");
    },
    get fast() {
      return set(fast, "fast");
    },
    get currentVersion() {
      return set(currentVersion, "currentVersion");
    },
    events,
    standIns,
    statusesOf: (instanceId) =>
      events.filter((e) => e.detail["instance-id"] === instanceId).map((e) => e.detail.status),
    install,
  };

  /** Sends the document to `instances` and polls (bounded) until each invocation is terminal. */
  async function install(
    instances: FakeInstance[],
    options: { via?: RunCommandStandIn; parameters?: Record<string, string[]>; timeoutSeconds?: number } = {},
  ): Promise<Map<string, CommandInvocation>> {
    const client = ssm((options.via ?? rc.standIn).url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
        InstanceIds: instances.map((i) => i.instanceId),
        Parameters: { TokenParameterName: [PARAMETER], ...options.parameters },
        TimeoutSeconds: options.timeoutSeconds ?? 30,
        Comment: "test",
      }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    return waitForInvocations(client, commandId, instances.length);
  }

  beforeAll(async () => {
    moto = await startMoto();
    const sm = new SecretsManagerClient({ region: REGION, endpoint: moto.url, credentials: CREDENTIALS });
    await sm.send(new CreateSecretCommand({ Name: SECRET, SecretString: PREVIOUS }));
    await sm.send(new PutSecretValueCommand({ SecretId: SECRET, SecretString: CURRENT }));
    const described = await sm.send(new DescribeSecretCommand({ SecretId: SECRET }));
    currentVersion =
      Object.entries(described.VersionIdsToStages ?? {}).find(([, s]) => s.includes("AWSCURRENT"))?.[0] ?? "";
    sm.destroy();
    const directory = new FakeDirectory();
    fleet = directory;
    const truncationDocument = parseCommandDocument("Sandbox-PrintLots", printLotsYaml);

    const common = {
      motoUrl: moto.url,
      directory,
      documents: [installAgentTokenDocument(), truncationDocument],
    };
    standIn = await startRunCommandStandIn({
      ...common,
      invocationDelayMs: 300,
      commandLatencyMs: 20,
      msPerAwsSecond: 200,
    });
    // Scaled hard, for the timeouts: TimeoutSeconds 30 + execution 120 → 1.5 s.
    fast = await startRunCommandStandIn({
      ...common,
      invocationDelayMs: 50,
      commandLatencyMs: 10,
      msPerAwsSecond: 10,
      deliveryRetryMs: 20,
      midRunTermination: "Terminated",
      onEvent: (event) => events.push(event),
    });
    standIns.push(standIn, fast);
  });

  afterAll(async () => {
    output.restore();
    for (const s of standIns) await s.close();
    await moto?.stop();
    fleet?.cleanup();
    // No token in any invocation's output, any stand-in log line, or anything this suite printed.
    const everything = [...standIns.flatMap((s) => [...s.outputs(), ...s.logs()]), output.text()].join("\n");
    if (options.expectOutput ?? true) expect(standIns.flatMap((s) => s.outputs()).length).toBeGreaterThan(0);
    for (const t of TOKENS) expect(everything).not.toContain(t);
  });
  return rc;
}

import { createHash, randomUUID } from "node:crypto";
import { chmodSync, chownSync, readdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { dirname } from "node:path";
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import {
  CancelCommandCommand,
  type CommandInvocation,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  PutParameterCommand,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MotoServer, startMoto } from "../../../../../sandbox/fakes/aws/moto";
import { parseCommandDocument } from "../../../../../sandbox/fakes/ssm/documents";
import {
  INSTALL_AGENT_TOKEN_DOCUMENT,
  type InvocationStatusEvent,
  installAgentTokenDocument,
  type RunCommandStandIn,
  startRunCommandStandIn,
} from "../../../../../sandbox/fakes/ssm/index";
import { parseInstallResult } from "../../../../../shared/rollout/install-result";
import { captureOutput } from "../../../../support/capture-output";
import { FakeDirectory, type FakeInstance } from "../../../../support/fake-instances";

/**
 * The Run Command stand-in with the real SSM client against it, moto behind it, and the product's
 * document executed for real (bash + the AWS CLI) on instances whose cfg files are temp files.
 */
const REGION = "us-east-1";
const SECRET = "buildkite/agent-token";
const PARAMETER = `/aws/reference/secretsmanager/${SECRET}`;
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };
const newToken = () => `bkct_${randomUUID().replaceAll("-", "")}`;
const PREVIOUS = newToken();
const CURRENT = newToken();
const FOREIGN = newToken();
const TOKENS = [PREVIOUS, CURRENT, FOREIGN];
const sha12 = (t: string) => createHash("sha256").update(t).digest("hex").slice(0, 12);

const cfgWith = (token: string) =>
  [
    'name="stack-i-abc-%spawn"',
    `token="${token}"`,
    "tags=queue=default,os=linux",
    "endpoint=https://agent-edge.buildkite.com/v3",
    "signing-jwks-file=/etc/buildkite-agent/signing-key.json",
    "",
  ].join("\n");

const printLotsYaml = [
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

let moto: MotoServer;
let fleet: FakeDirectory;
let standIn: RunCommandStandIn;
let fast: RunCommandStandIn;
let currentVersion: string;
const output = captureOutput();
const standIns: RunCommandStandIn[] = [];
const events: InvocationStatusEvent[] = [];
const statusesOf = (instanceId: string) =>
  events.filter((e) => e.detail["instance-id"] === instanceId).map((e) => e.detail.status);

const ssm = (url: string, region = REGION, maxAttempts = 3) =>
  new SSMClient({ region, endpoint: url, credentials: CREDENTIALS, maxAttempts });

beforeAll(async () => {
  moto = await startMoto();
  const sm = new SecretsManagerClient({ region: REGION, endpoint: moto.url, credentials: CREDENTIALS });
  await sm.send(new CreateSecretCommand({ Name: SECRET, SecretString: PREVIOUS }));
  await sm.send(new PutSecretValueCommand({ SecretId: SECRET, SecretString: CURRENT }));
  const described = await sm.send(new DescribeSecretCommand({ SecretId: SECRET }));
  currentVersion =
    Object.entries(described.VersionIdsToStages ?? {}).find(([, s]) => s.includes("AWSCURRENT"))?.[0] ?? "";
  sm.destroy();
  fleet = new FakeDirectory();
  const truncationDocument = parseCommandDocument("Sandbox-PrintLots", printLotsYaml);

  standIn = await startRunCommandStandIn({
    motoUrl: moto.url,
    directory: fleet,
    documents: [installAgentTokenDocument(), truncationDocument],
    invocationDelayMs: 300,
    commandLatencyMs: 20,
    msPerAwsSecond: 200,
  });
  // Scaled hard, for the timeouts: TimeoutSeconds 30 + execution 120 → 1.5 s.
  fast = await startRunCommandStandIn({
    motoUrl: moto.url,
    directory: fleet,
    documents: [installAgentTokenDocument(), truncationDocument],
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
  expect(standIns.flatMap((s) => s.outputs()).length).toBeGreaterThan(0);
  for (const t of TOKENS) expect(everything).not.toContain(t);
});

/** Sends the document to `instances` and polls (bounded) until each invocation is terminal. */
async function install(
  instances: FakeInstance[],
  options: { via?: RunCommandStandIn; parameters?: Record<string, string[]>; timeoutSeconds?: number } = {},
): Promise<Map<string, CommandInvocation>> {
  const client = ssm((options.via ?? standIn).url);
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

async function waitForInvocations(client: SSMClient, commandId: string, count: number) {
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

const linuxOutput = (i: CommandInvocation | undefined) =>
  i?.CommandPlugins?.find((p) => p.Name === "InstallAgentTokenLinux")?.Output ?? "";

describe("the Linux step, run for real", () => {
  it("installs AWSCURRENT over AWSPREVIOUS's token: only the token line changes; owner and mode stay", async () => {
    const host = fleet.add({ cfg: cfgWith(PREVIOUS) });
    chownSync(host.configPath, 1234, 2345);
    chmodSync(host.configPath, 0o640);
    const before = statSync(host.configPath);
    const invocation = (await install([host])).get(host.instanceId);
    expect(invocation?.Status).toBe("Success");
    expect(invocation?.StatusDetails).toBe("Success");
    const plugins = invocation?.CommandPlugins ?? [];
    expect(plugins.map((p) => [p.Name, p.Status])).toEqual([
      ["InstallAgentTokenLinux", "Success"],
      ["InstallAgentTokenWindows", "Success"],
    ]);
    expect(plugins[1]?.Output).toContain("Step execution skipped due to unsatisfied preconditions");
    expect(linuxOutput(invocation)).toBe(
      `buildkite-agent-token-rotation result=installed version=${currentVersion} sha256=${sha12(CURRENT)} reason=replaced-AWSPREVIOUS\n`,
    );
    expect(parseInstallResult(linuxOutput(invocation))).toEqual({
      result: "installed",
      version: currentVersion,
      sha256Prefix: sha12(CURRENT),
      reason: "replaced-AWSPREVIOUS",
    });
    expect(readFileSync(host.configPath, "utf8")).toBe(cfgWith(CURRENT));
    const after = statSync(host.configPath);
    expect([after.uid, after.gid, after.mode & 0o7777]).toEqual([1234, 2345, 0o640]);
    expect(after.ino).not.toBe(before.ino); // renamed into place, not rewritten in place
    // Nothing left beside the cfg.
    expect(readdirSync(dirname(host.configPath))).toEqual(["buildkite-agent.cfg"]);
  });

  it("leaves a cfg that already holds AWSCURRENT's token alone (unchanged)", async () => {
    const host = fleet.add({ cfg: cfgWith(CURRENT) });
    const before = statSync(host.configPath);
    const invocation = (await install([host])).get(host.instanceId);
    expect(invocation?.Status).toBe("Success");
    expect(parseInstallResult(linuxOutput(invocation))).toMatchObject({
      result: "unchanged",
      version: currentVersion,
      sha256Prefix: sha12(CURRENT),
    });
    expect(statSync(host.configPath).ino).toBe(before.ino);
    expect(statSync(host.configPath).mtimeMs).toBe(before.mtimeMs);
  });

  it("refuses to touch a token this secret never held (foreign-token, exit 1, Failed)", async () => {
    const host = fleet.add({ cfg: cfgWith(FOREIGN) });
    const invocation = (await install([host])).get(host.instanceId);
    expect(invocation?.Status).toBe("Failed");
    expect(invocation?.StatusDetails).toBe("Failed");
    expect(invocation?.CommandPlugins?.map((p) => [p.Name, p.Status, p.ResponseCode])).toEqual([
      ["InstallAgentTokenLinux", "Failed", 1],
      ["InstallAgentTokenWindows", "Success", 0], // skipped
    ]);
    expect(parseInstallResult(linuxOutput(invocation))).toMatchObject({
      result: "foreign-token",
      version: currentVersion,
      sha256Prefix: sha12(FOREIGN),
    });
    expect(readFileSync(host.configPath, "utf8")).toBe(cfgWith(FOREIGN));
  });

  it("refuses a cfg that is a symlink, missing, or has no single token line", async () => {
    const target = fleet.add({ cfg: cfgWith(PREVIOUS) });
    const linked = fleet.add();
    symlinkSync(target.configPath, linked.configPath);
    const missing = fleet.add();
    const noToken = fleet.add({ cfg: 'name="x"\n' });
    const results = await install([linked, missing, noToken]);
    const reasons = [linked, missing, noToken].map((h) => {
      const i = results.get(h.instanceId);
      return [
        i?.Status,
        parseInstallResult(linuxOutput(i))?.result,
        parseInstallResult(linuxOutput(i))?.reason,
      ];
    });
    expect(reasons).toEqual([
      ["Failed", "refused", "cfg-is-a-symlink"],
      ["Failed", "refused", "cfg-missing"],
      ["Failed", "refused", "cfg-has-0-token-lines"],
    ]);
    expect(readFileSync(target.configPath, "utf8")).toBe(cfgWith(PREVIOUS));
  });

  it("reports boot-in-progress and changes nothing until user data and the agent service are done", async () => {
    const host = fleet.add({ cfg: cfgWith(PREVIOUS) });
    host.booted = false;
    const invocation = (await install([host])).get(host.instanceId);
    expect(invocation?.Status).toBe("Success");
    expect(parseInstallResult(linuxOutput(invocation))).toEqual({
      result: "boot-in-progress",
      version: undefined,
      sha256Prefix: undefined,
      reason: "cloud-init-running",
    });
    expect(readFileSync(host.configPath, "utf8")).toBe(cfgWith(PREVIOUS));
    host.booted = true;
    const again = (await install([host])).get(host.instanceId);
    expect(parseInstallResult(linuxOutput(again))?.result).toBe("installed");
  });

  it("reads the token in the instance's own region", async () => {
    const sm = new SecretsManagerClient({
      region: "eu-west-1",
      endpoint: moto.url,
      credentials: CREDENTIALS,
    });
    await sm.send(new CreateSecretCommand({ Name: SECRET, SecretString: FOREIGN }));
    sm.destroy();
    // In eu-west-1 this secret has no AWSPREVIOUS: the cfg's PREVIOUS token is foreign there.
    const host = fleet.add({ region: "eu-west-1", cfg: cfgWith(PREVIOUS) });
    const client = ssm(standIn.url, "eu-west-1");
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
        InstanceIds: [host.instanceId],
        Parameters: { TokenParameterName: [PARAMETER] },
      }),
    );
    const invocation = (await waitForInvocations(client, sent.Command?.CommandId ?? "", 1)).get(
      host.instanceId,
    );
    expect(parseInstallResult(linuxOutput(invocation))?.result).toBe("foreign-token");
    // The us-east-1 view of the stand-in does not see the eu-west-1 command.
    const east = ssm(standIn.url);
    await expect(
      east.send(new ListCommandsCommand({ CommandId: sent.Command?.CommandId })),
    ).rejects.toMatchObject({
      name: "InvalidCommandId",
    });
    east.destroy();
  });
});

describe("the Linux step's TypeScript mirror (linuxStep: mirror)", () => {
  it("prints what bash prints, and rewrites the cfg the same way", async () => {
    const mirror = await startRunCommandStandIn({
      motoUrl: moto.url,
      directory: fleet,
      invocationDelayMs: 10,
      commandLatencyMs: 10,
      linuxStep: "mirror",
    });
    standIns.push(mirror);
    const scenario = () => {
      const previous = fleet.add({ cfg: cfgWith(PREVIOUS) });
      chownSync(previous.configPath, 4321, 5432);
      chmodSync(previous.configPath, 0o604);
      const current = fleet.add({ cfg: cfgWith(CURRENT) });
      const foreign = fleet.add({ cfg: cfgWith(FOREIGN) });
      const booting = fleet.add({ cfg: cfgWith(PREVIOUS) });
      booting.booted = false;
      const missing = fleet.add();
      return [previous, current, foreign, booting, missing];
    };
    const viaBash = scenario();
    const viaMirror = scenario();
    const bash = await install(viaBash);
    const mirrored = await install(viaMirror, { via: mirror });
    const lines = (hosts: FakeInstance[], results: Map<string, CommandInvocation>) =>
      hosts.map((h) => [results.get(h.instanceId)?.Status, linuxOutput(results.get(h.instanceId))]);
    expect(lines(viaMirror, mirrored)).toEqual(lines(viaBash, bash));
    expect(lines(viaMirror, mirrored).map(([, l]) => parseInstallResult(l ?? "")?.result)).toEqual([
      "installed",
      "unchanged",
      "foreign-token",
      "boot-in-progress",
      "refused",
    ]);
    for (const [a, b] of viaBash.map((h, i) => [h, viaMirror[i]] as const)) {
      if (!b || a.instanceId === viaBash[4]?.instanceId) continue;
      expect(readFileSync(b.configPath, "utf8")).toBe(readFileSync(a.configPath, "utf8"));
      const [sa, sb] = [statSync(a.configPath), statSync(b.configPath)];
      expect([sb.uid, sb.gid, sb.mode]).toEqual([sa.uid, sa.gid, sa.mode]);
    }
  });
});

describe("the Windows step (TypeScript mirror)", () => {
  it("installs over AWSPREVIOUS keeping CRLF, the encoding and the mode", async () => {
    const crlf = cfgWith(PREVIOUS).replaceAll("\n", "\r\n");
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const host = fleet.add({ platform: "Windows", cfg: Buffer.concat([bom, Buffer.from(crlf, "utf8")]) });
    chmodSync(host.configPath, 0o600);
    const invocation = (await install([host])).get(host.instanceId);
    expect(invocation?.Status).toBe("Success");
    const windows = invocation?.CommandPlugins?.find((p) => p.Name === "InstallAgentTokenWindows");
    expect(parseInstallResult(windows?.Output ?? "")).toMatchObject({
      result: "installed",
      version: currentVersion,
    });
    expect(invocation?.CommandPlugins?.[0]?.Output).toContain("skipped");
    const bytes = readFileSync(host.configPath);
    expect(bytes.subarray(0, 3)).toEqual(bom);
    expect(bytes.subarray(3).toString("utf8")).toBe(cfgWith(CURRENT).replaceAll("\n", "\r\n"));
    expect(statSync(host.configPath).mode & 0o7777).toBe(0o600);
  });

  it("leaves a foreign token alone and waits for the agent service", async () => {
    const foreign = fleet.add({ platform: "Windows", cfg: cfgWith(FOREIGN).replaceAll("\n", "\r\n") });
    const booting = fleet.add({ platform: "Windows", cfg: cfgWith(PREVIOUS).replaceAll("\n", "\r\n") });
    booting.booted = false;
    const results = await install([foreign, booting]);
    const windows = (h: FakeInstance) =>
      parseInstallResult(
        results.get(h.instanceId)?.CommandPlugins?.find((p) => p.Name === "InstallAgentTokenWindows")
          ?.Output ?? "",
      )?.result;
    expect([windows(foreign), windows(booting)]).toEqual(["foreign-token", "boot-in-progress"]);
    expect(results.get(foreign.instanceId)?.Status).toBe("Failed");
    expect(readFileSync(foreign.configPath, "utf8")).toBe(cfgWith(FOREIGN).replaceAll("\n", "\r\n"));
    expect(readFileSync(booting.configPath, "utf8")).toBe(cfgWith(PREVIOUS).replaceAll("\n", "\r\n"));
  });
});

describe("Run Command as the API reports it", () => {
  it("fails the whole SendCommand with InvalidInstanceId for an unregistered or terminated instance", async () => {
    const good = fleet.add({ cfg: cfgWith(PREVIOUS) });
    const unregistered = fleet.add({ cfg: cfgWith(PREVIOUS) });
    unregistered.agent = "unregistered";
    const gone = fleet.add({ cfg: cfgWith(PREVIOUS) });
    gone.isRunning = false;
    const client = ssm(standIn.url);
    const before = standIn.invocations().length;
    for (const bad of [unregistered, gone, { instanceId: "i-0000000000000dead" }]) {
      await expect(
        client.send(
          new SendCommandCommand({
            DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
            InstanceIds: [good.instanceId, bad.instanceId],
            Parameters: { TokenParameterName: [PARAMETER] },
          }),
        ),
      ).rejects.toMatchObject({ name: "InvalidInstanceId", $metadata: { httpStatusCode: 400 } });
    }
    expect(standIn.invocations().length).toBe(before);
    expect(readFileSync(good.configPath, "utf8")).toBe(cfgWith(PREVIOUS));
    // DescribeInstanceInformation does not list the unregistered one.
    const info = await client.send(
      new DescribeInstanceInformationCommand({
        Filters: [{ Key: "InstanceIds", Values: [good.instanceId, unregistered.instanceId] }],
      }),
    );
    expect(info.InstanceInformationList?.map((i) => [i.InstanceId, i.PingStatus, i.PlatformType])).toEqual([
      [good.instanceId, "Online", "Linux"],
    ]);
    client.destroy();
  });

  it("validates documents, parameters and limits", async () => {
    const host = fleet.add({ cfg: cfgWith(PREVIOUS) });
    const client = ssm(standIn.url);
    const send = (input: Partial<ConstructorParameters<typeof SendCommandCommand>[0]>) =>
      client.send(
        new SendCommandCommand({
          DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
          InstanceIds: [host.instanceId],
          Parameters: { TokenParameterName: [PARAMETER] },
          ...input,
        }),
      );
    await expect(send({ DocumentName: "AWS-RunShellScript" })).rejects.toMatchObject({
      name: "InvalidDocument",
    });
    await expect(send({ Parameters: {} })).rejects.toMatchObject({ name: "InvalidParameters" });
    await expect(
      send({ Parameters: { TokenParameterName: ["/buildkite/agent-token"] } }),
    ).rejects.toMatchObject({
      name: "InvalidParameters",
    });
    await expect(
      send({ Parameters: { TokenParameterName: [PARAMETER], Bogus: ["x"] } }),
    ).rejects.toMatchObject({
      name: "InvalidParameters",
    });
    await expect(
      send({ Parameters: { TokenParameterName: [PARAMETER], LinuxConfigPath: ["/etc/x.cfg; rm -rf /"] } }),
    ).rejects.toMatchObject({ name: "InvalidParameters" });
    const many = Array.from({ length: 51 }, () => fleet.add().instanceId);
    await expect(send({ InstanceIds: many })).rejects.toMatchObject({ name: "ValidationException" });
    await expect(send({ InstanceIds: [host.instanceId, host.instanceId] })).rejects.toMatchObject({
      name: "DuplicateInstanceId",
    });
    await expect(send({ TimeoutSeconds: 10 })).rejects.toMatchObject({ name: "ValidationException" });
    await expect(send({ MaxConcurrency: "0" })).rejects.toMatchObject({ name: "ValidationException" });
    await expect(send({ MaxErrors: "-1" })).rejects.toMatchObject({ name: "ValidationException" });
    expect(readFileSync(host.configPath, "utf8")).toBe(cfgWith(PREVIOUS));
    client.destroy();
  });

  it("shows invocations only after a delay (InvocationDoesNotExist until then)", async () => {
    const host = fleet.add({ cfg: cfgWith(CURRENT) });
    const client = ssm(standIn.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
        InstanceIds: [host.instanceId],
        Parameters: { TokenParameterName: [PARAMETER] },
      }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    expect(sent.Command).toMatchObject({
      Status: "Pending",
      TargetCount: 1,
      MaxConcurrency: "50",
      MaxErrors: "0",
    });
    const early = await client.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
    expect(early.CommandInvocations).toEqual([]);
    await expect(
      client.send(
        new GetCommandInvocationCommand({
          CommandId: commandId,
          InstanceId: host.instanceId,
          PluginName: "InstallAgentTokenLinux",
        }),
      ),
    ).rejects.toMatchObject({ name: "InvocationDoesNotExist" });
    await waitForInvocations(ssm(standIn.url), commandId, 1);
    // Two steps: GetCommandInvocation needs the step name.
    await expect(
      client.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: host.instanceId })),
    ).rejects.toMatchObject({ name: "InvalidPluginName" });
    const got = await client.send(
      new GetCommandInvocationCommand({
        CommandId: commandId,
        InstanceId: host.instanceId,
        PluginName: "InstallAgentTokenLinux",
      }),
    );
    expect(got).toMatchObject({ Status: "Success", StatusDetails: "Success", ResponseCode: 0 });
    expect(parseInstallResult(got.StandardOutputContent ?? "")?.result).toBe("unchanged");
    const listed = await client.send(new ListCommandsCommand({ CommandId: commandId }));
    expect(listed.Commands?.[0]).toMatchObject({ Status: "Success", CompletedCount: 1, ErrorCount: 0 });
    client.destroy();
  });

  it("truncates plugin Output to 2500 characters in ListCommandInvocations, not in GetCommandInvocation", async () => {
    const host = fleet.add();
    const client = ssm(standIn.url);
    const sent = await client.send(
      new SendCommandCommand({ DocumentName: "Sandbox-PrintLots", InstanceIds: [host.instanceId] }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    const invocation = (await waitForInvocations(ssm(standIn.url), commandId, 1)).get(host.instanceId);
    expect(invocation?.CommandPlugins?.[0]?.Output).toBe("x".repeat(2500));
    const got = await client.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: host.instanceId }),
    );
    expect(got.StandardOutputContent).toBe("x".repeat(3000));
    client.destroy();
  });

  it("pages ListCommandInvocations, ListCommands and DescribeInstanceInformation within their limits", async () => {
    const region = "ap-southeast-2";
    const hosts = Array.from({ length: 7 }, () => fleet.add({ region }));
    const client = ssm(standIn.url, region);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: "Sandbox-PrintLots",
        InstanceIds: hosts.slice(0, 5).map((h) => h.instanceId),
      }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    await waitForInvocations(ssm(standIn.url, region), commandId, 5);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await client.send(
        new ListCommandInvocationsCommand({ CommandId: commandId, MaxResults: 2, NextToken: token }),
      );
      seen.push(...(page.CommandInvocations ?? []).map((i) => i.InstanceId ?? ""));
      token = page.NextToken;
      pages++;
    } while (token !== undefined && pages < 10);
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual(
      hosts
        .slice(0, 5)
        .map((h) => h.instanceId)
        .sort(),
    );
    await expect(client.send(new ListCommandInvocationsCommand({ MaxResults: 51 }))).rejects.toMatchObject({
      name: "ValidationException",
    });
    await expect(
      client.send(new ListCommandInvocationsCommand({ NextToken: "bogus" })),
    ).rejects.toMatchObject({
      name: "InvalidNextToken",
    });

    await client.send(
      new SendCommandCommand({
        DocumentName: "Sandbox-PrintLots",
        InstanceIds: [hosts[5]?.instanceId ?? ""],
      }),
    );
    const byDocument = await client.send(
      new ListCommandsCommand({
        Filters: [{ key: "DocumentName", value: "Sandbox-PrintLots" }],
        MaxResults: 1,
      }),
    );
    expect(byDocument.Commands).toHaveLength(1);
    expect(byDocument.NextToken).toBeDefined();
    const none = await client.send(
      new ListCommandsCommand({ Filters: [{ key: "DocumentName", value: INSTALL_AGENT_TOKEN_DOCUMENT }] }),
    );
    expect(none.Commands).toEqual([]);
    const succeeded = await client.send(
      new ListCommandsCommand({
        Filters: [
          { key: "Status", value: "Success" },
          { key: "DocumentName", value: "Sandbox-PrintLots" },
        ],
      }),
    );
    expect(succeeded.Commands?.map((c) => c.CommandId)).toContain(commandId);
    const oneInstance = await client.send(
      new ListCommandInvocationsCommand({ InstanceId: hosts[1]?.instanceId, Details: true }),
    );
    expect(oneInstance.CommandInvocations?.map((i) => [i.CommandId, i.InstanceId])).toEqual([
      [commandId, hosts[1]?.instanceId],
    ]);
    const later = await client.send(
      new ListCommandsCommand({
        Filters: [{ key: "InvokedAfter", value: new Date(Date.now() + 60_000).toISOString() }],
      }),
    );
    expect(later.Commands).toEqual([]);
    await expect(
      client.send(new ListCommandsCommand({ Filters: [{ key: "Nope", value: "x" }] as never })),
    ).rejects.toMatchObject({
      name: "InvalidFilterKey",
    });

    const lost = hosts[6];
    if (lost) lost.agent = "connection-lost";
    const ids: string[] = [];
    let infoToken: string | undefined;
    do {
      const page = await client.send(
        new DescribeInstanceInformationCommand({ MaxResults: 5, NextToken: infoToken }),
      );
      ids.push(...(page.InstanceInformationList ?? []).map((i) => `${i.InstanceId}:${i.PingStatus}`));
      infoToken = page.NextToken;
    } while (infoToken !== undefined);
    expect(ids).toHaveLength(7);
    expect(ids).toContain(`${hosts[6]?.instanceId}:ConnectionLost`);
    const online = await client.send(
      new DescribeInstanceInformationCommand({
        Filters: [{ Key: "PingStatus", Values: ["Online"] }],
        MaxResults: 50,
      }),
    );
    expect(online.InstanceInformationList).toHaveLength(6);
    const windowsHost = fleet.add({ region, platform: "Windows" });
    const legacy = await client.send(
      new DescribeInstanceInformationCommand({
        InstanceInformationFilterList: [
          { key: "InstanceIds", valueSet: [windowsHost.instanceId, hosts[0]?.instanceId ?? ""] },
          { key: "PlatformTypes", valueSet: ["Windows"] },
        ],
      }),
    );
    expect(legacy.InstanceInformationList?.map((i) => [i.InstanceId, i.PlatformType, i.PingStatus])).toEqual([
      [windowsHost.instanceId, "Windows", "Online"],
    ]);
    await expect(
      client.send(
        new DescribeInstanceInformationCommand({
          InstanceInformationFilterList: [{ key: "PingStatus", valueSet: ["Online"] }],
          Filters: [{ Key: "PingStatus", Values: ["Online"] }],
        }),
      ),
    ).rejects.toMatchObject({ name: "InvalidFilter" });
    await expect(
      client.send(new DescribeInstanceInformationCommand({ MaxResults: 4 })),
    ).rejects.toMatchObject({
      name: "ValidationException",
    });
    await standIn.settled();
    client.destroy();
  });

  it("ends a connection-lost instance's invocation Delivery Timed Out after the (scaled) total timeout", async () => {
    const lost = fleet.add({ cfg: cfgWith(PREVIOUS) });
    lost.agent = "connection-lost";
    const client = ssm(fast.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
        InstanceIds: [lost.instanceId],
        Parameters: { TokenParameterName: [PARAMETER] },
        TimeoutSeconds: 30,
      }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    await new Promise((r) => setTimeout(r, 300));
    const midway = await client.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
    expect(midway.CommandInvocations?.[0]).toMatchObject({ Status: "Delayed", StatusDetails: "Delayed" });
    const invocation = (await waitForInvocations(ssm(fast.url), commandId, 1)).get(lost.instanceId);
    expect(invocation).toMatchObject({ Status: "TimedOut", StatusDetails: "Delivery Timed Out" });
    const command = (await client.send(new ListCommandsCommand({ CommandId: commandId }))).Commands?.[0];
    expect(command).toMatchObject({ Status: "TimedOut", DeliveryTimedOutCount: 1, ErrorCount: 0 });
    expect(statusesOf(lost.instanceId)).toEqual(["Delayed", "TimedOut"]);
    expect(events.find((e) => e.detail["instance-id"] === lost.instanceId)).toMatchObject({
      "detail-type": "EC2 Command Invocation Status-change Notification",
      source: "aws.ssm",
      region: REGION,
      detail: { "command-id": commandId, "document-name": INSTALL_AGENT_TOKEN_DOCUMENT },
    });
    expect(readFileSync(lost.configPath, "utf8")).toBe(cfgWith(PREVIOUS));
    client.destroy();
  });

  it("delivers to a connection-lost instance that comes back before the timeout", async () => {
    const flaky = fleet.add({ cfg: cfgWith(PREVIOUS) });
    flaky.agent = "connection-lost";
    setTimeout(() => {
      flaky.agent = "online";
    }, 300);
    const invocation = (await install([flaky], { timeoutSeconds: 600 })).get(flaky.instanceId);
    expect(invocation?.Status).toBe("Success");
    expect(readFileSync(flaky.configPath, "utf8")).toBe(cfgWith(CURRENT));
  });

  it("ends an invocation whose instance terminates mid-run as configured, and one whose instance is gone Undeliverable", async () => {
    const doomed = fleet.add();
    const vanishing = fleet.add();
    vanishing.agent = "connection-lost";
    const client = ssm(fast.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: "Sandbox-PrintLots",
        InstanceIds: [doomed.instanceId, vanishing.instanceId],
        Parameters: { Sleep: ["30"] },
        TimeoutSeconds: 600,
      }),
    );
    await new Promise((r) => setTimeout(r, 400));
    doomed.isRunning = false;
    vanishing.isRunning = false;
    const results = await waitForInvocations(ssm(fast.url), sent.Command?.CommandId ?? "", 2);
    expect(results.get(doomed.instanceId)).toMatchObject({
      Status: "Cancelled",
      StatusDetails: "Terminated",
    });
    expect(results.get(vanishing.instanceId)).toMatchObject({
      Status: "Failed",
      StatusDetails: "Undeliverable",
    });
    client.destroy();
  });

  it("by default ends a mid-run termination Delivery Timed Out at the total timeout, and a slow step Execution Timed Out", async () => {
    // One AWS second = 1 ms: TimeoutSeconds 30 + the step's default execution timeout 3600 → 3.63 s.
    const literal = await startRunCommandStandIn({
      motoUrl: moto.url,
      directory: fleet,
      documents: [parseCommandDocument("Sandbox-PrintLots", printLotsYaml)],
      invocationDelayMs: 10,
      commandLatencyMs: 10,
      msPerAwsSecond: 1,
      deliveryRetryMs: 10,
    });
    standIns.push(literal);
    const doomed = fleet.add();
    const slow = fleet.add();
    const client = ssm(literal.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: "Sandbox-PrintLots",
        InstanceIds: [doomed.instanceId, slow.instanceId],
        Parameters: { Sleep: ["30"] },
        TimeoutSeconds: 30,
      }),
    );
    await new Promise((r) => setTimeout(r, 500));
    doomed.isRunning = false;
    const midway = await client.send(
      new ListCommandInvocationsCommand({ CommandId: sent.Command?.CommandId }),
    );
    expect(midway.CommandInvocations?.map((i) => i.Status)).toEqual(["InProgress", "InProgress"]);
    const results = await waitForInvocations(ssm(literal.url), sent.Command?.CommandId ?? "", 2);
    expect(results.get(doomed.instanceId)).toMatchObject({
      Status: "TimedOut",
      StatusDetails: "Delivery Timed Out",
    });
    expect(results.get(slow.instanceId)).toMatchObject({
      Status: "TimedOut",
      StatusDetails: "Execution Timed Out",
    });
    client.destroy();
  });

  it("cancels: a queued invocation at once, a running one through Cancelling", async () => {
    const busy = fleet.add();
    const lost = fleet.add();
    lost.agent = "connection-lost";
    const client = ssm(standIn.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: "Sandbox-PrintLots",
        InstanceIds: [busy.instanceId, lost.instanceId],
        Parameters: { Sleep: ["30"] },
      }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    const started = Date.now();
    for (;;) {
      const page = await client.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
      if (page.CommandInvocations?.find((i) => i.InstanceId === busy.instanceId)?.Status === "InProgress")
        break;
      if (Date.now() - started > 10_000) throw new Error("never started");
      await new Promise((r) => setTimeout(r, 50));
    }
    await expect(client.send(new CancelCommandCommand({ CommandId: randomUUID() }))).rejects.toMatchObject({
      name: "InvalidCommandId",
    });
    await expect(
      client.send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: ["i-0000000000000beef"] })),
    ).rejects.toMatchObject({ name: "InvalidInstanceId" });
    await client.send(new CancelCommandCommand({ CommandId: commandId }));
    const results = await waitForInvocations(ssm(standIn.url), commandId, 2);
    expect(Date.now() - started).toBeLessThan(20_000); // the 30 s sleep was stopped
    expect(results.get(busy.instanceId)).toMatchObject({ Status: "Cancelled", StatusDetails: "Cancelled" });
    expect(results.get(lost.instanceId)).toMatchObject({ Status: "Cancelled", StatusDetails: "Cancelled" });
    const command = (await client.send(new ListCommandsCommand({ CommandId: commandId }))).Commands?.[0];
    expect(command).toMatchObject({ Status: "Cancelled" });
    client.destroy();
  });

  it("stops starting invocations once MaxErrors is exceeded (Terminated), one at a time with MaxConcurrency 1", async () => {
    const hosts = [fleet.add({ cfg: cfgWith(FOREIGN) }), fleet.add({ cfg: cfgWith(PREVIOUS) })];
    const client = ssm(standIn.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
        InstanceIds: hosts.map((h) => h.instanceId),
        Parameters: { TokenParameterName: [PARAMETER] },
        MaxConcurrency: "1",
        MaxErrors: "0",
      }),
    );
    const results = await waitForInvocations(ssm(standIn.url), sent.Command?.CommandId ?? "", 2);
    expect(results.get(hosts[0]?.instanceId ?? "")).toMatchObject({
      Status: "Failed",
      StatusDetails: "Failed",
    });
    expect(results.get(hosts[1]?.instanceId ?? "")).toMatchObject({
      Status: "Cancelled",
      StatusDetails: "Terminated",
    });
    expect(readFileSync(hosts[1]?.configPath ?? "", "utf8")).toBe(cfgWith(PREVIOUS));
    const command = (await client.send(new ListCommandsCommand({ CommandId: sent.Command?.CommandId })))
      .Commands?.[0];
    expect(command).toMatchObject({ Status: "Failed", ErrorCount: 1 });
    client.destroy();
  });
});

describe("the one SSM endpoint", () => {
  it("passes Parameter Store to moto, with Secrets Manager references shaped as AWS returns them", async () => {
    const client = ssm(standIn.url);
    await client.send(new PutParameterCommand({ Name: "/sandbox/plain", Value: "hello", Type: "String" }));
    const plain = await client.send(new GetParameterCommand({ Name: "/sandbox/plain" }));
    expect(plain.Parameter).toMatchObject({ Name: "/sandbox/plain", Value: "hello", Type: "String" });
    await expect(client.send(new GetParameterCommand({ Name: "/sandbox/absent" }))).rejects.toMatchObject({
      name: "ParameterNotFound",
    });
    const reference = await client.send(
      new GetParameterCommand({ Name: `${PARAMETER}:AWSCURRENT`, WithDecryption: true }),
    );
    expect(reference.Parameter?.Name).toBe(PARAMETER);
    expect(reference.Parameter?.Selector).toBe(":AWSCURRENT");
    const source = JSON.parse(reference.Parameter?.SourceResult ?? "{}") as Record<string, unknown>;
    expect(source).toMatchObject({ Name: SECRET, VersionId: currentVersion, VersionStages: ["AWSCURRENT"] });
    const previous = await client.send(
      new GetParameterCommand({ Name: `${PARAMETER}:AWSPREVIOUS`, WithDecryption: true }),
    );
    expect(JSON.parse(previous.Parameter?.SourceResult ?? "{}")).toMatchObject({
      VersionStages: ["AWSPREVIOUS"],
    });
    expect(previous.Parameter?.Value === PREVIOUS).toBe(true);
    client.destroy();
  });

  it("throttles per region with a token bucket when a profile is set", async () => {
    const throttled = await startRunCommandStandIn({
      motoUrl: moto.url,
      directory: fleet,
      throttle: { ratePerSecond: 0.5, burst: 2 },
    });
    standIns.push(throttled);
    const client = ssm(throttled.url, REGION, 1);
    await client.send(new DescribeInstanceInformationCommand({}));
    await client.send(new DescribeInstanceInformationCommand({}));
    await expect(client.send(new DescribeInstanceInformationCommand({}))).rejects.toMatchObject({
      name: "ThrottlingException",
      message: "Rate exceeded",
    });
    // Another region has its own bucket.
    const west = ssm(throttled.url, "us-west-2", 1);
    await west.send(new DescribeInstanceInformationCommand({}));
    expect(throttled.throttled()).toBe(1);
    client.destroy();
    west.destroy();
  });
});

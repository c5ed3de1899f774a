/**
 * The Windows step of BuildkiteAgentTokenRotation-InstallAgentToken (InstallAgentTokenWindows in
 * infra/ssm/install-agent-token.yaml), mirrored in TypeScript because PowerShell cannot run here.
 * Keep it in step with the PowerShell: same checks in the same order, same result line. The static
 * checks of the PowerShell itself live in test/unit/infra/ssm/install-agent-token.windows-step.test.ts.
 *
 * What it models (Elastic CI Stack, packer/windows/stack/conf/bin/bk-install-elastic-stack.ps1):
 * the cfg is written by Set-Content (Windows PowerShell 5.1: ANSI code page, no BOM, CRLF) before the
 * nssm service `buildkite-agent` is installed and started, and Windows user data runs on first boot
 * only, so a running service means the boot script is done with the cfg. On the sandbox's disk the
 * "ACL" the PowerShell keeps through File.Replace is the file's owner, group and mode.
 */
import { createHash, randomUUID } from "node:crypto";
import {
  chmodSync,
  chownSync,
  lstatSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import {
  formatInstallResult,
  type InstallResult,
  SUCCESSFUL_RESULTS,
} from "../../../shared/rollout/install-result";
import type { InstanceHost } from "../instances/instance-host";
import type { StepRun } from "./linux-step";

export interface WindowsStepOptions {
  host: InstanceHost;
  /**
   * "Linux" runs the same logic with the Linux step's boot reason and line ending: a fast stand-in
   * for the real bash step when a sandbox fleet is too large to spawn the AWS CLI per instance.
   */
  flavour?: "Windows" | "Linux";
  /** TokenParameterName as sent. */
  tokenParameterName: string;
  /** Where WindowsConfigPath lives on the sandbox's disk. */
  configPath: string;
  ssmEndpoint: string;
  signal: AbortSignal;
}

type Stage = { missing: true } | { error: string } | { token: string; version: string };

const TOKEN_LINE = /^[ \t]*token[ \t]*=(.*?)(\r?)$/gm;
const SAFE_TOKEN = /^[A-Za-z0-9_.:/+=-]+$/;

class Finish extends Error {
  constructor(readonly outcome: InstallResult) {
    super(outcome.result);
  }
}

function finish(result: InstallResult["result"], version?: string, sha?: string, reason?: string): never {
  throw new Finish({ result, version, sha256Prefix: sha, reason });
}

const sha256 = (value: string) => createHash("sha256").update(value, "utf8").digest("hex");

export async function runWindowsStep(options: WindowsStepOptions): Promise<StepRun> {
  let outcome: InstallResult;
  try {
    await install(options);
    outcome = { result: "error", version: undefined, sha256Prefix: undefined, reason: "no-result" };
  } catch (error) {
    outcome =
      error instanceof Finish
        ? error.outcome
        : {
            result: "error",
            version: undefined,
            sha256Prefix: undefined,
            reason: `exception-${error instanceof Error ? error.name : "Error"}`,
          };
  }
  return {
    exitCode: SUCCESSFUL_RESULTS.has(outcome.result) ? 0 : 1,
    stdout: `${formatInstallResult(outcome)}${options.flavour === "Linux" ? "\n" : "\r\n"}`,
    stderr: "",
    aborted: options.signal.aborted,
  };
}

async function install(options: WindowsStepOptions): Promise<void> {
  const { host, configPath } = options;
  if (!host.bootFinished()) {
    finish(
      "boot-in-progress",
      undefined,
      undefined,
      options.flavour === "Linux" ? "cloud-init-running" : "agent-service-not-running",
    );
  }

  // Test-Path follows links: a dangling one is "missing"; then the reparse point; then a directory.
  let exists = true;
  try {
    statSync(configPath);
  } catch {
    exists = false;
  }
  if (!exists) finish("refused", undefined, undefined, "cfg-missing");
  const link = lstatSync(configPath);
  if (link.isSymbolicLink()) finish("refused", undefined, undefined, "cfg-is-a-symlink");
  if (!link.isFile()) finish("refused", undefined, undefined, "cfg-not-a-regular-file");

  const bytes = readFileSync(configPath);
  const { encoding, preamble } = detectEncoding(bytes);
  const text = decode(bytes.subarray(preamble.length), encoding);
  const matches = [...text.matchAll(TOKEN_LINE)];
  if (matches.length !== 1) finish("refused", undefined, undefined, `cfg-has-${matches.length}-token-lines`);
  let cfgToken = (matches[0]?.[1] ?? "").trim();
  if (cfgToken.length >= 2 && cfgToken.startsWith('"') && cfgToken.endsWith('"'))
    cfgToken = cfgToken.slice(1, -1);
  const cfgHash = sha256(cfgToken);

  const current = await readStage(options, "AWSCURRENT");
  if ("missing" in current) finish("error", undefined, undefined, "no-AWSCURRENT");
  if ("error" in current) finish("error", undefined, undefined, current.error);
  if (!SAFE_TOKEN.test(current.token))
    finish("error", current.version, undefined, "token-has-unsafe-characters");
  if (cfgHash === sha256(current.token)) {
    finish("unchanged", current.version, cfgHash.slice(0, 12), "already-AWSCURRENT");
  }
  const previous = await readStage(options, "AWSPREVIOUS");
  if ("error" in previous) finish("error", current.version, undefined, previous.error);
  if ("missing" in previous || cfgHash !== sha256(previous.token)) {
    finish("foreign-token", current.version, cfgHash.slice(0, 12), "not-AWSCURRENT-or-AWSPREVIOUS");
  }

  const newText = text.replace(TOKEN_LINE, (_line, _value, cr: string) => `token="${current.token}"${cr}`);
  const tmp = join(dirname(configPath), `.buildkite-agent.cfg.${randomUUID().replaceAll("-", "")}`);
  try {
    writeFileSync(tmp, Buffer.concat([preamble, encode(newText, encoding)]), { mode: 0o600 });
    const st = statSync(configPath);
    chownSync(tmp, st.uid, st.gid);
    chmodSync(tmp, st.mode & 0o7777);
    if (!readFileSync(configPath).equals(bytes))
      finish("error", current.version, undefined, "cfg-changed-during-update");
    renameSync(tmp, configPath);
  } finally {
    rmSync(tmp, { force: true });
  }
  finish("installed", current.version, sha256(current.token).slice(0, 12), "replaced-AWSPREVIOUS");
}

type Encoding = "utf8" | "utf8bom" | "utf16le" | "utf16be" | "ansi";

function detectEncoding(bytes: Buffer): { encoding: Encoding; preamble: Buffer } {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf)
    return { encoding: "utf8bom", preamble: bytes.subarray(0, 3) };
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return { encoding: "utf16le", preamble: bytes.subarray(0, 2) };
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return { encoding: "utf16be", preamble: bytes.subarray(0, 2) };
  // [System.Text.Encoding]::Default in Windows PowerShell 5.1: the ANSI code page (latin1 here).
  return { encoding: "ansi", preamble: Buffer.alloc(0) };
}

function decode(bytes: Buffer, encoding: Encoding): string {
  switch (encoding) {
    case "utf8":
    case "utf8bom":
      return bytes.toString("utf8");
    case "utf16le":
      return bytes.toString("utf16le");
    case "utf16be":
      return Buffer.from(bytes).swap16().toString("utf16le");
    case "ansi":
      return bytes.toString("latin1");
  }
}

function encode(text: string, encoding: Encoding): Buffer {
  switch (encoding) {
    case "utf8":
    case "utf8bom":
      return Buffer.from(text, "utf8");
    case "utf16le":
      return Buffer.from(text, "utf16le");
    case "utf16be":
      return Buffer.from(text, "utf16le").swap16();
    case "ansi":
      return Buffer.from(text, "latin1");
  }
}

/** One stage of the secret through Parameter Store, as the PowerShell's Read-Stage does with the CLI. */
async function readStage(options: WindowsStepOptions, stage: "AWSCURRENT" | "AWSPREVIOUS"): Promise<Stage> {
  const client = new SSMClient({
    region: options.host.region,
    endpoint: options.ssmEndpoint,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 3,
  });
  try {
    const response = await client.send(
      new GetParameterCommand({ Name: `${options.tokenParameterName}:${stage}`, WithDecryption: true }),
      { abortSignal: AbortSignal.any([options.signal, AbortSignal.timeout(20_000)]) },
    );
    const parameter = response.Parameter;
    let versionId: unknown;
    try {
      versionId = (JSON.parse(parameter?.SourceResult ?? "{}") as { VersionId?: unknown }).VersionId;
    } catch {
      versionId = undefined;
    }
    if (typeof versionId !== "string" || !/^[A-Za-z0-9-]+$/.test(versionId))
      return { error: `no-version-id-${stage}` };
    if (!parameter?.Value) return { error: `empty-value-${stage}` };
    return { token: parameter.Value, version: versionId };
  } catch (error) {
    const code = error instanceof Error && /^[A-Za-z]+$/.test(error.name) ? error.name : "failed";
    if (["ParameterNotFound", "ParameterVersionNotFound", "ResourceNotFoundException"].includes(code)) {
      return { missing: true };
    }
    return { error: `get-parameter-${stage}-${code}` };
  } finally {
    client.destroy();
  }
}

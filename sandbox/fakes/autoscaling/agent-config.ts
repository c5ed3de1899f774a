/**
 * The agent cfg file an Elastic CI Stack instance's boot script writes, as a real file on the
 * sandbox's disk. Its shape follows the upstream boot scripts (buildkite/elastic-ci-stack-for-aws
 * v6.71): `packer/linux/stack/conf/bin/bk-install-elastic-stack.sh` writes
 * `/etc/buildkite-agent/buildkite-agent.cfg` with a heredoc (`name=`, `token="…"`, `tags=`,
 * `endpoint=`, … `disconnect-after-idle-timeout=`) and chowns it to buildkite-agent;
 * `packer/windows/stack/conf/bin/bk-install-elastic-stack.ps1` writes
 * `C:\buildkite-agent\buildkite-agent.cfg` with Set-Content (same keys, Windows paths, CRLF line
 * ends as PowerShell writes them, and `shell=powershell`).
 *
 * The token is a secret: these helpers never log it, and `readAgentToken` returns it only to the
 * caller that registers with it.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Platform } from "./types";

export interface AgentConfigInput {
  platform: Platform;
  token: string;
  stackName: string;
  instanceId: string;
  /** The agent API endpoint, e.g. `http://127.0.0.1:PORT/v3`. */
  endpoint: string;
  /** ScaleInIdlePeriod in seconds, as the stack writes it. */
  idleTimeoutSeconds?: number;
}

/** The path the instance itself knows its cfg by. */
export function agentConfigPathOnInstance(platform: Platform): string {
  return platform === "Windows"
    ? "C:\\buildkite-agent\\buildkite-agent.cfg"
    : "/etc/buildkite-agent/buildkite-agent.cfg";
}

export function renderAgentConfig(input: AgentConfigInput): string {
  const windows = input.platform === "Windows";
  const lines = [
    `name="${input.stackName}-${input.instanceId}-%spawn"`,
    `token="${input.token}"`,
    `tags=queue=default,docker=false,stack=${input.stackName}`,
    windows ? `endpoint="${input.endpoint}"` : `endpoint=${input.endpoint}`,
    "tags-from-ec2-meta-data=true",
    windows ? 'hooks-path="C:\\buildkite-agent\\hooks"' : "hooks-path=/etc/buildkite-agent/hooks",
    windows ? 'build-path="C:\\buildkite-agent\\builds"' : "build-path=/var/lib/buildkite-agent/builds",
    windows ? 'plugins-path="C:\\buildkite-agent\\plugins"' : "plugins-path=/var/lib/buildkite-agent/plugins",
    "priority=%n",
    "spawn=1",
    "no-color=true",
    ...(windows ? ["shell=powershell"] : []),
    `disconnect-after-idle-timeout=${input.idleTimeoutSeconds ?? 600}`,
    "disconnect-after-job=false",
  ];
  const eol = windows ? "\r\n" : "\n";
  return lines.join(eol) + eol;
}

/**
 * Writes the cfg the way the boot script leaves it: the whole file at once, mode 0600 standing for
 * "owned by buildkite-agent" (the sandbox cannot chown). Written through a temp file and renamed,
 * so a reader never sees half a file.
 */
export async function writeAgentConfig(path: string, input: AgentConfigInput): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.boot-${process.pid}`;
  await writeFile(temp, renderAgentConfig(input), { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, path);
}

/** `writeAgentConfig` without awaiting I/O, for the fleet's default boot (deterministic under a manual clock). */
export function writeAgentConfigSync(path: string, input: AgentConfigInput): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.boot-${process.pid}`;
  writeFileSync(temp, renderAgentConfig(input), { mode: 0o600 });
  renameSync(temp, path);
}

/** The token `buildkite-agent start` would use from the cfg at `path`; undefined when the file is missing. */
export async function readAgentToken(path: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  return parseAgentToken(text);
}

/**
 * The token of a cfg's text: the last `token=` line (the agent's ini parser lets a later key win),
 * surrounding double quotes removed. Undefined when there is no such line.
 */
export function parseAgentToken(text: string): string | undefined {
  let token: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const match = /^\s*token\s*=\s*(.*?)\s*$/.exec(raw);
    if (match?.[1] === undefined) continue;
    const value = match[1];
    token = value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return token;
}

/**
 * What a Buildkite agent instance does at boot in the Elastic CI Stack, for the simulated fleet:
 * read the agent token once through the SSM reference path to Secrets Manager in the instance's
 * own region (`aws ssm get-parameter --with-decryption`, bk-install-elastic-stack.sh / .ps1 in
 * buildkite/elastic-ci-stack-for-aws), write it as `token="…"` into the instance's agent cfg
 * (when the fleet gives a `configPath`), then register with the agent API. The fleet calls the
 * returned hook once per launched instance; `ok: false` fails the refresh, as an instance that
 * never becomes a working agent would.
 *
 * `startAgent` is `buildkite-agent start` on a live instance (a systemd or nssm restart): it reads
 * the token from the cfg file and nothing else, so whatever rewrote that file in place (the Run
 * Command stand-in) decides which token a restart registers with.
 *
 * The token never leaves this function: it is not logged, not returned, and reasons carry only
 * statuses and error names.
 */

import { isNotFound } from "../../../shared/lib/aws/errors";
import { describeError } from "../../../shared/lib/errors";
import { keepAliveAgent, post } from "../../lib/post";
import { readAgentToken, writeAgentConfig } from "../autoscaling/agent-config";
import type { AgentStartContext, BootContext, BootResult } from "../autoscaling/types";
import { awsCli, SECRETS_MANAGER, SSM } from "./aws-cli";

export interface AgentBootOptions {
  motoUrl: string;
  /** The secret's name (the same in every region: replicas keep the primary's name). */
  secretName: string;
  /** Base URL of the agent API; `POST <url>/v3/register`. */
  buildkiteUrl: string;
  /** Register attempts on 429/5xx/network errors, as the agent retries (default 5). */
  registerAttempts?: number;
  /** Base delay between register attempts, multiplied by the attempt number (default 100 ms). */
  retryDelayMs?: number;
  /** Per-request timeout for the register call (default 5 s). */
  requestTimeoutMs?: number;
}

export type BootHook = ((context: BootContext) => Promise<BootResult>) & {
  /** `buildkite-agent start` on a live instance: registers with the token in its cfg file. */
  startAgent(context: AgentStartContext): Promise<BootResult>;
  /** Releases the instances' AWS CLI and registration connections (keep-alive sockets). */
  destroy(): void;
};

type TokenRead = { ok: true; token: string; via: string } | { ok: false; reason: string };

export function agentBoot(options: AgentBootOptions): BootHook {
  // The instances' AWS CLI (aws-cli.ts): its connections are shared by every instance.
  const cli = awsCli({ endpoint: options.motoUrl });
  const attempts = Math.max(1, options.registerAttempts ?? 5);
  const retryDelayMs = options.retryDelayMs ?? 100;
  const requestTimeoutMs = options.requestTimeoutMs ?? 5_000;

  async function readToken(region: string): Promise<TokenRead> {
    try {
      const out = await cli.call(SSM, region, "GetParameter", {
        Name: `/aws/reference/secretsmanager/${options.secretName}`,
        WithDecryption: true,
      });
      const parameter = out.Parameter as { Value?: unknown } | undefined;
      const token = typeof parameter?.Value === "string" ? parameter.Value : undefined;
      return token
        ? { ok: true, token, via: "SSM reference" }
        : { ok: false, reason: "SSM returned no value" };
    } catch (error) {
      if (!isNotFound(error)) {
        return { ok: false, reason: `SSM GetParameter failed in ${region}: ${errorName(error)}` };
      }
    }
    // moto's SSM reference lookup answers ParameterNotFound while ANY version of the secret has no
    // value (the empty AWSPENDING version Secrets Manager creates at the start of a rotation); AWS
    // resolves the reference to AWSCURRENT regardless. So, and only after ParameterNotFound, read
    // what AWS would have returned: AWSCURRENT from Secrets Manager in the same region. A missing
    // secret still fails the boot, because that lookup fails too.
    try {
      const out = await cli.call(SECRETS_MANAGER, region, "GetSecretValue", {
        SecretId: options.secretName,
        VersionStage: "AWSCURRENT",
      });
      const token = typeof out.SecretString === "string" ? out.SecretString : undefined;
      return token
        ? { ok: true, token, via: "Secrets Manager (moto SSM reference quirk)" }
        : { ok: false, reason: "Secrets Manager returned no string value" };
    } catch (error) {
      return {
        ok: false,
        reason: `token not readable in ${region}: SSM ParameterNotFound, Secrets Manager ${errorName(error)}`,
      };
    }
  }

  // One keep-alive agent for every instance's registration: 1,500 boots a rotation at 1,000 groups.
  const registerUrl = new URL(`${options.buildkiteUrl.replace(/\/+$/, "")}/v3/register`);
  const keepAlive = keepAliveAgent(registerUrl, 32);

  async function register(
    token: string,
    instanceId: string,
  ): Promise<{ status: number } | { error: string }> {
    // `tags-from-ec2-meta-data=true` in the stack's cfg makes the agent add its EC2 instance id
    // as meta-data, which is how an agent is found again by instance.
    const body = JSON.stringify({
      name: instanceId,
      hostname: instanceId,
      meta_data: [`aws:instance-id=${instanceId}`],
    });
    const headers = { Authorization: `Token ${token}`, "Content-Type": "application/json" };
    try {
      const answer = await post(registerUrl, keepAlive, headers, body, requestTimeoutMs);
      return { status: answer.status };
    } catch (error) {
      return { error: errorName(error) };
    }
  }

  /** Registers, retrying as the agent does on 429/5xx/network errors; a 401 is final. */
  async function registerWithRetries(token: string, instanceId: string, via: string): Promise<BootResult> {
    let last = "";
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const outcome = await register(token, instanceId);
      if ("status" in outcome) {
        if (outcome.status === 200) return { ok: true, reason: `registered with a token read via ${via}` };
        last = `HTTP ${outcome.status}`;
        const retryable = outcome.status === 429 || outcome.status >= 500;
        if (!retryable) break;
      } else {
        last = outcome.error;
      }
      if (attempt < attempts) await new Promise((resolve) => setTimeout(resolve, retryDelayMs * attempt));
    }
    return { ok: false, reason: `agent registration refused: ${last} (token read via ${via})` };
  }

  const hook = async (context: BootContext): Promise<BootResult> => {
    const read = await readToken(context.region);
    if (!read.ok) return { ok: false, reason: read.reason };
    if (context.configPath !== undefined) {
      try {
        await writeAgentConfig(context.configPath, {
          platform: context.platform ?? "Linux",
          token: read.token,
          stackName: context.stackName ?? context.groupName,
          instanceId: context.instanceId,
          endpoint: `${options.buildkiteUrl.replace(/\/+$/, "")}/v3`,
        });
      } catch (error) {
        return { ok: false, reason: `writing the agent cfg failed: ${errorName(error)}` };
      }
    }
    return registerWithRetries(read.token, context.instanceId, read.via);
  };

  const startAgent = async (context: AgentStartContext): Promise<BootResult> => {
    const token = await readAgentToken(context.configPath);
    if (!token) return { ok: false, reason: "agent cfg has no token" };
    return registerWithRetries(token, context.instanceId, "the agent cfg");
  };

  return Object.assign(hook, {
    startAgent,
    destroy() {
      cli.destroy();
      keepAlive.destroy();
    },
  });
}

const errorName = (error: unknown) => describeError(error).name;

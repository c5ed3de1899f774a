/**
 * The AWS CLI on a simulated instance, for the boot script's reads (`aws ssm get-parameter`,
 * bk-install-elastic-stack.sh / .ps1 in buildkite/elastic-ci-stack-for-aws, which install AWS CLI
 * v2: packer/linux/base/scripts/install-utils.sh). One call is one request in the service's JSON
 * protocol — `POST /`, `X-Amz-Target: <prefix>.<Action>`, `Content-Type:
 * application/x-amz-json-1.1` — and a failure is read from the body's `__type` ("Making API
 * requests" / "Common errors" in the SSM and Secrets Manager API references).
 *
 * Retries are the CLI's standard mode (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-retries.html):
 * 3 attempts in all, on throttling errors, 500/502/503/504 and connection errors or timeouts,
 * with exponential backoff (base 2; `baseDelayMs` here instead of the CLI's seconds, so the
 * sandbox stays fast).
 *
 * Not the JS SDK: the instances are not our code, and the SDK's per-call work (middleware, SigV4)
 * cost about 2.5 ms of the sandbox's one thread per GetParameter against 0.75 ms for this, measured
 * with 400 calls, 20 in flight, against moto: at 1,000 groups a rotation boots 1,500 instances on
 * the thread that also serves the Auto Scaling stand-in. The request carries an Authorization
 * header with the credential scope, because moto picks the region's backend from it; the signature
 * is not computed, because moto does not check one.
 */

import { isThrottling, isTimeout, isUnavailable } from "../../../shared/lib/aws/errors";
import { backoffDelay } from "../../../shared/lib/sleep";
import { keepAliveAgent, post } from "../../lib/post";

export interface AwsJsonService {
  /** X-Amz-Target's prefix: `AmazonSSM`, `secretsmanager`. */
  targetPrefix: string;
  /** The credential scope's service name: `ssm`, `secretsmanager`. */
  signingName: string;
}

export const SSM: AwsJsonService = { targetPrefix: "AmazonSSM", signingName: "ssm" };
export const SECRETS_MANAGER: AwsJsonService = {
  targetPrefix: "secretsmanager",
  signingName: "secretsmanager",
};

export interface AwsCliOptions {
  endpoint: string;
  /** Attempts in all (the CLI's standard mode: 3). */
  attempts?: number;
  /** The first retry's ceiling; each later one doubles it (default 100 ms). */
  baseDelayMs?: number;
  /** One attempt, from the request to the end of the answer, waiting for a socket included (default 10 s). */
  requestTimeoutMs?: number;
  /** Connections to the endpoint at most, over every instance (default 16; moto's threads contend beyond that). */
  maxSockets?: number;
}

/** A failed call: `name` is the service's error code (ParameterNotFound), or the network error's. */
export class AwsCliError extends Error {
  constructor(
    name: string,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = name;
  }
}

export interface AwsCli {
  call(
    service: AwsJsonService,
    region: string,
    action: string,
    input: object,
  ): Promise<Record<string, unknown>>;
  /** Closes the keep-alive connections. */
  destroy(): void;
}

const RETRYABLE_STATUS = new Set([500, 502, 503, 504]);

/** Connection errors and timeouts are the project's own (shared/lib/aws/errors.ts), as the SDK's are. */
const retryable = (error: unknown) =>
  isThrottling(error) ||
  isTimeout(error) ||
  isUnavailable(error) ||
  (error instanceof AwsCliError && error.status !== undefined && RETRYABLE_STATUS.has(error.status));

export function awsCli(options: AwsCliOptions): AwsCli {
  const url = new URL(options.endpoint);
  const agent = keepAliveAgent(url, options.maxSockets ?? 16);
  const attempts = Math.max(1, options.attempts ?? 3);
  const baseDelayMs = options.baseDelayMs ?? 100;
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;

  async function once(service: AwsJsonService, region: string, action: string, body: string) {
    const date = new Date().toISOString().replace(/[-:]|\.\d{3}/g, "");
    const scope = `test/${date.slice(0, 8)}/${region}/${service.signingName}/aws4_request`;
    const headers = {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": `${service.targetPrefix}.${action}`,
      "X-Amz-Date": date,
      Authorization: `AWS4-HMAC-SHA256 Credential=${scope}, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=unsigned`,
    };
    const { status, body: answer } = await post(url, agent, headers, body, requestTimeoutMs);
    let parsed: Record<string, unknown> = {};
    try {
      const text = answer.toString("utf8");
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      if (status < 300) throw new AwsCliError("SerializationError", `${action}: not JSON`, status);
    }
    if (status < 300) return parsed;
    // `__type` is `[namespace#]Code`; the message may be `message` or `Message`.
    const type = String(parsed.__type ?? `HTTP${status}`);
    const code = type.slice(type.lastIndexOf("#") + 1);
    throw new AwsCliError(code, `${action}: ${code} (HTTP ${status})`, status);
  }

  return {
    async call(service, region, action, input) {
      const body = JSON.stringify(input);
      for (let attempt = 0; ; attempt++) {
        try {
          return await once(service, region, action, body);
        } catch (error) {
          if (attempt + 1 >= attempts || !retryable(error)) throw error;
          await new Promise((resolve) =>
            setTimeout(resolve, backoffDelay(attempt, baseDelayMs, 20 * baseDelayMs)),
          );
        }
      }
    },
    destroy: () => agent.destroy(),
  };
}

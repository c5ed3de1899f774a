import { execFile, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MotoServer, startMoto } from "../../sandbox/fakes/aws/moto";

/**
 * The real CLI bundle (dist/cli/index.mjs, built by `npm run build`) run as a child process
 * against moto on loopback, with credentials and endpoint from the environment, as a boot script
 * would run it. Each test file of the consumer commands calls consumerCli() once: it starts moto,
 * creates the agent token secret and a role to assume, and checks at the end that no run of the
 * file printed any token it made on stderr.
 */
const ROOT = new URL("../..", import.meta.url).pathname;
const CLI = join(ROOT, "dist/cli/index.mjs");
export const REGION = "us-east-1";
export const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ConsumerCli {
  moto: MotoServer;
  /** The child's working and home directory, removed afterwards. */
  dir: string;
  secret: { name: string; arn: string; token: string };
  roleArn: string;
  /** A fresh token value, remembered so the final check can look for it. */
  newToken(): string;
  /** Runs the CLI with a clean environment: only what a boot script on an instance would have. */
  cli(args: string[], env?: Record<string, string>): Promise<Run>;
  /** Declares, at the end of the file, the test that no run printed a token on stderr. */
  noTokenOnStderr(): void;
}

export function consumerCli(): ConsumerCli {
  const tokens: string[] = [];
  const allOutput: string[] = [];
  const h = {
    newToken: () => {
      const t = `bkct_${randomUUID().replaceAll("-", "")}`;
      tokens.push(t);
      return t;
    },
    cli: (args: string[], env: Record<string, string> = {}) =>
      new Promise<Run>((resolve) => {
        execFile(
          process.execPath,
          [CLI, ...args],
          {
            cwd: h.dir,
            timeout: 30_000,
            env: {
              PATH: process.env.PATH ?? "",
              HOME: h.dir,
              AWS_REGION: REGION,
              AWS_ACCESS_KEY_ID: "test",
              AWS_SECRET_ACCESS_KEY: "test",
              AWS_ENDPOINT_URL: h.moto.url,
              AWS_EC2_METADATA_DISABLED: "true",
              ...env,
            },
          },
          (error, stdout, stderr) => {
            allOutput.push(stderr);
            resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
          },
        );
      }),
    noTokenOnStderr: () =>
      describe("no token on stderr, ever", () => {
        it("no run printed a token on stderr", () => {
          for (const t of tokens) expect(allOutput.join("\n")).not.toContain(t);
        });
      }),
  } as unknown as ConsumerCli; // moto, dir, secret and roleArn are set in beforeAll, before any test reads them

  beforeAll(async () => {
    if (!existsSync(CLI)) {
      const build = spawnSync("npm", ["run", "build"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
      if (build.status !== 0) throw new Error(`npm run build failed: ${build.stderr}`);
    }
    h.moto = await startMoto();
    h.dir = await mkdtemp(join(tmpdir(), "bk-agent-token-"));
    const sm = new SecretsManagerClient({ region: REGION, endpoint: h.moto.url, credentials: CREDENTIALS });
    const token = h.newToken();
    const created = await sm.send(
      new CreateSecretCommand({ Name: "buildkite/agent-token", SecretString: token }),
    );
    if (!created.ARN) throw new Error("no ARN");
    h.secret = { name: "buildkite/agent-token", arn: created.ARN, token };
    const iam = new IAMClient({ region: REGION, endpoint: h.moto.url, credentials: CREDENTIALS });
    const role = await iam.send(
      new CreateRoleCommand({
        RoleName: "agent-token-reader",
        AssumeRolePolicyDocument: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Effect: "Allow",
              Principal: { AWS: "arn:aws:iam::123456789012:root" },
              Action: "sts:AssumeRole",
            },
          ],
        }),
      }),
    );
    h.roleArn = role.Role?.Arn ?? "";
    sm.destroy();
    iam.destroy();
  });

  afterAll(async () => {
    await h.moto?.stop();
    if (h.dir) await rm(h.dir, { recursive: true, force: true });
  });

  return h;
}

import { execFile, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { PutParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MotoServer, startMoto } from "../../../../infra/sandbox/moto";

/**
 * The real CLI bundle (dist/cli/index.mjs, built by `npm run build`) run as a child process
 * against moto on loopback, with credentials and endpoint from the environment, as a boot script
 * would run it.
 */
const ROOT = new URL("../../../..", import.meta.url).pathname;
const CLI = join(ROOT, "dist/cli/index.mjs");
const REGION = "us-east-1";
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };

let moto: MotoServer;
let dir: string;
let secret: { name: string; arn: string; token: string };
let roleArn: string;
const tokens: string[] = [];
const allOutput: string[] = [];

const newToken = () => {
  const t = `bkct_${randomUUID().replaceAll("-", "")}`;
  tokens.push(t);
  return t;
};

beforeAll(async () => {
  if (!existsSync(CLI)) {
    const build = spawnSync("npm", ["run", "build"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
    if (build.status !== 0) throw new Error(`npm run build failed: ${build.stderr}`);
  }
  moto = await startMoto();
  dir = await mkdtemp(join(tmpdir(), "bk-agent-token-"));
  const sm = new SecretsManagerClient({ region: REGION, endpoint: moto.url, credentials: CREDENTIALS });
  const token = newToken();
  const created = await sm.send(
    new CreateSecretCommand({ Name: "buildkite/agent-token", SecretString: token }),
  );
  if (!created.ARN) throw new Error("no ARN");
  secret = { name: "buildkite/agent-token", arn: created.ARN, token };
  const iam = new IAMClient({ region: REGION, endpoint: moto.url, credentials: CREDENTIALS });
  const role = await iam.send(
    new CreateRoleCommand({
      RoleName: "agent-token-reader",
      AssumeRolePolicyDocument: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Principal: { AWS: "arn:aws:iam::123456789012:root" }, Action: "sts:AssumeRole" },
        ],
      }),
    }),
  );
  roleArn = role.Role?.Arn ?? "";
});

afterAll(async () => {
  await moto?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with a clean environment: only what a boot script on an instance would have. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        cwd: dir,
        timeout: 30_000,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: dir,
          AWS_REGION: REGION,
          AWS_ACCESS_KEY_ID: "test",
          AWS_SECRET_ACCESS_KEY: "test",
          AWS_ENDPOINT_URL: moto.url,
          AWS_EC2_METADATA_DISABLED: "true",
          ...env,
        },
      },
      (error, stdout, stderr) => {
        allOutput.push(stderr);
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe("bk-agent-token token", () => {
  it("prints the token and nothing else on stdout", async () => {
    const run = await cli(["token", "--secret-id", secret.name]);
    expect(run).toMatchObject({ code: 0, stdout: `${secret.token}\n` });
    expect(run.stderr).not.toContain(secret.token);
  });

  it("takes the secret from BUILDKITE_AGENT_TOKEN_SECRET_ID; -n drops the newline", async () => {
    const run = await cli(["token", "-n"], { BUILDKITE_AGENT_TOKEN_SECRET_ID: secret.arn });
    expect(run).toMatchObject({ code: 0, stdout: secret.token });
  });

  it("reads through the SSM reference path", async () => {
    const run = await cli(["token", "--secret-id", secret.arn, "--source", "ssm"]);
    expect(run).toMatchObject({ code: 0, stdout: `${secret.token}\n` });
  });

  it("falls back from a region without the secret to the next one", async () => {
    const run = await cli([
      "token",
      "--secret-id",
      secret.name,
      "--region",
      "eu-west-1",
      "--fallback-region",
      REGION,
    ]);
    expect(run).toMatchObject({ code: 0, stdout: `${secret.token}\n` });
    expect(run.stderr).toContain("fallback region");
    expect(run.stderr).not.toContain(secret.token);
  });

  it("assumes a role first with --assume-role, through STS at AWS_ENDPOINT_URL", async () => {
    const run = await cli([
      "token",
      "--secret-id",
      secret.name,
      "--assume-role",
      roleArn,
      "--role-session-name",
      "boot",
    ]);
    expect(run).toMatchObject({ code: 0, stdout: `${secret.token}\n` });
    // The role really is assumed: with STS unreachable the read fails.
    const broken = await cli(["token", "--secret-id", secret.name, "--assume-role", roleArn], {
      AWS_ENDPOINT_URL_STS: "http://127.0.0.1:1",
    });
    expect(broken.code).toBe(1);
    expect(broken.stdout).toBe("");
  });

  it("fails with exit 1, a message naming the secret and an empty stdout when the secret is missing", async () => {
    const run = await cli(["token", "--secret-id", "no/such/secret"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain("no/such/secret");
    expect(run.stderr).toContain("ResourceNotFoundException");
  });

  it("reports usage errors with exit 2", async () => {
    expect((await cli(["token"])).code).toBe(2);
    expect((await cli(["token", "--secret-id", "x", "--source", "vault"])).code).toBe(2);
    expect((await cli(["token", "--bogus"])).code).toBe(2);
    expect((await cli(["no-such-command"])).code).toBe(2);
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/token[\s\S]*write-config[\s\S]*render/);
    expect((await cli(["render", "--help"])).stdout).toContain("awsSecret://");
  });
});

describe("bk-agent-token write-config", () => {
  it("replaces the token line atomically with mode 0600 and keeps every other line", async () => {
    const file = join(dir, "buildkite-agent.cfg");
    const before = [
      "# The agent config",
      'name="%hostname-%spawn"',
      'token="old-token-value"',
      "# token=commented-out",
      'tags="queue=default"',
      'token="duplicate"',
      "",
    ].join("\n");
    await writeFile(file, before);
    await chmod(file, 0o644);
    const run = await cli(["write-config", "--file", file, "--secret-id", secret.name]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("");
    expect(run.stderr).not.toContain(secret.token);
    expect(await readFile(file, "utf8")).toBe(
      [
        "# The agent config",
        'name="%hostname-%spawn"',
        `token="${secret.token}"`,
        "# token=commented-out",
        'tags="queue=default"',
        "",
      ].join("\n"),
    );
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("creates a missing config file with the token line", async () => {
    const file = join(dir, "new-agent.cfg");
    const run = await cli(["write-config", "--file", file, "--secret-id", secret.arn]);
    expect(run.code).toBe(0);
    expect(await readFile(file, "utf8")).toBe(`token="${secret.token}"\n`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("leaves the file untouched when the token cannot be read", async () => {
    const file = join(dir, "untouched.cfg");
    await writeFile(file, 'token="keep-me"\n');
    const run = await cli(["write-config", "--file", file, "--secret-id", "no/such/secret"]);
    expect(run.code).toBe(1);
    expect(await readFile(file, "utf8")).toBe('token="keep-me"\n');
  });
});

describe("bk-agent-token render", () => {
  it("renders awsSecret://, ssm:// (decrypted) and env:// references into a 0600 file", async () => {
    const ssm = new SSMClient({ region: REGION, endpoint: moto.url, credentials: CREDENTIALS });
    const paramValue = newToken();
    await ssm.send(
      new PutParameterCommand({ Name: "/ci/registry-password", Value: paramValue, Type: "SecureString" }),
    );
    const template = join(dir, "env.tmpl");
    const out = join(dir, "agent.env");
    await writeFile(
      template,
      [
        "BUILDKITE_AGENT_TOKEN={{ secret awsSecret://buildkite/agent-token }}",
        `AGAIN={{secret awsSecret://${secret.arn}}}`,
        "REGISTRY_PASSWORD={{ secret ssm:///ci/registry-password }}",
        "QUEUE={{ secret env://AGENT_QUEUE }}",
        "literal {{ not a secret }}",
        "",
      ].join("\n"),
    );
    const run = await cli(["render", "--template", template, "--out", out], { AGENT_QUEUE: "deploy" });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("");
    expect(await readFile(out, "utf8")).toBe(
      [
        `BUILDKITE_AGENT_TOKEN=${secret.token}`,
        `AGAIN=${secret.token}`,
        `REGISTRY_PASSWORD=${paramValue}`,
        "QUEUE=deploy",
        "literal {{ not a secret }}",
        "",
      ].join("\n"),
    );
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    expect(run.stderr).not.toContain(secret.token);
    expect(run.stderr).not.toContain(paramValue);
  });

  it.each([
    ["an unknown scheme", "X={{ secret vault://kv/agent }}", "vault://kv/agent"],
    ["a missing secret", "X={{ secret awsSecret://no/such/secret }}", "awsSecret://no/such/secret"],
    ["a missing parameter", "X={{ secret ssm:///no/such/param }}", "ssm:///no/such/param"],
    ["an unset variable", "X={{ secret env://NOT_SET_ANYWHERE }}", "env://NOT_SET_ANYWHERE"],
  ])("fails on %s, naming the reference, and writes no output", async (_label, line, ref) => {
    const template = join(dir, `bad-${randomUUID()}.tmpl`);
    const out = join(dir, `bad-${randomUUID()}.out`);
    await writeFile(template, `A={{ secret awsSecret://${secret.name} }}\n${line}\n`);
    const run = await cli(["render", "--template", template, "--out", out]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain(ref);
    expect(run.stderr).not.toContain(secret.token);
    expect(existsSync(out)).toBe(false);
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("leaves an existing output untouched when a reference fails", async () => {
    const template = join(dir, "partial.tmpl");
    const out = join(dir, "partial.out");
    await writeFile(out, "previous\n");
    await writeFile(
      template,
      "A={{ secret awsSecret://buildkite/agent-token }}\nB={{ secret awsSecret://gone }}\n",
    );
    const run = await cli(["render", "--template", template, "--out", out]);
    expect(run.code).toBe(1);
    expect(await readFile(out, "utf8")).toBe("previous\n");
  });

  it("serves the rotated token on the next run (no cache across runs)", async () => {
    const sm = new SecretsManagerClient({ region: REGION, endpoint: moto.url, credentials: CREDENTIALS });
    const next = newToken();
    await sm.send(
      new PutSecretValueCommand({ SecretId: secret.arn, SecretString: next, VersionStages: ["AWSCURRENT"] }),
    );
    secret.token = next;
    const run = await cli(["token", "--secret-id", secret.name]);
    expect(run.stdout).toBe(`${next}\n`);
  });
});

describe("no token on stderr, ever", () => {
  it("no run printed a token on stderr", () => {
    for (const t of tokens) expect(allOutput.join("\n")).not.toContain(t);
  });
});

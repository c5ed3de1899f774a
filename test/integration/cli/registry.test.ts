import { execFile, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { Metafile } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MotoServer, startMoto } from "../../../sandbox/fakes/aws/moto";
import { loadLogger } from "../../support/load-log";

/**
 * The token-only path of the real CLI bundle loads no client it does not use: a boot script that
 * prints the token must not parse the Lambda, SNS, Auto Scaling or STS clients the operator
 * commands need. Which bundle files a run loaded comes from a module hook; which sources each file
 * holds comes from esbuild's metafile (dist/meta/cli.json).
 */
const ROOT = new URL("../../..", import.meta.url).pathname;
const CLI = join(ROOT, "dist/cli/index.mjs");
const META = join(ROOT, "dist/meta/cli.json");
const OPERATOR_ONLY = /node_modules\/@aws-sdk\/client-(lambda|sns|auto-scaling|sts)\//;

let moto: MotoServer;
let secretArn: string;

beforeAll(async () => {
  if (!existsSync(CLI) || !existsSync(META)) {
    const build = spawnSync("npm", ["run", "build"], { cwd: ROOT, encoding: "utf8", timeout: 180_000 });
    if (build.status !== 0) throw new Error(`npm run build failed: ${build.stderr}`);
  }
  moto = await startMoto();
  const sm = new SecretsManagerClient({
    region: "us-east-1",
    endpoint: moto.url,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  const created = await sm.send(
    new CreateSecretCommand({ Name: "buildkite/agent-token", SecretString: "bkct_lazyloadingtest" }),
  );
  secretArn = created.ARN ?? "";
  sm.destroy();
});

afterAll(async () => {
  await moto?.stop();
});

interface Run {
  code: number;
  stdout: string;
  /** Every source (esbuild input path) inside the bundle files the run loaded. */
  sources: string[];
}

function run(args: string[]): Promise<Run> {
  const log = loadLogger();
  const meta = JSON.parse(readFileSync(META, "utf8")) as Metafile;
  return new Promise((done) => {
    execFile(
      process.execPath,
      [log.importFlag, CLI, ...args],
      {
        cwd: ROOT,
        timeout: 30_000,
        env: {
          PATH: process.env.PATH ?? "",
          AWS_REGION: "us-east-1",
          AWS_ACCESS_KEY_ID: "test",
          AWS_SECRET_ACCESS_KEY: "test",
          AWS_ENDPOINT_URL: moto.url,
          AWS_EC2_METADATA_DISABLED: "true",
        },
      },
      (error, stdout) => {
        const loaded = new Set(log.loaded());
        const sources = Object.entries(meta.outputs)
          .filter(([file]) => loaded.has(resolve(ROOT, file)))
          .flatMap(([, output]) => Object.keys(output.inputs));
        writeFileSync(log.logFile, "");
        done({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, sources });
      },
    );
  });
}

describe("the CLI loads lazily", { timeout: 60_000 }, () => {
  it("prints a token without loading the operator's clients", async () => {
    const r = await run(["token", "--secret-id", secretArn]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("bkct_lazyloadingtest\n");
    expect(r.sources.some((s) => s.includes("@aws-sdk/client-secrets-manager/"))).toBe(true);
    expect(r.sources.filter((s) => OPERATOR_ONLY.test(s))).toEqual([]);
  });

  it("shows the token command's help without loading them", async () => {
    const r = await run(["token", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--secret-id");
    expect(r.sources.filter((s) => OPERATOR_ONLY.test(s))).toEqual([]);
  });

  it("loads them for an operator command (the check above can fail)", async () => {
    // No configuration in the environment: status fails (exit 1) after loading its module.
    const r = await run(["status"]);
    expect(r.code).toBe(1);
    for (const client of ["lambda", "sns", "auto-scaling", "sts"]) {
      expect(r.sources.some((s) => s.includes(`@aws-sdk/client-${client}/`))).toBe(true);
    }
  });
});

/**
 * Token reader bench, against moto server on loopback, in one run:
 * - cached reads per second and p99 latency: our reader versus Powertools Parameters' getSecret
 *   with the same max age (target: ratio ≥ 1.0);
 * - API calls made by 1,000 concurrent cold reads (target: exactly 1), with Powertools' count
 *   for contrast;
 * - CLI time to print the token from a cold start (`node dist/cli/index.mjs token`, median of 5)
 *   and its ratio to `aws secretsmanager get-secret-value` (AWS CLI).
 * Every loop is bounded in iterations and in time.
 *
 * Standalone: node --import tsx scripts/bench-token-reader.ts
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { getSecret, SecretsProvider } from "@aws-lambda-powertools/parameters/secrets";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { startMoto } from "../sandbox/fakes/aws/moto";
import { awsClientOptions } from "../shared/lib/aws/client-options";
import { secretsManagerClients } from "../shared/lib/aws/secrets-manager";
import { createTokenReader } from "../shared/token-reader/reader";
import { secretsManagerSource } from "../shared/token-reader/secrets-manager-source";

const ROOT = new URL("..", import.meta.url).pathname;
const CLI = join(ROOT, "dist/cli/index.mjs");
const REGION = "us-east-1";
const SECRET_NAME = "bench/agent-token";
const MAX_AGE_S = 60;
const TRIAL_MS = 400;
const TRIAL_MAX_OPS = 1_000_000;
const ROUNDS = 3;
const CLI_RUNS = 5;
const COLD_READS = 1_000;

interface Throughput {
  opsPerSec: number;
  p99Us: number;
}

/** Sequential awaited reads for a bounded time; per-call latency sampled for the p99. */
async function measure(read: () => Promise<unknown>): Promise<Throughput> {
  const samples = new Float64Array(TRIAL_MAX_OPS);
  let n = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(TRIAL_MS) * 1_000_000n;
  let now = start;
  while (n < TRIAL_MAX_OPS && now < deadline) {
    const t0 = now;
    await read();
    now = process.hrtime.bigint();
    samples[n++] = Number(now - t0) / 1_000;
  }
  const elapsedS = Number(now - start) / 1e9;
  const sorted = samples.subarray(0, n).sort();
  return { opsPerSec: n / elapsedS, p99Us: sorted[Math.min(n - 1, Math.floor(n * 0.99))] ?? 0 };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

/** A client that counts the requests it sends (initialize step: one per command, before retries). */
function countingClient(endpoint: string) {
  const counter = { calls: 0 };
  const client = new SecretsManagerClient({ ...awsClientOptions(REGION), endpoint });
  client.middlewareStack.add(
    (next) => (args) => {
      counter.calls++;
      return next(args);
    },
    { step: "initialize" },
  );
  return { client, counter };
}

function timeCommand(command: string, args: string[], env: NodeJS.ProcessEnv): { ms: number; ok: boolean } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(command, args, { env, encoding: "utf8", timeout: 30_000 });
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, ok: r.status === 0 && r.stdout.trim().length > 0 };
}

export async function benchTokenReader(): Promise<Record<string, unknown>> {
  if (!existsSync(CLI)) {
    const build = spawnSync("npm", ["run", "build"], { cwd: ROOT, stdio: "ignore", timeout: 180_000 });
    if (build.status !== 0) throw new Error("npm run build failed");
  }
  const moto = await startMoto();
  const savedEnv = { ...process.env };
  const env = {
    AWS_REGION: REGION,
    AWS_DEFAULT_REGION: REGION,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_ENDPOINT_URL: moto.url,
  };
  // Powertools' getSecret builds its default client from the environment, as in a Lambda.
  Object.assign(process.env, env);
  try {
    const admin = new SecretsManagerClient({ ...awsClientOptions(REGION), endpoint: moto.url });
    await admin.send(
      new CreateSecretCommand({ Name: SECRET_NAME, SecretString: `bkct_bench${"x".repeat(30)}` }),
    );

    // 1. Cached reads: same max age, same secret, warmed; interleaved rounds, medians.
    const reader = createTokenReader({
      secretId: SECRET_NAME,
      regions: [REGION],
      maxAgeMs: MAX_AGE_S * 1000,
      source: secretsManagerSource(secretsManagerClients()),
    });
    const readerRead = () => reader.read();
    const powertoolsRead = () =>
      getSecret(SECRET_NAME, { maxAge: MAX_AGE_S, sdkOptions: { VersionStage: "AWSCURRENT" } });
    await readerRead();
    await powertoolsRead();
    const ours: Throughput[] = [];
    const theirs: Throughput[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      ours.push(await measure(readerRead));
      theirs.push(await measure(powertoolsRead));
    }
    const oursOps = median(ours.map((t) => t.opsPerSec));
    const theirsOps = median(theirs.map((t) => t.opsPerSec));
    const oursP99 = median(ours.map((t) => t.p99Us));
    const theirsP99 = median(theirs.map((t) => t.p99Us));

    // 2. Concurrent cold reads: calls on the wire.
    const ourCold = countingClient(moto.url);
    const coldReader = createTokenReader({
      secretId: SECRET_NAME,
      regions: [REGION],
      maxAgeMs: MAX_AGE_S * 1000,
      source: secretsManagerSource(() => ourCold.client),
    });
    await Promise.all(Array.from({ length: COLD_READS }, () => coldReader.read()));
    const theirCold = countingClient(moto.url);
    const provider = new SecretsProvider({ awsSdkV3Client: theirCold.client });
    await Promise.all(
      Array.from({ length: COLD_READS }, () =>
        provider.get(SECRET_NAME, { maxAge: MAX_AGE_S, sdkOptions: { VersionStage: "AWSCURRENT" } }),
      ),
    );

    // 3. CLI cold start versus the AWS CLI, one warm-up run each (file cache), then medians.
    const childEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...env,
      AWS_EC2_METADATA_DISABLED: "true",
    };
    const ourArgs = [CLI, "token", "--secret-id", SECRET_NAME];
    const awsArgs = [
      "secretsmanager",
      "get-secret-value",
      "--secret-id",
      SECRET_NAME,
      "--version-stage",
      "AWSCURRENT",
      "--query",
      "SecretString",
      "--output",
      "text",
      "--endpoint-url",
      moto.url,
      "--region",
      REGION,
    ];
    const awsAvailable = spawnSync("aws", ["--version"], { stdio: "ignore", timeout: 20_000 }).status === 0;
    timeCommand(process.execPath, ourArgs, childEnv);
    if (awsAvailable) timeCommand("aws", awsArgs, childEnv);
    const cliRuns: number[] = [];
    const awsRuns: number[] = [];
    let cliOk = true;
    for (let i = 0; i < CLI_RUNS; i++) {
      const ourRun = timeCommand(process.execPath, ourArgs, childEnv);
      cliOk &&= ourRun.ok;
      cliRuns.push(ourRun.ms);
      if (awsAvailable) awsRuns.push(timeCommand("aws", awsArgs, childEnv).ms);
    }
    const cliMs = median(cliRuns);
    const awsMs = awsAvailable ? median(awsRuns) : undefined;

    const result = {
      cachedReadsPerSec: Math.round(oursOps),
      cachedReadP99Us: round(oursP99),
      powertoolsCachedReadsPerSec: Math.round(theirsOps),
      powertoolsCachedReadP99Us: round(theirsP99),
      throughputRatioVsPowertools: round(oursOps / theirsOps),
      coldConcurrentReads: COLD_READS,
      coldConcurrentApiCalls: ourCold.counter.calls,
      powertoolsColdConcurrentApiCalls: theirCold.counter.calls,
      cliColdStartMs: round(cliMs),
      cliOk,
      awsCliMs: awsMs === undefined ? null : round(awsMs),
      cliRatioVsAwsCli: awsMs === undefined ? null : round(cliMs / awsMs),
    };
    printTable(result);
    return result;
  } finally {
    process.env = savedEnv;
    await moto.stop();
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

function printTable(r: Record<string, unknown>): void {
  const rows: Array<[string, string, string, string]> = [
    ["metric", "token reader", "baseline", "ratio / target"],
    [
      "cached reads/s (max age 60 s)",
      String(r.cachedReadsPerSec),
      `${r.powertoolsCachedReadsPerSec} (Powertools getSecret)`,
      `${r.throughputRatioVsPowertools}× (≥ 1.0)`,
    ],
    ["cached read p99 (µs)", String(r.cachedReadP99Us), `${r.powertoolsCachedReadP99Us} (Powertools)`, ""],
    [
      `API calls, ${r.coldConcurrentReads} concurrent cold reads`,
      String(r.coldConcurrentApiCalls),
      `${r.powertoolsColdConcurrentApiCalls} (Powertools SecretsProvider)`,
      "1 (= 1)",
    ],
    [
      "CLI: print token, cold start (median ms)",
      String(r.cliColdStartMs),
      r.awsCliMs === null ? "n/a (no aws CLI)" : `${r.awsCliMs} (aws secretsmanager get-secret-value)`,
      r.cliRatioVsAwsCli === null ? "" : `${r.cliRatioVsAwsCli}× of AWS CLI time`,
    ],
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i]?.length ?? 0)));
  for (const row of rows) console.log(row.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  "));
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop() ?? "")) {
  const result = await benchTokenReader();
  console.log(JSON.stringify(result));
}

/**
 * `npm run bench -- cli`: the CLI's cold start to print a token, for three bundles built in the
 * same run from the same sources, against moto on loopback:
 * - eager: every command imported statically (the CLI before lazy loading), one file;
 * - lazy, one file: operator commands imported dynamically but bundled without `splitting`, so
 *   their code is still in the file and parsed at start (only its evaluation is deferred);
 * - lazy, split (what ships, scripts/build.ts cliOptions): operator code in chunks read only when
 *   an operator command runs.
 * Prints the bytes each start reads and the median wall time of `token` as a ratio to the eager
 * bundle. Nothing asserts; loops are bounded (RUNS per variant, 30 s per run).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { build, type Metafile } from "esbuild";
import { startMoto } from "../../sandbox/fakes/aws/moto";
import { cliOptions, common } from "../build";

const ROOT = new URL("../..", import.meta.url).pathname;
const RUNS = 9;

/** The CLI as it was before lazy loading: every command module imported when the CLI starts. */
const EAGER_ENTRY = `
import { main } from ${JSON.stringify(join(ROOT, "cli/main"))};
import { commands } from ${JSON.stringify(join(ROOT, "cli/registry"))};
import { statusCommand } from ${JSON.stringify(join(ROOT, "cli/operator/status"))};
import { preflightCommand } from ${JSON.stringify(join(ROOT, "cli/operator/preflight"))};
import { rotateCommand } from ${JSON.stringify(join(ROOT, "cli/operator/rotate"))};
const registry = {
  ...commands,
  status: { summary: "", ...statusCommand },
  preflight: { summary: "", ...preflightCommand },
  rotate: { summary: "", ...rotateCommand },
};
process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }, registry);
`;

interface Variant {
  name: string;
  entryFile: string;
  /** Bytes a `token` start reads: the entry file and every chunk it imports statically. */
  startBytes: number;
  totalBytes: number;
}

/** The output files loaded at start: the entry, then its static imports, transitively. */
function startFiles(meta: Metafile, entry: string, dir: string): { start: string[]; all: string[] } {
  const rel = (abs: string) => Object.keys(meta.outputs).find((o) => resolve(o) === abs) ?? abs;
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const i of meta.outputs[file]?.imports ?? [])
      if (i.kind === "import-statement" && !i.external) visit(i.path);
  };
  visit(rel(entry));
  const all = Object.keys(meta.outputs).filter((o) => o.endsWith(".mjs") && resolve(o).startsWith(dir));
  return { start: [...seen], all };
}

const size = (files: string[]) => files.reduce((n, f) => n + statSync(resolve(f)).size, 0);

async function variant(name: string, dir: string, options: Parameters<typeof build>[0]): Promise<Variant> {
  const result = await build({ ...options, metafile: true, sourcemap: false, logLevel: "error" });
  const entryFile = join(dir, "index.mjs");
  const { start, all } = startFiles(result.metafile, entryFile, dir);
  return { name, entryFile, startBytes: size(start), totalBytes: size(all) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

export async function benchCli(): Promise<Array<Record<string, string | number>>> {
  const work = mkdtempSync(join(tmpdir(), "bench-cli-"));
  const moto = await startMoto();
  try {
    const entry = join(work, "eager-entry.ts");
    writeFileSync(entry, EAGER_ENTRY);
    const eagerDir = join(work, "eager");
    const oneFileDir = join(work, "lazy-one-file");
    const splitDir = join(work, "lazy-split");
    const variants = [
      await variant("eager (every command imported at start)", eagerDir, {
        ...common,
        entryPoints: [entry],
        outfile: join(eagerDir, "index.mjs"),
      }),
      await variant("lazy, one file (no splitting)", oneFileDir, {
        ...common,
        entryPoints: [join(ROOT, "bin/cli.ts")],
        outfile: join(oneFileDir, "index.mjs"),
      }),
      await variant("lazy, split (shipped)", splitDir, {
        ...cliOptions(splitDir),
        entryPoints: [join(ROOT, "bin/cli.ts")],
      }),
    ];

    const sm = new SecretsManagerClient({
      region: "us-east-1",
      endpoint: moto.url,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    await sm.send(new CreateSecretCommand({ Name: "bench/cli-token", SecretString: "bkct_benchcli" }));
    sm.destroy();
    const env = {
      PATH: process.env.PATH ?? "",
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_ENDPOINT_URL: moto.url,
      AWS_EC2_METADATA_DISABLED: "true",
    };
    const time = (file: string): number | undefined => {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(process.execPath, [file, "token", "--secret-id", "bench/cli-token"], {
        env,
        encoding: "utf8",
        timeout: 30_000,
      });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      return r.status === 0 && r.stdout === "bkct_benchcli\n" ? ms : undefined;
    };
    // Node alone, for scale: the part of every start no bundle can save.
    const nodeOnly = join(work, "empty.mjs");
    writeFileSync(nodeOnly, "");
    const samples = new Map<string, number[]>(variants.map((v) => [v.name, []]));
    const nodeSamples: number[] = [];
    for (const v of variants) time(v.entryFile); // warm the file cache once each
    // Interleaved, so a slow moment of a shared machine hits every variant alike.
    for (let i = 0; i < RUNS; i++) {
      const t0 = process.hrtime.bigint();
      spawnSync(process.execPath, [nodeOnly], { timeout: 30_000 });
      nodeSamples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      for (const v of variants) {
        const ms = time(v.entryFile);
        if (ms !== undefined) samples.get(v.name)?.push(ms);
      }
    }
    const eagerMs = median(samples.get(variants[0]?.name ?? "") ?? []);
    const nodeMs = median(nodeSamples);
    const kb = (n: number) => Math.round(n / 1024);
    return [
      ...variants.map((v) => {
        const runs = samples.get(v.name) ?? [];
        const ms = median(runs);
        return {
          bundle: v.name,
          "KB read at start": kb(v.startBytes),
          "KB in all files": kb(v.totalBytes),
          "token: median ms": runs.length === RUNS ? Math.round(ms) : `${runs.length}/${RUNS} runs ok`,
          "ratio to eager": eagerMs > 0 ? Number((ms / eagerMs).toFixed(2)) : "n/a",
          "ratio to eager, Node's own start removed":
            eagerMs > nodeMs ? Number(((ms - nodeMs) / (eagerMs - nodeMs)).toFixed(2)) : "n/a",
        };
      }),
      {
        bundle: "node, empty module (for scale)",
        "KB read at start": 0,
        "KB in all files": 0,
        "token: median ms": Math.round(nodeMs),
        "ratio to eager": eagerMs > 0 ? Number((nodeMs / eagerMs).toFixed(2)) : "n/a",
        "ratio to eager, Node's own start removed": 0,
      },
    ];
  } finally {
    await moto.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

// Standalone: node --import tsx scripts/bench/cli.ts
if (process.argv[1] && resolve(process.argv[1]) === resolve(ROOT, "scripts/bench/cli.ts")) {
  console.table(await benchCli());
}

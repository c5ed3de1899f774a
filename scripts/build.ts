/**
 * Bundles every function (functions/<name>/handler.ts → dist/<name>/index.mjs) and the CLI
 * (bin/cli.ts → dist/cli/index.mjs): ESM, node22, minified, with source maps. The AWS SDK is
 * bundled rather than taken from the runtime so the version we test is the version we ship.
 */
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type BuildOptions, build } from "esbuild";

const root = new URL("..", import.meta.url).pathname;
// Some CommonJS dependencies of the SDK call require(); give the ESM bundle one.
const banner = "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);";

export const common: BuildOptions = {
  bundle: true,
  platform: "node",
  target: "node22",
  format: "esm",
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  legalComments: "none",
  banner: { js: banner },
  mainFields: ["module", "main"],
  metafile: true,
  logLevel: "warning",
};

export function entries(): Array<{ name: string; entry: string }> {
  const fnDir = join(root, "functions");
  const list = readdirSync(fnDir)
    .filter((name) => existsSync(join(fnDir, name, "handler.ts")))
    .map((name) => ({ name, entry: join(fnDir, name, "handler.ts") }));
  if (existsSync(join(root, "bin/cli.ts"))) list.push({ name: "cli", entry: join(root, "bin/cli.ts") });
  return list;
}

async function main(): Promise<void> {
  rmSync(join(root, "dist"), { recursive: true, force: true });
  for (const { name, entry } of entries()) {
    const outfile = join(root, "dist", name, "index.mjs");
    const result = await build({
      ...common,
      entryPoints: [entry],
      outfile,
      ...(name === "cli" ? { banner: { js: `#!/usr/bin/env node\n${banner}` } } : {}),
    });
    writeFileSync(join(root, "dist", name, "meta.json"), JSON.stringify(result.metafile));
    console.log(`built dist/${name}/index.mjs`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop() ?? "")) {
  await main();
}

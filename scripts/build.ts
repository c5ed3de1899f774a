/**
 * Bundles every function (functions/<name>/handler.ts → dist/<name>/index.mjs) and the CLI
 * (bin/cli.ts → dist/cli/index.mjs plus its lazily loaded chunks in dist/cli/chunks/): ESM, node22,
 * minified, with source maps. The AWS SDK is
 * bundled rather than taken from the runtime so the version we test is the version we ship.
 *
 * The esbuild metafiles go to dist/meta/<name>.json, outside every artifact directory (the bench
 * and the IAM contract test read them there; no zip ships them).
 *
 * Both deploy paths ship the same bytes:
 * - `sam build` runs `make build-<LogicalId>` (BuildMethod: makefile, see the Makefile), which
 *   runs `node --import tsx scripts/build.ts --only <name> --artifacts-dir "$ARTIFACTS_DIR"`;
 * - `npm run build` (no arguments) also writes .aws-sam/build as `sam build` would (each
 *   function's artifact directory plus the build template pointing at it), so a later
 *   `sam deploy` never deploys an older `sam build`'s copy.
 */
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type BuildOptions, build } from "esbuild";
import { parseDocument } from "yaml";

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

/** What each function artifact holds: the bundle and its source map, nothing else. */
export const ARTIFACT_FILES = ["index.mjs", "index.mjs.map"] as const;

/** template.yaml's function logical ids → bundle names (a unit test keeps the two in step). */
export const SAM_FUNCTIONS: Readonly<Record<string, string>> = {
  RotateTokenFunction: "rotate-token",
  ReconcileFunction: "reconcile",
  ReadTokenFunction: "read-token",
};

export const metafilePath = (name: string, base = root): string => join(base, "dist", "meta", `${name}.json`);

export function entries(): Array<{ name: string; entry: string }> {
  const fnDir = join(root, "functions");
  const list = readdirSync(fnDir)
    .filter((name) => existsSync(join(fnDir, name, "handler.ts")))
    .map((name) => ({ name, entry: join(fnDir, name, "handler.ts") }));
  if (existsSync(join(root, "bin/cli.ts"))) list.push({ name: "cli", entry: join(root, "bin/cli.ts") });
  return list;
}

/**
 * The CLI is split (esbuild `splitting`, ESM only): dist/cli/index.mjs holds main and the consumer
 * commands, and each operator command's code, with the SDK clients only it uses, sits in a chunk
 * under dist/cli/chunks/ that is read only when that command runs (cli/registry.ts imports it
 * dynamically). Without splitting, lazily imported code is still in the one file and parsed at
 * every start; `npm run bench -- cli` measures the difference. Every chunk gets the banner (each may
 * hold CommonJS code that calls require()); a hashbang is valid at the start of any module.
 */
export const cliOptions = (outdir: string): BuildOptions => ({
  ...common,
  splitting: true,
  outdir,
  entryNames: "index",
  chunkNames: "chunks/[name]-[hash]",
  outExtension: { ".js": ".mjs" },
  banner: { js: `#!/usr/bin/env node\n${banner}` },
});

async function bundle(name: string, entry: string): Promise<void> {
  const outDir = join(root, "dist", name);
  rmSync(outDir, { recursive: true, force: true });
  const result = await build({
    ...(name === "cli" ? cliOptions(outDir) : { ...common, outfile: join(outDir, "index.mjs") }),
    entryPoints: [entry],
  });
  mkdirSync(join(root, "dist", "meta"), { recursive: true });
  writeFileSync(metafilePath(name), JSON.stringify(result.metafile));
  console.log(`built dist/${name}/index.mjs`);
}

/** Copies a function's artifact files (and only those) into a directory (SAM hands us an empty one). */
function copyArtifact(name: string, targetDir: string): void {
  mkdirSync(targetDir, { recursive: true });
  for (const file of ARTIFACT_FILES) copyFileSync(join(root, "dist", name, file), join(targetDir, file));
}

/**
 * .aws-sam/build as `sam build` leaves it: one directory per function named after its logical
 * id, and template.yaml with each function's CodeUri pointing there (aws-sam-cli
 * samcli/lib/build/app_builder.py updates CodeUri to the artifact path relative to the build
 * directory; `sam deploy` then packages .aws-sam/build/template.yaml by default).
 */
function writeSamBuildDir(): void {
  const buildDir = join(root, ".aws-sam", "build");
  rmSync(buildDir, { recursive: true, force: true });
  mkdirSync(buildDir, { recursive: true });
  const doc = parseDocument(readFileSync(join(root, "template.yaml"), "utf8"), {
    // CloudFormation's short-form intrinsics (!Ref, !Sub, …) are kept as they are, unresolved.
    logLevel: "error",
  });
  for (const [logicalId, name] of Object.entries(SAM_FUNCTIONS)) {
    if (!doc.hasIn(["Resources", logicalId, "Properties", "CodeUri"])) {
      throw new Error(`template.yaml has no CodeUri for ${logicalId} (scripts/build.ts SAM_FUNCTIONS)`);
    }
    copyArtifact(name, join(buildDir, logicalId));
    doc.setIn(["Resources", logicalId, "Properties", "CodeUri"], logicalId);
  }
  writeFileSync(join(buildDir, "template.yaml"), doc.toString({ lineWidth: 0 }));
  console.log("wrote .aws-sam/build (what `sam build` produces; `sam deploy` deploys these bundles)");
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { only: { type: "string" }, "artifacts-dir": { type: "string" } },
  });
  const all = entries();
  if (values.only) {
    const one = all.find((e) => e.name === values.only);
    if (!one) throw new Error(`no bundle named ${values.only} (have: ${all.map((e) => e.name).join(", ")})`);
    await bundle(one.name, one.entry);
    if (values["artifacts-dir"]) copyArtifact(one.name, values["artifacts-dir"]);
    return;
  }
  rmSync(join(root, "dist"), { recursive: true, force: true });
  for (const { name, entry } of all) await bundle(name, entry);
  writeSamBuildDir();
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop() ?? "")) {
  await main(process.argv.slice(2));
}

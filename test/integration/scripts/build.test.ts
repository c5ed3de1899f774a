import { execFileSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";

/**
 * The two deploy paths ship the same bytes, shown the way SAM really builds:
 * `sam build` with `BuildMethod: makefile` (aws-lambda-builders' custom_make workflow) copies the
 * CodeUri into a scratch directory leaving out only `.aws-sam` and `.git`
 * (aws_lambda_builders/workflows/custom_make/workflow.py, EXCLUDED_FILES), then runs
 * `make --makefile <CodeUri>/Makefile build-<LogicalId>` with the scratch directory as working
 * directory and ARTIFACTS_DIR in the environment (custom_make/actions.py, CustomMakeAction).
 * Each function gets its own scratch copy, as every makefile build is its own build definition.
 * Everything starts from a fresh clone: no node_modules, no dist.
 */
const ROOT = new URL("../../..", import.meta.url).pathname;
const EXCLUDED_BY_SAM = new Set([".aws-sam", ".git"]);
const work = mkdtempSync(join(tmpdir(), "sam-build-"));
const clone = join(work, "clone");

interface TemplateFunction {
  id: string;
  codeUri: string;
  buildMethod: unknown;
}

function templateFunctions(dir: string): TemplateFunction[] {
  const doc = parseDocument(readFileSync(join(dir, "template.yaml"), "utf8"), { logLevel: "error" });
  const resources = (doc.toJS() as { Resources: Record<string, Record<string, unknown>> }).Resources;
  return Object.entries(resources)
    .filter(([, r]) => r.Type === "AWS::Serverless::Function")
    .map(([id, r]) => ({
      id,
      codeUri: String((r.Properties as { CodeUri?: unknown }).CodeUri),
      buildMethod: (r.Metadata as { BuildMethod?: unknown } | undefined)?.BuildMethod,
    }));
}

/** The working tree as `git clone` of it would be: tracked and new files, nothing ignored. */
function freshClone(target: string): void {
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: ROOT,
    encoding: "utf8",
  })
    .split("\0")
    .filter((f) => f && existsSync(join(ROOT, f)));
  for (const file of files) {
    mkdirSync(dirname(join(target, file)), { recursive: true });
    cpSync(join(ROOT, file), join(target, file));
  }
}

const run = (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) =>
  execFileSync(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], timeout: 600_000 });

beforeAll(() => {
  freshClone(clone);
  expect(existsSync(join(clone, "node_modules"))).toBe(false);
  expect(existsSync(join(clone, "dist"))).toBe(false);
}, 120_000);

// Removing a clone with its node_modules takes over a minute on a busy machine: more than the default hook timeout.
afterAll(() => rmSync(work, { recursive: true, force: true }), 300_000);

describe("sam build (BuildMethod: makefile) and npm run build", () => {
  it("produces, target by target, exactly the bundles npm run build makes on a fresh clone", () => {
    const functions = templateFunctions(clone);
    expect(functions.length).toBe(3);
    const artifacts = join(work, "artifacts");
    for (const fn of functions) {
      expect(fn.buildMethod, fn.id).toBe("makefile");
      const source = join(clone, fn.codeUri);
      const scratch = mkdtempSync(join(work, `scratch-${fn.id}-`));
      cpSync(source, scratch, {
        recursive: true,
        filter: (src) => !EXCLUDED_BY_SAM.has(src.slice(source.length).split("/").filter(Boolean)[0] ?? ""),
      });
      const artifactsDir = join(artifacts, fn.id);
      mkdirSync(artifactsDir, { recursive: true });
      run("make", ["--makefile", join(source, "Makefile"), `build-${fn.id}`], scratch, {
        ...process.env,
        ARTIFACTS_DIR: artifactsDir,
      });
    }

    // The reference: npm ci && npm run build in the same fresh clone.
    run("npm", ["ci", "--no-audit", "--no-fund"], clone);
    run("npm", ["run", "build"], clone);
    const bundleOf = (id: string) => {
      const m = new RegExp(`build-${id}: BUNDLE := ([a-z-]+)`).exec(
        readFileSync(join(clone, "Makefile"), "utf8"),
      );
      return m?.[1] ?? "";
    };
    for (const fn of functions) {
      const dir = join(artifacts, fn.id);
      expect(readdirSync(dir).sort(), fn.id).toEqual(["index.mjs", "index.mjs.map"]);
      for (const file of ["index.mjs", "index.mjs.map"]) {
        const built = readFileSync(join(dir, file));
        expect(
          built.equals(readFileSync(join(clone, "dist", bundleOf(fn.id), file))),
          `${fn.id}/${file}`,
        ).toBe(true);
        // …and npm run build left the same bytes where `sam deploy` looks.
        expect(
          built.equals(readFileSync(join(clone, ".aws-sam", "build", fn.id, file))),
          `${fn.id}/${file}`,
        ).toBe(true);
      }
    }
    expect(readdirSync(join(clone, "dist", "meta")).sort()).toEqual(
      ["cli.json", "read-token.json", "reconcile.json", "rotate-token.json"].sort(),
    );
  }, 900_000);

  it("npm run build replaces a stale .aws-sam/build (bundles and build template)", () => {
    // Runs after the first test, in the clone it installed.
    const build = join(clone, ".aws-sam", "build");
    rmSync(build, { recursive: true, force: true });
    mkdirSync(join(build, "RotateTokenFunction"), { recursive: true });
    writeFileSync(join(build, "RotateTokenFunction", "index.mjs"), "export const handler = () => 'stale';");
    writeFileSync(join(build, "RotateTokenFunction", "meta.json"), "{}");
    writeFileSync(join(build, "template.yaml"), "Resources: {}\n");
    run("npm", ["run", "build"], clone);
    for (const fn of templateFunctions(clone)) {
      expect(readdirSync(join(build, fn.id)).sort()).toEqual(["index.mjs", "index.mjs.map"]);
    }
    expect(
      readFileSync(join(build, "RotateTokenFunction", "index.mjs")).equals(
        readFileSync(join(clone, "dist", "rotate-token", "index.mjs")),
      ),
    ).toBe(true);
    const built = templateFunctions(build);
    expect(built.map((f) => [f.id, f.codeUri])).toEqual(templateFunctions(clone).map((f) => [f.id, f.id]));
    // Apart from CodeUri, the build template is the template.
    const strip = (dir: string) => {
      const doc = parseDocument(readFileSync(join(dir, "template.yaml"), "utf8"), {
        logLevel: "error",
      }).toJS() as {
        Resources: Record<string, { Properties?: Record<string, unknown> }>;
      };
      for (const r of Object.values(doc.Resources)) delete r.Properties?.CodeUri;
      return doc;
    };
    expect(strip(build)).toEqual(strip(clone));
  }, 300_000);
});

/**
 * `npm run layout`: the layout's two rules, over the repository's TypeScript sources and tests.
 *
 * 1. Imports point one way: entry points and the CLI depend on the domain, the domain on its
 *    libraries (`shared/lib/`), the libraries on nothing outside themselves, and nothing but tests,
 *    scripts and the simulator itself depends on the simulator. Each room is a path prefix; an
 *    import is resolved to the file it names and checked against the importer's room.
 * 2. Tests mirror their sources: `test/<kind>/<path>.test.ts` tests the source `<path>.<ext>`, and
 *    `test/<kind>/<path>.<aspect>.test.ts` one aspect of it (`reconcile.in-place.test.ts`). Only
 *    `test/support/` holds anything else (fixtures, helpers, vendored data).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

export interface Room {
  name: string;
  /** Path prefixes (relative to the repository) of the files in the room. */
  paths: string[];
  /** Rooms its files may import from (always including itself). */
  mayImport: string[];
}

export const ROOMS: Room[] = [
  { name: "functions", paths: ["functions/"], mayImport: ["domain", "lib"] },
  { name: "cli", paths: ["cli/"], mayImport: ["domain", "lib"] },
  { name: "domain", paths: ["shared/"], mayImport: ["lib"] },
  { name: "lib", paths: ["shared/lib/"], mayImport: [] },
  { name: "sandbox", paths: ["sandbox/"], mayImport: ["domain", "lib", "functions", "cli"] },
  { name: "scripts", paths: ["scripts/"], mayImport: ["domain", "lib", "functions", "cli", "sandbox"] },
  { name: "test", paths: ["test/"], mayImport: ["domain", "lib", "functions", "cli", "sandbox", "scripts"] },
];

/** The folders whose files are sources a test may mirror, or that hold tests. */
const TREES = ["functions", "shared", "cli", "sandbox", "infra", "scripts", "bin", "test"];
/** Top-level files a test may mirror (`test/unit/template.test.ts` → `template.yaml`). */
const TOP_LEVEL = ["template.yaml", "README.md", "Makefile", "package.json"];

/** The most specific room a path belongs to (shared/lib/ before shared/). */
export function roomOf(path: string, rooms: Room[] = ROOMS): Room | undefined {
  let best: { room: Room; length: number } | undefined;
  for (const room of rooms) {
    for (const prefix of room.paths) {
      if (path.startsWith(prefix) && (!best || prefix.length > best.length))
        best = { room, length: prefix.length };
    }
  }
  return best?.room;
}

/** Every file below `dir` (repository-relative), skipping node_modules, dist and dot folders. */
export function filesUnder(root: string, dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(join(root, dir));
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    if (entry === "node_modules" || entry === "dist" || entry.startsWith(".")) return [];
    const path = join(dir, entry);
    return statSync(join(root, path)).isDirectory() ? filesUnder(root, path) : [path];
  });
}

export const isSource = (path: string) => /\.(ts|mts)$/.test(path) && !path.endsWith(".d.ts");

const IMPORT = /(?:^|\s)(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** Every relative import of a file, as repository paths. */
export function importsOf(file: string, text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (!spec?.startsWith(".")) continue;
    found.push(normalize(join(dirname(file), spec)));
  }
  return found;
}

/** `file (room) → target (room)` for every import that points the wrong way. */
export function importViolations(root: string, rooms: Room[] = ROOMS): string[] {
  const wrong: string[] = [];
  for (const file of TREES.flatMap((d) => filesUnder(root, d)).filter(isSource)) {
    const from = roomOf(file, rooms);
    if (!from) continue;
    for (const target of importsOf(file, readFileSync(join(root, file), "utf8"))) {
      const to = roomOf(target, rooms);
      if (!to || to === from) continue;
      if (!from.mayImport.includes(to.name)) wrong.push(`${file} (${from.name}) → ${target} (${to.name})`);
    }
  }
  return wrong;
}

/** The source a test file mirrors, among `sources` (paths without their extension → path). */
export function mirroredSource(test: string, sources: Map<string, string>): string | undefined {
  const m = /^test\/(?:unit|integration|contract)\/(.+)\.test\.ts$/.exec(test);
  if (!m?.[1]) return undefined;
  const whole = sources.get(m[1]);
  if (whole) return whole;
  const aspect = m[1].lastIndexOf(".");
  return aspect > m[1].lastIndexOf("/") ? sources.get(m[1].slice(0, aspect)) : undefined;
}

/** Every file under test/ that is neither a test with its source at the mirrored path nor in test/support/. */
export function mirrorViolations(root: string): string[] {
  const sources = new Map<string, string>();
  const all = [...TREES.filter((d) => d !== "test").flatMap((d) => filesUnder(root, d)), ...TOP_LEVEL];
  for (const path of all) {
    const dot = path.lastIndexOf(".");
    const base = dot > path.lastIndexOf("/") ? path.slice(0, dot) : path;
    if (!sources.has(base)) sources.set(base, path);
  }
  const wrong: string[] = [];
  for (const file of filesUnder(root, "test")) {
    if (file.startsWith("test/support/")) continue;
    if (!file.endsWith(".test.ts")) {
      wrong.push(`${file}: not a test (fixtures and helpers live in test/support/)`);
      continue;
    }
    if (!mirroredSource(file, sources)) wrong.push(`${file}: no source at the mirrored path`);
  }
  return wrong;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = relative(process.cwd(), new URL("..", import.meta.url).pathname) || ".";
  const imports = importViolations(root);
  const mirrors = mirrorViolations(root);
  for (const line of imports) console.log(`import points the wrong way: ${line}`);
  for (const line of mirrors) console.log(`test not mirrored: ${line}`);
  console.log(
    imports.length + mirrors.length === 0
      ? "layout: every import points one way; every test mirrors its source"
      : `layout: ${imports.length} import(s), ${mirrors.length} test file(s) out of place`,
  );
  if (imports.length + mirrors.length > 0) process.exitCode = 1;
}

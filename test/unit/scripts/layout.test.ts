import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The layout's one rule, checked on every import: entry points and the CLI depend on the domain,
 * the domain depends on nothing outside itself, and nothing but tests, scripts and the simulator
 * itself depends on the simulator. Each room is a path prefix; an import is resolved to the file
 * it names and checked against the importer's room.
 */
const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), "..", ".."));

interface Room {
  name: string;
  /** Path prefixes (relative to the repository) of the files in the room. */
  paths: string[];
  /** Rooms its files may import from (always including itself). */
  mayImport: string[];
}

const ROOMS: Room[] = [
  { name: "functions", paths: ["functions/"], mayImport: ["shared"] },
  { name: "cli", paths: ["cli/"], mayImport: ["shared"] },
  { name: "shared", paths: ["shared/"], mayImport: [] },
  { name: "sandbox", paths: ["sandbox/"], mayImport: ["shared", "functions", "cli"] },
  { name: "scripts", paths: ["scripts/"], mayImport: ["shared", "functions", "cli", "sandbox"] },
  { name: "test", paths: ["test/"], mayImport: ["shared", "functions", "cli", "sandbox", "scripts"] },
];

/** The most specific room a path belongs to (shared/cli/ before shared/). */
function roomOf(path: string): Room | undefined {
  let best: { room: Room; length: number } | undefined;
  for (const room of ROOMS) {
    for (const prefix of room.paths) {
      if (path.startsWith(prefix) && (!best || prefix.length > best.length))
        best = { room, length: prefix.length };
    }
  }
  return best?.room;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir))) {
    if (entry === "node_modules" || entry === "dist" || entry.startsWith(".")) continue;
    const path = join(dir, entry);
    if (statSync(join(ROOT, path)).isDirectory()) out.push(...sources(path));
    else if (/\.(ts|mts)$/.test(entry) && !entry.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

const IMPORT = /(?:^|\s)(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** Every relative import of a file, as repository paths. */
function importsOf(file: string, text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (!spec?.startsWith(".")) continue;
    found.push(relative(ROOT, join(ROOT, dirname(file), spec)));
  }
  return found;
}

const FILES = ["functions", "shared", "cli", "sandbox", "infra", "scripts", "test"]
  .filter((d) => {
    try {
      return statSync(join(ROOT, d)).isDirectory();
    } catch {
      return false;
    }
  })
  .flatMap((d) => sources(d));

describe("imports point one way", () => {
  it("finds the sources it checks", () => {
    expect(FILES.some((f) => f.startsWith("functions/"))).toBe(true);
    expect(FILES.some((f) => f.startsWith("shared/rollout/"))).toBe(true);
  });

  it("functions and the CLI → the domain; the domain → itself; the simulator only from tests, scripts and itself", () => {
    const wrong: string[] = [];
    for (const file of FILES) {
      const from = roomOf(file);
      if (!from) continue;
      for (const target of importsOf(file, readFileSync(join(ROOT, file), "utf8"))) {
        const to = roomOf(target);
        if (!to || to === from) continue;
        if (!from.mayImport.includes(to.name)) wrong.push(`${file} (${from.name}) → ${target} (${to.name})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("fails on an import that points the wrong way", () => {
    const rooms = (file: string, text: string) =>
      importsOf(file, text).map((t) => `${roomOf(file)?.name}→${roomOf(t)?.name}`);
    expect(rooms("shared/rollout/plan.ts", 'import { x } from "../../functions/reconcile/trigger";')).toEqual(
      ["shared→functions"],
    );
    expect(
      rooms("functions/reconcile/handler.ts", 'const m = await import("../../sandbox/world/world");'),
    ).toEqual(["functions→sandbox"]);
    expect(ROOMS.find((r) => r.name === "shared")?.mayImport).not.toContain("functions");
    expect(ROOMS.find((r) => r.name === "functions")?.mayImport).not.toContain("sandbox");
  });
});

/**
 * `npm run large-files`: every source file over 400 lines, against an allow-list that gives each
 * one a reason. An unlisted large file, or a listed one that is no longer large (or gone), fails.
 * Tests are not counted: a table of cases is long by nature.
 */
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { filesUnder, isSource } from "./layout";

export const MAX_LINES = 400;
const ROOTS = ["functions", "shared", "cli", "sandbox", "infra", "scripts"];

/** Large files kept large on purpose (or not yet split), each with why. Keep it short. */
export const ALLOWED: Record<string, string> = {
  "shared/rollout/observe.ts":
    "the full and the partial observation share every reader; Run Command's part is already apart",
  "shared/rollout/plan.ts":
    "the one decision; its per-group parts (in-place, refresh, our refresh) are candidates for plan/",
  "shared/buildkite/client.ts":
    "one REST client: every call's timeout, retry, paging and error rule in one place",
  "shared/rotation/steps.ts":
    "the four rotation steps, each short, kept side by side because they hand state to each other",
  "shared/rollout/act.ts": "one writer per action kind; batching of tags lives beside the writes it batches",
};

const sources = (root: string, dir: string) => filesUnder(root, dir).filter(isSource);

export interface LargeFileReport {
  large: Array<{ path: string; lines: number; reason: string | undefined }>;
  /** Over the limit and not on the list. */
  unlisted: string[];
  /** On the list but no longer over the limit (or gone): remove them. */
  stale: string[];
}

export function largeFiles(root: string, allowed: Record<string, string> = ALLOWED): LargeFileReport {
  const large = ROOTS.flatMap((d) => sources(root, d))
    .map((path) => ({ path, lines: readFileSync(join(root, path), "utf8").split("\n").length - 1 }))
    .filter((f) => f.lines > MAX_LINES)
    .map((f) => ({ ...f, reason: allowed[f.path] }))
    .sort((a, b) => b.lines - a.lines);
  const paths = new Set(large.map((f) => f.path));
  return {
    large,
    unlisted: large.filter((f) => f.reason === undefined).map((f) => f.path),
    stale: Object.keys(allowed).filter((p) => !paths.has(p)),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = relative(process.cwd(), new URL("..", import.meta.url).pathname) || ".";
  const report = largeFiles(root);
  for (const f of report.large)
    console.log(`${String(f.lines).padStart(5)}  ${f.path}  — ${f.reason ?? "NOT ON THE LIST"}`);
  for (const p of report.stale)
    console.log(`stale allow-list entry (no longer over ${MAX_LINES} lines): ${p}`);
  if (report.unlisted.length > 0 || report.stale.length > 0) process.exit(1);
}

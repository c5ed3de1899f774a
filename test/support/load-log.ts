import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A Node `--import` that logs the URL of every ES module file the process loads (a module
 * customization hook, https://nodejs.org/api/module.html#customization-hooks), so a test can see
 * which files of a bundle a command really parsed. The hook runs on Node's loader thread; it gets
 * the log path through register()'s `data`.
 */
export function loadLogger(): { importFlag: string; logFile: string; loaded(): string[] } {
  const dir = mkdtempSync(join(tmpdir(), "load-log-"));
  const logFile = join(dir, "loaded.txt");
  writeFileSync(logFile, "");
  writeFileSync(
    join(dir, "hooks.mjs"),
    `import { appendFileSync } from "node:fs";
let log;
export async function initialize(data) { log = data.log; }
export async function load(url, context, next) {
  if (url.startsWith("file:")) appendFileSync(log, url + "\\n");
  return next(url, context);
}
`,
  );
  writeFileSync(
    join(dir, "register.mjs"),
    `import { register } from "node:module";
register("./hooks.mjs", import.meta.url, { data: { log: ${JSON.stringify(logFile)} } });
`,
  );
  return {
    importFlag: `--import=${join(dir, "register.mjs")}`,
    logFile,
    loaded: () =>
      readFileSync(logFile, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((u) => new URL(u).pathname),
  };
}

import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { largeFiles, MAX_LINES } from "../../../scripts/large-files";

const ROOT = new URL("../../..", import.meta.url).pathname;

describe("large source files", () => {
  it("every file over the limit is on the allow-list with a reason, and no entry is stale", () => {
    const report = largeFiles(ROOT);
    expect(report.unlisted).toEqual([]);
    expect(report.stale).toEqual([]);
    for (const f of report.large) expect(f.reason?.length ?? 0).toBeGreaterThan(10);
  });

  it("names an unlisted large file and a stale entry", () => {
    const dir = mkdtempSync(join(tmpdir(), "large-"));
    mkdirSync(join(dir, "shared"));
    writeFileSync(join(dir, "shared", "big.ts"), "x\n".repeat(MAX_LINES + 1));
    writeFileSync(join(dir, "shared", "small.ts"), "x\n".repeat(MAX_LINES));
    const report = largeFiles(dir, { "shared/small.ts": "was large once" });
    expect(report.unlisted).toEqual(["shared/big.ts"]);
    expect(report.stale).toEqual(["shared/small.ts"]);
  });
});

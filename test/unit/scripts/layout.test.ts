import { describe, expect, it } from "vitest";
import {
  importsOf,
  importViolations,
  mirroredSource,
  mirrorViolations,
  ROOMS,
  roomOf,
} from "../../../scripts/layout";

const ROOT = new URL("../../..", import.meta.url).pathname;

describe("imports point one way", () => {
  it("functions and the CLI → the domain → its libraries; the simulator only from tests, scripts and itself", () => {
    expect(importViolations(ROOT)).toEqual([]);
  });

  it("fails on an import that points the wrong way", () => {
    const rooms = (file: string, text: string) =>
      importsOf(file, text).map((t) => `${roomOf(file)?.name}→${roomOf(t)?.name}`);
    expect(rooms("shared/rollout/plan.ts", 'import { x } from "../../functions/reconcile/trigger";')).toEqual(
      ["domain→functions"],
    );
    expect(
      rooms("functions/reconcile/handler.ts", 'const m = await import("../../sandbox/world/world");'),
    ).toEqual(["functions→sandbox"]);
    expect(rooms("shared/lib/log.ts", 'import type { Plan } from "../rollout/types";')).toEqual([
      "lib→domain",
    ]);
    const allows = (from: string, to: string) => ROOMS.find((r) => r.name === from)?.mayImport.includes(to);
    expect(allows("domain", "functions")).toBe(false);
    expect(allows("lib", "domain")).toBe(false);
    expect(allows("functions", "sandbox")).toBe(false);
    expect(allows("cli", "sandbox")).toBe(false);
  });
});

describe("tests mirror their sources", () => {
  it("every file under test/ is a test at its source's mirrored path, or lives in test/support/", () => {
    expect(mirrorViolations(ROOT)).toEqual([]);
  });

  it("maps a test to its source, or to one aspect of it, and nothing else", () => {
    const sources = new Map([
      ["shared/rollout/reconcile", "shared/rollout/reconcile.ts"],
      ["template", "template.yaml"],
    ]);
    expect(mirroredSource("test/unit/shared/rollout/reconcile.test.ts", sources)).toBe(
      "shared/rollout/reconcile.ts",
    );
    expect(mirroredSource("test/integration/shared/rollout/reconcile.in-place.test.ts", sources)).toBe(
      "shared/rollout/reconcile.ts",
    );
    expect(mirroredSource("test/contract/template.iam.test.ts", sources)).toBe("template.yaml");
    expect(mirroredSource("test/unit/shared/rollout/reconciler.test.ts", sources)).toBeUndefined();
    expect(mirroredSource("test/unit/shared/reconcile.test.ts", sources)).toBeUndefined();
    expect(mirroredSource("test/support/reconcile.test.ts", sources)).toBeUndefined();
  });
});

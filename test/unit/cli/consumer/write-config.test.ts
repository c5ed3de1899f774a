import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setTokenLine } from "../../../../cli/consumer/write-config";
import { main } from "../../../../cli/main";
import { fakeIo } from "../../../support/cli-io";

const T = "bkct_abcdefghijklmnopqrstuvwxyz012345";

describe("setTokenLine", () => {
  it("replaces the first token line, drops later ones and keeps everything else", () => {
    const before = 'name="a"\ntoken="old"\n# token="commented"\n  token = "indented dup"\ntags="x"\n';
    expect(setTokenLine(before, T)).toBe(`name="a"\ntoken="${T}"\n# token="commented"\ntags="x"\n`);
  });

  it("appends when there is no token line, and adds the missing final newline", () => {
    expect(setTokenLine('name="a"', T)).toBe(`name="a"\ntoken="${T}"\n`);
    expect(setTokenLine("", T)).toBe(`token="${T}"\n`);
  });

  it("keeps CRLF line endings", () => {
    expect(setTokenLine('name="a"\r\ntoken="old"\r\n', T)).toBe(`name="a"\r\ntoken="${T}"\r\n`);
  });

  it("does not touch keys that merely start with token", () => {
    expect(setTokenLine('tokens-path="/x"\n', T)).toBe(`tokens-path="/x"\ntoken="${T}"\n`);
  });

  it.each(['a"b', "a\\b", "a b", "a\nb", "tökén"])("refuses %j without echoing it", (bad) => {
    expect(() => setTokenLine("", bad)).toThrow(/cannot be written/);
    try {
      setTokenLine("", bad);
    } catch (error) {
      expect(String((error as Error).message)).not.toContain(bad);
    }
  });
});

describe("write-config refuses unsafe targets before reading any secret", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "cli-safety-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("write-config refuses a FIFO (it would hang) and render a symlinked OUT, with a clear error", async () => {
    const fifo = join(dir, "agent.cfg");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const w = fakeIo({ AWS_ENDPOINT_URL: "http://127.0.0.1:1" });
    expect(
      await main(["write-config", "--file", fifo, "--secret-id", "x", "--region", "us-east-1"], w.io),
    ).toBe(1);
    expect(w.err()).toMatch(/FIFO/);
    const target = join(dir, "elsewhere");
    await writeFile(target, "");
    await symlink(target, join(dir, "out"));
    const r = fakeIo({ AWS_ENDPOINT_URL: "http://127.0.0.1:1" });
    expect(await main(["render", "--template", "/nonexistent", "--out", join(dir, "out")], r.io)).toBe(1);
    expect(r.err()).toMatch(/symbolic link/);
    expect(await readFile(target, "utf8")).toBe("");
    await rm(fifo);
    await rm(join(dir, "out"));
    await rm(target);
  });
});

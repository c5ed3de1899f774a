import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "../../../cli/args";
import { checkWriteTarget, readCheckedTarget, writeFileAtomic } from "../../../cli/consumer/atomic-write";
import { readerSettings, regionsFor } from "../../../cli/consumer/aws";
import { main } from "../../../cli/main";
import { commands } from "../../../cli/registry";
import type { CliIo, Command } from "../../../cli/types";
import { AppError } from "../../../shared/errors";
import { registerSecret } from "../../../shared/log";

function fakeIo(env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { stdout: { write: (s) => out.push(s) }, stderr: { write: (s) => err.push(s) }, env };
  return { io, out: () => out.join(""), err: () => err.join("") };
}

describe("main", () => {
  const registry: Record<string, Command> = {
    ok: {
      summary: "works",
      run: async (args, io) => {
        io.stdout.write(args.join(","));
        return 0;
      },
    },
    usage: {
      summary: "bad usage",
      run: async () => {
        throw new UsageError("--x is required");
      },
    },
    fails: {
      summary: "fails",
      run: async () => {
        throw new AppError("could not do it with bkct_leakyleakyleakyleaky0000");
      },
    },
  };

  it("dispatches to the command with the remaining arguments", async () => {
    const f = fakeIo();
    expect(await main(["ok", "a", "b"], f.io, registry)).toBe(0);
    expect(f.out()).toBe("a,b");
  });

  it("lists the commands for --help (exit 0) and for no or an unknown command (exit 2)", async () => {
    const help = fakeIo();
    expect(await main(["--help"], help.io, registry)).toBe(0);
    expect(help.out()).toMatch(/ok\s+works/);
    const none = fakeIo();
    expect(await main([], none.io, registry)).toBe(2);
    expect(none.out()).toBe("");
    expect(none.err()).toContain("Usage:");
    const unknown = fakeIo();
    expect(await main(["nope"], unknown.io, registry)).toBe(2);
    expect(unknown.err()).toContain('unknown command "nope"');
  });

  it("maps usage errors to 2 and other errors to 1, redacting registered secrets", async () => {
    const u = fakeIo();
    expect(await main(["usage"], u.io, registry)).toBe(2);
    expect(u.err()).toContain("--x is required");
    registerSecret("bkct_leakyleakyleakyleaky0000");
    const f = fakeIo();
    expect(await main(["fails"], f.io, registry)).toBe(1);
    expect(f.err()).toContain("could not do it");
    expect(f.err()).not.toContain("bkct_leakyleakyleakyleaky0000");
  });

  it("registers token, write-config and render, each with a summary", () => {
    for (const name of ["token", "write-config", "render"]) expect(commands[name]?.summary).toBeTruthy();
  });

  it("gives every registered command a --help on stdout", async () => {
    for (const name of Object.keys(commands)) {
      const f = fakeIo();
      expect(await main([name, "--help"], f.io)).toBe(0);
      expect(f.out()).toContain(`bk-agent-token ${name}`);
    }
  });
});

describe("reader settings", () => {
  it("takes defaults from the environment and orders regions", () => {
    const s = readerSettings(
      { "fallback-region": ["eu-west-1,us-west-2", "us-east-1"] },
      {
        BUILDKITE_AGENT_TOKEN_SECRET_ID: "bk/token",
        AWS_REGION: "eu-central-1",
      },
    );
    expect(s).toMatchObject({
      secretId: "bk/token",
      source: "secretsmanager",
      versionStage: "AWSCURRENT",
      regions: ["eu-central-1", "eu-west-1", "us-west-2", "us-east-1"],
      assumeRole: undefined,
    });
  });

  it("adds an ARN's own region last, and needs some region", () => {
    const s = readerSettings({ region: "eu-west-1" }, {});
    expect(regionsFor(s, "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf")).toEqual([
      "eu-west-1",
      "us-east-1",
    ]);
    expect(() => regionsFor(readerSettings({}, {}), "plain-name")).toThrow(UsageError);
  });

  it.each([
    [{ source: "vault" }, /--source/],
    [{ region: "moon-1" }, /region/],
    [{ "assume-role": "arn:aws:iam::123:user/x" }, /--assume-role/],
    [{ "assume-role": "arn:aws:iam::123456789012:role/r", "role-session-name": "a b" }, /session/],
    [{ "version-stage": "bad stage" }, /--version-stage/],
  ])("refuses %o", (values, message) => {
    expect(() => readerSettings(values, {})).toThrow(message);
  });
});

describe("main bounds what it prints", () => {
  it("an unknown 10 MiB command name and a 10 MiB error message print a few KB at most", async () => {
    const huge = "x".repeat(10 * 1024 * 1024);
    const unknown = fakeIo();
    expect(await main([huge], unknown.io)).toBe(2);
    expect(unknown.err().length).toBeLessThan(10_000);
    const failing = fakeIo();
    const registry: Record<string, Command> = {
      boom: {
        summary: "fails loudly",
        run: async () => {
          throw new AppError(huge);
        },
      },
    };
    expect(await main(["boom"], failing.io, registry)).toBe(1);
    expect(failing.err().length).toBeLessThan(5_000);
  });
});

describe("writeFileAtomic", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "atomic-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes with exactly the mode asked for, whatever the umask or the old mode", async () => {
    const file = join(dir, "a");
    await writeFile(file, "old", { mode: 0o666 });
    const previous = process.umask(0o000);
    try {
      await writeFileAtomic(file, "new", 0o600);
    } finally {
      process.umask(previous);
    }
    expect(await readFile(file, "utf8")).toBe("new");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("refuses a symlinked target unless links may be followed; then replaces its target, not the link", async () => {
    const target = join(dir, "target");
    const link = join(dir, "link");
    await writeFile(target, "old");
    await symlink(target, link);
    await expect(writeFileAtomic(link, "new")).rejects.toMatchObject({ name: "UnsafePathError" });
    expect(await readFile(target, "utf8")).toBe("old");
    await writeFileAtomic(link, "new", 0o600, { followSymlinks: true });
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe(target);
    expect(await readFile(target, "utf8")).toBe("new");
  });

  it("refuses a symlinked parent directory (files could be created anywhere)", async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), "elsewhere-"));
    try {
      await symlink(elsewhere, join(dir, "linked-dir"));
      await expect(writeFileAtomic(join(dir, "linked-dir", "f"), "x")).rejects.toThrow(/symbolic link/);
      expect(await readdir(elsewhere)).toEqual([]);
      await writeFileAtomic(join(dir, "linked-dir", "f"), "x", 0o600, { followSymlinks: true });
      expect(await readFile(join(elsewhere, "f"), "utf8")).toBe("x");
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  // The system's own nodes are only inspected (checkWriteTarget never writes): a regression in a
  // test that wrote to them as root would replace /dev/null for the whole machine.
  it.each([
    ["/dev/null", /character device.*--out -/],
    ["/dev/stdout", /symbolic link.*--out -/],
  ])("refuses %s", async (path, message) => {
    await expect(checkWriteTarget(path)).rejects.toThrow(message);
  });

  it("refuses a link to a device-like stand-in and leaves its target alone", async () => {
    const stand = join(dir, "stdout-target");
    await writeFile(stand, "");
    await symlink(stand, join(dir, "stdout"));
    await expect(writeFileAtomic(join(dir, "stdout"), "secret")).rejects.toThrow(/symbolic link/);
    expect(await readFile(stand, "utf8")).toBe("");
  });

  it("reads a checked target only if it is still a regular file (a link or FIFO swapped in since is refused)", async () => {
    const file = join(dir, "swapped.cfg");
    await writeFile(file, 'name="x"\n');
    const checked = await checkWriteTarget(file);
    expect(await readCheckedTarget(checked)).toBe('name="x"\n');
    const secretElsewhere = join(dir, "root-only");
    await writeFile(secretElsewhere, "root secret");
    await rm(file);
    await symlink(secretElsewhere, file);
    await expect(readCheckedTarget(checked)).rejects.toThrow(/symbolic link/);
    await rm(file);
    expect(spawnSync("mkfifo", [file]).status).toBe(0);
    await expect(readCheckedTarget(checked)).rejects.toThrow(/FIFO/);
    await rm(file);
  });

  it("refuses a FIFO without opening it (it would hang) and a directory", async () => {
    const fifo = join(dir, "fifo");
    const made = spawnSync("mkfifo", [fifo]);
    expect(made.status).toBe(0);
    await expect(writeFileAtomic(fifo, "secret")).rejects.toThrow(/FIFO/);
    await mkdir(join(dir, "a-dir"));
    await expect(writeFileAtomic(join(dir, "a-dir"), "secret")).rejects.toThrow(/directory/);
  });

  it("refuses a directory writable by group or others, as sshd's StrictModes does; a sticky one is fine", async () => {
    const open = join(dir, "open");
    await mkdir(open);
    for (const mode of [0o770, 0o707, 0o777]) {
      await chmod(open, mode);
      await expect(writeFileAtomic(join(open, "f"), "x")).rejects.toThrow(/writable by/);
    }
    await chmod(open, 0o1777);
    await expect(writeFileAtomic(join(open, "f"), "x")).resolves.toMatchObject({ ownerKept: true });
    await chmod(open, 0o700);
  });

  it("fails without leaving a temporary file when the directory does not exist", async () => {
    await expect(writeFileAtomic(join(dir, "missing", "x"), "data")).rejects.toThrow();
  });
});

describe("write-config and render refuse unsafe targets before reading any secret", () => {
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

  it("render --out - writes to standard output and nowhere else", async () => {
    const template = join(dir, "t.tmpl");
    await writeFile(template, "QUEUE={{ secret env://QUEUE }}\n");
    const run = fakeIo({ QUEUE: "deploy" });
    // From inside the temporary directory: were "-" taken as a file name, it would land here.
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      expect(await main(["render", "--template", template, "--out", "-"], run.io)).toBe(0);
    } finally {
      process.chdir(cwd);
    }
    expect(run.out()).toBe("QUEUE=deploy\n");
    expect(await readdir(dir)).toEqual(["t.tmpl"]);
  });

  it("render refuses a tag that looks like a reference but does not parse", async () => {
    const template = join(dir, "typo.tmpl");
    await writeFile(template, "A={{ Secret env://QUEUE }}\n");
    const run = fakeIo({ QUEUE: "deploy" });
    expect(await main(["render", "--template", template, "--out", join(dir, "typo.out")], run.io)).toBe(1);
    expect(run.err()).toMatch(/malformed tag on line 1/);
    expect(existsSync(join(dir, "typo.out"))).toBe(false);
  });
});

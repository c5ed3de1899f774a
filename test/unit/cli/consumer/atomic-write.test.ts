import { spawnSync } from "node:child_process";
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
import { checkWriteTarget, readCheckedTarget, writeFileAtomic } from "../../../../cli/consumer/atomic-write";

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

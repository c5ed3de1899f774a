import { randomBytes } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { lstat, open, realpath, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, parse, resolve, sep } from "node:path";
import { AppError } from "../../shared/lib/errors";

export interface AtomicWriteResult {
  path: string;
  /** False when the previous owner could not be kept (not running as root). */
  ownerKept: boolean;
}

export interface SafePathOptions {
  /**
   * Follow symbolic links in the target and its directories (off by default). The CLI runs as
   * root on boot: a link planted where it writes would let whoever planted it choose which file
   * root overwrites (with `render`, with content they chose).
   */
  followSymlinks?: boolean;
}

/** A path the CLI refuses to write: the message says why and what to do. */
export class UnsafePathError extends AppError {
  override name = "UnsafePathError";
}

export interface CheckedTarget {
  /** The absolute path that will be replaced (links resolved when they may be followed). */
  path: string;
  /** The target exists (and is a regular file). */
  exists: boolean;
}

const describeType = (s: Stats): string =>
  s.isSymbolicLink()
    ? "a symbolic link"
    : s.isDirectory()
      ? "a directory"
      : s.isFIFO()
        ? "a FIFO"
        : s.isCharacterDevice()
          ? "a character device"
          : s.isBlockDevice()
            ? "a block device"
            : s.isSocket()
              ? "a socket"
              : "not a regular file";

/**
 * The directories from the root down to `dir`. Each must be a real directory (not a link, unless
 * links may be followed), owned by root or by us, and not writable by group or others unless its
 * sticky bit is set (as /tmp: then nobody else can rename or remove our entries). These are the
 * rules sshd's StrictModes applies to the directories above authorized_keys (openssh-portable
 * misc.c `safe_path`: owner root or the user, no group/other write), except that sshd makes no
 * exception for sticky directories: anyone who can rename a directory on the way can swap in one
 * of their own between our checks and our rename, which the sticky bit prevents. On the Elastic
 * CI Stack /etc/buildkite-agent is root's (`sudo mkdir -p /etc/buildkite-agent/hooks`; only
 * hooks/ and the cfg file are chowned to buildkite-agent: elastic-ci-stack-for-aws
 * packer/linux/stack/scripts/install-buildkite-agent.sh, conf/bin/bk-install-elastic-stack.sh).
 */
async function checkDirectories(dir: string, followSymlinks: boolean): Promise<void> {
  const { root } = parse(dir);
  const parts = dir.slice(root.length).split(sep).filter(Boolean);
  const uid = process.getuid?.();
  let current = root;
  for (const part of ["", ...parts]) {
    current = part ? join(current, part) : current;
    let s: Stats;
    try {
      s = followSymlinks ? await stat(current) : await lstat(current);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        throw new UnsafePathError(`directory ${current} does not exist`);
      }
      throw error;
    }
    if (s.isSymbolicLink()) {
      throw new UnsafePathError(
        `${current} is a symbolic link; refusing to write through it (pass --follow-symlinks if it is meant to be one)`,
      );
    }
    if (!s.isDirectory()) throw new UnsafePathError(`${current} is ${describeType(s)}, not a directory`);
    // POSIX permissions only: Windows reports modes that mean nothing here.
    if (uid === undefined || process.platform === "win32") continue;
    if (s.uid !== 0 && s.uid !== uid) {
      throw new UnsafePathError(`directory ${current} is owned by uid ${s.uid}, neither root nor us`);
    }
    const sticky = (s.mode & 0o1000) !== 0;
    if ((s.mode & 0o022) !== 0 && !sticky) {
      throw new UnsafePathError(
        `directory ${current} is writable by ${s.mode & 0o020 ? "its group" : "others"} (mode ${(s.mode & 0o7777).toString(8)}); refusing to write a secret under it`,
      );
    }
  }
}

/**
 * Where `path` may be written, or why not: the target must be a regular file or missing, never a
 * link (unless links may be followed), a device, a FIFO, a socket or a directory (writing
 * /dev/null or /dev/stdout would replace the system's node with a file holding the token; a FIFO
 * would hang), and its directories must pass `checkDirectories`.
 */
export async function checkWriteTarget(path: string, options: SafePathOptions = {}): Promise<CheckedTarget> {
  const follow = options.followSymlinks === true;
  let target = resolve(path);
  if (follow) {
    // Resolve what exists; a missing target is created in its (resolved) directory.
    target = await realpath(target).catch(async () =>
      join(await realpath(dirname(target)), basename(target)),
    );
  }
  await checkDirectories(dirname(target), follow);
  let s: Stats;
  try {
    s = await lstat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { path: target, exists: false };
    throw error;
  }
  if (s.isSymbolicLink()) {
    throw new UnsafePathError(
      `${target} is a symbolic link; refusing to replace what it points to (pass --follow-symlinks if it is meant to be one${
        target.startsWith("/dev/") ? "; for standard output use --out -" : ""
      })`,
    );
  }
  if (!s.isFile()) {
    throw new UnsafePathError(
      `${target} is ${describeType(s)}; only a regular file (or a missing one) is replaced${
        target.startsWith("/dev/") ? "; for standard output use --out -" : ""
      }`,
    );
  }
  return { path: target, exists: true };
}

/**
 * The content of a target `checkWriteTarget` accepted, read without following a link swapped in
 * since (O_NOFOLLOW) and without blocking on a FIFO swapped in since (O_NONBLOCK), and only if it
 * is still a regular file: what we read is written back into a file its owner can read.
 */
export async function readCheckedTarget(
  target: CheckedTarget,
  options: SafePathOptions = {},
): Promise<string> {
  if (!target.exists) return "";
  const flags =
    constants.O_RDONLY | constants.O_NONBLOCK | (options.followSymlinks === true ? 0 : constants.O_NOFOLLOW);
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(target.path, flags);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOOP") {
      throw new UnsafePathError(`${target.path} became a symbolic link; refusing to read through it`);
    }
    throw error;
  }
  try {
    const s = await handle.stat();
    if (!s.isFile()) throw new UnsafePathError(`${target.path} is ${describeType(s)}; refusing to read it`);
    return await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
}

/**
 * Replace `path` with `data` so that a reader sees the old file or the new one, never a partial
 * one: write a temporary file in the same directory (same filesystem), fsync it, rename it over
 * the target, fsync the directory. The file gets exactly `mode` (not subject to the umask). When
 * the target exists, its owner and group are kept if we are allowed to (a root boot script
 * rewriting the agent's config must leave it readable by the agent's user). The target and its
 * directories are checked first (`checkWriteTarget`); links are refused unless
 * `followSymlinks`.
 */
export async function writeFileAtomic(
  path: string,
  data: string,
  mode = 0o600,
  options: SafePathOptions = {},
): Promise<AtomicWriteResult> {
  const { path: target } = await checkWriteTarget(path, options);
  const previous = await lstat(target).catch(() => undefined);
  const dir = dirname(target);
  const tmp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let ownerKept = true;
  try {
    // "wx": O_CREAT|O_EXCL, which never follows a link planted at the temporary name.
    const file = await open(tmp, "wx", mode);
    try {
      await file.chmod(mode);
      if (previous && (previous.uid !== process.getuid?.() || previous.gid !== process.getgid?.())) {
        ownerKept = await file.chown(previous.uid, previous.gid).then(
          () => true,
          () => false,
        );
      }
      await file.writeFile(data, "utf8");
      await file.sync();
    } finally {
      await file.close();
    }
    // rename replaces the directory entry itself: a link swapped in at the target after our
    // check is replaced, not followed.
    await rename(tmp, target);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
  return { path: target, ownerKept };
}

async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Not every platform or filesystem can fsync a directory; the rename itself is atomic.
  }
}

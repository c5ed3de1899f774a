import { randomBytes } from "node:crypto";
import { open, realpath, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";

export interface AtomicWriteResult {
  path: string;
  /** False when the previous owner could not be kept (not running as root). */
  ownerKept: boolean;
}

/**
 * Replace `path` with `data` so that a reader sees the old file or the new one, never a partial
 * one: write a temporary file in the same directory (same filesystem), fsync it, rename it over
 * the target, fsync the directory. The file gets exactly `mode` (not subject to the umask). When
 * the target exists, its owner and group are kept if we are allowed to (a root boot script
 * rewriting the agent's config must leave it readable by the agent's user). A symlink is followed:
 * its target is replaced.
 */
export async function writeFileAtomic(path: string, data: string, mode = 0o600): Promise<AtomicWriteResult> {
  const target = await realpath(path).catch(() => resolve(path));
  const previous = await stat(target).catch(() => undefined);
  const dir = dirname(target);
  const tmp = join(dir, `.${basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  let ownerKept = true;
  try {
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

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface MotoServer {
  url: string;
  port: number;
  /** The server's process id, for CPU accounting (the bench). */
  pid: number | undefined;
  stop(): Promise<void>;
}

/** moto-server.py: moto server with SQS's cost independent of a queue's depth (nothing it returns changes). */
const MOTO_LAUNCHER = fileURLToPath(new URL("./moto-server.py", import.meta.url));

const INSTALL_HINT = 'moto server is not installed for python3. Install it with: pip install "moto[server]"';

/** True when `python3 -m moto.server` can run here. */
/** Pythons already found to have moto: the probe costs seconds on a loaded machine, once is enough. */
const probed = new Set<string>();

export function motoAvailable(python = process.env.PYTHON ?? "python3"): boolean {
  if (probed.has(python)) return true;
  const probe = spawnSync(python, ["-c", "import moto.server"], { stdio: "ignore", timeout: 60_000 });
  if (probe.error && (probe.error as NodeJS.ErrnoException).code === "ETIMEDOUT") {
    // Not the same as "not installed": say what really happened.
    throw new Error(
      `${python} -c "import moto.server" did not finish within 60 s (is the machine overloaded?)`,
    );
  }
  if (probe.status === 0) probed.add(python);
  return probe.status === 0;
}

/**
 * Start moto server on a free loopback port and wait (bounded) until it answers. The caller owns
 * the process and must stop() it; it is also killed if this process exits.
 */
export async function startMoto(options: { timeoutMs?: number; python?: string } = {}): Promise<MotoServer> {
  const python = options.python ?? process.env.PYTHON ?? "python3";
  if (!motoAvailable(python)) throw new Error(INSTALL_HINT);
  // moto server as `python3 -m moto.server` runs it, with its SQS clock reads made cheap (see the
  // launcher), on a port the OS gives it when it binds (-p 0): a port found free beforehand could
  // be taken by another test's server before moto binds it ("Address already in use", seen in CI),
  // and the readiness probe below could then be answered by that other server.
  const child = spawn(python, [MOTO_LAUNCHER, "-H", "127.0.0.1", "-p", "0"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: "true" },
  });
  let stderr = "";
  let port: number | undefined;
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
    port ??= boundPort(stderr);
  });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`moto server exited with ${child.exitCode}: ${stderr.trim()}`);
    if (port !== undefined) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/moto-api/data.json`, {
          signal: AbortSignal.timeout(1_000),
        });
        await res.body?.cancel();
        if (res.ok)
          return {
            url: `http://127.0.0.1:${port}`,
            port,
            pid: child.pid,
            stop: () => stopChild(child, killOnExit),
          };
      } catch {
        // not answering yet
      }
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(
        `moto server did not answer within ${options.timeoutMs ?? 30_000} ms (port ${port ?? "not reported"}): ${stderr.trim()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The port werkzeug (moto server's HTTP server) reports once bound: ` * Running on http://127.0.0.1:PORT`. */
export function boundPort(stderr: string): number | undefined {
  const m = /Running on http:\/\/127\.0\.0\.1:(\d{1,5})\b/.exec(stderr);
  const port = m ? Number(m[1]) : Number.NaN;
  return port > 0 && port < 65_536 ? port : undefined;
}

async function stopChild(child: ChildProcess, killOnExit: () => void): Promise<void> {
  process.removeListener("exit", killOnExit);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
  await exited;
  clearTimeout(timer);
}

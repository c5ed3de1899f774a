/**
 * Runs a document's aws:runShellScript step for real, as SSM Agent would on the instance: the
 * substituted script in a file run by bash, with the environment SSM Agent gives a command
 * (AWS_SSM_INSTANCE_ID, AWS_SSM_REGION_NAME — the variables AWS's own documents such as
 * AWS-RunInspecChecks read), the instance role's credentials (test credentials here) and the
 * preinstalled AWS CLI pointed at the sandbox's single SSM endpoint through AWS_ENDPOINT_URL
 * (honoured by aws-cli 1.45 / botocore 1.43).
 *
 * The instance's boot state reaches the script through two shims on PATH, `cloud-init` and
 * `systemctl`, backed by InstanceHost.bootFinished(): `cloud-init status` prints `status: done` or
 * `status: running` (https://cloudinit.readthedocs.io/en/latest/reference/cli.html#status) and
 * `systemctl is-active buildkite-agent` exits 0 (active) or 3 (inactive), as systemctl does.
 */
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import type { InstanceHost } from "../instances/instance-host";

export interface StepRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Set when the run was stopped from outside (timeout, instance terminated). */
  aborted: boolean;
}

export interface LinuxStepOptions {
  host: InstanceHost;
  /** The script with its parameters already substituted. */
  script: string;
  /** The one SSM endpoint (the Run Command stand-in, which proxies Parameter Store to moto). */
  ssmEndpoint: string;
  shimDirectory: string;
  signal: AbortSignal;
}

const OUTPUT_LIMIT_BYTES = 1024 * 1024;

/** Creates the `cloud-init` and `systemctl` shims once; returns their directory. */
export function createShims(): string {
  const dir = mkdtempSync(join(tmpdir(), "ssm-standin-shims-"));
  const cloudInit = `#!/bin/bash
# sandbox shim: cloud-init status backed by InstanceHost.bootFinished()
if [ "\${1:-}" = status ]; then
  if [ "\${BK_SANDBOX_BOOT_FINISHED:-0}" = 1 ]; then echo "status: done"; exit 0; fi
  echo "status: running"; exit 0
fi
echo "cloud-init shim: unsupported: $*" >&2; exit 2
`;
  const systemctl = `#!/bin/bash
# sandbox shim: systemctl is-active buildkite-agent backed by InstanceHost.bootFinished()
quiet=0; verb=""; unit=""
for a in "$@"; do
  case "$a" in --quiet|-q) quiet=1 ;; -*) ;; *) if [ -z "$verb" ]; then verb="$a"; else unit="$a"; fi ;; esac
done
if [ "$verb" = is-active ]; then
  if [ "$unit" = buildkite-agent ] && [ "\${BK_SANDBOX_BOOT_FINISHED:-0}" = 1 ]; then
    [ "$quiet" = 1 ] || echo active; exit 0
  fi
  [ "$quiet" = 1 ] || echo inactive; exit 3
fi
echo "systemctl shim: unsupported: $*" >&2; exit 1
`;
  for (const [name, text] of [
    ["cloud-init", cloudInit],
    ["systemctl", systemctl],
  ] as const) {
    const path = join(dir, name);
    writeFileSync(path, text);
    chmodSync(path, 0o755);
  }
  return dir;
}

export async function runLinuxStep(options: LinuxStepOptions): Promise<StepRun> {
  const { host } = options;
  const work = mkdtempSync(join(tmpdir(), `ssm-standin-${host.instanceId}-`));
  const home = join(work, "home");
  mkdirSync(home, { mode: 0o700 });
  const scriptPath = join(work, "_script.sh");
  writeFileSync(scriptPath, options.script, { mode: 0o700 });
  const env: NodeJS.ProcessEnv = {
    PATH: `${options.shimDirectory}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    HOME: home,
    LANG: "C.UTF-8",
    TMPDIR: work,
    AWS_SSM_INSTANCE_ID: host.instanceId,
    AWS_SSM_REGION_NAME: host.region,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_ENDPOINT_URL: options.ssmEndpoint,
    AWS_CONFIG_FILE: join(home, "config"),
    AWS_SHARED_CREDENTIALS_FILE: join(home, "credentials"),
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_MAX_ATTEMPTS: "3",
    BK_SANDBOX_BOOT_FINISHED: host.bootFinished() ? "1" : "0",
  };
  // HOME is the instance's own; a pyenv-installed `aws` still needs pyenv's root to find its Python.
  const pyenvRoot = process.env.PYENV_ROOT ?? join(homedir(), ".pyenv");
  if (existsSync(pyenvRoot)) env.PYENV_ROOT = pyenvRoot;
  if (process.env.PYENV_VERSION) env.PYENV_VERSION = process.env.PYENV_VERSION;
  try {
    return await new Promise<StepRun>((resolve) => {
      // Its own process group, so a stop takes the script's children (sleep, aws) down with it.
      const child = spawn("bash", [scriptPath], {
        cwd: work,
        env,
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      let stdout = "";
      let stderr = "";
      let aborted = false;
      child.stdout.on("data", (d: Buffer) => {
        if (stdout.length < OUTPUT_LIMIT_BYTES) stdout += d.toString("utf8");
      });
      child.stderr.on("data", (d: Buffer) => {
        if (stderr.length < OUTPUT_LIMIT_BYTES) stderr += d.toString("utf8");
      });
      const stop = () => {
        aborted = true;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
      };
      if (options.signal.aborted) stop();
      options.signal.addEventListener("abort", stop, { once: true });
      child.on("close", (code, signal) => {
        options.signal.removeEventListener("abort", stop);
        resolve({ exitCode: code ?? (signal ? 128 : 1), stdout, stderr, aborted });
      });
      child.on("error", (error) => {
        options.signal.removeEventListener("abort", stop);
        resolve({ exitCode: 127, stdout, stderr: `${stderr}${error.message}\n`, aborted });
      });
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

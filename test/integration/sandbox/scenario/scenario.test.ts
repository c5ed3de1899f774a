/**
 * `npm run sandbox`: the scenario in-process in a short configuration (the default in-place run
 * with an SSM agent offline at first, `--ssm-offline`, `--strategy refresh`, `--fail-refresh`),
 * then the real command as a child process, which must exit 0, print the summary and no token,
 * and leave no process behind. The invariants themselves are unit-tested in
 * test/unit/sandbox/verdict/invariants.test.ts.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { PROFILES, type Profile, type ScenarioOptions } from "../../../../sandbox/scenario/scenario";
import { refreshFor } from "../../../../sandbox/verdict/facts";
import { IN_PLACE_COMPLETE_INVARIANTS } from "../../../support/invariants";

const ROOT = resolve(import.meta.dirname, "../../../..");

/** The quick profile, a little faster: Linux and Windows stacks in 3 regions, 10 instances. */
const SHORT: Profile = {
  ...PROFILES.quick,
  name: "test",
  replicaLagMs: 200,
  replaceMs: 40,
  scheduleEveryMs: 1_000,
  tickMs: 100,
  progressIntervalMs: 500,
  rotationTimeoutMs: 60_000,
  ssmOutageMs: 2_000,
  inPlace: { retrySeconds: 1, fallbackAfterSeconds: 6 },
};
const INSTANCES = SHORT.stacks.reduce((n, g) => n + g.instances, 0);
const TOKEN_VALUE = /bk(ct|ua)_[0-9a-f]{16,}/;
const LONG = 240_000;

/** The scenario and the handlers from one fresh module graph, so they share one logger. */
async function fresh() {
  vi.resetModules();
  const scenario = await import("../../../../sandbox/scenario/scenario");
  const rotate = await import("../../../../functions/rotate-token/handler");
  const reconcile = await import("../../../../functions/reconcile/handler");
  return {
    run: (options: Omit<ScenarioOptions, "handlers">) => {
      const chunks: string[] = [];
      const io = { write: (text: string) => void chunks.push(text), isTTY: false, columns: 100 };
      return scenario
        .runScenario(
          { ...options, handlers: { rotateToken: rotate.handler, reconcile: reconcile.handler } },
          io,
        )
        .then((result) => ({ result, output: chunks.join("") }));
    },
  };
}

describe("sandbox scenario (in-process, short profile)", () => {
  it(
    "in place, two rotations: exit 0, nothing replaced or interrupted, the offline SSM agent retried, one managed token valid",
    async () => {
      const { run } = await fresh();
      const { result, output } = await run({ profile: SHORT, rotations: 2 });

      expect(result.violations).toEqual([]);
      expect(result.exitCode).toBe(0);
      expect(result.outcome).toBe("complete");
      const summary = result.summary;
      if (!summary) throw new Error("no summary");
      expect(summary.invariants.every((i) => i.ok)).toBe(true);
      expect(summary.invariants.map((i) => i.id)).toEqual(IN_PLACE_COMPLETE_INVARIANTS);

      // Checked again here, independently of the scenario's own checks.
      const { facts, numbers } = summary;
      const [first, second] = facts.rotations;
      if (!first?.versionId || !second?.versionId) throw new Error("rotations missing");
      expect(facts.strategy).toBe("in-place");
      for (const r of facts.rotations) {
        expect(r.fleet).toMatchObject({ replacedByRollout: 0, jobsInterrupted: 0, failedRegistrations: 0 });
        expect(r.fleet?.installInvocations).toBeGreaterThanOrEqual(INSTANCES);
      }
      expect(facts.refreshes).toEqual([]);
      expect(numbers.failedRegistrations).toBe(0);
      expect(numbers.managedValid.map((t) => t.versionId)).toEqual([second.versionId]);
      const revoked = facts.tokens.filter((t) => t.revokedAt);
      expect(revoked.map((t) => t.versionId)).toEqual([first.versionId]);
      // The SSM agent came back before the revocation, and the snapshot then shows every cfg moved on.
      const outage = second.ssmOutage;
      expect(outage?.restoredAt).toBeDefined();
      const snapshot = facts.revocations.find((r) => r.tokenId === revoked[0]?.id);
      expect(snapshot?.instances).toHaveLength(INSTANCES);
      expect((outage?.restoredAt?.getTime() ?? Infinity) <= (snapshot?.at.getTime() ?? 0)).toBe(true);
      const secondToken = facts.tokens.find((t) => t.versionId === second.versionId)?.id;
      expect(snapshot?.instances.every((i) => i.cfgTokenId === secondToken)).toBe(true);
      expect(facts.finalCfgs.every((i) => i.cfgTokenId === secondToken)).toBe(true);
      // The initial token was made by a human: never revoked.
      expect(facts.tokens.find((t) => t.initial)?.valid).toBe(true);
      expect(facts.alerts).toEqual([]);

      // What was printed: the world, events, progress lines, the summary, a final line; no token.
      expect(output).toContain("moto server (Secrets Manager, SSM, SNS, SQS)");
      expect(output).toContain("TypeScript mirror");
      expect(output).toMatch(/Run Command: us-west-2\/i-\w+ \(Linux\) Success result=installed/);
      expect(output).toContain(`the SSM agent of ${outage?.region}/${outage?.instanceId} is online again`);
      expect(output).toMatch(/replica eu-west-1 serves version/);
      expect(output).toMatch(/Buildkite: token \w{8} \(version \w{8}\) revoked/);
      expect(output).toContain("  │ ");
      expect(output).toMatch(/instances replaced by the rollout +0 +0/);
      expect(output).toMatch(/jobs interrupted +0 +0/);
      expect(output).toMatch(/failed registrations +0 +0/);
      expect(output).toContain("promotion → revocation");
      expect(output).toMatch(
        /sandbox: OK .*in place \(0 instances replaced by the rollout, 0 jobs interrupted\).*\(exit 0\)\n$/,
      );
      expect(output).not.toMatch(TOKEN_VALUE);
    },
    LONG,
  );

  it(
    "--churn: idle agents terminate themselves and are replaced, counted apart from the rollout (still 0 replaced)",
    async () => {
      const { run } = await fresh();
      const { result, output } = await run({
        profile: { ...SHORT, churnIdleMs: 1_500 },
        rotations: 2,
        churn: true,
      });

      expect(result.violations).toEqual([]);
      expect(result.exitCode).toBe(0);
      const facts = result.summary?.facts;
      if (!facts) throw new Error("no summary");
      const churned = facts.rotations.reduce((n, r) => n + (r.fleet?.selfTerminated ?? 0), 0);
      expect(churned).toBeGreaterThan(0);
      for (const r of facts.rotations)
        expect(r.fleet).toMatchObject({ replacedByRollout: 0, jobsInterrupted: 0 });
      expect(output).toMatch(/natural churn \(idle self-terminations \/ launches\) +\d+ \/ \d+ +\d+ \/ \d+/);
      expect(output).not.toMatch(TOKEN_VALUE);
    },
    LONG,
  );

  it(
    "--ssm-offline: exit 2, one alert naming the instance, no managed token revoked",
    async () => {
      const { run } = await fresh();
      const { result, output } = await run({ profile: SHORT, rotations: 2, ssmOffline: true });

      expect(result.violations).toEqual([]);
      expect(result.exitCode).toBe(2);
      expect(result.outcome).toBe("blocked");
      const facts = result.summary?.facts;
      if (!facts) throw new Error("no summary");
      const [first, second] = facts.rotations;
      const outage = second?.ssmOutage;
      if (!first?.versionId || !second?.versionId || !outage) throw new Error("rotations missing");
      expect(outage.restoredAt).toBeUndefined();
      expect(facts.blockedOn).toEqual({ kind: "instance", name: outage.instanceId });
      expect(facts.tokens.filter((t) => t.revokedAt)).toEqual([]);
      expect(facts.revocations).toEqual([]);
      expect(facts.tokens.find((t) => t.versionId === first.versionId)?.valid).toBe(true);
      expect(facts.alerts).toHaveLength(1);
      expect(facts.alerts[0]?.message).toContain(outage.instanceId);
      // The offline instance's cfg still holds the first rotation's token; every other one moved on.
      const firstToken = facts.tokens.find((t) => t.versionId === first.versionId)?.id;
      expect(facts.finalCfgs.find((i) => i.instanceId === outage.instanceId)?.cfgTokenId).toBe(firstToken);
      expect(result.headline).toMatch(/rollout blocked as designed/);
      expect(result.headline).toContain(outage.instanceId);
      expect(result.headline).toMatch(/no token was revoked early \(exit 2\)/);
      expect(output).toMatch(/ALERT \(SNS → SQS\): .*instances not updated in place/);
      expect(output).toContain("Why the rollout stopped");
      expect(output).not.toMatch(TOKEN_VALUE);
    },
    LONG,
  );

  it(
    "--strategy refresh: exit 0 with Refresh, every instance replaced, the interrupted jobs reported",
    async () => {
      const { run } = await fresh();
      const { result, output } = await run({ profile: SHORT, rotations: 2, strategy: "refresh" });

      expect(result.violations).toEqual([]);
      expect(result.exitCode).toBe(0);
      const summary = result.summary;
      if (!summary) throw new Error("no summary");
      const { facts, numbers } = summary;
      expect(facts.strategy).toBe("refresh");
      expect(summary.invariants.map((i) => i.id)).not.toContain("in-place-replaced-nothing");
      for (const r of facts.rotations) {
        expect(r.fleet?.replacedByRollout).toBeGreaterThanOrEqual(INSTANCES);
        expect(r.fleet?.failedRegistrations).toBe(0);
        for (const g of facts.groups) expect(refreshFor(facts, r, g)?.status).toBe("Successful");
      }
      expect(numbers.jobsInterrupted).toBeGreaterThan(0);
      expect(numbers.managedValid.map((t) => t.versionId)).toEqual([facts.rotations[1]?.versionId]);
      expect(output).toContain("ScaleInProtectedInstances Refresh");
      expect(output).toMatch(/instance refresh started/);
      expect(output).toMatch(/jobs interrupted +[1-9]\d* +\d+|jobs interrupted +\d+ +[1-9]/);
      expect(result.headline).toMatch(
        new RegExp(
          `by instance refresh \\(\\d+ instances replaced by the rollout, ${numbers.jobsInterrupted} jobs interrupted\\)`,
        ),
      );
      expect(output).not.toMatch(TOKEN_VALUE);
    },
    LONG,
  );

  it(
    "--fail-refresh eu-west-1: runs the refresh strategy, exit 2, explained, one alert, no managed token revoked",
    async () => {
      const { run } = await fresh();
      const { result, output } = await run({ profile: SHORT, rotations: 2, failRefreshRegion: "eu-west-1" });

      expect(result.violations).toEqual([]);
      expect(result.exitCode).toBe(2);
      expect(result.outcome).toBe("blocked");
      expect(result.headline).toMatch(/rollout blocked as designed/);
      expect(result.headline).toMatch(/eu-west-1\/buildkite-windows-AgentAutoScaleGroup-/);
      expect(result.headline).toMatch(/no token was revoked early/);
      const facts = result.summary?.facts;
      if (!facts) throw new Error("no summary");
      expect(facts.strategy).toBe("refresh");
      const [first, second] = facts.rotations;
      if (!first?.versionId || !second?.versionId) throw new Error("rotations missing");
      expect(facts.tokens.filter((t) => t.revokedAt)).toEqual([]);
      expect(facts.tokens.find((t) => t.versionId === first.versionId)?.valid).toBe(true);
      expect(facts.registrations.filter((r) => !r.ok)).toEqual([]);
      const group = (region: string) => facts.groups.find((g) => g.region === region);
      const eu = group("eu-west-1");
      const west = group("us-west-2");
      if (!eu || !west) throw new Error("groups missing");
      expect(refreshFor(facts, second, eu)?.status).toBe("Failed");
      expect(refreshFor(facts, second, west)?.status).toBe("Successful");
      expect(facts.alerts).toHaveLength(1);
      expect(`${facts.alerts[0]?.subject}\n${facts.alerts[0]?.message}`).toContain("eu-west-1");
      expect(output).toContain("Why the rollout stopped");
      expect(output).toMatch(/\(exit 2\)\n$/);
      expect(output).not.toMatch(TOKEN_VALUE);
    },
    LONG,
  );
});

describe("npm run sandbox (child process)", () => {
  const dir = mkdtempSync(join(tmpdir(), "sandbox-test-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("--quick exits 0, prints the summary and no token, and leaves no process running", async () => {
    const logFile = join(dir, "handlers.log");
    // A clean environment: nothing of an in-process world's configuration leaks into the child.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) =>
          !/^(AWS_|BUILDKITE_|ROTATION_|RECONCILE_|REPLICA_|TARGET_|ALERT_|REFRESH_|MAX_ROLLOUT)/.test(k),
      ),
    );
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "sandbox/main.ts", "--quick", "--log-file", logFile],
      { cwd: ROOT, env: { ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 280_000);
    const code = await new Promise<number | null>((done) => child.on("exit", (c) => done(c)));
    clearTimeout(timer);

    expect({ code, tail: stdout.slice(-600), stderr: stderr.slice(-600) }).toMatchObject({ code: 0 });
    expect(stdout).toContain("Summary");
    expect(stdout).toContain("Safety invariants");
    expect(stdout).toMatch(
      /sandbox: OK .*in place \(0 instances replaced by the rollout, 0 jobs interrupted\).*\(exit 0\)\n$/,
    );
    expect(stdout + stderr).not.toMatch(TOKEN_VALUE);
    expect(existsSync(logFile)).toBe(true);
    expect(readFileSync(logFile, "utf8")).not.toMatch(TOKEN_VALUE);

    // The moto server it started is gone: its port refuses connections, no such process remains.
    const port = Number(/moto server \([^)]*\)\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)?.[1]);
    expect(port).toBeGreaterThan(0);
    const refused = await new Promise<boolean>((done) => {
      const socket = connect({ host: "127.0.0.1", port });
      socket.once("connect", () => {
        socket.destroy();
        done(false);
      });
      socket.once("error", () => done(true));
    });
    expect(refused).toBe(true);
    const processes = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
    expect(processes.split("\n").filter((l) => l.includes("moto.server") && l.includes(` ${port}`))).toEqual(
      [],
    );
  }, 300_000);

  it("bad options exit 64 with the usage", () => {
    for (const args of [
      ["--strategy", "sideways"],
      ["--ssm-offline", "--strategy", "refresh"],
      ["--fail-refresh", "eu-west-1", "--strategy", "in-place"],
      ["--bogus"],
    ]) {
      const out = spawnSync(process.execPath, ["--import", "tsx", "sandbox/main.ts", ...args], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 60_000,
      });
      expect({ args, code: out.status }).toEqual({ args, code: 64 });
      expect(out.stderr).toContain("Usage: npm run sandbox");
    }
  }, 180_000);

  it("--keep serves the operator CLI until Ctrl-C, then stops everything", async () => {
    const envFile = join(dir, "sandbox.env");
    const env = Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) =>
          !/^(AWS_|BUILDKITE_|ROTATION_|RECONCILE_|REPLICA_|TARGET_|ALERT_|REFRESH_|MAX_ROLLOUT)/.test(k),
      ),
    );
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "sandbox/main.ts", "--quick", "--rotations", "1", "--keep", "--env-out", envFile],
      { cwd: ROOT, env: { ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    const exited = new Promise<number | null>((done) => child.on("exit", (c) => done(c)));
    const killer = setTimeout(() => child.kill("SIGKILL"), 380_000);
    try {
      // The machine may be slow under the full suite: up to 3 minutes for the scenario to finish.
      for (let i = 0; i < 1_800 && !existsSync(envFile); i++) await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(envFile)).toBe(true);
      const sandboxEnv = Object.fromEntries(
        readFileSync(envFile, "utf8")
          .trim()
          .split("\n")
          .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
      );
      const cli = (args: string[]) =>
        spawnSync(process.execPath, ["--import", "tsx", "bin/cli.ts", ...args], {
          cwd: ROOT,
          env: { ...env, ...sandboxEnv },
          encoding: "utf8",
          timeout: 150_000,
        });
      const status = cli(["status", "--json"]);
      expect(status.status).toBe(0);
      const report = JSON.parse(status.stdout) as {
        rollout: { complete: boolean };
        secret: { currentVersionId: string };
      };
      expect(report.rollout.complete).toBe(true);
      // A rotation started through the CLI is driven by the kept sandbox and rolled out.
      const rotate = cli(["rotate", "--interval", "0.3", "--timeout", "120s"]);
      expect({ code: rotate.status, out: rotate.stdout.slice(-400) }).toMatchObject({ code: 0 });
      const after = JSON.parse(cli(["status", "--json"]).stdout) as typeof report;
      expect(after.secret.currentVersionId).not.toBe(report.secret.currentVersionId);
      expect(stdout + status.stdout + rotate.stdout).not.toMatch(TOKEN_VALUE);
    } finally {
      child.kill("SIGINT");
      expect(await exited).toBe(0);
      clearTimeout(killer);
    }
    expect(existsSync(envFile)).toBe(false);
  }, 400_000);

  it("without moto it says how to install it and exits 1 before starting anything", () => {
    let out = "";
    let code = 0;
    try {
      out = execFileSync(process.execPath, ["--import", "tsx", "sandbox/main.ts", "--quick"], {
        cwd: ROOT,
        env: { ...process.env, PYTHON: "/bin/false" },
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        timeout: 90_000,
      });
    } catch (error) {
      const e = error as { status?: number; stdout?: string };
      code = e.status ?? -1;
      out = e.stdout ?? "";
    }
    expect(code).toBe(1);
    expect(out).toContain("moto server is not installed");
    expect(out).toContain('pip install "moto[server]"');
    expect(out).not.toContain("started in");
  }, 180_000);
});

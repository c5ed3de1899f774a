/**
 * `npm run sandbox`: the scenario in-process in a short configuration (happy path and
 * `--fail-refresh`), then the real command as a child process, which must exit 0, print the
 * summary and no token, and leave no process behind.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { PROFILES, type Profile, type ScenarioOptions } from "../../../infra/sandbox/scenario";
import {
  checkInvariants,
  decideOutcome,
  type RefreshFacts,
  type RotationFacts,
  type RunFacts,
  refreshFor,
  type TokenFacts,
} from "../../../infra/sandbox/summary";

const ROOT = resolve(import.meta.dirname, "../../..");

/** The quick profile with 20 instances and faster replacements: 3 regions, 4 groups. */
const SHORT: Profile = {
  ...PROFILES.quick,
  name: "test",
  groups: [
    { region: "us-east-1", name: "ci-default", instances: 6, protectedInstances: 1 },
    { region: "us-east-1", name: "ci-docker", instances: 4 },
    { region: "us-west-2", name: "ci-default", instances: 6, protectedInstances: 1 },
    { region: "eu-west-1", name: "ci-arm", instances: 4, protectedInstances: 1 },
  ],
  replicaLagMs: 200,
  replaceMs: 40,
  jobMs: 150,
  scheduleEveryMs: 1_000,
  tickMs: 100,
  progressIntervalMs: 500,
  rotationTimeoutMs: 40_000,
};
const INSTANCES = SHORT.groups.reduce((n, g) => n + g.instances, 0);
const TOKEN_VALUE = /bk(ct|ua)_[0-9a-f]{16,}/;

/** The scenario and the handlers from one fresh module graph, so they share one logger. */
async function fresh() {
  vi.resetModules();
  const scenario = await import("../../../infra/sandbox/scenario");
  const rotate = await import("../../../functions/rotate-token/handler");
  const reconcile = await import("../../../functions/reconcile/handler");
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
  it("two rotations complete: exit 0, every invariant holds, the first managed token is revoked after every refresh", async () => {
    const { run } = await fresh();
    const { result, output } = await run({ profile: SHORT, rotations: 2 });

    expect(result.violations).toEqual([]);
    expect(result.exitCode).toBe(0);
    expect(result.outcome).toBe("complete");
    const summary = result.summary;
    if (!summary) throw new Error("no summary");
    expect(summary.invariants.every((i) => i.ok)).toBe(true);
    expect(summary.invariants.map((i) => i.id)).toEqual([
      "no-registration-with-revoked-token",
      "revoked-only-after-every-refresh",
      "instances-hold-valid-tokens",
      "one-managed-token-valid",
      "no-token-in-output",
      "final-refreshes-successful",
    ]);

    // Checked again here, independently of the scenario's own checks.
    const { facts, numbers } = summary;
    const [first, second] = facts.rotations;
    if (!first?.versionId || !second?.versionId) throw new Error("rotations missing");
    expect(numbers.reRegistered).toBe(2 * INSTANCES);
    expect(numbers.failedRegistrations).toBe(0);
    expect(numbers.managedValid.map((t) => t.versionId)).toEqual([second.versionId]);
    const revoked = facts.tokens.filter((t) => t.revokedAt);
    expect(revoked.map((t) => t.versionId)).toEqual([first.versionId]);
    const revokedAt = revoked[0]?.revokedAt?.getTime() ?? 0;
    for (const g of facts.groups) {
      const refresh = refreshFor(facts, second, g);
      expect(refresh?.status).toBe("Successful");
      expect(refresh?.endTime?.getTime() ?? Number.POSITIVE_INFINITY).toBeLessThanOrEqual(revokedAt);
    }
    // The initial token was made by a human: never revoked.
    expect(facts.tokens.find((t) => t.initial)?.valid).toBe(true);
    expect(facts.alerts).toEqual([]);

    // What was printed: the world, events, progress lines, the summary, a final line; no token.
    expect(output).toContain("moto server (Secrets Manager, SSM, SNS, SQS)");
    expect(output).toMatch(/us-west-2\/ci-default: instance refresh started/);
    expect(output).toMatch(/replica eu-west-1 serves version/);
    expect(output).toMatch(/Buildkite: token \w{8} \(version \w{8}\) revoked/);
    expect(output).toContain("  │ ");
    expect(output).toContain("Summary");
    expect(output).toContain("promotion → revocation");
    expect(output).toMatch(/sandbox: OK .*\(exit 0\)\n$/);
    expect(output).not.toMatch(TOKEN_VALUE);
  }, 90_000);

  it("--fail-refresh eu-west-1: exit 2, explained, one alert, no managed token revoked", async () => {
    const { run } = await fresh();
    const { result, output } = await run({ profile: SHORT, rotations: 2, failRefreshRegion: "eu-west-1" });

    expect(result.violations).toEqual([]);
    expect(result.exitCode).toBe(2);
    expect(result.outcome).toBe("blocked");
    expect(result.headline).toMatch(/rollout blocked as designed/);
    expect(result.headline).toMatch(/eu-west-1\/ci-arm/);
    expect(result.headline).toMatch(/no token was revoked early/);
    const facts = result.summary?.facts;
    if (!facts) throw new Error("no summary");
    const [first, second] = facts.rotations;
    if (!first?.versionId || !second?.versionId) throw new Error("rotations missing");

    // Nothing an instance could still need was revoked: no token at all, in fact.
    expect(facts.tokens.filter((t) => t.revokedAt)).toEqual([]);
    expect(facts.tokens.find((t) => t.versionId === first.versionId)?.valid).toBe(true);
    expect(facts.tokens.find((t) => t.versionId === second.versionId)?.valid).toBe(true);
    expect(facts.registrations.filter((r) => !r.ok)).toEqual([]);
    expect(refreshFor(facts, second, { region: "eu-west-1", name: "ci-arm" })?.status).toBe("Failed");
    expect(refreshFor(facts, second, { region: "us-west-2", name: "ci-default" })?.status).toBe("Successful");

    expect(facts.alerts).toHaveLength(1);
    expect(facts.alerts[0]?.subject).toContain("eu-west-1");
    expect(output).toMatch(/ALERT \(SNS → SQS\): .*eu-west-1/);
    expect(output).toContain("Why the rollout stopped");
    expect(output).toMatch(/\(exit 2\)\n$/);
    expect(output).not.toMatch(TOKEN_VALUE);
  }, 90_000);
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
      ["--import", "tsx", "infra/sandbox/main.ts", "--quick", "--log-file", logFile],
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
    const timer = setTimeout(() => child.kill("SIGKILL"), 80_000);
    const code = await new Promise<number | null>((done) => child.on("exit", (c) => done(c)));
    clearTimeout(timer);

    expect({ code, tail: stdout.slice(-600), stderr: stderr.slice(-600) }).toMatchObject({ code: 0 });
    expect(stdout).toContain("Summary");
    expect(stdout).toContain("Safety invariants");
    expect(stdout).toMatch(/sandbox: OK .*\(exit 0\)\n$/);
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
  }, 90_000);

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
      [
        "--import",
        "tsx",
        "infra/sandbox/main.ts",
        "--quick",
        "--rotations",
        "1",
        "--keep",
        "--env-out",
        envFile,
      ],
      { cwd: ROOT, env: { ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    const exited = new Promise<number | null>((done) => child.on("exit", (c) => done(c)));
    const killer = setTimeout(() => child.kill("SIGKILL"), 100_000);
    try {
      for (let i = 0; i < 600 && !existsSync(envFile); i++) await new Promise((r) => setTimeout(r, 100));
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
          timeout: 60_000,
        });
      const status = cli(["status", "--json"]);
      expect(status.status).toBe(0);
      const report = JSON.parse(status.stdout) as {
        rollout: { complete: boolean };
        secret: { currentVersionId: string };
      };
      expect(report.rollout.complete).toBe(true);
      // A rotation started through the CLI is driven by the kept sandbox and rolled out.
      const rotate = cli(["rotate", "--interval", "0.3", "--timeout", "50s"]);
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
  }, 120_000);

  it("without moto it says how to install it and exits 1 before starting anything", () => {
    let out = "";
    let code = 0;
    try {
      out = execFileSync(process.execPath, ["--import", "tsx", "infra/sandbox/main.ts", "--quick"], {
        cwd: ROOT,
        env: { ...process.env, PYTHON: "/bin/false" },
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        timeout: 30_000,
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
  }, 30_000);
});

describe("safety invariants (pure): a checker that would catch an early revocation", () => {
  const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
  const rotation = (index: number, versionId: string, start: number): RotationFacts => ({
    index,
    versionId,
    startedAt: t(start),
    promotedAt: t(start + 1),
    replicasInSyncAt: {},
    attempts: 1,
    error: undefined,
    failRefreshRegion: undefined,
    reconcileRuns: 1,
    reconcileFailures: 0,
    schedulesFired: 0,
    timedOut: false,
    endedAt: t(start + 9),
  });
  const token = (id: string, versionId: string | undefined, extra: Partial<TokenFacts> = {}): TokenFacts => ({
    id,
    description: versionId ? `managed ${versionId}` : "Initial agent token",
    versionId,
    createdAt: t(0),
    revokedAt: null,
    valid: true,
    initial: versionId === undefined,
    storedInSecret: true,
    ...extra,
  });
  const refresh = (region: string, groupName: string, start: number, end: number): RefreshFacts => ({
    region,
    groupName,
    id: `${region}-${groupName}-${start}`,
    status: "Successful",
    statusReason: undefined,
    startTime: t(start),
    endTime: t(end),
  });
  /** Two rotations, two groups; the first managed token revoked at `revokedAt`. */
  const facts = (revokedAt: number): RunFacts => ({
    expect: "complete",
    failRefreshRegion: undefined,
    injected: { replicaLagSeconds: undefined, buildkiteFlaky: false },
    primaryRegion: "us-east-1",
    replicaRegions: ["eu-west-1"],
    groups: [
      { region: "us-east-1", name: "a", instances: 1, protectedInstances: 0 },
      { region: "eu-west-1", name: "b", instances: 1, protectedInstances: 0 },
    ],
    startedAt: t(0),
    worldReadyAt: t(0),
    endedAt: t(30),
    rotations: [rotation(1, "v1", 1), rotation(2, "v2", 11)],
    tokens: [
      token("initial", undefined),
      token("t1", "v1", { revokedAt: t(revokedAt), valid: false }),
      token("t2", "v2"),
    ],
    refreshes: [
      refresh("us-east-1", "a", 2, 4),
      refresh("eu-west-1", "b", 2, 5),
      refresh("us-east-1", "a", 12, 14),
      refresh("eu-west-1", "b", 12, 18),
    ],
    registrations: [
      { at: t(14), name: "i-a", tokenId: "t2", ok: true, status: 200 },
      { at: t(18), name: "i-b", tokenId: "t2", ok: true, status: 200 },
    ],
    instances: [
      { region: "us-east-1", groupName: "a", instanceId: "i-a", lifecycleState: "InService" },
      { region: "eu-west-1", groupName: "b", instanceId: "i-b", lifecycleState: "InService" },
    ],
    alerts: [],
    buildkiteRequests: { total: 10, failed: 0 },
    tokenLeaks: 0,
    logLines: { total: 0, warn: 0, error: 0 },
  });

  it("revocation after every refresh of a newer version: no violation, exit 0", () => {
    const f = facts(19);
    const results = checkInvariants(f);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(decideOutcome(f, results).exitCode).toBe(0);
  });

  it("a complete rollout that only rode out injected faults exits 3 and says what they did", () => {
    const f = {
      ...facts(12_000),
      injected: { replicaLagSeconds: 2, buildkiteFlaky: true },
      buildkiteRequests: { total: 40, failed: 6 },
    };
    const outcome = decideOutcome(f, checkInvariants(f));
    expect(outcome).toMatchObject({ exitCode: 3, kind: "degraded" });
    expect(outcome.headline).toContain("replicas lagged 2 s");
    expect(outcome.headline).toContain("failed 6 of 40 requests");
  });

  it("revocation before eu-west-1's refresh ended: violation, exit 1", () => {
    const f = facts(16);
    const results = checkInvariants(f);
    const broken = results.filter((r) => !r.ok);
    expect(broken.map((r) => r.id)).toEqual(["revoked-only-after-every-refresh"]);
    expect(broken[0]?.explanations[0]).toMatch(/eu-west-1\/b's refresh ended only at/);
    expect(decideOutcome(f, results).exitCode).toBe(1);
  });

  it("an agent refused with a revoked token, an unmanaged token revoked, a leak: each is a violation", () => {
    const f = facts(19);
    f.registrations.push({ at: t(20), name: "i-late", tokenId: "t1", ok: false, status: 401 });
    f.tokens[0] = token("initial", undefined, { revokedAt: t(25), valid: false });
    f.tokenLeaks = 1;
    const broken = checkInvariants(f).filter((r) => !r.ok);
    expect(broken.map((r) => r.id)).toEqual([
      "no-registration-with-revoked-token",
      "revoked-only-after-every-refresh",
      "no-token-in-output",
    ]);
    expect(decideOutcome(f, checkInvariants(f))).toMatchObject({ exitCode: 1, kind: "violations" });
  });
});

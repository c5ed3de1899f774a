import { execFile } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { DescribeSecretCommand, GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatusJson } from "../../../../cli/operator/render/json";
import { removeLeftoverPending, startRotation } from "../../../../sandbox/world/rotation-driver";
import { startWorld, type World } from "../../../../sandbox/world/world";
import { EMERGENCY_TAG, MARKER_TAG } from "../../../../shared/rollout/plan";
import { invariants } from "../../../support/invariants";
import { freshHandlers } from "../../../support/world-handlers";

/**
 * The operator commands of the real CLI bundle (dist/cli/index.mjs), run as child processes
 * against one local world (moto, the local Buildkite API, the Auto Scaling stand-in, the real
 * rotate-token and reconcile handlers behind the local Lambda), configured only through the
 * environment, as `env $(...) bk-agent-token status` would be.
 *
 * moto cannot run our rotation function when the CLI calls RotateSecret: world.watchRotations() plays
 * Secrets Manager's part, driving the four steps of every new AWSPENDING version through the local
 * Lambda, removing the leftover AWSPENDING label as AWS does, and putting the native label event
 * on the bus.
 */
const ROOT = new URL("../../../..", import.meta.url).pathname;
const CLI = join(ROOT, "dist/cli/index.mjs");
const GROUPS = [
  { region: "us-east-1", name: "ci-linux", instances: 3, protectedInstances: 1 },
  { region: "us-east-1", name: "ci-docker", instances: 2 },
  { region: "us-west-2", name: "ci-linux", instances: 2 },
];

let world: World;

function newestSource(dirs: string[]): number {
  let newest = 0;
  for (const dir of dirs) {
    for (const entry of readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith(".ts")) {
        newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
      }
    }
  }
  return newest;
}
const outputs: string[] = [];

beforeAll(async () => {
  // Build the CLI bundle when it is missing or older than its sources (only the CLI, so the
  // bundles other suites use are left alone; `npm test` builds everything first anyway).
  if (!existsSync(CLI) || newestSource(["bin", "shared"]) > statSync(CLI).mtimeMs) {
    const { common } = await import("../../../../scripts/build");
    await build({
      ...common,
      entryPoints: [join(ROOT, "bin/cli.ts")],
      outfile: CLI,
      banner: { js: `#!/usr/bin/env node\n${String(common.banner?.js ?? "")}` },
    });
  }
  world = await startWorld({
    // These commands are exercised on the refresh strategy (the in-place one is covered by the
    // rollout suites); Wait refreshes complete only without scale-in protection.
    strategy: "refresh",
    groups: GROUPS.map((g) => ({ ...g, newInstancesProtectedFromScaleIn: false })),
    replicaRegions: ["us-west-2"],
    replicaLagMs: 150,
    replaceMs: 100,
    jobMs: 200,
    timeoutsMs: { reconcile: 30_000 },
    handlers: await freshHandlers(),
  });
}, 120_000);

afterAll(async () => {
  await world?.stop();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], timeoutMs = 50_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      {
        timeout: timeoutMs,
        env: { ...process.env, ...world.env, AWS_EC2_METADATA_DISABLED: "true", NO_COLOR: "1" },
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        outputs.push(stdout, stderr);
        const code = error ? ((error as { code?: unknown }).code ?? 1) : 0;
        resolve({
          code: typeof code === "number" ? code : 1,
          stdout,
          stderr: withoutRuntimeWarnings(stderr),
        });
      },
    );
  });
}

/** The AWS SDK warns about Node.js versions it will stop supporting; that is not our output. */
function withoutRuntimeWarnings(stderr: string): string {
  return stderr
    .replace(/^\(node:\d+\) Warning: NodeVersionSupportWarning:[\s\S]*?--trace-warnings[^\n]*\n/m, "")
    .replace(/^\n+/, "");
}

/** Everything preflight must not change: refreshes, tags, tokens, secret labels in every region. */
async function snapshot(w: World) {
  return {
    groups: w.fleet.groups().map((g) => ({
      group: `${g.region}:${g.name}`,
      tags: g.tags.map((t) => `${t.key}=${t.value}`).sort(),
      instances: g.instances.map((i) => i.instanceId).sort(),
      refreshes: w.fleet.refreshes(g.region, g.name).map((r) => `${r.instanceRefreshId}:${r.status}`),
    })),
    tokens: w.buildkite.tokens().map((t) => ({ id: t.id, valid: t.valid, revokedAt: t.revokedAt })),
    labels: (await w.secrets.send(new DescribeSecretCommand({ SecretId: w.secretArn }))).VersionIdsToStages,
    replicas: await w.replicator.currentVersions(),
    writes: w.buildkite.requests().filter((r) => r.method !== "GET").length,
  };
}

async function json(args: string[] = []): Promise<{ run: Run; body: StatusJson }> {
  const run = await cli(["status", "--json", ...args]);
  return { run, body: JSON.parse(run.stdout) as StatusJson };
}

// Each command follows a real rollout: slow on a loaded machine, so generous bounds per test.
describe("bk-agent-token operator commands against the sandbox", { timeout: 240_000 }, () => {
  it("status before any rotation: the initial, unmanaged token; rotation not enabled; exit 0", async () => {
    const table = await cli(["status"]);
    expect(table.stderr).toBe("");
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(world.secretName);
    expect(table.stdout).toMatch(/Rotation\s+NOT enabled/);
    expect(table.stdout).toContain("us-west-2");
    expect(table.stdout).toMatch(/us-east-1\s+ci-linux\s+3\s+unmanaged/);
    expect(table.stdout).toContain(world.stack.initialToken.id);

    const { run, body } = await json();
    expect(run.code).toBe(0);
    expect(body).toMatchObject({
      schemaVersion: 1,
      exitCode: 0,
      attention: [],
      secret: { arn: world.secretArn, name: world.secretName, rotationEnabled: false, overdue: false },
      emergency: null,
      tokens: { managedValid: [], unmanaged: [{ id: world.stack.initialToken.id }] },
    });
    expect(body.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(body.regions.map((r) => [r.region, r.state])).toEqual([
      ["us-east-1", "in-sync"],
      ["us-west-2", "in-sync"],
    ]);
    expect(body.groups.map((g) => g.phase)).toEqual(["unmanaged", "unmanaged", "unmanaged"]);
  });

  it("status after a rotation: the managed token, refreshed groups, complete", async () => {
    const { versionId } = await world.rotate();
    await world.settled(30_000);
    await removeLeftoverPending(world.secrets, world.secretArn); // as AWS does at the end of a rotation
    const { run, body } = await json();
    expect(run.code).toBe(0);
    expect(body.secret).toMatchObject({
      currentVersionId: versionId,
      pendingVersionId: null,
      rotationEnabled: true,
    });
    expect(body.secret.nextRotationAt).toMatch(/Z$/);
    expect(body.rollout.complete).toBe(true);
    expect(body.groups.every((g) => g.phase === "refreshed" && g.percentageComplete === 100)).toBe(true);
    const token = invariants(world).tokenFor(versionId);
    expect(body.tokens.managedValid).toEqual([
      expect.objectContaining({ id: token?.id, versionId, createdAt: expect.stringMatching(/Z$/) }),
    ]);
    expect(body.versions.find((v) => v.versionId === versionId)).toMatchObject({
      stages: ["AWSCURRENT"],
      token: { id: token?.id, expiresAt: null, expiresInSeconds: null },
    });
    expect(body.versions.find((v) => v.versionId !== versionId)).toMatchObject({
      stages: ["AWSPREVIOUS"],
      token: null,
    });

    const table = await cli(["status"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain("rollout of the current version complete");
    expect(table.stdout).toMatch(/ci-docker\s+2\s+refreshed\s+\[##########\] 100% Successful/);
    expect(table.stdout).toContain(token?.id);
  });

  it("preflight passes and changes nothing", async () => {
    const before = await snapshot(world);
    const run = await cli(["preflight"]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const lines = run.stdout.split("\n");
    expect(lines.filter((l) => l.startsWith("FAIL"))).toEqual([]);
    for (const name of [
      "identity",
      "secret",
      "rotation",
      "replica us-west-2",
      "api token secret",
      "api token scopes",
      "cluster tokens",
      "group us-east-1:ci-linux",
      "refresh us-west-2:ci-linux",
    ]) {
      expect(lines.some((l) => l.startsWith(`PASS ${name}:`))).toBe(true);
    }
    expect(run.stdout).toContain(
      "WARN iam reconcile: not verified: CreateOrUpdateTags, SendCommand, StartInstanceRefresh",
    );
    const protectedNow = world.fleet.instances("us-east-1", "ci-linux").filter((i) => i.protectedFromScaleIn);
    expect(run.stdout).toContain(
      `PASS group us-east-1:ci-linux: 3 instance(s), ${protectedNow.length} protected from scale-in; protected instances: Wait`,
    );
    expect(run.stdout).toContain("Plan (what reconcile would do next; nothing was changed):");
    expect(run.stdout).toContain("nothing: the rollout of the current version is complete");
    await world.settled(10_000);
    expect(await snapshot(world)).toEqual(before);
  });

  it("preflight FAILs clearly when the API token lacks write_clusters", async () => {
    world.buildkite.setScopes(["read_clusters"]);
    try {
      const before = await snapshot(world);
      const run = await cli(["preflight"]);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(
        /^FAIL api token scopes: missing write_clusters .*the token has: read_clusters$/m,
      );
      expect(await snapshot(world)).toEqual(before);
    } finally {
      world.buildkite.setScopes(["read_clusters", "write_clusters"]);
    }
  });

  it("rotate follows the rollout to completion: exit 0, the old managed token revoked, no alert", async () => {
    const previous = (await json()).body.secret.currentVersionId ?? "";
    const oldToken = invariants(world).tokenFor(previous);
    expect(oldToken?.valid).toBe(true);
    const sm = world.watchRotations();
    let run: Run;
    try {
      run = await cli(["rotate", "--interval", "0.2", "--timeout", "45s"]);
    } finally {
      await sm.stop();
    }
    expect(sm.errors).toEqual([]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const [versionId] = sm.driven;
    expect(run.stdout).toContain(`started: version ${versionId} replaces ${previous}`);
    expect(run.stdout).toMatch(/regions 2\/2 in sync/);
    expect(run.stdout).toContain(`Rollout of version ${versionId} complete`);
    await world.settled(20_000);
    const state = invariants(world);
    expect(state.tokenFor(previous)?.valid).toBe(false);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(versionId ?? "")?.id]);
    expect(state.failedRegistrations).toEqual([]);
    expect(await world.alerts()).toEqual([]);

    const { body } = await json();
    expect(body.secret.currentVersionId).toBe(versionId);
    expect(body.rollout.complete).toBe(true);
  });

  it("rotate --emergency revokes the leaked token before the refreshes finish and reports containment", async () => {
    const leaked = (await json()).body.secret.currentVersionId ?? "";
    const leakedToken = invariants(world).tokenFor(leaked);
    expect(leakedToken?.valid).toBe(true);
    const refreshesBefore = new Set(
      GROUPS.flatMap((g) => world.fleet.refreshes(g.region, g.name).map((r) => r.instanceRefreshId)),
    );
    const sm = world.watchRotations();
    let run: Run;
    try {
      run = await cli([
        "rotate",
        "--emergency",
        "--min-healthy",
        "50",
        "--interval",
        "0.2",
        "--timeout",
        "45s",
      ]);
    } finally {
      await sm.stop();
    }
    expect(sm.errors).toEqual([]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const [versionId = ""] = sm.driven;
    expect(run.stdout).toContain(`Emergency declared on us-east-1:ci-linux: version ${leaked} leaked`);
    expect(run.stdout).toContain(`Containment of the leaked token (version ${leaked}):`);
    expect(run.stdout).toContain(`leaked token ${leakedToken?.id} revoked`);
    expect(run.stdout).toContain("every instance of every target group has the new token");
    expect(run.stdout).toContain("agents already connected with the leaked token keep running");

    // The tag was written on the anchor group (first target group that exists).
    const anchor = world.fleet.groups().find((g) => g.region === "us-east-1" && g.name === "ci-linux");
    expect(anchor?.tags.find((t) => t.key === EMERGENCY_TAG)?.value).toBe(
      `version=${versionId} leaked=${leaked} min-healthy=50`,
    );
    await world.settled(20_000);
    const revokedAt = invariants(world).tokenFor(leaked)?.revokedAt?.getTime() ?? 0;
    expect(revokedAt).toBeGreaterThan(0);
    const refreshes = GROUPS.flatMap((g) =>
      world.fleet.refreshes(g.region, g.name).filter((r) => !refreshesBefore.has(r.instanceRefreshId)),
    );
    expect(refreshes).toHaveLength(GROUPS.length);
    for (const r of refreshes) {
      expect(r.status).toBe("Successful");
      expect(r.preferences).toMatchObject({ minHealthyPercentage: 50, scaleInProtectedInstances: "Refresh" });
    }
    // Revoked before every refresh had finished: the leaked token did not wait for the fleet.
    const lastEnd = Math.max(...refreshes.map((r) => r.endTime?.getTime() ?? Number.POSITIVE_INFINITY));
    expect(revokedAt).toBeLessThan(lastEnd);
    const state = invariants(world);
    expect(state.managedValid.map((t) => t.id)).toEqual([state.tokenFor(versionId)?.id]);
    expect(await world.alerts()).toEqual([]);
  });

  it("a failed refresh: rotate and status exit 3 with what to do; following the advice completes the rollout", async () => {
    const previous = (await json()).body.secret.currentVersionId ?? "";
    const undo = world.fleet.failRefreshes({ region: "us-west-2", groupName: "ci-linux" });
    const sm = world.watchRotations();
    let run: Run;
    try {
      run = await cli(["rotate", "--interval", "0.2", "--timeout", "45s"]);
    } finally {
      await sm.stop();
      undo();
    }
    expect(sm.errors).toEqual([]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(3);
    const [versionId = ""] = sm.driven;
    expect(run.stdout).toContain(`Rollout of version ${versionId} is BLOCKED until an operator acts:`);
    expect(run.stdout).toContain(`aws autoscaling delete-tags --region us-west-2 --tags ResourceId=ci-linux`);
    await world.settled(20_000);

    const blocked = await json();
    expect(blocked.run.code).toBe(3);
    expect(blocked.body.exitCode).toBe(3);
    expect(blocked.body.rollout.waitingFor).toContain("operator");
    expect(blocked.body.attention).toEqual([
      expect.stringMatching(/^blocked: us-west-2:ci-linux: refresh \S+ ended Failed/),
    ]);
    const table = await cli(["status"]);
    expect(table.code).toBe(3);
    expect(table.stdout).toContain("BLOCKED: needs an operator");
    // Nothing revoked while blocked: the previous token stays valid.
    expect(invariants(world).tokenFor(previous)?.valid).toBe(true);
    expect((await world.alerts()).map((a) => a.subject)).toEqual([
      expect.stringContaining("ci-linux (us-west-2)"),
    ]);

    // The advice: remove the marker tag; the next reconcile (here, the schedule) refreshes again.
    world.fleet.deleteTag("us-west-2", "ci-linux", MARKER_TAG);
    world.schedule();
    await world.settled(30_000);
    const fixed = await json();
    expect(fixed.run.code).toBe(0);
    expect(fixed.body.rollout.complete).toBe(true);
    expect(invariants(world).tokenFor(previous)?.valid).toBe(false);
  });

  it("rotate refuses (exit 1) while a rotation is pending", async () => {
    const pending = await startRotation(world.secrets, world.secretArn, world.stack.rotationLambdaArn);
    const run = await cli(["rotate", "--interval", "0.2", "--timeout", "5s"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`a rotation is already pending: version ${pending} holds AWSPENDING`);
    expect(run.stdout).toBe("");
    const d = await world.secrets.send(new DescribeSecretCommand({ SecretId: world.secretArn }));
    expect(
      Object.keys(d.VersionIdsToStages ?? {}).filter((v) =>
        d.VersionIdsToStages?.[v]?.includes("AWSPENDING"),
      ),
    ).toEqual([pending]);
  });

  it("never printed a token value", async () => {
    const api = await world.secrets.send(
      new GetSecretValueCommand({ SecretId: world.stack.apiTokenSecretArn, VersionStage: "AWSCURRENT" }),
    );
    const secrets = [...world.buildkite.tokens().map((t) => t.value), api.SecretString ?? ""].filter(Boolean);
    expect(secrets.length).toBeGreaterThan(3);
    const all = outputs.join("\n");
    for (const s of secrets) expect(all).not.toContain(s);
  });
});

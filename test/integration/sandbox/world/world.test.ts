/**
 * The sandbox world end to end, with the real rotate-token handler and a STUB reconcile that only
 * records what reaches it: rotations through the local Lambda, events through the bus, replication
 * lag, simulated agent boots, alerts, and a clean stop.
 */
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { PublishCommand } from "@aws-sdk/client-sns";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handler as rotateToken } from "../../../../functions/rotate-token/handler";
import { startWorld, type World } from "../../../../sandbox/world/world";
import { describeManagedToken } from "../../../../shared/buildkite/description";
import { snsClients } from "../../../../shared/lib/aws/sns";
import { loadReconcileConfig, loadRotateTokenConfig } from "../../../../shared/lib/config";
import { captureOutput } from "../../../support/capture-output";

const LAG_MS = 800;
const output = captureOutput();
const reconciled: unknown[] = [];
let world: World;
let rotatedVersion: string;

beforeAll(async () => {
  world = await startWorld({
    replicaRegions: ["us-west-2", "eu-west-1"],
    // Protection off: these tests are about the world's wiring, not the stock protection (fleet.test.ts).
    groups: [
      {
        region: "us-east-1",
        name: "agents-primary",
        instances: 2,
        protectedInstances: 1,
        newInstancesProtectedFromScaleIn: false,
      },
      { region: "us-west-2", name: "agents-west", instances: 1, newInstancesProtectedFromScaleIn: false },
    ],
    replicaLagMs: LAG_MS,
    replaceMs: 50,
    jobMs: 100,
    handlers: {
      rotateToken,
      // Triggers reach reconcile as SQS batches from the FIFO queue: record each message's body.
      reconcile: async (event) => {
        const records = (event as { Records?: Array<{ body: string }> }).Records;
        for (const r of records ?? [{ body: JSON.stringify(event) }]) reconciled.push(JSON.parse(r.body));
        return { recorded: true };
      },
    },
  });
});

afterAll(async () => {
  try {
    await world?.stop();
  } finally {
    output.restore();
  }
});

const detailType = (event: unknown) => (event as { "detail-type"?: string })["detail-type"];
const tokenFor = (versionId: string) =>
  world.buildkite.tokens().find((t) => t.description === describeManagedToken(world.secretArn, versionId));

async function replicaCurrent(region: string): Promise<string | undefined> {
  const client = new SecretsManagerClient({
    region,
    endpoint: world.motoUrl,
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  try {
    const out = await client.send(
      new GetSecretValueCommand({ SecretId: world.secretName, VersionStage: "AWSCURRENT" }),
    );
    return out.VersionId;
  } finally {
    client.destroy();
  }
}

describe("the sandbox world", () => {
  it("sets the configuration contract in process.env and registers the initial fleet", () => {
    // Every endpoint but Lambda's goes through the call meter (its own loopback ports).
    const metered = [
      "AWS_ENDPOINT_URL",
      "AWS_ENDPOINT_URL_AUTO_SCALING",
      "AWS_ENDPOINT_URL_EC2",
      "AWS_ENDPOINT_URL_CLOUDFORMATION",
      "AWS_ENDPOINT_URL_SSM",
      "BUILDKITE_API_URL",
    ];
    const direct = [
      world.motoUrl,
      world.autoScalingUrl,
      world.ec2Url,
      world.cloudFormationUrl,
      world.runCommand.url,
    ];
    for (const key of metered) {
      expect(world.env[key]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(direct).not.toContain(world.env[key]);
    }
    expect(world.env).toMatchObject({
      RECONCILE_QUEUE_URL: world.reconcileQueueUrl,
      AWS_ENDPOINT_URL_LAMBDA: world.lambda.url,
      ROTATION_SECRET_ARN: world.secretArn,
      REPLICA_REGIONS: "us-west-2,eu-west-1",
      TARGET_GROUPS: "us-east-1:agents-primary,us-west-2:agents-west",
      ALERT_TOPIC_ARN: world.alertTopicArn,
      REFRESH_SCALE_IN_PROTECTED_INSTANCES: "Wait",
    });
    for (const [key, value] of Object.entries(world.env)) expect(process.env[key]).toBe(value);
    const reconcileConfig = loadReconcileConfig(process.env);
    expect(reconcileConfig.targets).toEqual([
      { region: "us-east-1", groupName: "agents-primary" },
      { region: "us-west-2", groupName: "agents-west" },
    ]);
    expect(reconcileConfig.replicaRegions).toEqual(["us-west-2", "eu-west-1"]);
    expect(loadRotateTokenConfig(process.env).reconcileQueueUrl).toBe(world.reconcileQueueUrl);

    const registrations = world.buildkite.registrations();
    expect(registrations).toHaveLength(3);
    expect(registrations.every((r) => r.ok && r.tokenId === world.stack.initialToken.id)).toBe(true);
  });

  it("rotate() moves AWSCURRENT through the local Lambda; reconcile gets the rotation message and the label event through the queue", async () => {
    world.resetMeter();
    const before = await world.replicator.currentVersions();
    const { versionId, promotedAt } = await world.rotate();
    rotatedVersion = versionId;
    const elapsed = Date.now() - promotedAt.getTime();

    const described = await world.secrets.send(new DescribeSecretCommand({ SecretId: world.secretArn }));
    expect(described.VersionIdsToStages?.[versionId]).toContain("AWSCURRENT");
    expect(tokenFor(versionId)?.valid).toBe(true);
    // Replicas lag: right after the promotion they still serve the previous version.
    expect(elapsed).toBeLessThan(LAG_MS - 300);
    expect(await world.replicator.currentVersions()).toEqual(before);

    await world.settled(10_000);
    const rotateCalls = world.lambda.invocations().filter((r) => r.name === "rotate-token");
    expect(rotateCalls.map((r) => [r.invocationType, r.ok])).toEqual(
      Array(4).fill(["RequestResponse", true]),
    );
    expect(reconciled).toContainEqual(
      expect.objectContaining({ source: "rotate-token", secretArn: world.secretArn, versionId }),
    );
    const label = reconciled.find((e) => detailType(e) === "Secret Label Updated");
    expect(label).toMatchObject({
      version: "0",
      source: "aws.secretsmanager",
      account: "123456789012",
      region: "us-east-1",
      resources: [world.secretArn],
      detail: { name: world.secretName, labelUpdated: "AWSCURRENT", versionId },
    });
    expect((label as { time: string }).time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(world.bus.events().map((e) => detailType(e.event))).toEqual(["Secret Label Updated"]);

    // The meter saw rotate-token's calls, by service and action and by Buildkite route, and none
    // of the harness's (rotate() started the rotation and described the secret directly on moto).
    const { aws, buildkite } = world.meter();
    expect(aws["secretsmanager:PutSecretValue"]).toBe(1);
    expect(aws["secretsmanager:UpdateSecretVersionStage"]).toBe(1);
    expect(aws["secretsmanager:RotateSecret"]).toBeUndefined();
    // Secrets Manager, and the rotation message finishSecret sends to the trigger queue.
    expect(Object.keys(aws).filter((key) => !key.startsWith("secretsmanager:"))).toEqual(["sqs:SendMessage"]);
    expect(buildkite["POST /v2/organizations/{org}/clusters/{cluster}/tokens"]).toBe(1);
    expect(buildkite["GET /v3/metrics"]).toBeGreaterThanOrEqual(1);
    // The label event's wait from the bus to the (stub) reconcile's start was recorded.
    const labelId = (label as { id: string }).id;
    const wait = world.eventWaits().find((w) => w.eventId === labelId);
    expect(wait?.waitMs).toBeGreaterThanOrEqual(0);
    expect(wait?.waitMs).toBeLessThan(5_000);
    world.resetMeter();
    expect(world.meter()).toEqual({ aws: {}, buildkite: {} });

    // Replicas catch up once the lag has passed, with the same version id.
    await world.replicator.whenInSync(versionId, LAG_MS + 5_000);
    expect(await replicaCurrent("us-west-2")).toBe(versionId);
    expect(await replicaCurrent("eu-west-1")).toBe(versionId);
  });

  it("delivers fleet events through the bus to reconcile; refreshed instances register with the new token", async () => {
    const before = reconciled.length;
    const refreshId = world.fleet.startInstanceRefresh("us-west-2", "agents-west", {
      minHealthyPercentage: 0,
    });
    await world.settled(10_000);
    const refreshEvents = reconciled
      .slice(before)
      .filter(
        (e) => (e as { detail?: { InstanceRefreshId?: string } }).detail?.InstanceRefreshId === refreshId,
      );
    // The start is put on the bus but matches no rule (InstanceRefreshesRule: terminal events only).
    expect(refreshEvents.map(detailType)).toEqual(["EC2 Auto Scaling Instance Refresh Succeeded"]);
    const onBus = world.bus
      .events()
      .filter(
        (e) =>
          (e.event as { detail?: { InstanceRefreshId?: string } }).detail?.InstanceRefreshId === refreshId,
      );
    expect(onBus.map((e) => [detailType(e.event), e.unmatched === true])).toEqual([
      ["EC2 Auto Scaling Instance Refresh Started", true],
      ["EC2 Auto Scaling Instance Refresh Succeeded", false],
    ]);
    expect(world.bus.events().filter((e) => e.error !== undefined)).toEqual([]);

    const boots = world.fleet.boots().filter((b) => b.instanceRefreshId === refreshId);
    expect(boots).toHaveLength(1);
    expect(boots[0]?.result).toMatchObject({ ok: true });
    const registration = world.buildkite.registrations().find((r) => r.name === boots[0]?.instanceId);
    expect(registration).toMatchObject({ ok: true, tokenId: tokenFor(rotatedVersion)?.id });
  });

  it("schedule() reaches reconcile as a Scheduled Event", async () => {
    world.schedule();
    await world.settled(10_000);
    expect(reconciled.at(-1)).toMatchObject({
      "detail-type": "Scheduled Event",
      source: "aws.events",
      region: "us-east-1",
      detail: {},
    });
  });

  it("alerts() returns what was published to the alert topic", async () => {
    // The SDK client the functions use, configured only through the world's environment.
    await snsClients()("us-east-1").send(
      new PublishCommand({
        TopicArn: process.env.ALERT_TOPIC_ARN,
        Subject: "Rollout blocked",
        Message: "What: test",
      }),
    );
    await expect
      .poll(() => world.alerts(), { timeout: 5_000 })
      .toEqual([{ subject: "Rollout blocked", message: "What: test" }]);
    expect(await world.alerts()).toHaveLength(1);
  });

  it("boots an agent with the current token, and fails with a revoked token or a missing replica", async () => {
    const context = { groupName: "manual", instanceRefreshId: "manual" };
    expect(await world.boot({ ...context, region: "eu-west-1", instanceId: "i-manual-1" })).toMatchObject({
      ok: true,
    });

    await world.replicator.remove("eu-west-1");
    const missing = await world.boot({ ...context, region: "eu-west-1", instanceId: "i-manual-2" });
    expect(missing.ok).toBe(false);
    expect(missing.reason).toMatch(/token not readable in eu-west-1/);
    await world.replicator.heal("eu-west-1");
    await world.replicator.whenInSync(rotatedVersion, LAG_MS + 5_000);

    const current = tokenFor(rotatedVersion);
    if (!current) throw new Error("no token for the rotated version");
    world.buildkite.revokeToken(current.id);
    const revoked = await world.boot({ ...context, region: "us-west-2", instanceId: "i-manual-3" });
    expect(revoked).toEqual({
      ok: false,
      reason: "agent registration refused: HTTP 401 (token read via SSM reference)",
    });
    expect(world.buildkite.registrations().find((r) => r.name === "i-manual-3")).toMatchObject({
      ok: false,
      status: 401,
      tokenId: current.id,
    });
  });

  it("rejects rotate() naming the failed step, and boots still read AWSCURRENT during the rotation", async () => {
    world.buildkite.setScopes(["read_clusters"]); // creating a token now fails with 403
    const steps = () => world.lambda.invocations().filter((r) => r.name === "rotate-token").length;
    const before = steps();
    try {
      const rotation = world.rotate();
      await expect(rotation).rejects.toThrow(
        /^rotation step createSecret failed for version [0-9a-f-]{36}: /,
      );
      // Secrets Manager retries the whole rotation: three attempts, each stopped at createSecret.
      await expect(rotation).rejects.toMatchObject({ step: "createSecret", attempts: 3 });
      expect(steps() - before).toBe(3);
    } finally {
      world.buildkite.reset();
    }
    // The rotation left an empty AWSPENDING version behind, so moto's SSM reference lookup fails in
    // the primary region; the boot falls back to AWSCURRENT (revoked by the previous test: 401).
    const boot = await world.boot({
      region: "us-east-1",
      groupName: "manual",
      instanceId: "i-manual-4",
      instanceRefreshId: "manual",
    });
    expect(boot.reason).toBe(
      "agent registration refused: HTTP 401 (token read via Secrets Manager (moto SSM reference quirk))",
    );
  });

  it("never writes a token value to any output", () => {
    const text = output.text();
    for (const token of world.buildkite.tokens()) expect(text.includes(token.value)).toBe(false);
  });

  it("stop() stops every server it started and restores process.env", async () => {
    const urls = [world.motoUrl, world.buildkite.url, world.lambda.url, world.autoScalingUrl];
    await Promise.all([world.stop(), world.stop()]);
    await world.stop();
    for (const url of urls) {
      await expect(fetch(url, { signal: AbortSignal.timeout(2_000) })).rejects.toMatchObject({
        cause: { code: "ECONNREFUSED" },
      });
    }
    expect(process.env.RECONCILE_QUEUE_URL).toBeUndefined();
    expect(process.env.AWS_ENDPOINT_URL_LAMBDA).toBeUndefined();
  });
});

describe("startWorld validation", () => {
  it("refuses a group outside the primary and replica regions before starting anything", async () => {
    await expect(
      startWorld({
        groups: [{ region: "ap-south-1", name: "far", instances: 1 }],
        handlers: { rotateToken: async () => {}, reconcile: async () => {} },
      }),
    ).rejects.toThrow("group far is in ap-south-1, which is neither the primary region nor a replica region");
  });
});

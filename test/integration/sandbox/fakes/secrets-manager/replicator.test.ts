/**
 * The simulated Secrets Manager replication between regions of one moto server: lag, failure,
 * healing and missing replicas, observed with the real SDK the way reconcile and the simulated
 * agents observe replicas (asking each region, by name).
 */
import { randomUUID } from "node:crypto";
import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type MotoServer, startMoto } from "../../../../../sandbox/fakes/aws/moto";
import { type Replicator, startReplicator } from "../../../../../sandbox/fakes/secrets-manager/replicator";
import { registerStubRotationLambda, startRotation } from "../../../../../sandbox/world/rotation-driver";

const PRIMARY = "us-east-1";
const REPLICAS = ["us-west-2", "eu-west-1"];
const credentials = { accessKeyId: "test", secretAccessKey: "test" };

let moto: MotoServer;
let rotationLambdaArn: string;
const clients = new Map<string, SecretsManagerClient>();
const replicators: Replicator[] = [];

const sm = (region: string) => {
  let client = clients.get(region);
  if (!client) {
    client = new SecretsManagerClient({ region, endpoint: moto.url, credentials });
    clients.set(region, client);
  }
  return client;
};

beforeAll(async () => {
  moto = await startMoto();
  rotationLambdaArn = await registerStubRotationLambda(moto.url, PRIMARY);
});

afterEach(async () => {
  await Promise.all(replicators.splice(0).map((r) => r.stop()));
});

afterAll(async () => {
  for (const client of clients.values()) client.destroy();
  await moto?.stop();
});

/** A fresh secret per test, so tests do not see each other's replicas. */
async function newSecret(): Promise<{ name: string; arn: string; versionId: string }> {
  const name = `replicated/${randomUUID().slice(0, 8)}`;
  const out = await sm(PRIMARY).send(
    new CreateSecretCommand({ Name: name, SecretString: `value-${randomUUID()}` }),
  );
  if (!out.ARN || !out.VersionId) throw new Error("moto returned no ARN or version");
  return { name, arn: out.ARN, versionId: out.VersionId };
}

async function replicate(name: string, lagMs: number): Promise<Replicator> {
  const replicator = await startReplicator({
    motoUrl: moto.url,
    primaryRegion: PRIMARY,
    secretName: name,
    replicaRegions: REPLICAS,
    lagMs,
  });
  replicators.push(replicator);
  return replicator;
}

async function stages(region: string, name: string): Promise<Record<string, string[]>> {
  const out = await sm(region).send(new DescribeSecretCommand({ SecretId: name }));
  return Object.fromEntries(
    Object.entries(out.VersionIdsToStages ?? {})
      .filter(([, labels]) => labels.length > 0)
      .map(([id, labels]) => [id, [...labels].sort()]),
  );
}

async function current(region: string, name: string): Promise<{ versionId?: string; value?: string }> {
  const out = await sm(region).send(
    new GetSecretValueCommand({ SecretId: name, VersionStage: "AWSCURRENT" }),
  );
  return { versionId: out.VersionId, value: out.SecretString };
}

/** Moves AWSCURRENT on the primary to a new version, as finishing a rotation does. */
async function putNewCurrent(name: string): Promise<string> {
  const versionId = randomUUID();
  await sm(PRIMARY).send(
    new PutSecretValueCommand({
      SecretId: name,
      ClientRequestToken: versionId,
      SecretString: `value-${versionId}`,
    }),
  );
  return versionId;
}

describe("simulated Secrets Manager replication", () => {
  it("creates every replica with the primary's name, version id, value and labels", async () => {
    const secret = await newSecret();
    const replicator = await replicate(secret.name, 100);
    await replicator.whenInSync(secret.versionId, 5_000);
    const primary = await current(PRIMARY, secret.name);
    for (const region of REPLICAS) {
      const replica = await current(region, secret.name);
      expect(replica.versionId).toBe(secret.versionId);
      expect(replica.value === primary.value).toBe(true);
      expect(await stages(region, secret.name)).toEqual(await stages(PRIMARY, secret.name));
    }
    expect(await replicator.currentVersions()).toEqual({
      "us-west-2": secret.versionId,
      "eu-west-1": secret.versionId,
    });
  });

  it("serves the old version until the lag has passed, then the new one with the same id", async () => {
    const lagMs = 800;
    const secret = await newSecret();
    const replicator = await replicate(secret.name, lagMs);
    await replicator.whenInSync(secret.versionId, 5_000);

    const v2 = await putNewCurrent(secret.name);
    const movedAt = Date.now();
    const seen: Array<{ at: number; version: string | undefined }> = [];
    const deadline = movedAt + lagMs + 3_000;
    while (Date.now() < deadline) {
      const version = (await current("us-west-2", secret.name)).versionId;
      seen.push({ at: Date.now() - movedAt, version });
      if (version === v2) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const firstNew = seen.find((s) => s.version === v2);
    expect(firstNew, "the replica never served the new version").toBeDefined();
    // Never earlier than the lag, and not much later than lag + a poll or two.
    expect(firstNew?.at).toBeGreaterThanOrEqual(lagMs - 5);
    expect(firstNew?.at).toBeLessThan(lagMs + 1_000);
    expect(seen.filter((s) => s.at < lagMs - 50).every((s) => s.version === secret.versionId)).toBe(true);
    expect(seen.filter((s) => s.at < lagMs - 50).length).toBeGreaterThan(5);

    await replicator.whenInSync(v2, 3_000);
    for (const region of REPLICAS) {
      expect(await stages(region, secret.name)).toEqual({
        [secret.versionId]: ["AWSPREVIOUS"],
        [v2]: ["AWSCURRENT"],
      });
    }
  });

  it("never copies the empty AWSPENDING version of a rotation, so replica SSM references keep working", async () => {
    const secret = await newSecret();
    const replicator = await replicate(secret.name, 50);
    await replicator.whenInSync(secret.versionId, 5_000);
    const pending = await startRotation(sm(PRIMARY), secret.name, rotationLambdaArn);
    expect((await stages(PRIMARY, secret.name))[pending]).toEqual(["AWSPENDING"]);
    await new Promise((r) => setTimeout(r, 400));
    const ssm = new SSMClient({ region: "us-west-2", endpoint: moto.url, credentials });
    try {
      for (const region of REPLICAS)
        expect(Object.keys(await stages(region, secret.name))).toEqual([secret.versionId]);
      const param = await ssm.send(
        new GetParameterCommand({
          Name: `/aws/reference/secretsmanager/${secret.name}`,
          WithDecryption: true,
        }),
      );
      expect(param.Parameter?.Value === (await current(PRIMARY, secret.name)).value).toBe(true);
    } finally {
      ssm.destroy();
    }

    // createSecret stores the value; finishSecret moves AWSCURRENT (moto leaves AWSPENDING on it).
    await sm(PRIMARY).send(
      new PutSecretValueCommand({
        SecretId: secret.name,
        ClientRequestToken: pending,
        SecretString: `value-${pending}`,
        VersionStages: ["AWSPENDING"],
      }),
    );
    await sm(PRIMARY).send(
      new UpdateSecretVersionStageCommand({
        SecretId: secret.name,
        VersionStage: "AWSCURRENT",
        MoveToVersionId: pending,
        RemoveFromVersionId: secret.versionId,
      }),
    );
    await replicator.whenInSync(pending, 3_000);
    await expect
      .poll(() => stages("eu-west-1", secret.name), { timeout: 2_000 })
      .toEqual(await stages(PRIMARY, secret.name));
  });

  it("keeps a failed region behind while the others catch up, until it is healed", async () => {
    const secret = await newSecret();
    const replicator = await replicate(secret.name, 100);
    await replicator.whenInSync(secret.versionId, 5_000);
    replicator.fail("eu-west-1");
    const v2 = await putNewCurrent(secret.name);
    await replicator.whenInSync(v2, 3_000); // the failed region does not count
    await new Promise((r) => setTimeout(r, 400));
    expect(await replicator.currentVersions()).toEqual({ "us-west-2": v2, "eu-west-1": secret.versionId });
    expect((await current("eu-west-1", secret.name)).versionId).toBe(secret.versionId);
    expect(replicator.status().find((s) => s.region === "eu-west-1")?.mode).toBe("failed");

    await replicator.heal("eu-west-1");
    await replicator.whenInSync(v2, 3_000);
    expect((await current("eu-west-1", secret.name)).versionId).toBe(v2);
  });

  it("removes a replica (a missing replica) and re-creates it on heal", async () => {
    const secret = await newSecret();
    const replicator = await replicate(secret.name, 50);
    await replicator.whenInSync(secret.versionId, 5_000);
    await replicator.remove("us-west-2");
    await expect(
      sm("us-west-2").send(new DescribeSecretCommand({ SecretId: secret.name })),
    ).rejects.toMatchObject({
      name: "ResourceNotFoundException",
    });
    const v2 = await putNewCurrent(secret.name);
    await replicator.whenInSync(v2, 3_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(await replicator.currentVersions()).toEqual({ "us-west-2": undefined, "eu-west-1": v2 });

    await replicator.heal("us-west-2");
    await replicator.whenInSync(v2, 3_000);
    // whenInSync waits for AWSCURRENT only; the older version's AWSPREVIOUS label may land a
    // moment later (seen under a loaded machine), so wait for it, bounded.
    const primaryStages = await stages(PRIMARY, secret.name);
    await expect.poll(() => stages("us-west-2", secret.name), { timeout: 3_000 }).toEqual(primaryStages);
  });

  it("applies a per-region lag, and whenInSync names the regions that are behind when it gives up", async () => {
    const secret = await newSecret();
    const replicator = await replicate(secret.name, 50);
    await replicator.whenInSync(secret.versionId, 5_000);
    replicator.setLag("eu-west-1", 5_000);
    const v2 = await putNewCurrent(secret.name);
    await expect
      .poll(() => replicator.currentVersions().then((v) => v["us-west-2"]), { timeout: 2_000 })
      .toBe(v2);
    await expect(replicator.whenInSync(v2, 300)).rejects.toThrow(
      new RegExp(`replicas not in sync with ${v2} after 300 ms: eu-west-1 serves ${secret.versionId}$`),
    );
    replicator.setLag("eu-west-1", 0); // applies to what is already pending
    await replicator.whenInSync(v2, 2_000);
    expect(() => replicator.fail("ap-south-1")).toThrow(/not a replica region/);
  });

  it("fails to start for a secret the primary does not have", async () => {
    await expect(
      startReplicator({
        motoUrl: moto.url,
        primaryRegion: PRIMARY,
        secretName: "no/such/secret",
        replicaRegions: REPLICAS,
        lagMs: 0,
      }),
    ).rejects.toMatchObject({ name: "ResourceNotFoundException" });
  });
});

import { randomUUID } from "node:crypto";
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MotoServer, startMoto } from "../../../../sandbox/fakes/aws/moto";
import { awsClientOptions, perRegion } from "../../../../shared/lib/aws/client-options";
import { TokenReadError } from "../../../../shared/token-reader/errors";
import { createTokenReader, type TokenReaderOptions } from "../../../../shared/token-reader/reader";
import { secretsManagerSource } from "../../../../shared/token-reader/secrets-manager-source";
import type { TokenFetcher, TokenSource } from "../../../../shared/token-reader/sources";
import { ssmReferenceSource } from "../../../../shared/token-reader/ssm-source";
import { captureOutput } from "../../../support/capture-output";

/**
 * The reader with the real SDK clients against moto server on loopback: both sources, a rotation
 * between reads, a missing replica, single flight on the wire, and stale-on-error after a real
 * connection failure.
 */
const PRIMARY = "us-east-1";
const REPLICA = "eu-west-1";
const CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };
const tokens: string[] = [];
const newToken = () => {
  const t = `bkct_${randomUUID().replaceAll("-", "")}`;
  tokens.push(t);
  return t;
};

let moto: MotoServer;
let admin: SecretsManagerClient;
const output = captureOutput();

beforeAll(async () => {
  moto = await startMoto();
  admin = new SecretsManagerClient({ region: PRIMARY, endpoint: moto.url, credentials: CREDENTIALS });
});

afterAll(async () => {
  output.restore();
  await moto?.stop();
  // Nothing this suite printed, by any channel, may contain a token.
  for (const t of tokens) expect(output.text()).not.toContain(t);
});

/** Real clients per region, counting every GetSecretValue / GetParameter that goes on the wire. */
function clients(endpoint = () => moto.url) {
  const calls: string[] = [];
  const opts = (region: string) => ({
    ...awsClientOptions(region),
    endpoint: endpoint(),
    credentials: CREDENTIALS,
  });
  return {
    calls,
    secretsManager: perRegion((region) => {
      const c = new SecretsManagerClient(opts(region));
      c.middlewareStack.add(
        (next, context) => (args) => {
          calls.push(`${region}:${context.commandName}`);
          return next(args);
        },
        { step: "initialize" },
      );
      return c;
    }),
    ssm: perRegion((region) => {
      const c = new SSMClient(opts(region));
      c.middlewareStack.add(
        (next, context) => (args) => {
          calls.push(`${region}:${context.commandName}`);
          return next(args);
        },
        { step: "initialize" },
      );
      return c;
    }),
  };
}

async function createSecret(): Promise<{ name: string; arn: string; token: string; versionId: string }> {
  const name = `buildkite/agent-token-${randomUUID().slice(0, 8)}`;
  const token = newToken();
  const out = await admin.send(new CreateSecretCommand({ Name: name, SecretString: token }));
  if (!out.ARN || !out.VersionId) throw new Error("moto returned no ARN");
  return { name, arn: out.ARN, token, versionId: out.VersionId };
}

async function rotate(secretId: string): Promise<{ token: string; versionId: string }> {
  const token = newToken();
  const out = await admin.send(
    new PutSecretValueCommand({ SecretId: secretId, SecretString: token, VersionStages: ["AWSCURRENT"] }),
  );
  if (!out.VersionId) throw new Error("no version id");
  return { token, versionId: out.VersionId };
}

function fakeClock() {
  let t = Date.now();
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

type ReaderOptions = Omit<Partial<TokenReaderOptions>, "source"> & Pick<TokenReaderOptions, "secretId">;

/** A reader on counting clients; `source` names the source, `fetcher` overrides it outright. */
function reader(options: ReaderOptions & { source?: TokenSource; fetcher?: TokenFetcher }, c = clients()) {
  const clock = fakeClock();
  const { source = "secretsmanager", fetcher, ...rest } = options;
  const r = createTokenReader({
    regions: [PRIMARY],
    maxAgeMs: 60_000,
    now: clock.now,
    ...rest,
    source:
      fetcher ?? (source === "ssm" ? ssmReferenceSource(c.ssm) : secretsManagerSource(c.secretsManager)),
  });
  return { reader: r, clock, calls: c.calls };
}

describe.each<TokenSource>(["secretsmanager", "ssm"])("token reader against moto (%s)", (source) => {
  it("reads AWSCURRENT with its version id, by name and by ARN", async () => {
    const secret = await createSecret();
    for (const secretId of [secret.name, secret.arn]) {
      const { reader: r } = reader({ secretId, source });
      expect(await r.read()).toMatchObject({
        token: secret.token,
        versionId: secret.versionId,
        region: PRIMARY,
        source,
        stale: false,
      });
    }
  });

  it("sees a rotation with forceRefresh at once, and otherwise after the max age", async () => {
    const secret = await createSecret();
    const { reader: r, clock, calls } = reader({ secretId: secret.arn, source });
    expect((await r.read()).token).toBe(secret.token);

    const second = await rotate(secret.arn);
    expect((await r.read()).token).toBe(secret.token); // cached
    expect(await r.read({ forceRefresh: true })).toMatchObject({
      token: second.token,
      versionId: second.versionId,
    });

    const third = await rotate(secret.arn);
    clock.advance(59_000);
    expect((await r.read()).token).toBe(second.token);
    clock.advance(1_000);
    expect(await r.read()).toMatchObject({ token: third.token, versionId: third.versionId });
    expect(calls).toHaveLength(3);
  });

  it("reads an explicitly requested stage (AWSPENDING)", async () => {
    const secret = await createSecret();
    const pending = newToken();
    const put = await admin.send(
      new PutSecretValueCommand({
        SecretId: secret.arn,
        SecretString: pending,
        VersionStages: ["AWSPENDING"],
      }),
    );
    const { reader: current } = reader({ secretId: secret.arn, source });
    expect((await current.read()).token).toBe(secret.token);
    const { reader: r } = reader({ secretId: secret.arn, source, versionStage: "AWSPENDING" });
    expect(await r.read()).toMatchObject({ token: pending, versionId: put.VersionId });
  });

  it("falls back from a region without the secret (missing replica) to the primary", async () => {
    const secret = await createSecret();
    for (const secretId of [secret.name, secret.arn]) {
      const { reader: r, calls } = reader({ secretId, source, regions: [REPLICA, PRIMARY] });
      expect(await r.read()).toMatchObject({
        token: secret.token,
        region: PRIMARY,
        versionId: secret.versionId,
      });
      expect(calls.map((c) => c.split(":")[0])).toEqual([REPLICA, PRIMARY]);
    }
    expect(output.text()).toContain("read the token from a fallback region");
  });

  it("fails with not-found when no region has the secret", async () => {
    const { reader: r } = reader({
      secretId: `missing-${randomUUID()}`,
      source,
      regions: [REPLICA, PRIMARY],
    });
    const error = await r.read().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenReadError);
    expect((error as TokenReadError).kind).toBe("not-found");
  });

  it("makes one call on the wire for 200 concurrent cold reads", async () => {
    const secret = await createSecret();
    const { reader: r, calls } = reader({ secretId: secret.arn, source });
    const results = await Promise.all(Array.from({ length: 200 }, () => r.read()));
    expect(calls).toHaveLength(1);
    expect(results.every((v) => v.token === secret.token)).toBe(true);
  });
});

describe("stale on error against a real connection failure", () => {
  it("serves the last good token within the bound, then fails", async () => {
    const secret = await createSecret();
    let endpoint = moto.url;
    // No cached clients: each call dials the current endpoint, so moto can "go away" mid-test.
    const fresh = (region: string) =>
      new SecretsManagerClient({
        ...awsClientOptions(region),
        maxAttempts: 1,
        endpoint,
        credentials: CREDENTIALS,
      });
    const { reader: r, clock } = reader({
      secretId: secret.arn,
      maxStaleMs: 120_000,
      errorBackoffMs: 0,
      fetcher: secretsManagerSource(fresh),
    });
    expect((await r.read()).stale).toBe(false);
    endpoint = "http://127.0.0.1:1"; // connection refused
    clock.advance(61_000);
    expect(await r.read()).toMatchObject({ token: secret.token, stale: true });
    expect(output.text()).toContain("serving the last good token");
    clock.advance(120_000);
    await expect(r.read()).rejects.toMatchObject({ name: "TokenReadError", kind: "transient" });
    endpoint = moto.url;
    expect(await r.read()).toMatchObject({ token: secret.token, stale: false });
  });
});

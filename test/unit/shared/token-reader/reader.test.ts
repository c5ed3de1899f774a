import {
  GetSecretValueCommand,
  type GetSecretValueCommandOutput,
  InternalServiceError,
  ResourceNotFoundException,
  SecretsManagerClient,
  SecretsManagerServiceException,
} from "@aws-sdk/client-secrets-manager";
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { type AwsClientStub, mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createLogger, redactSecrets } from "../../../../shared/lib/log";
import { TokenReadError } from "../../../../shared/token-reader/errors";
import { createTokenReader, type TokenReaderOptions } from "../../../../shared/token-reader/reader";
import { secretsManagerSource } from "../../../../shared/token-reader/secrets-manager-source";
import { ssmReferenceSource } from "../../../../shared/token-reader/ssm-source";
import { captureOutput } from "../../../support/capture-output";

const PRIMARY = "us-east-1";
const REPLICA = "eu-west-1";
const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbCdEf";
const T1 = "bkct_unit1111111111111111111111111111";
const T2 = "bkct_unit2222222222222222222222222222";
const V1 = "11111111-1111-4111-8111-111111111111";
const V2 = "22222222-2222-4222-8222-222222222222";

const output = captureOutput();
afterAll(() => output.restore());
afterEach(() => {
  // No test may print a token through any channel.
  for (const t of [T1, T2]) expect(output.text()).not.toContain(t);
  output.lines.length = 0;
});

function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

/** A client per region, each mocked on its own, so tests see which region was asked what. */
function regionClients() {
  const clients = new Map<string, SecretsManagerClient>();
  const mocks = new Map<string, AwsClientStub<SecretsManagerClient>>();
  const get = (region: string) => {
    let c = clients.get(region);
    if (!c) {
      c = new SecretsManagerClient({ region, credentials: { accessKeyId: "x", secretAccessKey: "y" } });
      clients.set(region, c);
      mocks.set(region, mockClient(c));
    }
    return c;
  };
  const mock = (region: string) => {
    get(region);
    const m = mocks.get(region);
    if (!m) throw new Error("no mock");
    return m;
  };
  const calls = (region: string) =>
    mock(region)
      .commandCalls(GetSecretValueCommand)
      .map((c) => c.args[0].input);
  return { get, mock, calls };
}

const value = (token: string, versionId: string): GetSecretValueCommandOutput => ({
  SecretString: token,
  VersionId: versionId,
  VersionStages: ["AWSCURRENT"],
  $metadata: {},
});

const sdkError = (name: string, status: number | undefined) =>
  Object.assign(new Error(`${name} happened`), {
    name,
    $metadata: status === undefined ? { attempts: 3 } : { httpStatusCode: status },
  });
const throttled = () => sdkError("ThrottlingException", 400);
const accessDenied = () =>
  new SecretsManagerServiceException({
    name: "AccessDeniedException",
    $fault: "client",
    message: "User is not authorized to perform secretsmanager:GetSecretValue",
    $metadata: { httpStatusCode: 400 },
  });
const notFound = () =>
  new ResourceNotFoundException({
    message: "Secrets Manager can't find the specified secret.",
    $metadata: {},
  });

function setup(overrides: Partial<TokenReaderOptions> = {}) {
  const c = clock();
  const regions = regionClients();
  const reader = createTokenReader({
    secretId: "buildkite/agent-token",
    regions: [PRIMARY],
    maxAgeMs: 60_000,
    maxStaleMs: 120_000,
    errorBackoffMs: 1_000,
    source: secretsManagerSource(regions.get),
    now: c.now,
    logger: createLogger("test", {}, "debug"),
    ...overrides,
  });
  return { reader, clock: c, regions };
}

describe("token reader: cache", () => {
  it("serves from memory within the max age and calls again after it", async () => {
    const { reader, clock, regions } = setup();
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolvesOnce(value(T1, V1)).resolves(value(T2, V2));
    const first = await reader.read();
    expect(first).toMatchObject({
      token: T1,
      versionId: V1,
      region: PRIMARY,
      stale: false,
      source: "secretsmanager",
    });
    expect(first.fetchedAt.getTime()).toBe(clock.now());
    clock.advance(59_999);
    expect((await reader.read()).token).toBe(T1);
    expect(regions.calls(PRIMARY)).toHaveLength(1);
    clock.advance(1);
    const second = await reader.read();
    expect(second).toMatchObject({ token: T2, versionId: V2, stale: false });
    expect(regions.calls(PRIMARY)).toHaveLength(2);
  });

  it("always asks for AWSCURRENT explicitly, or the stage asked for", async () => {
    const { reader, regions } = setup();
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolves(value(T1, V1));
    await reader.read();
    expect(regions.calls(PRIMARY)[0]).toEqual({
      SecretId: "buildkite/agent-token",
      VersionStage: "AWSCURRENT",
    });
    const pending = setup({ versionStage: "AWSPENDING" });
    pending.regions.mock(PRIMARY).on(GetSecretValueCommand).resolves(value(T2, V2));
    await pending.reader.read();
    expect(pending.regions.calls(PRIMARY)[0]?.VersionStage).toBe("AWSPENDING");
  });

  it("with max age 0 calls every time", async () => {
    const { reader, regions } = setup({ maxAgeMs: 0 });
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolves(value(T1, V1));
    await reader.read();
    await reader.read();
    expect(regions.calls(PRIMARY)).toHaveLength(2);
  });

  it("registers every token it reads, so no log line can carry it", async () => {
    const { reader, regions } = setup();
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolves(value(T1, V1));
    await reader.read();
    expect(redactSecrets(`x ${T1} y`)).toBe("x [REDACTED] y");
  });

  it("refuses an empty or binary value as a permanent error", async () => {
    const { reader, regions } = setup();
    regions
      .mock(PRIMARY)
      .on(GetSecretValueCommand)
      .resolves({ SecretBinary: new Uint8Array([1]), $metadata: {} });
    const error = await reader.read().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenReadError);
    expect((error as TokenReadError).kind).toBe("permanent");
  });
});

describe("token reader: single flight", () => {
  it("makes exactly one call for 1,000 concurrent cold reads", async () => {
    const { reader, regions } = setup();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    regions
      .mock(PRIMARY)
      .on(GetSecretValueCommand)
      .callsFake(async () => {
        await gate;
        return value(T1, V1);
      });
    const reads = Array.from({ length: 1000 }, () => reader.read());
    release();
    const results = await Promise.all(reads);
    expect(regions.calls(PRIMARY)).toHaveLength(1);
    expect(new Set(results.map((r) => r.token))).toEqual(new Set([T1]));
  });

  it("makes one call for concurrent reads of an expired value", async () => {
    const { reader, clock, regions } = setup();
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolvesOnce(value(T1, V1)).resolves(value(T2, V2));
    await reader.read();
    clock.advance(61_000);
    const results = await Promise.all(Array.from({ length: 50 }, () => reader.read()));
    expect(regions.calls(PRIMARY)).toHaveLength(2);
    expect(results.every((r) => r.token === T2)).toBe(true);
  });

  it("shares a failure among the concurrent readers and tries again on the next read", async () => {
    const { reader, regions } = setup();
    regions.mock(PRIMARY).on(GetSecretValueCommand).rejectsOnce(throttled()).resolves(value(T1, V1));
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => reader.read()));
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    expect(regions.calls(PRIMARY)).toHaveLength(1);
    expect((await reader.read()).token).toBe(T1);
  });
});

describe("token reader: forceRefresh", () => {
  it("bypasses a fresh cache", async () => {
    const { reader, regions } = setup();
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolvesOnce(value(T1, V1)).resolves(value(T2, V2));
    expect((await reader.read()).token).toBe(T1);
    expect((await reader.read({ forceRefresh: true })).token).toBe(T2);
    expect((await reader.read()).token).toBe(T2);
    expect(regions.calls(PRIMARY)).toHaveLength(2);
  });

  it("coalesces concurrent forced reads, but does not join a plain call already in flight", async () => {
    const { reader, regions } = setup();
    const gates: Array<() => void> = [];
    let n = 0;
    regions
      .mock(PRIMARY)
      .on(GetSecretValueCommand)
      .callsFake(async () => {
        const i = n++;
        await new Promise<void>((r) => gates.push(r));
        return i === 0 ? value(T1, V1) : value(T2, V2);
      });
    const plain = reader.read();
    const forced = [reader.read({ forceRefresh: true }), reader.read({ forceRefresh: true })];
    await new Promise((r) => setImmediate(r));
    expect(regions.calls(PRIMARY)).toHaveLength(2);
    // The forced call answers first; the older plain call answers later and must not win the cache.
    gates[1]?.();
    const forcedResults = await Promise.all(forced);
    gates[0]?.();
    expect((await plain).token).toBe(T1);
    expect(forcedResults.map((r) => r.token)).toEqual([T2, T2]);
    expect((await reader.read()).token).toBe(T2);
    expect(regions.calls(PRIMARY)).toHaveLength(2);
  });
});

describe("token reader: stale on error", () => {
  it("serves the last good value after a transient failure, within the bound, and logs the error", async () => {
    const { reader, clock, regions } = setup();
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolvesOnce(value(T1, V1)).rejects(throttled());
    await reader.read();
    clock.advance(60_000 + 120_000); // age = maxAge + maxStale: still within the bound
    const stale = await reader.read();
    expect(stale).toMatchObject({ token: T1, versionId: V1, stale: true });
    const warning = output.lines.find((l) => l.includes("serving the last good token"));
    expect(warning).toContain("ThrottlingException");
    expect(warning).toContain(V1);
  });

  it("fails once the stale value is older than the bound", async () => {
    const { reader, clock, regions } = setup();
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolvesOnce(value(T1, V1)).rejects(throttled());
    await reader.read();
    clock.advance(60_000 + 120_001);
    const error = await reader.read().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenReadError);
    expect((error as TokenReadError).transient).toBe(true);
    expect(String((error as Error).message)).not.toContain(T1);
  });

  it("treats 5xx and network failures as transient", async () => {
    for (const failure of [
      new InternalServiceError({ message: "boom", $metadata: { httpStatusCode: 500 } }),
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED", $metadata: {} }),
      sdkError("TimeoutError", undefined),
    ]) {
      const { reader, clock, regions } = setup();
      regions.mock(PRIMARY).on(GetSecretValueCommand).resolvesOnce(value(T1, V1)).rejects(failure);
      await reader.read();
      clock.advance(61_000);
      expect((await reader.read()).stale).toBe(true);
    }
  });

  it("does not call again during the error backoff, then tries again", async () => {
    const { reader, clock, regions } = setup();
    regions
      .mock(PRIMARY)
      .on(GetSecretValueCommand)
      .resolvesOnce(value(T1, V1))
      .rejectsOnce(throttled())
      .resolves(value(T2, V2));
    await reader.read();
    clock.advance(61_000);
    expect((await reader.read()).stale).toBe(true);
    clock.advance(999);
    expect((await reader.read()).stale).toBe(true);
    expect(regions.calls(PRIMARY)).toHaveLength(2);
    clock.advance(1);
    expect(await reader.read()).toMatchObject({ token: T2, stale: false });
    expect(regions.calls(PRIMARY)).toHaveLength(3);
  });

  it("never masks a permanent error with a stale value", async () => {
    for (const failure of [accessDenied(), notFound(), sdkError("ValidationException", 400)]) {
      const { reader, clock, regions } = setup();
      regions.mock(PRIMARY).on(GetSecretValueCommand).resolvesOnce(value(T1, V1)).rejects(failure);
      await reader.read();
      clock.advance(61_000);
      const error = await reader.read().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TokenReadError);
      expect((error as TokenReadError).transient).toBe(false);
    }
  });

  it("does not mask a bug (an error that is not from the SDK)", async () => {
    const { reader, clock, regions } = setup();
    regions
      .mock(PRIMARY)
      .on(GetSecretValueCommand)
      .resolvesOnce(value(T1, V1))
      .rejects(new TypeError("oops"));
    await reader.read();
    clock.advance(61_000);
    await expect(reader.read()).rejects.toMatchObject({ kind: "permanent" });
  });

  it("with maxStaleMs 0 never serves a stale value", async () => {
    const { reader, clock, regions } = setup({ maxStaleMs: 0 });
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolvesOnce(value(T1, V1)).rejects(throttled());
    await reader.read();
    clock.advance(60_001);
    await expect(reader.read()).rejects.toMatchObject({ kind: "transient" });
  });
});

describe("token reader: region fallback", () => {
  it("tries the regions in order and reports the region that answered", async () => {
    const { reader, regions } = setup({ regions: [REPLICA, "eu-central-1", PRIMARY] });
    regions.mock(REPLICA).on(GetSecretValueCommand).rejects(notFound());
    regions.mock("eu-central-1").on(GetSecretValueCommand).rejects(throttled());
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolves(value(T1, V1));
    const got = await reader.read();
    expect(got).toMatchObject({ token: T1, region: PRIMARY, stale: false });
    expect(regions.calls(REPLICA)).toHaveLength(1);
    expect(regions.calls("eu-central-1")).toHaveLength(1);
    const warning = output.lines.find((l) => l.includes("fallback region"));
    expect(warning).toContain(REPLICA);
    expect(warning).toContain("ResourceNotFoundException");
  });

  it("stops at the first region that answers", async () => {
    const { reader, regions } = setup({ regions: [REPLICA, PRIMARY] });
    regions.mock(REPLICA).on(GetSecretValueCommand).resolves(value(T1, V1));
    expect((await reader.read()).region).toBe(REPLICA);
    expect(regions.calls(PRIMARY)).toHaveLength(0);
  });

  it("uses a name as is in every region and rewrites an ARN per region", async () => {
    const byName = setup({ regions: [REPLICA, PRIMARY] });
    byName.regions.mock(REPLICA).on(GetSecretValueCommand).rejects(notFound());
    byName.regions.mock(PRIMARY).on(GetSecretValueCommand).resolves(value(T1, V1));
    await byName.reader.read();
    expect(byName.regions.calls(REPLICA)[0]?.SecretId).toBe("buildkite/agent-token");
    expect(byName.regions.calls(PRIMARY)[0]?.SecretId).toBe("buildkite/agent-token");

    const byArn = setup({ secretId: ARN, regions: [REPLICA, PRIMARY] });
    byArn.regions.mock(REPLICA).on(GetSecretValueCommand).rejects(notFound());
    byArn.regions.mock(PRIMARY).on(GetSecretValueCommand).resolves(value(T1, V1));
    await byArn.reader.read();
    expect(byArn.regions.calls(REPLICA)[0]?.SecretId).toBe(ARN.replace(":us-east-1:", ":eu-west-1:"));
    expect(byArn.regions.calls(PRIMARY)[0]?.SecretId).toBe(ARN);
  });

  it("is permanent (not found) when no region has the secret", async () => {
    const { reader, regions } = setup({ regions: [REPLICA, PRIMARY] });
    regions.mock(REPLICA).on(GetSecretValueCommand).rejects(notFound());
    regions.mock(PRIMARY).on(GetSecretValueCommand).rejects(notFound());
    const error = (await reader.read().catch((e: unknown) => e)) as TokenReadError;
    expect(error.kind).toBe("not-found");
    expect(error.failures.map((f) => f.region)).toEqual([REPLICA, PRIMARY]);
    expect(error.message).toContain("ResourceNotFoundException");
  });

  it("a replica missing plus a throttled primary is transient: the stale value is served", async () => {
    const { reader, clock, regions } = setup({ regions: [REPLICA, PRIMARY] });
    regions.mock(REPLICA).on(GetSecretValueCommand).rejects(notFound());
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolvesOnce(value(T1, V1)).rejects(throttled());
    await reader.read();
    clock.advance(61_000);
    expect(await reader.read()).toMatchObject({ token: T1, stale: true });
  });

  it("access denied anywhere is permanent even if another region is only throttled", async () => {
    const { reader, clock, regions } = setup({ regions: [REPLICA, PRIMARY] });
    regions.mock(REPLICA).on(GetSecretValueCommand).resolvesOnce(value(T1, V1)).rejects(accessDenied());
    regions.mock(PRIMARY).on(GetSecretValueCommand).rejects(throttled());
    await reader.read();
    clock.advance(61_000);
    await expect(reader.read()).rejects.toMatchObject({ kind: "permanent" });
  });

  it("falls back past a region that denies access (a replica with its own KMS key, an SCP)", async () => {
    const { reader, regions } = setup({ regions: [REPLICA, PRIMARY] });
    regions.mock(REPLICA).on(GetSecretValueCommand).rejects(accessDenied());
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolves(value(T1, V1));
    expect((await reader.read()).region).toBe(PRIMARY);
  });
});

describe("token reader: SSM reference source", () => {
  it("reads /aws/reference/secretsmanager/<name> with decryption and takes the version id from SourceResult", async () => {
    const ssm = new SSMClient({ region: PRIMARY, credentials: { accessKeyId: "x", secretAccessKey: "y" } });
    const mock = mockClient(ssm);
    mock.on(GetParameterCommand).resolves({
      Parameter: {
        Name: "/aws/reference/secretsmanager/buildkite/agent-token",
        Value: T1,
        SourceResult: JSON.stringify({ VersionIdsToStages: { [V2]: ["AWSPREVIOUS"], [V1]: ["AWSCURRENT"] } }),
      },
      $metadata: {},
    });
    const c = clock();
    const reader = createTokenReader({
      secretId: ARN,
      regions: [PRIMARY],
      source: ssmReferenceSource(() => ssm),
      now: c.now,
    });
    expect(await reader.read()).toMatchObject({ token: T1, versionId: V1, source: "ssm", region: PRIMARY });
    expect(mock.commandCalls(GetParameterCommand)[0]?.args[0].input).toEqual({
      Name: "/aws/reference/secretsmanager/buildkite/agent-token",
      WithDecryption: true,
    });
  });
});

describe("token reader: options", () => {
  it("refuses no regions, no secret and negative durations", () => {
    const source = secretsManagerSource(regionClients().get);
    expect(() => createTokenReader({ secretId: "x", regions: [], source })).toThrow(/regions/);
    expect(() => createTokenReader({ secretId: " ", regions: [PRIMARY], source })).toThrow(/secretId/);
    expect(() => createTokenReader({ secretId: "x", regions: [PRIMARY], maxAgeMs: -1, source })).toThrow(
      /maxAgeMs/,
    );
  });

  it("clear() forgets the cached value", async () => {
    const { reader, regions } = setup();
    regions.mock(PRIMARY).on(GetSecretValueCommand).resolves(value(T1, V1));
    await reader.read();
    reader.clear();
    await reader.read();
    expect(regions.calls(PRIMARY)).toHaveLength(2);
  });
});

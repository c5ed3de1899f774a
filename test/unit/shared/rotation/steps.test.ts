import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import type { ClusterToken, CreatedClusterToken } from "../../../../shared/buildkite/client";
import { describeManagedToken } from "../../../../shared/buildkite/description";
import { loadRotateTokenConfig } from "../../../../shared/lib/config";
import { createLogger } from "../../../../shared/lib/log";
import {
  ORPHAN_MIN_AGE_MS,
  parseRotationEvent,
  type RotationDeps,
  rotate,
} from "../../../../shared/rotation/steps";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/agent-token-AbC123";
const CUR = "11111111-1111-4111-8111-111111111111";
const PEND = "22222222-2222-4222-8222-222222222222";
const config = loadRotateTokenConfig({
  ROTATION_SECRET_ARN: ARN,
  BUILDKITE_ORGANIZATION: "acme",
  BUILDKITE_CLUSTER_ID: "e4f44564-d3ea-45eb-87c2-6506643b852a",
  BUILDKITE_API_TOKEN_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/api-XyZ789",
  TOKEN_EXPIRY_SECONDS: "3600",
});

/** In-memory Buildkite: enough behaviour to assert what the steps do to tokens. */
class FakeBuildkite {
  tokens = new Map<string, ClusterToken & { value: string }>();
  created: Array<{ description: string; expiresAt?: Date }> = [];
  deleted: string[] = [];
  valid = true;
  org = "acme";
  private n = 0;
  async createToken(input: { description: string; expiresAt?: Date }): Promise<CreatedClusterToken> {
    this.created.push(input);
    const id = `tok-${++this.n}`;
    const value = `bkct_value_${this.n}_abcdefghijklmnopqrstuvwxyz`;
    const t = {
      id,
      description: input.description,
      createdAt: "now",
      expiresAt: input.expiresAt?.toISOString(),
      value,
    };
    this.tokens.set(id, t);
    return { ...t, token: value };
  }
  async listTokens(): Promise<ClusterToken[]> {
    return [...this.tokens.values()].map(({ value: _v, ...t }) => t);
  }
  async deleteToken(id: string) {
    this.deleted.push(id);
    return this.tokens.delete(id) ? ("deleted" as const) : ("already-gone" as const);
  }
  async verifyAgentToken(token: string) {
    const known = [...this.tokens.values()].some((t) => t.value === token);
    return known && this.valid
      ? { valid: true as const, organizationSlug: this.org }
      : { valid: false as const, status: 401 };
  }
}

const sm = mockClient(SecretsManagerClient);
let bk: FakeBuildkite;
let deps: RotationDeps;
let reconciles: string[];

function stages(s: Record<string, string[]>, rotationEnabled = true) {
  sm.on(DescribeSecretCommand).resolves({ ARN, RotationEnabled: rotationEnabled, VersionIdsToStages: s });
}
const ev = (Step: string, extra: Record<string, unknown> = {}) =>
  parseRotationEvent({ Step, SecretId: ARN, ClientRequestToken: PEND, ...extra });

beforeEach(() => {
  sm.reset();
  bk = new FakeBuildkite();
  reconciles = [];
  deps = {
    config,
    secrets: new SecretsManagerClient({ region: "us-east-1" }),
    buildkite: bk,
    logger: createLogger("test", {}, "error"),
    metrics: { put: () => {} },
    now: () => new Date("2026-11-22T00:00:00Z"),
    startReconcile: async ({ versionId }) => {
      reconciles.push(versionId);
    },
  };
});

describe("preamble", () => {
  it.each([
    [
      "rotation disabled",
      () => stages({ [CUR]: ["AWSCURRENT"], [PEND]: ["AWSPENDING"] }, false),
      /not enabled/,
    ],
    ["unknown version", () => stages({ [CUR]: ["AWSCURRENT"] }), /is not a version/],
    [
      "version not pending",
      () => stages({ [CUR]: ["AWSCURRENT"], [PEND]: ["AWSPREVIOUS"] }),
      /not AWSPENDING/,
    ],
  ])("%s: refuses and changes nothing", async (_, setup, message) => {
    setup();
    await expect(rotate(ev("createSecret"), deps)).rejects.toThrow(message);
    expect(bk.created).toHaveLength(0);
    expect(sm.commandCalls(PutSecretValueCommand)).toHaveLength(0);
  });

  it("rejects a 10 MiB SecretId with a short InputError, and another secret's id is quoted briefly", async () => {
    const huge = `arn:${"x".repeat(10 * 1024 * 1024)}`;
    const error = (() => {
      try {
        parseRotationEvent({ Step: "createSecret", SecretId: huge, ClientRequestToken: PEND });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error?.name).toBe("InputError");
    expect(error?.message.length).toBeLessThan(200);
    const long = parseRotationEvent({
      Step: "createSecret",
      SecretId: `${ARN}${"y".repeat(1500)}`,
      ClientRequestToken: PEND,
    });
    const refused = (await rotate(long, deps).catch((e: unknown) => e)) as Error;
    expect(refused.name).toBe("InputError");
    expect(refused.message.length).toBeLessThan(600);
  });

  it("rejects another secret before any call", async () => {
    const other = parseRotationEvent({ Step: "createSecret", SecretId: `${ARN}x`, ClientRequestToken: PEND });
    await expect(rotate(other, deps)).rejects.toMatchObject({ name: "InputError" });
    expect(sm.calls()).toHaveLength(0);
  });

  it("returns when the version is already AWSCURRENT", async () => {
    stages({ [PEND]: ["AWSCURRENT", "AWSPENDING"] });
    for (const step of ["createSecret", "setSecret", "testSecret", "finishSecret"])
      await rotate(ev(step), deps);
    expect(bk.created).toHaveLength(0);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)).toHaveLength(0);
  });

  it.each([
    [{ Step: "rollback", SecretId: ARN, ClientRequestToken: PEND }, /unknown rotation step/],
    [{ Step: "createSecret", ClientRequestToken: PEND }, /SecretId/],
    [{ Step: "createSecret", SecretId: ARN, ClientRequestToken: "x" }, /ClientRequestToken/],
    [null, /object/],
  ])("rejects malformed event %#", (event, message) => {
    expect(() => parseRotationEvent(event)).toThrow(message);
  });
});

describe("createSecret", () => {
  beforeEach(() => stages({ [CUR]: ["AWSCURRENT"], [PEND]: ["AWSPENDING"] }));

  it("creates one described, expiring token and stores it as AWSPENDING with the RotationToken", async () => {
    sm.on(GetSecretValueCommand).rejects(
      Object.assign(new Error("no value"), { name: "ResourceNotFoundException" }),
    );
    await rotate(ev("createSecret", { RotationToken: "rt-1" }), deps);
    expect(bk.created).toEqual([
      { description: describeManagedToken(ARN, PEND), expiresAt: new Date("2026-11-22T01:00:00Z") },
    ]);
    const put = sm.commandCalls(PutSecretValueCommand)[0]?.args[0].input;
    expect(put).toMatchObject({
      SecretId: ARN,
      ClientRequestToken: PEND,
      VersionStages: ["AWSPENDING"],
      RotationToken: "rt-1",
    });
    expect(put?.SecretString).toBe([...bk.tokens.values()][0]?.value);
  });

  it("does nothing when the pending version already holds a value", async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: "bkct_existing_abcdefghijklmnopqrstu" });
    await rotate(ev("createSecret"), deps);
    expect(bk.created).toHaveLength(0);
  });

  it("revokes a token left by a crashed attempt for the same version, and only that one", async () => {
    sm.on(GetSecretValueCommand).resolves({});
    const orphan = await bk.createToken({ description: describeManagedToken(ARN, PEND) });
    const previous = await bk.createToken({ description: describeManagedToken(ARN, CUR) });
    const human = await bk.createToken({ description: "Windows agents" });
    bk.created = [];
    await rotate(ev("createSecret"), deps);
    expect(bk.deleted).toEqual([orphan.id]);
    expect(bk.tokens.has(previous.id) && bk.tokens.has(human.id)).toBe(true);
    expect(bk.created).toHaveLength(1);
  });

  const failure = (name: string, httpStatusCode: number | undefined, attempts: number) =>
    Object.assign(new Error(name), { name, $metadata: { httpStatusCode, attempts } });

  it("revokes the new token when Secrets Manager refused to store it (first attempt, client error)", async () => {
    sm.on(GetSecretValueCommand).resolves({});
    sm.on(PutSecretValueCommand).rejects(failure("InvalidRequestException", 400, 1));
    await expect(rotate(ev("createSecret"), deps)).rejects.toThrow("InvalidRequestException");
    expect(bk.tokens.size).toBe(0);
  });

  it.each([
    ["a throttle after an earlier attempt", failure("ThrottlingException", 400, 3)],
    ["a timeout", failure("TimeoutError", undefined, 3)],
    ["a 5xx", failure("InternalServiceError", 500, 1)],
    ["a lost connection", new Error("socket hang up")],
  ])("never revokes on an ambiguous outcome: %s with an empty read-back", async (_, error) => {
    sm.on(GetSecretValueCommand).resolves({});
    sm.on(PutSecretValueCommand).rejects(error);
    await expect(rotate(ev("createSecret"), deps)).rejects.toBe(error);
    expect(bk.tokens.size).toBe(1);
    expect(bk.deleted).toEqual([]);
  });

  it("never revokes when the read-back itself fails", async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({})
      .rejects(failure("ThrottlingException", 400, 3));
    sm.on(PutSecretValueCommand).rejects(failure("InvalidRequestException", 400, 1));
    await expect(rotate(ev("createSecret"), deps)).rejects.toThrow();
    expect(bk.tokens.size).toBe(1);
  });

  it("succeeds when the read-back finds our token stored", async () => {
    sm.on(PutSecretValueCommand).rejects(failure("ThrottlingException", 400, 3));
    sm.on(GetSecretValueCommand)
      .resolvesOnce({})
      .callsFake(() => ({ SecretString: [...bk.tokens.values()][0]?.value }));
    await expect(rotate(ev("createSecret"), deps)).resolves.toBeUndefined();
    expect(bk.tokens.size).toBe(1);
    expect(bk.deleted).toEqual([]);
  });

  it("revokes only its own token when the version holds another value", async () => {
    sm.on(PutSecretValueCommand).rejects(failure("ResourceExistsException", 400, 1));
    sm.on(GetSecretValueCommand)
      .resolvesOnce({})
      .resolves({ SecretString: "bkct_someone_elses_token_value" });
    await expect(rotate(ev("createSecret"), deps)).resolves.toBeUndefined();
    expect(bk.deleted).toEqual(["tok-1"]);
  });

  it("leaves a young unstored token alone and mints nothing: another attempt may store it", async () => {
    sm.on(GetSecretValueCommand).resolves({});
    const young = await bk.createToken({ description: describeManagedToken(ARN, PEND) });
    young.createdAt = new Date("2026-11-21T23:59:00Z").toISOString();
    bk.tokens.set(young.id, {
      ...(bk.tokens.get(young.id) as ClusterToken & { value: string }),
      createdAt: young.createdAt,
    });
    bk.created = [];
    await expect(rotate(ev("createSecret"), deps)).rejects.toMatchObject({ name: "RotationStateError" });
    expect(bk.deleted).toEqual([]);
    expect(bk.created).toHaveLength(0);
    // Old enough that no invocation can still be running: an orphan.
    deps.now = () => new Date(Date.parse(young.createdAt ?? "") + ORPHAN_MIN_AGE_MS + 1);
    await rotate(ev("createSecret"), deps);
    expect(bk.deleted).toEqual([young.id]);
  });
});

describe("setSecret and testSecret", () => {
  beforeEach(() => stages({ [CUR]: ["AWSCURRENT"], [PEND]: ["AWSPENDING"] }));

  it("setSecret fails without changing anything while the version holds no value", async () => {
    sm.on(GetSecretValueCommand).resolves({});
    await expect(rotate(ev("setSecret"), deps)).rejects.toThrow(/holds no value/);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)).toHaveLength(0);
  });

  it("setSecret passes while the pending token exists", async () => {
    const t = await bk.createToken({ description: describeManagedToken(ARN, PEND) });
    sm.on(GetSecretValueCommand).resolves({ SecretString: t.token });
    await expect(rotate(ev("setSecret"), deps)).resolves.toBeUndefined();
  });

  it("setSecret abandons a version whose token was revoked: AWSPENDING removed, next step named", async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: "bkct_revoked_value_abcdefghijklmnop" });
    const e = (await rotate(ev("setSecret"), deps).catch((x: unknown) => x)) as Error;
    expect(e.name).toBe("RotationStateError");
    expect(e.message).toMatch(/no Buildkite token/);
    expect(e.message).toContain(`aws secretsmanager rotate-secret --secret-id ${ARN}`);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)[0]?.args[0].input).toEqual({
      SecretId: ARN,
      VersionStage: "AWSPENDING",
      RemoveFromVersionId: PEND,
    });
  });

  it("names the manual command when removing AWSPENDING fails", async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: "bkct_revoked_value_abcdefghijklmnop" });
    sm.on(UpdateSecretVersionStageCommand).rejects(new Error("AccessDenied"));
    await expect(rotate(ev("setSecret"), deps)).rejects.toThrow(
      `aws secretsmanager update-secret-version-stage --secret-id ${ARN} --version-stage AWSPENDING --remove-from-version-id ${PEND}`,
    );
  });

  it("testSecret passes for a valid token of the organization", async () => {
    const t = await bk.createToken({ description: describeManagedToken(ARN, PEND) });
    sm.on(GetSecretValueCommand).resolves({ SecretString: t.token });
    await expect(rotate(ev("testSecret"), deps)).resolves.toBeUndefined();
  });

  it("testSecret abandons a token the agent API refuses, revoking what is left of it", async () => {
    const t = await bk.createToken({ description: describeManagedToken(ARN, PEND) });
    sm.on(GetSecretValueCommand).resolves({ SecretString: t.token });
    bk.valid = false;
    const e = (await rotate(ev("testSecret"), deps).catch((x: unknown) => x)) as Error;
    expect(e.name).toBe("RotationStateError");
    expect(e.message).toMatch(/refused by the agent API \(HTTP 401\)/);
    expect(e.message).not.toContain(t.token);
    expect(bk.deleted).toEqual([t.id]);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)).toHaveLength(1);
  });

  it("testSecret abandons nothing on a 403 (the token exists but may not be used from here)", async () => {
    const t = await bk.createToken({ description: describeManagedToken(ARN, PEND) });
    sm.on(GetSecretValueCommand).resolves({ SecretString: t.token });
    bk.verifyAgentToken = async () => ({ valid: false as const, status: 403 });
    await expect(rotate(ev("testSecret"), deps)).rejects.toMatchObject({ name: "TokenVerificationError" });
    expect(bk.deleted).toEqual([]);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)).toHaveLength(0);
  });

  it("testSecret fails for another organization's token without printing it", async () => {
    const t = await bk.createToken({ description: describeManagedToken(ARN, PEND) });
    sm.on(GetSecretValueCommand).resolves({ SecretString: t.token });
    bk.org = "evil";
    const e = (await rotate(ev("testSecret"), deps).catch((x: unknown) => x)) as Error;
    expect(e.name).toBe("TokenVerificationError");
    expect(e.message).toMatch(/belongs to organization evil/);
    expect(e.message).not.toContain(t.token);
  });
});

describe("finishSecret", () => {
  beforeEach(async () => {
    stages({ [CUR]: ["AWSCURRENT"], [PEND]: ["AWSPENDING"] });
    const t = await bk.createToken({ description: describeManagedToken(ARN, PEND) });
    sm.on(GetSecretValueCommand).resolves({ SecretString: t.token });
  });

  it("moves AWSCURRENT from the old version and starts the reconciler", async () => {
    await rotate(ev("finishSecret"), deps);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)[0]?.args[0].input).toEqual({
      SecretId: ARN,
      VersionStage: "AWSCURRENT",
      MoveToVersionId: PEND,
      RemoveFromVersionId: CUR,
    });
    expect(reconciles).toEqual([PEND]);
  });

  it("does not fail the rotation when the reconciler cannot be started", async () => {
    deps.startReconcile = async () => {
      throw new Error("AccessDenied");
    };
    await expect(rotate(ev("finishSecret"), deps)).resolves.toBeUndefined();
  });

  it.each([
    ["holds no value", () => sm.on(GetSecretValueCommand).resolves({}), /holds no value/],
    ["has no managed token", () => bk.tokens.clear(), /no Buildkite token/],
  ])("refuses to promote a version that %s", async (_, setup, message) => {
    setup();
    await expect(rotate(ev("finishSecret"), deps)).rejects.toThrow(message);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)).toHaveLength(0);
    expect(reconciles).toEqual([]);
  });

  it("treats a lost UpdateSecretVersionStage response as done when the version is AWSCURRENT", async () => {
    sm.on(UpdateSecretVersionStageCommand).rejects(new Error("socket hang up"));
    sm.on(DescribeSecretCommand)
      .resolvesOnce({
        ARN,
        RotationEnabled: true,
        VersionIdsToStages: { [CUR]: ["AWSCURRENT"], [PEND]: ["AWSPENDING"] },
      })
      .resolves({
        ARN,
        RotationEnabled: true,
        VersionIdsToStages: { [CUR]: ["AWSPREVIOUS"], [PEND]: ["AWSCURRENT"] },
      });
    await expect(rotate(ev("finishSecret"), deps)).resolves.toBeUndefined();
    expect(reconciles).toEqual([PEND]);
  });

  it("rethrows an UpdateSecretVersionStage failure when the label did not move", async () => {
    sm.on(UpdateSecretVersionStageCommand).rejects(new Error("AccessDenied"));
    await expect(rotate(ev("finishSecret"), deps)).rejects.toThrow("AccessDenied");
    expect(reconciles).toEqual([]);
  });
});

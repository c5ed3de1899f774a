import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type AwsFaultProxy, startAwsFaultProxy } from "../../../../sandbox/fakes/aws/aws-fault-proxy";
import { startLocalLambda } from "../../../../sandbox/fakes/lambda/local-lambda";
import { removeLeftoverPending, startRotation } from "../../../../sandbox/world/rotation-driver";
import {
  type RotationStack,
  startRotationStack,
  TEST_CREDENTIALS,
} from "../../../../sandbox/world/rotation-stack";
import { apiTokenLoader } from "../../../../shared/buildkite/api-token";
import { BuildkiteClient } from "../../../../shared/buildkite/client";
import { describeManagedToken } from "../../../../shared/buildkite/description";
import { loadRotateTokenConfig } from "../../../../shared/lib/config";
import { createLogger } from "../../../../shared/lib/log";
import { parseRotationEvent, type RotationDeps, rotate } from "../../../../shared/rotation/steps";
import { startTokenScan } from "../../../support/token-scan";

/**
 * rotate-token under ambiguous AWS faults: the real steps and real SDK clients, with the fault
 * proxy (and its strict AWS rules) between them and moto. Every scenario must converge to exactly
 * one live managed token for the version, equal to what the version holds, and never revoke a
 * token that was stored.
 */
let stack: RotationStack;
let proxy: AwsFaultProxy;
const scan = startTokenScan();
const reconciles: string[] = [];
let injectedRedactions = 0;

beforeAll(async () => {
  stack = await startRotationStack();
  scan.watch(stack.buildkite);
  proxy = await startAwsFaultProxy({ upstream: stack.moto.url });
});

afterAll(async () => {
  scan.stop();
  await proxy?.close();
  await stack?.stop();
});

beforeEach(async () => {
  proxy.clearFaults();
  proxy.strict = { immutableVersions: true, rotationInProgress: true, noEmptyPromotion: true };
  stack.buildkite.reset();
  reconciles.length = 0;
  // Every test starts from a finished state: no AWSPENDING anywhere but (leftover) on AWSCURRENT.
  const d = await stack.secrets.send(new DescribeSecretCommand({ SecretId: stack.secretArn }));
  for (const [id, labels] of Object.entries(d.VersionIdsToStages ?? {})) {
    if (labels.includes("AWSPENDING") && !labels.includes("AWSCURRENT")) {
      await import("@aws-sdk/client-secrets-manager").then(({ UpdateSecretVersionStageCommand }) =>
        stack.secrets.send(
          new UpdateSecretVersionStageCommand({
            SecretId: stack.secretArn,
            VersionStage: "AWSPENDING",
            RemoveFromVersionId: id,
          }),
        ),
      );
    }
  }
});

/**
 * A Secrets Manager client through the proxy. The default timeout is generous (moto on a busy
 * machine can take a second); the tests about timeouts pass their own short one, with delays
 * well past it.
 */
function proxiedSecrets(requestTimeout = 5_000, maxAttempts = 3) {
  return new SecretsManagerClient({
    region: stack.region,
    endpoint: proxy.url,
    credentials: TEST_CREDENTIALS,
    maxAttempts,
    requestHandler: { connectionTimeout: 1_000, requestTimeout, throwOnRequestTimeout: true },
  });
}

function deps(overrides: Partial<RotationDeps> = {}): RotationDeps {
  const config = loadRotateTokenConfig(stack.env);
  return {
    config,
    secrets: proxiedSecrets(),
    buildkite: new BuildkiteClient({
      ...config.buildkite,
      apiToken: apiTokenLoader(stack.secrets, config.buildkite.apiTokenSecretArn),
      baseDelayMs: 10,
    }),
    logger: createLogger("rotate-token-faults", {}, "debug"),
    metrics: { put: () => {} },
    now: () => new Date(),
    startReconcile: async ({ versionId }) => {
      reconciles.push(versionId);
    },
    ...overrides,
  };
}

const step = (Step: string, versionId: string, d: RotationDeps) =>
  rotate(parseRotationEvent({ Step, SecretId: stack.secretArn, ClientRequestToken: versionId }), d);

async function begin(): Promise<string> {
  // RotateSecret goes through the strict layer too: it refuses while a rotation is pending.
  return startRotation(proxiedSecrets(), stack.secretArn, stack.rotationLambdaArn);
}

async function versionValue(versionId: string): Promise<string | undefined> {
  try {
    const out = await stack.secrets.send(
      new GetSecretValueCommand({ SecretId: stack.secretArn, VersionId: versionId }),
    );
    return out.SecretString;
  } catch {
    return undefined;
  }
}

async function labelsOf(versionId: string): Promise<string[]> {
  const d = await stack.secrets.send(new DescribeSecretCommand({ SecretId: stack.secretArn }));
  return d.VersionIdsToStages?.[versionId] ?? [];
}

const live = (versionId: string) =>
  stack.buildkite
    .tokens()
    .filter((t) => t.valid && t.description === describeManagedToken(stack.secretArn, versionId));

/** The convergence property: one live managed token, and it is what the version holds. */
async function expectOneLiveStored(versionId: string) {
  const tokens = live(versionId);
  expect(tokens).toHaveLength(1);
  expect(await versionValue(versionId)).toBe(tokens[0]?.value);
}

async function finish(versionId: string, d = deps()) {
  for (const s of ["setSecret", "testSecret", "finishSecret"]) await step(s, versionId, d);
  expect(await labelsOf(versionId)).toContain("AWSCURRENT");
  await expectOneLiveStored(versionId);
}

describe("createSecret when PutSecretValue commits but the client sees an error", () => {
  it("every response lost: the read-back finds our token, nothing is revoked", async () => {
    const v = await begin();
    proxy.addFault({ operation: "PutSecretValue", action: { kind: "drop-response" }, times: Infinity });
    await expect(step("createSecret", v, deps())).resolves.toBeUndefined();
    expect(proxy.calls().filter((c) => c.outcome === "dropped").length).toBeGreaterThanOrEqual(2);
    await expectOneLiveStored(v);
    proxy.clearFaults();
    await finish(v);
  });

  it("a lost response, then throttling on every retry", async () => {
    const v = await begin();
    proxy.addFault({ operation: "PutSecretValue", action: { kind: "drop-response" } });
    proxy.addFault({ operation: "PutSecretValue", action: { kind: "throttle" }, times: Infinity });
    await expect(step("createSecret", v, deps())).resolves.toBeUndefined();
    expect(proxy.calls().some((c) => c.outcome === "throttled")).toBe(true);
    await expectOneLiveStored(v);
    proxy.clearFaults();
    await finish(v);
  });

  it("a commit answered after the SDK's request timeout", async () => {
    const v = await begin();
    proxy.addFault({
      operation: "PutSecretValue",
      action: { kind: "delay-response", ms: 1_500 },
      times: Infinity,
    });
    await expect(step("createSecret", v, deps({ secrets: proxiedSecrets(300, 2) }))).resolves.toBeUndefined();
    await expectOneLiveStored(v);
    proxy.clearFaults();
    await finish(v);
  });

  it("a slow commit that lands after the client gave up: nothing revoked, the retried step completes", async () => {
    const v = await begin();
    proxy.addFault({ operation: "PutSecretValue", action: { kind: "delay-request", ms: 900 }, times: 2 });
    const d = deps({ secrets: proxiedSecrets(300, 2) });
    await expect(step("createSecret", v, d)).rejects.toBeDefined();
    // The token may be stored any moment: it must still be live.
    expect(live(v)).toHaveLength(1);
    // Wait (bounded) for the late commits to land.
    for (let i = 0; i < 50 && (await versionValue(v)) === undefined; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1_200));
    proxy.clearFaults();
    await step("createSecret", v, deps());
    await expectOneLiveStored(v);
    await finish(v);
  });

  it("a refusal that cannot have committed revokes the new token at once; the retry stores a fresh one", async () => {
    const v = await begin();
    proxy.addFault({
      operation: "PutSecretValue",
      action: { kind: "error", status: 400, type: "InvalidRequestException", message: "refused" },
    });
    await expect(step("createSecret", v, deps())).rejects.toMatchObject({ name: "InvalidRequestException" });
    expect(live(v)).toHaveLength(0);
    await step("createSecret", v, deps());
    await expectOneLiveStored(v);
    await finish(v);
  });

  it("an unreadable outcome revokes nothing; a young unstored token blocks a second mint until it is an orphan", async () => {
    const v = await begin();
    proxy.addFault({
      operation: "PutSecretValue",
      action: { kind: "error", status: 500, type: "InternalServiceError" },
      times: Infinity,
    });
    proxy.addFault({ operation: "GetSecretValue", action: { kind: "throttle" }, skip: 1, times: Infinity });
    await expect(step("createSecret", v, deps())).rejects.toBeDefined();
    expect(live(v)).toHaveLength(1); // unknown outcome: left alone
    proxy.clearFaults();
    // Another attempt right away must neither revoke it nor mint a second one.
    await expect(step("createSecret", v, deps())).rejects.toMatchObject({ name: "RotationStateError" });
    expect(live(v)).toHaveLength(1);
    // Past the longest a Lambda can run, it is an orphan: revoked, and a fresh token is stored.
    const later = deps({ now: () => new Date(Date.now() + 17 * 60_000) });
    await step("createSecret", v, later);
    await expectOneLiveStored(v);
    await finish(v);
  });
});

describe("two overlapping createSecret calls for one version", () => {
  it("both mint before either stores: the loser revokes only its own token", async () => {
    const v = await begin();
    stack.buildkite.setLatency(150);
    proxy.addFault({ operation: "PutSecretValue", action: { kind: "delay-request", ms: 200 }, times: 1 });
    const results = await Promise.allSettled([
      step("createSecret", v, deps()),
      step("createSecret", v, deps()),
    ]);
    stack.buildkite.setLatency(0);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled"]);
    await expectOneLiveStored(v);
    await finish(v);
  });

  it("the second starts after the first minted: it leaves the first's token alone", async () => {
    const v = await begin();
    proxy.addFault({ operation: "PutSecretValue", action: { kind: "delay-request", ms: 600 }, times: 1 });
    const first = step("createSecret", v, deps());
    await new Promise((r) => setTimeout(r, 300));
    const second = await step("createSecret", v, deps()).then(
      () => "ok",
      (e: Error) => e.name,
    );
    await first;
    expect(["ok", "RotationStateError"]).toContain(second);
    await expectOneLiveStored(v);
    await finish(v);
  });
});

describe("finishSecret", () => {
  it("a lost UpdateSecretVersionStage response counts as promoted and still starts the reconciler", async () => {
    const v = await begin();
    await step("createSecret", v, deps());
    await step("setSecret", v, deps());
    await step("testSecret", v, deps());
    proxy.addFault({
      operation: "UpdateSecretVersionStage",
      action: { kind: "drop-response" },
      times: Infinity,
    });
    await expect(step("finishSecret", v, deps())).resolves.toBeUndefined();
    expect(await labelsOf(v)).toContain("AWSCURRENT");
    expect(reconciles).toEqual([v]);
  });

  it.each([true, false])("never promotes an empty version (strict layer %s)", async (strictOn) => {
    proxy.strict.noEmptyPromotion = strictOn;
    const v = await begin();
    await expect(step("finishSecret", v, deps())).rejects.toMatchObject({ name: "RotationStateError" });
    expect(await labelsOf(v)).not.toContain("AWSCURRENT");
    expect(reconciles).toEqual([]);
  });

  it("never promotes a value no managed token backs", async () => {
    const v = await begin();
    await stack.secrets.send(
      new PutSecretValueCommand({
        SecretId: stack.secretArn,
        ClientRequestToken: v,
        SecretString: "hand-put-value-not-a-managed-token",
        VersionStages: ["AWSPENDING"],
      }),
    );
    await expect(step("finishSecret", v, deps())).rejects.toThrow(/no Buildkite token/);
    expect(await labelsOf(v)).not.toContain("AWSCURRENT");
  });
});

describe("a pending token revoked in Buildkite", () => {
  it.each(["setSecret", "testSecret"])(
    "%s removes AWSPENDING and names the next step; a new rotation then succeeds",
    async (failing) => {
      const v = await begin();
      await step("createSecret", v, deps());
      if (failing === "testSecret") await step("setSecret", v, deps());
      for (const t of live(v)) stack.buildkite.revokeToken(t.id);
      const error = (await step(failing, v, deps()).catch((e: unknown) => e)) as Error;
      expect(error.name).toBe("RotationStateError");
      expect(error.message).toContain(`aws secretsmanager rotate-secret --secret-id ${stack.secretArn}`);
      expect(await labelsOf(v)).not.toContain("AWSPENDING");
      // The strict layer would refuse this RotateSecret had AWSPENDING stayed.
      const next = await begin();
      await step("createSecret", next, deps());
      await finish(next);
      expect(live(v)).toHaveLength(0);
    },
  );
});

describe("runtime error reports", () => {
  it("an AWS error echoing the token reaches the runtime redacted, name kept, no cause", async () => {
    Object.assign(process.env, stack.env, { AWS_ENDPOINT_URL: proxy.url });
    const { handler } = await import("../../../../functions/rotate-token/handler");
    const lambda = await startLocalLambda({ functions: { "rotate-token": handler } });
    const redactedBefore = scan.redacted().length;
    try {
      const v = await begin();
      await step("createSecret", v, deps());
      const [token] = live(v);
      proxy.addFault({
        operation: "GetSecretValue",
        action: {
          kind: "error",
          status: 400,
          type: "ValidationException",
          message: `1 validation error detected: Value '${token?.value}' at 'secretString'`,
        },
        times: Infinity,
      });
      const out = await lambda.invoke("rotate-token", {
        Step: "setSecret",
        SecretId: stack.secretArn,
        ClientRequestToken: v,
      });
      expect(out).toMatchObject({ ok: false, errorType: "ValidationException" });
      const reports = lambda.errorReports();
      expect(reports).toHaveLength(1);
      expect(reports[0]?.trace[0]).toMatch(/^ValidationException: 1 validation error detected/);
      scan.record("runtime error reports", JSON.stringify(reports));
      expect(JSON.stringify(reports)).not.toContain(token?.value ?? "unset");
      injectedRedactions = scan.redacted().length - redactedBefore;
    } finally {
      proxy.clearFaults();
      await lambda.close();
    }
  });
});

describe("token scan", () => {
  it("no token value reached any output, and the logger never had to redact one", async () => {
    await removeLeftoverPending(stack.secrets, stack.secretArn);
    expect(scan.size()).toBeGreaterThan(0);
    scan.assertClean();
    // The runtime-error scenario above makes an AWS error echo a token on purpose: only the
    // logger's redaction of that one injected message may appear.
    expect(scan.redacted()).toHaveLength(injectedRedactions);
  });
});

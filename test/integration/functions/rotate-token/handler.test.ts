import {
  CancelRotateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
} from "@aws-sdk/client-secrets-manager";
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseInvocation } from "../../../../functions/reconcile/batch";
import { createRotateTokenHandler } from "../../../../functions/rotate-token/handler";
import { driveSteps, STEP_ORDER, startRotation } from "../../../../sandbox/world/rotation-driver";
import { type RotationStack, startRotationStack } from "../../../../sandbox/world/rotation-stack";
import { apiTokenLoader } from "../../../../shared/buildkite/api-token";
import { BuildkiteClient } from "../../../../shared/buildkite/client";
import { describeManagedToken } from "../../../../shared/buildkite/description";
import { sendToQueue, sqsClients } from "../../../../shared/lib/aws/sqs";
import { loadRotateTokenConfig } from "../../../../shared/lib/config";
import { createLogger } from "../../../../shared/lib/log";
import { ORPHAN_MIN_AGE_MS, parseRotationEvent, rotate } from "../../../../shared/rotation/steps";
import { captureOutput } from "../../../support/capture-output";
import { startTokenScan } from "../../../support/token-scan";

/**
 * The real rotate-token handler against moto server (Secrets Manager) and the local Buildkite API,
 * driven step by step exactly as Secrets Manager drives it.
 */
let stack: RotationStack;
let handler: (event: unknown) => Promise<void>;
const output = captureOutput();
// Started after captureOutput so that it wraps (and still feeds) that capture.
const scan = startTokenScan();

beforeAll(async () => {
  stack = await startRotationStack();
  Object.assign(process.env, stack.env);
  scan.watch(stack.buildkite);
  ({ handler } = await import("../../../../functions/rotate-token/handler"));
});

afterAll(async () => {
  scan.stop();
  output.restore();
  await stack?.stop();
});

beforeEach(() => stack.buildkite.reset());

async function labels() {
  const d = await stack.secrets.send(new DescribeSecretCommand({ SecretId: stack.secretArn }));
  return d.VersionIdsToStages ?? {};
}
async function currentValue() {
  const v = await stack.secrets.send(
    new GetSecretValueCommand({ SecretId: stack.secretArn, VersionStage: "AWSCURRENT" }),
  );
  return { versionId: v.VersionId, value: v.SecretString };
}
const tokensFor = (versionId: string) =>
  stack.buildkite.tokens().filter((t) => t.description === describeManagedToken(stack.secretArn, versionId));
const ev = (Step: string, ClientRequestToken: string, SecretId = stack.secretArn) => ({
  Step,
  SecretId,
  ClientRequestToken,
});

async function rotateFully() {
  const versionId = await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn);
  await driveSteps(handler, stack.secretArn, versionId);
  return versionId;
}

describe("rotate-token against moto and the local Buildkite API", () => {
  it("rotates to a new, working, described token; then rotates again", async () => {
    const before = await currentValue();
    const v1 = await rotateFully();
    const after = await currentValue();
    expect(after.versionId).toBe(v1);
    expect(after.value).not.toBe(before.value);
    const [t1] = tokensFor(v1);
    expect(tokensFor(v1)).toHaveLength(1);
    expect(t1?.valid).toBe(true);
    expect(t1?.value).toBe(after.value);
    expect((await labels())[before.versionId ?? ""]).toContain("AWSPREVIOUS");
    // The old token is the reconciler's to revoke, once no instance needs it.
    expect(stack.buildkite.tokens().find((t) => t.id === stack.initialToken.id)?.valid).toBe(true);

    const v2 = await rotateFully();
    expect((await currentValue()).versionId).toBe(v2);
    expect(tokensFor(v2)).toHaveLength(1);
    expect(tokensFor(v2)[0]?.value).toBe((await currentValue()).value);
  });

  it("is idempotent: every step invoked twice creates one token and ends in the same state", async () => {
    const versionId = await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn);
    for (const step of STEP_ORDER) {
      await handler(ev(step, versionId));
      await handler(ev(step, versionId));
    }
    expect(tokensFor(versionId)).toHaveLength(1);
    expect((await currentValue()).versionId).toBe(versionId);
    expect((await currentValue()).value).toBe(tokensFor(versionId)[0]?.value);
  });

  it("recovers from a crash between creating the token and storing it: one live token for the version", async () => {
    const versionId = await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn);
    const config = loadRotateTokenConfig(process.env);
    // A Lambda that dies right after the POST: PutSecretValue never completes, nothing cleans up.
    const crashing = {
      send: (command: unknown) =>
        command instanceof PutSecretValueCommand
          ? new Promise<never>(() => {})
          : stack.secrets.send(command as never),
    } as typeof stack.secrets;
    const buildkite = new BuildkiteClient({
      ...config.buildkite,
      apiToken: async () =>
        (await import("../../../../shared/buildkite/api-token")).apiTokenLoader(
          stack.secrets,
          config.buildkite.apiTokenSecretArn,
        )(),
    });
    const crashed = rotate(parseRotationEvent(ev("createSecret", versionId)), {
      config,
      secrets: crashing,
      buildkite,
      logger: createLogger("crash", {}, "error"),
      metrics: { put: () => {} },
      now: () => new Date(),
    });
    await expect(
      Promise.race([crashed, new Promise((r) => setTimeout(() => r("timed out"), 1_500))]),
    ).resolves.toBe("timed out");
    expect(tokensFor(versionId).filter((t) => t.valid)).toHaveLength(1);

    // Secrets Manager retries the rotation with the same version id. Right away, the unstored
    // token may still be that attempt's, about to be stored: the retry refuses and touches nothing.
    await expect(handler(ev("createSecret", versionId))).rejects.toMatchObject({
      name: "RotationStateError",
    });
    expect(tokensFor(versionId).filter((t) => t.valid)).toHaveLength(1);
    // Once no Lambda invocation can still be running, it is an orphan: revoked, a new one stored.
    await rotate(parseRotationEvent(ev("createSecret", versionId)), {
      config,
      secrets: stack.secrets,
      buildkite,
      logger: createLogger("retry", {}, "error"),
      metrics: { put: () => {} },
      now: () => new Date(Date.now() + ORPHAN_MIN_AGE_MS + 60_000),
    });
    await driveSteps(handler, stack.secretArn, versionId, STEP_ORDER.slice(1));
    const live = tokensFor(versionId).filter((t) => t.valid);
    expect(live).toHaveLength(1);
    expect(tokensFor(versionId)).toHaveLength(2);
    expect(live[0]?.value).toBe((await currentValue()).value);
  });

  it("recovers when the create response is lost after Buildkite committed it", async () => {
    const versionId = await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn);
    const mark = stack.buildkite.requests().length;
    stack.buildkite.failNextCreateAfterCommit(1);
    // What the runtime records of the (sanitised) error: its name and message.
    await expect(handler(ev("createSecret", versionId))).rejects.toMatchObject({
      name: "BuildkiteApiError",
      message: expect.stringContaining("HTTP 502"),
    });
    // Never retried blindly: exactly one POST reached the server.
    expect(
      stack.buildkite
        .requests()
        .slice(mark)
        .filter((r) => r.method === "POST"),
    ).toHaveLength(1);
    // The committed token is unknown to us; a later attempt revokes it as an orphan.
    const config = loadRotateTokenConfig(process.env);
    await rotate(parseRotationEvent(ev("createSecret", versionId)), {
      config,
      secrets: stack.secrets,
      buildkite: new BuildkiteClient({
        ...config.buildkite,
        apiToken: apiTokenLoader(stack.secrets, config.buildkite.apiTokenSecretArn),
      }),
      logger: createLogger("retry", {}, "error"),
      metrics: { put: () => {} },
      now: () => new Date(Date.now() + ORPHAN_MIN_AGE_MS + 60_000),
    });
    await driveSteps(handler, stack.secretArn, versionId, STEP_ORDER.slice(1));
    expect(tokensFor(versionId).filter((t) => t.valid)).toHaveLength(1);
    expect((await currentValue()).versionId).toBe(versionId);
  });

  it("abandons a pending version whose token no longer authenticates, leaving AWSCURRENT where it was", async () => {
    const before = await currentValue();
    const versionId = await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn);
    await handler(ev("createSecret", versionId));
    await handler(ev("setSecret", versionId));
    const [token] = tokensFor(versionId);
    stack.buildkite.revokeToken(token?.id ?? "");
    await expect(handler(ev("testSecret", versionId))).rejects.toMatchObject({
      name: "RotationStateError",
      message: expect.stringContaining("aws secretsmanager rotate-secret"),
    });
    expect(await currentValue()).toEqual(before);
    expect((await labels())[versionId] ?? []).not.toContain("AWSPENDING");
    await expect(handler(ev("setSecret", versionId))).rejects.toThrow(/not AWSPENDING|not a version/);
    expect(await currentValue()).toEqual(before);
  });

  it("refuses another secret, an unknown step and a version that is not AWSPENDING, changing nothing", async () => {
    const v = await rotateFully();
    const before = { labels: await labels(), tokens: stack.buildkite.tokens().length };
    const other = stack.secretArn.replace("agent-token", "other-token");
    await expect(handler(ev("createSecret", v, other))).rejects.toMatchObject({ name: "InputError" });
    await expect(handler(ev("deleteSecret", v))).rejects.toThrow(/unknown rotation step/);
    const previous = Object.entries(before.labels).find(([, l]) => l.includes("AWSPREVIOUS"))?.[0] ?? "";
    await expect(handler(ev("createSecret", previous))).rejects.toThrow(/not AWSPENDING/);
    await expect(handler(ev("createSecret", "00000000-0000-4000-8000-000000000000"))).rejects.toThrow(
      /not a version/,
    );
    expect(await labels()).toEqual(before.labels);
    expect(stack.buildkite.tokens()).toHaveLength(before.tokens);
  });

  it("refuses to rotate when rotation is disabled", async () => {
    const versionId = await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn);
    await stack.secrets.send(new CancelRotateSecretCommand({ SecretId: stack.secretArn }));
    const created = stack.buildkite.tokens().length;
    await expect(handler(ev("createSecret", versionId))).rejects.toMatchObject({
      name: "RotationStateError",
    });
    expect(stack.buildkite.tokens()).toHaveLength(created);
    // Re-enable for the remaining tests; the abandoned AWSPENDING is replaced by the next RotateSecret.
    await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn).then((v) =>
      driveSteps(handler, stack.secretArn, v),
    );
  });

  it("rides out Buildkite 429 and 5xx bursts, creating exactly one token", async () => {
    const versionId = await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn);
    const mark = stack.buildkite.requests().length;
    stack.buildkite.failNext(2, 503);
    stack.buildkite.rateLimitNext(1, 1);
    await handler(ev("createSecret", versionId));
    stack.buildkite.failNext(1, 502);
    stack.buildkite.dropNext(1);
    await handler(ev("setSecret", versionId));
    stack.buildkite.rateLimitNext(1, 1);
    stack.buildkite.failNext(1, 500);
    await handler(ev("testSecret", versionId));
    await handler(ev("finishSecret", versionId));
    expect(tokensFor(versionId)).toHaveLength(1);
    expect((await currentValue()).versionId).toBe(versionId);
    const statuses = stack.buildkite
      .requests()
      .slice(mark)
      .map((r) => r.status);
    expect(statuses.filter((s) => s === 429)).toHaveLength(2);
    expect(statuses.filter((s) => s >= 500)).toHaveLength(4);
    expect(statuses.filter((s) => s === 0)).toHaveLength(1); // the dropped connection
  });

  it("starts the reconciler with one message on its FIFO queue, in the one message group, once per version", async () => {
    const sqs = new SQSClient({
      region: stack.region,
      endpoint: stack.env.AWS_ENDPOINT_URL,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    try {
      const { QueueUrl: queueUrl } = await sqs.send(
        new CreateQueueCommand({
          QueueName: "reconcile-triggers.fifo",
          Attributes: { FifoQueue: "true", ContentBasedDeduplication: "true" },
        }),
      );
      if (!queueUrl) throw new Error("moto returned no queue URL");
      const queued = createRotateTokenHandler({ ...process.env, RECONCILE_QUEUE_URL: queueUrl });
      const versionId = await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn);
      const before = Date.now();
      await driveSteps(queued, stack.secretArn, versionId);
      // Secrets Manager may run finishSecret again: it finds the version AWSCURRENT and returns.
      await queued(ev("finishSecret", versionId));
      expect((await currentValue()).versionId).toBe(versionId);
      // A send repeated by the SDK's retries carries the same deduplication id: SQS delivers it once.
      await sendToQueue(
        sqsClients(),
        stack.region,
        queueUrl,
        { source: "rotate-token", secretArn: stack.secretArn, versionId, time: new Date().toISOString() },
        `finishSecret-${versionId}`,
      );

      const received = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 10,
          MessageSystemAttributeNames: ["MessageGroupId", "MessageDeduplicationId"],
          WaitTimeSeconds: 0,
        }),
      );
      const messages = received.Messages ?? [];
      expect(messages).toHaveLength(1);
      const [message] = messages;
      expect(message?.Attributes).toMatchObject({
        MessageGroupId: "reconcile",
        MessageDeduplicationId: `finishSecret-${versionId}`,
      });
      const body = JSON.parse(message?.Body ?? "null") as Record<string, unknown>;
      expect(body).toEqual({
        source: "rotate-token",
        secretArn: stack.secretArn,
        versionId,
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      });
      // What the event source mapping hands reconcile parses to the rotation trigger, with its time.
      const parsed = parseInvocation({
        Records: [{ messageId: message?.MessageId, body: message?.Body, eventSource: "aws:sqs" }],
      });
      expect(parsed.refused).toEqual([]);
      expect(parsed.triggers).toEqual([{ kind: "rotation", versionId, at: expect.any(Date) }]);
      const at = parsed.triggers[0]?.at?.getTime() ?? 0;
      expect(at).toBeGreaterThanOrEqual(before - 1_000);
      expect(at).toBeLessThanOrEqual(Date.now());
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message?.ReceiptHandle }));
    } finally {
      sqs.destroy();
    }
  });

  it("refuses at cold start a queue URL that is not a FIFO queue, naming the variable", async () => {
    const standard = createRotateTokenHandler({
      ...process.env,
      RECONCILE_QUEUE_URL: `${stack.env.AWS_ENDPOINT_URL}/123456789012/reconcile-triggers`,
    });
    const versionId = await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn);
    await expect(standard(ev("createSecret", versionId))).rejects.toMatchObject({
      name: "ConfigError",
      message: expect.stringContaining("RECONCILE_QUEUE_URL"),
    });
    // Nothing was created: the configuration is validated before any call.
    expect(tokensFor(versionId)).toHaveLength(0);
    await stack.secrets.send(new CancelRotateSecretCommand({ SecretId: stack.secretArn }));
  });

  it("printed no token value in any log line of all the runs above", async () => {
    const text = output.text();
    expect(text.length).toBeGreaterThan(0);
    expect(text).toContain("rotation step done");
    const values = stack.buildkite.tokens().map((t) => t.value);
    const apiToken = (
      await stack.secrets.send(new GetSecretValueCommand({ SecretId: stack.apiTokenSecretArn }))
    ).SecretString;
    expect(values.length).toBeGreaterThan(5);
    for (const v of [...values, apiToken ?? "unset"]) expect(text).not.toContain(v);
    // The test-wide scan: every token the stand-in minted, in every line written anywhere.
    scan.register(apiToken ?? "unset");
    scan.assertClean();
    expect(scan.redacted()).toEqual([]);
  });
});

import {
  CreateSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  RotateSecretCommand,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { ListTopicsCommand, SNSClient } from "@aws-sdk/client-sns";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type AwsFaultProxy,
  operationOf,
  startAwsFaultProxy,
} from "../../../../../sandbox/fakes/aws/aws-fault-proxy";
import { type MotoServer, startMoto } from "../../../../../sandbox/fakes/aws/moto";
import { registerStubRotationLambda } from "../../../../../sandbox/world/rotation-driver";
import { isThrottling } from "../../../../../shared/lib/aws/errors";

/**
 * The fault proxy in front of moto, through the real Secrets Manager client: every fault does
 * what it says (the call commits or not, the client sees what it would see), and every strict
 * rule refuses what AWS refuses, and lets moto's behaviour through when switched off.
 */
const REGION = "us-east-1";
const credentials = { accessKeyId: "test", secretAccessKey: "test" };
let moto: MotoServer;
let proxy: AwsFaultProxy;
let direct: SecretsManagerClient;
let lambdaArn: string;
let n = 0;

beforeAll(async () => {
  moto = await startMoto();
  proxy = await startAwsFaultProxy({ upstream: moto.url });
  direct = new SecretsManagerClient({ region: REGION, endpoint: moto.url, credentials });
  lambdaArn = await registerStubRotationLambda(moto.url, REGION, "proxy-rotation");
});
afterAll(async () => {
  await proxy?.close();
  await moto?.stop();
});
beforeEach(() => {
  proxy.clearFaults();
  proxy.strict = { immutableVersions: true, rotationInProgress: true, noEmptyPromotion: true };
});

const proxied = (maxAttempts = 1, requestTimeout = 2_000) =>
  new SecretsManagerClient({
    region: REGION,
    endpoint: proxy.url,
    credentials,
    maxAttempts,
    requestHandler: { requestTimeout, throwOnRequestTimeout: true },
  });

async function secret(): Promise<string> {
  const out = await direct.send(
    new CreateSecretCommand({ Name: `proxy/s${++n}`, SecretString: "initial-value" }),
  );
  return out.ARN ?? "";
}
const V1 = "11111111-1111-4111-8111-111111111111";
const value = async (SecretId: string, VersionId: string) =>
  (await direct.send(new GetSecretValueCommand({ SecretId, VersionId }))).SecretString;

describe("faults", () => {
  it("drop-response: the call commits, the client sees a reset connection", async () => {
    const arn = await secret();
    proxy.addFault({ operation: "PutSecretValue", action: { kind: "drop-response" } });
    await expect(
      proxied().send(
        new PutSecretValueCommand({ SecretId: arn, ClientRequestToken: V1, SecretString: "v1-value" }),
      ),
    ).rejects.toBeDefined();
    expect(await value(arn, V1)).toBe("v1-value");
    expect(proxy.calls().at(-1)).toEqual({ operation: "PutSecretValue", outcome: "dropped" });
  });

  it("delay-response past the SDK timeout: committed, the client times out", async () => {
    const arn = await secret();
    proxy.addFault({ operation: "PutSecretValue", action: { kind: "delay-response", ms: 600 } });
    await expect(
      proxied(1, 200).send(
        new PutSecretValueCommand({ SecretId: arn, ClientRequestToken: V1, SecretString: "v" }),
      ),
    ).rejects.toMatchObject({ name: "TimeoutError" });
    expect(await value(arn, V1)).toBe("v");
  });

  it("delay-request: the commit lands after the client gave up", async () => {
    const arn = await secret();
    proxy.addFault({ operation: "PutSecretValue", action: { kind: "delay-request", ms: 500 } });
    await expect(
      proxied(1, 150).send(
        new PutSecretValueCommand({ SecretId: arn, ClientRequestToken: V1, SecretString: "late" }),
      ),
    ).rejects.toBeDefined();
    await expect(value(arn, V1)).rejects.toMatchObject({ name: "ResourceNotFoundException" });
    await new Promise((r) => setTimeout(r, 700));
    expect(await value(arn, V1)).toBe("late");
  });

  it("throttle per operation and per count (skip, times), as the SDK sees a ThrottlingException", async () => {
    const arn = await secret();
    proxy.addFault({ operation: "DescribeSecret", action: { kind: "throttle" }, skip: 1, times: 2 });
    const client = proxied();
    await expect(client.send(new DescribeSecretCommand({ SecretId: arn }))).resolves.toBeDefined();
    for (let i = 0; i < 2; i++) {
      await expect(client.send(new DescribeSecretCommand({ SecretId: arn }))).rejects.toMatchObject({
        name: "ThrottlingException",
      });
    }
    await expect(client.send(new DescribeSecretCommand({ SecretId: arn }))).resolves.toBeDefined();
    // Other operations are untouched, and the SDK's own retries ride out a short burst.
    proxy.addFault({ operation: "GetSecretValue", action: { kind: "throttle" }, times: 2 });
    await expect(proxied(3).send(new GetSecretValueCommand({ SecretId: arn }))).resolves.toMatchObject({
      SecretString: "initial-value",
    });
  });

  it("throttle and error in the awsQuery protocol (SNS here, Auto Scaling alike): the XML envelope the SDK parses", async () => {
    const sns = new SNSClient({ region: REGION, endpoint: proxy.url, credentials, maxAttempts: 1 });
    proxy.addFault({ operation: "ListTopics", action: { kind: "throttle" } });
    const throttled = await sns.send(new ListTopicsCommand({})).catch((e: unknown) => e);
    expect(throttled).toMatchObject({ name: "Throttling", message: "Rate exceeded" });
    expect(isThrottling(throttled)).toBe(true);
    proxy.addFault({
      operation: "ListTopics",
      action: { kind: "error", status: 400, type: "ValidationError", message: "a < b & c" },
    });
    await expect(sns.send(new ListTopicsCommand({}))).rejects.toMatchObject({
      name: "ValidationError",
      message: "a < b & c",
    });
    await expect(sns.send(new ListTopicsCommand({}))).resolves.toBeDefined();
    sns.destroy();
  });

  it("error: any status and type, not forwarded", async () => {
    const arn = await secret();
    proxy.addFault({
      operation: "PutSecretValue",
      action: { kind: "error", status: 400, type: "InvalidRequestException", message: "nope" },
    });
    await expect(
      proxied().send(new PutSecretValueCommand({ SecretId: arn, ClientRequestToken: V1, SecretString: "x" })),
    ).rejects.toMatchObject({ name: "InvalidRequestException", message: "nope" });
    await expect(value(arn, V1)).rejects.toMatchObject({ name: "ResourceNotFoundException" });
  });

  it("reads the operation from X-Amz-Target or a Query Action", () => {
    expect(operationOf({ "x-amz-target": "secretsmanager.PutSecretValue" }, "")).toBe("PutSecretValue");
    expect(
      operationOf(
        { "content-type": "application/x-www-form-urlencoded" },
        "Action=StartInstanceRefresh&Version=1",
      ),
    ).toBe("StartInstanceRefresh");
  });
});

describe("strict AWS rules moto lacks", () => {
  it.each([true, false])(
    "immutable version values: the pending version of a rotation (rule %s)",
    async (on) => {
      proxy.strict.immutableVersions = on;
      const arn = await secret();
      const { VersionId } = await direct.send(
        new RotateSecretCommand({
          SecretId: arn,
          RotationLambdaARN: lambdaArn,
          RotationRules: { AutomaticallyAfterDays: 30 },
        }),
      );
      const put = (SecretString: string) =>
        proxied().send(
          new PutSecretValueCommand({
            SecretId: arn,
            ClientRequestToken: VersionId,
            SecretString,
            VersionStages: ["AWSPENDING"],
          }),
        );
      await put("first");
      await expect(put("first")).resolves.toBeDefined(); // the same value is idempotent
      if (on) {
        await expect(put("second")).rejects.toMatchObject({ name: "ResourceExistsException" });
        expect(await value(arn, VersionId ?? "")).toBe("first");
      } else {
        await put("second"); // moto overwrites the AWSPENDING version
        expect(await value(arn, VersionId ?? "")).toBe("second");
      }
    },
  );

  it.each([true, false])(
    "RotateSecret refused while AWSPENDING sits on a non-current version (rule %s)",
    async (on) => {
      proxy.strict.rotationInProgress = on;
      const arn = await secret();
      const rotate = () =>
        proxied().send(
          new RotateSecretCommand({
            SecretId: arn,
            RotationLambdaARN: lambdaArn,
            RotationRules: { AutomaticallyAfterDays: 30 },
          }),
        );
      const first = await rotate();
      const pending = Object.entries(
        (await direct.send(new DescribeSecretCommand({ SecretId: arn }))).VersionIdsToStages ?? {},
      ).find(([, l]) => l.includes("AWSPENDING") && !l.includes("AWSCURRENT"));
      expect(pending?.[0]).toBe(first.VersionId);
      if (on) await expect(rotate()).rejects.toMatchObject({ name: "InvalidRequestException" });
      else await expect(rotate()).resolves.toBeDefined();
    },
  );

  it.each([true, false])("no promotion of a version without a value (rule %s)", async (on) => {
    proxy.strict.noEmptyPromotion = on;
    const arn = await secret();
    const { VersionId } = await proxied().send(
      new RotateSecretCommand({
        SecretId: arn,
        RotationLambdaARN: lambdaArn,
        RotationRules: { AutomaticallyAfterDays: 30 },
      }),
    );
    const current = Object.entries(
      (await direct.send(new DescribeSecretCommand({ SecretId: arn }))).VersionIdsToStages ?? {},
    ).find(([, l]) => l.includes("AWSCURRENT"))?.[0];
    const promote = proxied().send(
      new UpdateSecretVersionStageCommand({
        SecretId: arn,
        RemoveFromVersionId: current,
        VersionStage: "AWSCURRENT",
        MoveToVersionId: VersionId,
      }),
    );
    const labels = async () =>
      (await direct.send(new DescribeSecretCommand({ SecretId: arn }))).VersionIdsToStages?.[
        VersionId ?? ""
      ] ?? [];
    if (on) {
      await expect(promote).rejects.toMatchObject({ name: "InvalidRequestException" });
      expect(await labels()).not.toContain("AWSCURRENT");
    } else {
      await promote; // moto promotes the empty version
      expect(await labels()).toContain("AWSCURRENT");
    }
  });
});

import { existsSync } from "node:fs";
import { GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { driveSteps, startRotation } from "../../../../sandbox/world/rotation-driver";
import { type RotationStack, startRotationStack } from "../../../../sandbox/world/rotation-stack";
import { captureOutput } from "../../../support/capture-output";

/** The shipped artifact, dist/rotate-token/index.mjs, driven through the configuration contract. */
const BUNDLE = new URL("../../../../dist/rotate-token/index.mjs", import.meta.url).pathname;
let stack: RotationStack;
const output = captureOutput();

beforeAll(async () => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build first (npm test does)`);
  stack = await startRotationStack({ secretName: "bundle/agent-token" });
});
afterAll(async () => {
  output.restore();
  await stack?.stop();
});

describe("dist/rotate-token/index.mjs", () => {
  it("fails clearly, naming the variable, when the configuration is incomplete", async () => {
    const { handler } = (await import(`${BUNDLE}?missing-config`)) as {
      handler: (e: unknown) => Promise<void>;
    };
    for (const key of Object.keys(stack.env)) delete process.env[key];
    await expect(handler({ Step: "createSecret", SecretId: "x", ClientRequestToken: "y" })).rejects.toThrow(
      /ROTATION_SECRET_ARN: is required/,
    );
  });

  it("rotates end to end with an expiring token", async () => {
    Object.assign(process.env, stack.env, { TOKEN_EXPIRY_SECONDS: "3600" });
    const { handler } = (await import(BUNDLE)) as { handler: (e: unknown) => Promise<void> };
    const versionId = await startRotation(stack.secrets, stack.secretArn, stack.rotationLambdaArn);
    const started = Date.now();
    await driveSteps(handler, stack.secretArn, versionId);
    const current = await stack.secrets.send(
      new GetSecretValueCommand({ SecretId: stack.secretArn, VersionStage: "AWSCURRENT" }),
    );
    expect(current.VersionId).toBe(versionId);
    const token = stack.buildkite.tokens().find((t) => t.value === current.SecretString);
    expect(token?.valid).toBe(true);
    expect(token?.description).toContain(`version=${versionId}`);
    const expiresIn = (token?.expiresAt?.getTime() ?? 0) - started;
    expect(expiresIn).toBeGreaterThan(3_590_000);
    expect(expiresIn).toBeLessThan(3_610_000);
    for (const t of stack.buildkite.tokens()) expect(output.text()).not.toContain(t.value);
  });
});

import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { apiTokenLoaderForArn } from "../../../../shared/buildkite/api-token";

const sm = mockClient(SecretsManagerClient);
beforeEach(() => sm.reset());
afterAll(() => sm.restore());

const ARN = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:buildkite/api-token-XyZ123";

describe("apiTokenLoaderForArn", () => {
  it("reads the API token in the region its ARN names, once, as AWSCURRENT", async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: '{"token":"bkua_apitokenunit0000000000"}' });
    const regions: string[] = [];
    const load = apiTokenLoaderForArn((region) => {
      regions.push(region);
      return new SecretsManagerClient({ region, credentials: { accessKeyId: "a", secretAccessKey: "b" } });
    }, ARN);
    expect(await load()).toBe("bkua_apitokenunit0000000000");
    expect(await load()).toBe("bkua_apitokenunit0000000000");
    expect(regions).toEqual(["eu-central-1"]);
    expect(sm.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input)).toEqual([
      { SecretId: ARN, VersionStage: "AWSCURRENT" },
    ]);
  });

  it("refuses an ARN it cannot place in a region, naming the setting", () => {
    expect(() => apiTokenLoaderForArn(() => new SecretsManagerClient({}), "buildkite/api-token")).toThrow(
      /BUILDKITE_API_TOKEN_SECRET_ARN/,
    );
  });
});

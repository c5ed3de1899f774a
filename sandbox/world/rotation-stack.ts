import { randomUUID } from "node:crypto";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { type MotoServer, startMoto } from "../fakes/aws/moto";
import { type BuildkiteApi, startBuildkiteApi } from "../fakes/buildkite/api";
import { registerStubRotationLambda } from "./rotation-driver";

export const SANDBOX_ORG = "sandbox-org";
export const SANDBOX_CLUSTER = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
export const TEST_CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" };

export interface RotationStack {
  moto: MotoServer;
  buildkite: BuildkiteApi;
  region: string;
  secretArn: string;
  apiTokenSecretArn: string;
  /** The rotation stub moto calls RotateSecret with. */
  rotationLambdaArn: string;
  initialToken: { id: string };
  /** The environment the real handlers read: the configuration contract plus SDK endpoint settings. */
  env: Record<string, string>;
  secrets: SecretsManagerClient;
  stop(): Promise<void>;
}

/**
 * moto + the local Buildkite API + the two secrets the rotation function needs: the agent token
 * secret (holding an initial token that a human created, so not managed by us) and the secret
 * holding the Buildkite REST API token.
 */
export async function startRotationStack(
  options: { region?: string; secretName?: string; replicaRegions?: string[] } = {},
): Promise<RotationStack> {
  const region = options.region ?? "us-east-1";
  const moto = await startMoto();
  const apiToken = `bkua_${randomUUID().replaceAll("-", "")}`;
  let buildkite: BuildkiteApi | undefined;
  try {
    buildkite = await startBuildkiteApi({ organization: SANDBOX_ORG, clusterId: SANDBOX_CLUSTER, apiToken });
    const initial = buildkite.addToken({ description: "Initial agent token (created by a human)" });
    const secrets = new SecretsManagerClient({ region, endpoint: moto.url, credentials: TEST_CREDENTIALS });
    const agentSecret = await secrets.send(
      new CreateSecretCommand({
        Name: options.secretName ?? "buildkite/agent-token",
        SecretString: initial.value,
        Description: "Buildkite cluster agent token",
      }),
    );
    const apiSecret = await secrets.send(
      new CreateSecretCommand({ Name: "buildkite/api-token", SecretString: apiToken }),
    );
    if (!agentSecret.ARN || !apiSecret.ARN) throw new Error("moto returned no secret ARN");
    const rotationLambdaArn = await registerStubRotationLambda(moto.url, region);
    const env: Record<string, string> = {
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_ENDPOINT_URL: moto.url,
      ROTATION_SECRET_ARN: agentSecret.ARN,
      BUILDKITE_ORGANIZATION: SANDBOX_ORG,
      BUILDKITE_CLUSTER_ID: SANDBOX_CLUSTER,
      BUILDKITE_API_TOKEN_SECRET_ARN: apiSecret.ARN,
      BUILDKITE_API_URL: buildkite.url,
      BUILDKITE_AGENT_API_URL: buildkite.url,
    };
    const bk = buildkite;
    return {
      moto,
      buildkite: bk,
      region,
      secretArn: agentSecret.ARN,
      apiTokenSecretArn: apiSecret.ARN,
      rotationLambdaArn,
      initialToken: { id: initial.id },
      env,
      secrets,
      stop: async () => {
        await bk.close();
        await moto.stop();
      },
    };
  } catch (error) {
    await buildkite?.close();
    await moto.stop();
    throw error;
  }
}

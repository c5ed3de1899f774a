import { GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import { checkedToken, type FetchedToken, type SecretsManagerLike, type TokenFetcher } from "./sources";

export async function fetchFromSecretsManager(
  client: SecretsManagerLike,
  secretId: string,
  versionStage: string,
): Promise<FetchedToken> {
  // VersionStage is always explicit: the default is AWSCURRENT on AWS, but moto may otherwise
  // return another version after labels move.
  const out = await client.send(
    new GetSecretValueCommand({ SecretId: secretId, VersionStage: versionStage }),
  );
  return {
    token: checkedToken(out.SecretString, `secret ${secretId} (${versionStage})`),
    versionId: out.VersionId,
  };
}

/** Read the secret directly: secretsmanager:GetSecretValue (+ kms:Decrypt for a customer key). */
export function secretsManagerSource(clients: (region: string) => SecretsManagerLike): TokenFetcher {
  return {
    name: "secretsmanager",
    fetch: (region, secretId, versionStage) =>
      fetchFromSecretsManager(clients(region), secretId, versionStage),
  };
}

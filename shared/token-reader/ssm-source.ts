import { GetParameterCommand } from "@aws-sdk/client-ssm";
import {
  checkedToken,
  type FetchedToken,
  referenceParameterName,
  type SsmLike,
  type TokenFetcher,
  versionIdFromSourceResult,
} from "./sources";

export async function fetchFromSsmReference(
  client: SsmLike,
  secretId: string,
  versionStage: string,
): Promise<FetchedToken> {
  const name = referenceParameterName(secretId, versionStage);
  const out = await client.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
  return {
    token: checkedToken(out.Parameter?.Value, `parameter ${name}`),
    versionId: versionIdFromSourceResult(out.Parameter?.SourceResult, versionStage),
  };
}

/**
 * Read the secret through Parameter Store's reference path, `/aws/reference/secretsmanager/<name>`,
 * with decryption, as the Elastic CI Stack does at boot: ssm:GetParameter on the reference
 * parameter plus the Secrets Manager permissions.
 */
export function ssmReferenceSource(clients: (region: string) => SsmLike): TokenFetcher {
  return {
    name: "ssm",
    fetch: (region, secretId, versionStage) => fetchFromSsmReference(clients(region), secretId, versionStage),
  };
}

import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { ConfigError } from "../errors";
import { registerSecret } from "../log";

/**
 * The Buildkite REST API token lives in its own secret (never in a plain environment value) and is
 * read once per container. The secret holds the bare token, or JSON with a `token` field.
 */
export function apiTokenLoader(client: SecretsManagerClient, secretArn: string): () => Promise<string> {
  let pending: Promise<string> | undefined;
  return () => {
    pending ??= load(client, secretArn).catch((error: unknown) => {
      pending = undefined; // a failed read is retried by the next call, not cached
      throw error;
    });
    return pending;
  };
}

async function load(client: SecretsManagerClient, secretArn: string): Promise<string> {
  const out = await client.send(
    new GetSecretValueCommand({ SecretId: secretArn, VersionStage: "AWSCURRENT" }),
  );
  const raw = out.SecretString?.trim() ?? "";
  let token = raw;
  if (raw.startsWith("{")) {
    try {
      const parsed = JSON.parse(raw) as { token?: unknown };
      token = typeof parsed.token === "string" ? parsed.token.trim() : "";
    } catch {
      token = "";
    }
  }
  if (!token) {
    throw new ConfigError(
      "BUILDKITE_API_TOKEN_SECRET_ARN",
      'the secret holds no API token (expected the bare token, or JSON with a "token" field)',
    );
  }
  registerSecret(token);
  return token;
}

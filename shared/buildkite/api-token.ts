import { GetSecretValueCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { secretArnSetting } from "../lib/config";
import { ConfigError } from "../lib/errors";
import { registerSecret } from "../lib/log";

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

/**
 * The loader for a secret that may live in any region: GetSecretValue goes to the region its ARN
 * names (a full ARN is only found in its own region; the functions' region may differ, e.g. an
 * organisation-wide API-token secret kept in one region).
 */
export function apiTokenLoaderForArn(
  clients: (region: string) => SecretsManagerClient,
  secretArn: string,
): () => Promise<string> {
  const { region } = secretArnSetting("BUILDKITE_API_TOKEN_SECRET_ARN", secretArn);
  return apiTokenLoader(clients(region), secretArn);
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

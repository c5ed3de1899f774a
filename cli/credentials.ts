import { fromTemporaryCredentials } from "@aws-sdk/credential-providers";
import { parseRoleArn } from "../shared/lib/arn";
import { awsClientOptions } from "../shared/lib/aws/client-options";
import { AppError, describeError } from "../shared/lib/errors";
import { UsageError } from "./args";

/**
 * --assume-role for every command, consumer or operator: one STS AssumeRole shared by every client
 * of a run. fromTemporaryCredentials brings its own STS client (@aws-sdk/nested-clients), not
 * @aws-sdk/client-sts, so the token path stays small.
 */

const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;

type CredentialProvider = ReturnType<typeof fromTemporaryCredentials>;
type Credentials = Awaited<ReturnType<CredentialProvider>>;

export type RoleToAssume = { roleArn: string; sessionName: string };

/** --assume-role and --role-session-name, validated; undefined when no role is to be assumed. */
export function assumeRoleOption(values: {
  "assume-role"?: string | undefined;
  "role-session-name"?: string | undefined;
}): RoleToAssume | undefined {
  const roleArn = values["assume-role"]?.trim();
  const sessionName = values["role-session-name"]?.trim() || "bk-agent-token";
  if (roleArn && !parseRoleArn(roleArn)) {
    throw new UsageError("--assume-role must be an IAM role ARN (arn:aws:iam::123456789012:role/name)");
  }
  if (!SESSION_NAME.test(sessionName)) {
    throw new UsageError("--role-session-name must be 2 to 64 letters, digits or +=,.@_-");
  }
  return roleArn ? { roleArn, sessionName } : undefined;
}

/**
 * One AssumeRole shared by every client of this run (each client would otherwise assume on its
 * own), renewed five minutes before it expires: `rotate` may follow a rollout for hours.
 * STS is regional; the SDK's default chain supplies the credentials that assume the role.
 */
export function assumeRole(role: RoleToAssume, region: string | undefined): () => Promise<Credentials> {
  const provider = fromTemporaryCredentials({
    params: { RoleArn: role.roleArn, RoleSessionName: role.sessionName, DurationSeconds: 3600 },
    clientConfig: region ? awsClientOptions(region) : { maxAttempts: 3 },
  });
  let pending: Promise<Credentials> | undefined;
  return () => {
    pending ??= provider().catch((error: unknown) => {
      pending = undefined;
      throw new AppError(`could not assume role ${role.roleArn}: ${describeError(error).message}`, {
        cause: error,
      });
    });
    return pending.then((c) => {
      if (c.expiration && c.expiration.getTime() - Date.now() < 300_000) pending = undefined;
      return c;
    });
  };
}

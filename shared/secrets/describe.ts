import { DescribeSecretCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { versionHolding } from "./stages";

export interface SecretState {
  arn: string | undefined;
  name: string | undefined;
  rotationEnabled: boolean;
  /** Version id → staging labels. */
  stages: Record<string, string[]>;
  current: string | undefined;
  pending: string | undefined;
  lastRotatedDate: Date | undefined;
  nextRotationDate: Date | undefined;
  rotationRules: { automaticallyAfterDays?: number; scheduleExpression?: string } | undefined;
  replication: Array<{ region: string; status: string | undefined; message: string | undefined }>;
  /** The rotation function Secrets Manager invokes (the operator CLI checks and restates it). */
  rotationLambdaArn?: string | undefined;
  /** The secret's KMS key as DescribeSecret names it (absent: aws/secretsmanager). */
  kmsKeyId?: string | undefined;
}

/** One DescribeSecret, reduced to what rotation and rollout decisions need. */
export async function describeSecret(client: SecretsManagerClient, secretId: string): Promise<SecretState> {
  const out = await client.send(new DescribeSecretCommand({ SecretId: secretId }));
  const stages: Record<string, string[]> = {};
  for (const [id, labels] of Object.entries(out.VersionIdsToStages ?? {})) stages[id] = [...labels];
  const current = versionHolding(stages, "AWSCURRENT");
  const pendingId = versionHolding(stages, "AWSPENDING");
  return {
    arn: out.ARN,
    name: out.Name,
    rotationEnabled: out.RotationEnabled === true,
    stages,
    current,
    // A leftover AWSPENDING on the current version (moto leaves it; AWS removes it) is no pending rotation.
    pending: pendingId === current ? undefined : pendingId,
    lastRotatedDate: out.LastRotatedDate,
    nextRotationDate: out.NextRotationDate,
    rotationRules: out.RotationRules
      ? {
          ...(out.RotationRules.AutomaticallyAfterDays !== undefined
            ? { automaticallyAfterDays: out.RotationRules.AutomaticallyAfterDays }
            : {}),
          ...(out.RotationRules.ScheduleExpression
            ? { scheduleExpression: out.RotationRules.ScheduleExpression }
            : {}),
        }
      : undefined,
    rotationLambdaArn: out.RotationLambdaARN,
    kmsKeyId: out.KmsKeyId,
    replication: (out.ReplicationStatus ?? []).map((r) => ({
      region: r.Region ?? "",
      status: r.Status,
      message: r.StatusMessage,
    })),
  };
}

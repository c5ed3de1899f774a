import { CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { CreateFunctionCommand, LambdaClient } from "@aws-sdk/client-lambda";
import {
  DescribeSecretCommand,
  RotateSecretCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";

/**
 * Plays Secrets Manager's part in a rotation against moto, which cannot run our function itself:
 * RotateSecret creates the empty AWSPENDING version (through a stub rotation Lambda registered in
 * moto), then the four steps are invoked exactly as Secrets Manager invokes them.
 */

export const STEP_ORDER = ["createSecret", "setSecret", "testSecret", "finishSecret"] as const;

/** Register a stub Lambda in moto to stand for the rotation function; returns its ARN. */
export async function registerStubRotationLambda(
  motoUrl: string,
  region: string,
  name = "rotate-token",
): Promise<string> {
  const config = { region, endpoint: motoUrl, credentials: { accessKeyId: "test", secretAccessKey: "test" } };
  const configured = await fetch(`${motoUrl}/moto-api/config`, {
    method: "POST",
    body: JSON.stringify({ lambda: { use_docker: false } }),
    signal: AbortSignal.timeout(5_000),
  });
  if (!configured.ok)
    throw new Error(`moto refused the Lambda stub configuration: HTTP ${configured.status}`);
  const iam = new IAMClient(config);
  const role = await iam
    .send(
      new CreateRoleCommand({
        RoleName: `${name}-role`,
        AssumeRolePolicyDocument: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            { Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" },
          ],
        }),
      }),
    )
    .catch(async (error: unknown) => {
      if ((error as { name?: string }).name !== "EntityAlreadyExistsException") throw error;
      return { Role: { Arn: `arn:aws:iam::123456789012:role/${name}-role` } };
    });
  const lambda = new LambdaClient(config);
  // An empty zip: the stub never runs code.
  const emptyZip = new Uint8Array([80, 75, 5, 6, ...new Array<number>(18).fill(0)]);
  const fn = await lambda.send(
    new CreateFunctionCommand({
      FunctionName: name,
      Runtime: "nodejs22.x",
      Role: role.Role?.Arn,
      Handler: "index.handler",
      Code: { ZipFile: emptyZip },
    }),
  );
  if (!fn.FunctionArn) throw new Error("moto returned no function ARN");
  return fn.FunctionArn;
}

/**
 * Start a rotation as `aws secretsmanager rotate-secret` would. moto refuses a new rotation while a
 * leftover AWSPENDING label sits on the AWSCURRENT version (AWS removes that label at the end of a
 * rotation), so it is removed first, as AWS would have.
 */
export async function startRotation(
  secrets: SecretsManagerClient,
  secretId: string,
  rotationLambdaArn: string,
): Promise<string> {
  await removeLeftoverPending(secrets, secretId);
  const out = await secrets.send(
    new RotateSecretCommand({
      SecretId: secretId,
      RotationLambdaARN: rotationLambdaArn,
      RotationRules: { AutomaticallyAfterDays: 30 },
    }),
  );
  if (!out.VersionId) throw new Error("RotateSecret returned no version id");
  return out.VersionId;
}

export async function removeLeftoverPending(secrets: SecretsManagerClient, secretId: string): Promise<void> {
  const d = await secrets.send(new DescribeSecretCommand({ SecretId: secretId }));
  for (const [id, labels] of Object.entries(d.VersionIdsToStages ?? {})) {
    if (labels.includes("AWSPENDING") && labels.includes("AWSCURRENT")) {
      await secrets.send(
        new UpdateSecretVersionStageCommand({
          SecretId: secretId,
          VersionStage: "AWSPENDING",
          RemoveFromVersionId: id,
        }),
      );
    }
  }
}

export type RotationHandler = (event: {
  Step: string;
  SecretId: string;
  ClientRequestToken: string;
}) => Promise<unknown>;

/** Invoke the given steps in Secrets Manager's order (all four by default). */
export async function driveSteps(
  handler: RotationHandler,
  secretId: string,
  versionId: string,
  steps: readonly string[] = STEP_ORDER,
): Promise<void> {
  for (const step of steps) await handler({ Step: step, SecretId: secretId, ClientRequestToken: versionId });
}

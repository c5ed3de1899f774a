import { CreateRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { CreateFunctionCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { STEP_ORDER } from "./secrets-manager-rotation";

/**
 * What the tests of the rotation function need around moto, which cannot run our function itself:
 * a stub rotation Lambda registered in moto (so RotateSecret creates the empty AWSPENDING version),
 * and `driveSteps`, which invokes a handler in-process for some or all of the steps, letting its
 * errors through to the test. Secrets Manager's whole part (retries, the end of a rotation, the
 * label event) is played by secrets-manager-rotation.ts, re-exported here for those tests.
 */
export { removeLeftoverPending, STEP_ORDER, startRotation } from "./secrets-manager-rotation";

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

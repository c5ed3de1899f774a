import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach } from "vitest";

/** The agent token secret the operator unit tests rotate. */
export const OPERATOR_SECRET_ARN =
  "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/agent-token-AbC123";

/** A reconcile function's configuration contract, as the operator commands read it. */
export const OPERATOR_CONTRACT = {
  ROTATION_SECRET_ARN: OPERATOR_SECRET_ARN,
  BUILDKITE_ORGANIZATION: "acme",
  BUILDKITE_CLUSTER_ID: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
  BUILDKITE_API_TOKEN_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/api-XyZ789",
  REPLICA_REGIONS: "us-west-2",
  TARGET_GROUPS: "us-east-1:ci-a,us-west-2:ci-b",
};

/**
 * The SDK clients the operator unit tests stub (aws-sdk-client-mock patches every instance of a
 * client class), reset around every test of the file that calls this at its top level.
 */
export function operatorClientMocks() {
  const lambda = mockClient(LambdaClient);
  const secrets = mockClient(SecretsManagerClient);
  const asg = mockClient(AutoScalingClient);
  beforeEach(() => {
    lambda.reset();
    secrets.reset();
    asg.reset();
  });
  afterEach(() => {
    lambda.reset();
  });
  return { lambda, secrets, asg };
}

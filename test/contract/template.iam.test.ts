import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SAM_FUNCTIONS } from "../../scripts/build";
import { Resolver, ROOT, transformTemplate } from "../support/cloudformation";
import { actionsOfBundle, iamProblems, type Uses } from "../support/iam";
import {
  AGENT,
  AGENT_KEY,
  API_KEY,
  API_TOKEN,
  agentIn,
  documentIn,
  FULL_PARAMS,
  GROUPS,
  INSTANCE,
  QUEUE,
  REPLICA,
  region,
  STACK_GROUP,
  TOPIC,
} from "../support/sample";

/**
 * IAM contract, without an AWS account: for each function, the AWS actions its built bundle can
 * call (esbuild metafile) must each be granted to its role on the resource the code uses it with,
 * in the template as AWS's SAM translator expands it and CloudFormation resolves it; and nothing
 * may be granted that no code calls, except the indirect grants listed with their reasons.
 * A new SDK call (for example EC2 DescribeInstances or SSM SendCommand in reconcile) fails here
 * until its use is recorded below and granted in template.yaml.
 */
const kmsVia =
  "Secrets Manager decrypts/encrypts a secret under a customer managed key with the caller's KMS permissions";

/** How each function uses each action (the code's own calls, and the indirect grants with why). */
function usesFor(withKeys: boolean): Record<string, Uses> {
  const keyed = (u: Uses): Uses => (withKeys ? u : {});
  return {
    RotateTokenFunction: {
      "secretsmanager:DescribeSecret": { resources: [AGENT] },
      "secretsmanager:GetSecretValue": { resources: [AGENT, API_TOKEN] },
      "secretsmanager:PutSecretValue": { resources: [AGENT] },
      "secretsmanager:UpdateSecretVersionStage": { resources: [AGENT] },
      "sqs:SendMessage": { resources: [QUEUE] },
      ...keyed({
        "kms:Decrypt": { resources: [AGENT_KEY, API_KEY], indirect: kmsVia },
        "kms:GenerateDataKey": { resources: [AGENT_KEY], indirect: `${kmsVia} (PutSecretValue)` },
      }),
    },
    ReconcileFunction: {
      "secretsmanager:DescribeSecret": { resources: [AGENT, agentIn(REPLICA)] },
      "secretsmanager:ListSecretVersionIds": { resources: [AGENT, agentIn(REPLICA)] },
      "secretsmanager:GetSecretValue": { resources: [API_TOKEN] },
      // Describe* support no resource-level permissions (Service Authorization Reference, Auto Scaling).
      "autoscaling:DescribeAutoScalingGroups": { resources: ["*"] },
      "autoscaling:DescribeInstanceRefreshes": { resources: ["*"] },
      "autoscaling:StartInstanceRefresh": { resources: [...GROUPS, STACK_GROUP] },
      "autoscaling:CreateOrUpdateTags": { resources: [...GROUPS, STACK_GROUP] },
      "autoscaling:TerminateInstanceInAutoScalingGroup": { resources: [...GROUPS, STACK_GROUP] },
      // No resource-level permissions (Service Authorization Reference: EC2, Systems Manager).
      "ec2:DescribeInstances": { resources: ["*"] },
      "ssm:DescribeInstanceInformation": { resources: ["*"] },
      "ssm:ListCommands": { resources: ["*"] },
      "ssm:ListCommandInvocations": { resources: ["*"] },
      // SendCommand names the document and every instance (Service Authorization Reference, SSM).
      "ssm:SendCommand": { resources: [documentIn(region), documentIn(REPLICA), INSTANCE] },
      "sns:Publish": { resources: [TOPIC] },
      // A failed run brings its batch's next try forward (functions/reconcile/handler.ts scheduleRetry).
      "sqs:ChangeMessageVisibility": { resources: [QUEUE] },
      // A run that would only wait hands the queue over: it counts the waiting triggers and sends
      // its continuation (shared/rollout/handover.ts); the event source mapping reads the count too.
      "sqs:GetQueueAttributes": { resources: [QUEUE] },
      "sqs:SendMessage": { resources: [QUEUE] },
      // Called by the event source mapping with the function's role, never by the code
      // (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html#events-sqs-permissions).
      ...Object.fromEntries(
        ["sqs:ReceiveMessage", "sqs:DeleteMessage"].map((action) => [
          action,
          {
            resources: [QUEUE],
            indirect: "the SQS event source mapping polls the queue with the function's role",
          },
        ]),
      ),
      ...keyed({ "kms:Decrypt": { resources: [API_KEY], indirect: kmsVia } }),
    },
    ReadTokenFunction: {
      "secretsmanager:GetSecretValue": { resources: [AGENT, agentIn(REPLICA)] },
      ...keyed({ "kms:Decrypt": { resources: [AGENT_KEY], indirect: kmsVia } }),
    },
  };
}

function problemsOf(
  templateText: string | undefined,
  params: Record<string, string | string[]>,
  withKeys: boolean,
) {
  const resolver = new Resolver(transformTemplate(templateText), params);
  const uses = usesFor(withKeys);
  return Object.entries(SAM_FUNCTIONS)
    .filter(([id]) => resolver.exists(id))
    .flatMap(([id, bundle]) => iamProblems(resolver, id, actionsOfBundle(bundle), uses[id] ?? {}));
}

const templateText = readFileSync(join(ROOT, "template.yaml"), "utf8");

describe("IAM: every call the bundles make is granted on its resource, and nothing else", () => {
  it("derives the actions from the bundles (SDK commands with bytes in the output)", () => {
    const derived = Object.fromEntries(Object.values(SAM_FUNCTIONS).map((b) => [b, actionsOfBundle(b)]));
    // Printed for the record; the assertions are in the contract below.
    console.log(JSON.stringify(derived, null, 1));
    expect(derived["rotate-token"]).toContain("sqs:SendMessage");
    expect(derived["read-token"]).toContain("secretsmanager:GetSecretValue");
  });

  it("holds with customer managed keys, replicas, a reader and consumers", () => {
    expect(problemsOf(undefined, FULL_PARAMS, true)).toEqual([]);
  });

  it("holds with an existing secret and no keys, reader or consumers", () => {
    const params = {
      ...FULL_PARAMS,
      ExistingAgentTokenSecretArn: AGENT,
      KmsKeyArn: "",
      BuildkiteApiTokenKmsKeyArn: "",
      ReadTokenAllowedPrincipals: [""],
      ElasticStackInstanceRoleArns: [""],
      ElasticStackScalerRoleArns: [""],
    };
    expect(problemsOf(undefined, params, false)).toEqual([]);
  });

  it("fails when a grant is missing, extra, or broader than the use", () => {
    const missing = templateText.replace(
      "Action: sqs:SendMessage\n              Resource: !GetAtt ReconcileQueue.Arn",
      "Action: sqs:SendMessageBatch\n              Resource: !GetAtt ReconcileQueue.Arn",
    );
    expect(missing).not.toBe(templateText);
    expect(problemsOf(missing, FULL_PARAMS, true)).toEqual(
      expect.arrayContaining([
        `RotateTokenFunction is not granted sqs:SendMessage on ${QUEUE}`,
        expect.stringContaining("RotateTokenFunction is granted sqs:SendMessageBatch"),
      ]),
    );
    // The direct invoke of reconcile is gone for good: granting it again fails the contract.
    const invoke = templateText.replace(
      "Action: sqs:SendMessage\n              Resource: !GetAtt ReconcileQueue.Arn",
      "Action: [sqs:SendMessage, lambda:InvokeFunction]\n              Resource: [!GetAtt ReconcileQueue.Arn, !GetAtt ReconcileFunction.Arn]",
    );
    expect(invoke).not.toBe(templateText);
    expect(problemsOf(invoke, FULL_PARAMS, true)).toEqual(
      expect.arrayContaining([
        // No code invokes a function any more: the grant is one no code calls.
        expect.stringContaining("RotateTokenFunction is granted lambda:InvokeFunction"),
      ]),
    );
    const broad = templateText.replace(
      "Action: [autoscaling:StartInstanceRefresh, autoscaling:TerminateInstanceInAutoScalingGroup]\n                # region:name",
      "Action: [autoscaling:StartInstanceRefresh, autoscaling:TerminateInstanceInAutoScalingGroup, autoscaling:DeleteAutoScalingGroup]\n                # region:name",
    );
    expect(broad).not.toBe(templateText);
    expect(problemsOf(broad, FULL_PARAMS, true)).toEqual([
      expect.stringContaining("ReconcileFunction is granted autoscaling:DeleteAutoScalingGroup"),
    ]);
    const wide = templateText.replace(
      "              Action: secretsmanager:GetSecretValue\n              Resource: !Ref BuildkiteApiTokenSecretArn\n            - Sid: StartTheReconciler",
      '              Action: secretsmanager:GetSecretValue\n              Resource: "arn:aws:secretsmanager:*:*:secret:*"\n            - Sid: StartTheReconciler',
    );
    expect(wide).not.toBe(templateText);
    expect(problemsOf(wide, FULL_PARAMS, true)).toEqual(
      expect.arrayContaining([
        expect.stringContaining(
          "also reaches arn:aws:secretsmanager:us-east-1:123456789012:secret:someone-else",
        ),
      ]),
    );
  });
});

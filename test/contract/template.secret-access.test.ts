import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SAM_FUNCTIONS } from "../../scripts/build";
import {
  type Json,
  Resolver,
  ROOT,
  SAMPLE,
  type Template,
  transformTemplate,
} from "../support/cloudformation";
import { allows, roleStatements } from "../support/iam";
import { AGENT, AGENT_KEY, agentIn, FULL_PARAMS, REPLICA } from "../support/sample";

/**
 * Who can read the agent token once the stack is deployed, from the transformed template:
 * - the secret's resource policy exists only when consumer roles are given; it allows exactly
 *   them, and its Deny exempts exactly them plus every function role this stack grants
 *   GetSecretValue on the secret (exact ARNs, no name patterns);
 * - the read policy output grants GetSecretValue on the secret in every region (and kms:Decrypt
 *   with a customer managed key);
 * - CloudWatch alarms can publish to the alert topic.
 */
interface Statement {
  Sid?: string;
  Effect: string;
  Principal?: Json;
  Action: Json;
  Resource: Json;
  Condition?: Record<string, Record<string, Json>>;
}
const list = (v: Json | undefined): string[] => (v === undefined || v === null ? [] : [v].flat().map(String));

function accessProblems(template: Template, params: Record<string, string | string[]>): string[] {
  const problems: string[] = [];
  const resolver = new Resolver(template, params);
  const consumers = [
    ...list(resolver.params.ElasticStackInstanceRoleArns),
    ...list(resolver.params.ElasticStackScalerRoleArns),
  ].filter(Boolean);
  const readers = Object.keys(SAM_FUNCTIONS)
    .filter((id) => resolver.exists(id))
    .filter((id) => allows(roleStatements(resolver, `${id}Role`), "secretsmanager:GetSecretValue", AGENT))
    .map((id) => `arn:aws:iam::${SAMPLE.account}:role/${SAMPLE.stack}-${id}Role-ABC123`);

  if (consumers.length === 0) {
    if (resolver.exists("AgentTokenSecretPolicy"))
      problems.push("a resource policy exists without consumer roles");
  } else if (!resolver.exists("AgentTokenSecretPolicy")) {
    problems.push("no resource policy although consumer roles are given");
  } else {
    const props = resolver.resolveAs<{
      SecretId: string;
      BlockPublicPolicy?: boolean;
      ResourcePolicy: { Statement: Statement[] };
    }>(template.Resources.AgentTokenSecretPolicy?.Properties);
    if (props.SecretId !== AGENT) problems.push(`the resource policy is on ${props.SecretId}`);
    if (props.BlockPublicPolicy !== true) problems.push("BlockPublicPolicy is not set");
    const allow = props.ResourcePolicy.Statement.filter((s) => s.Effect === "Allow");
    const deny = props.ResourcePolicy.Statement.filter((s) => s.Effect === "Deny");
    const allowed = allow.flatMap((s) => list((s.Principal as { AWS?: Json } | undefined)?.AWS));
    if (JSON.stringify([...allowed].sort()) !== JSON.stringify([...consumers].sort())) {
      problems.push(
        `the policy allows ${JSON.stringify(allowed)}, the consumers are ${JSON.stringify(consumers)}`,
      );
    }
    const readDeny = deny.filter(
      (s) => list(s.Action).includes("secretsmanager:GetSecretValue") && s.Principal === "*",
    );
    if (readDeny.length !== 1)
      problems.push(`expected one Deny of GetSecretValue to "*", found ${readDeny.length}`);
    for (const s of readDeny) {
      const exempt = list(s.Condition?.StringNotEquals?.["aws:PrincipalArn"]);
      const expected = [...readers, ...consumers].sort();
      if (JSON.stringify([...exempt].sort()) !== JSON.stringify(expected)) {
        problems.push(
          `the Deny exempts ${JSON.stringify(exempt.sort())}, expected ${JSON.stringify(expected)}`,
        );
      }
      if (exempt.some((a) => /[*?]/.test(a))) problems.push("the Deny exempts a name pattern");
      if (Object.keys(s.Condition ?? {}).some((op) => op !== "StringNotEquals")) {
        problems.push(`the Deny has conditions besides StringNotEquals: ${JSON.stringify(s.Condition)}`);
      }
    }
  }

  // The managed policy for the Elastic CI Stack's ManagedPolicyARNs / ScalerManagedPolicyARNs.
  const output = resolver.resolve(template.Outputs?.AgentTokenReadPolicyArn?.Value ?? null);
  const policyArn = `arn:aws:iam::${SAMPLE.account}:policy/${SAMPLE.stack}-AgentTokenReadPolicy-ABC123`;
  if (output !== policyArn) problems.push(`AgentTokenReadPolicyArn is ${JSON.stringify(output)}`);
  const doc = resolver.resolve(
    template.Resources.AgentTokenReadPolicy?.Properties?.PolicyDocument ?? null,
  ) as {
    Statement: Array<{ Effect: string; Action: Json; Resource: Json }>;
  };
  const statements = doc.Statement.map((s) => ({
    Effect: s.Effect,
    Action: list(s.Action),
    Resource: list(s.Resource),
  }));
  for (const region of [SAMPLE.region, REPLICA]) {
    if (!allows(statements, "secretsmanager:GetSecretValue", agentIn(region))) {
      problems.push(`the read policy does not allow GetSecretValue in ${region}`);
    }
  }
  if (resolver.params.KmsKeyArn && !allows(statements, "kms:Decrypt", AGENT_KEY)) {
    problems.push("the read policy does not allow kms:Decrypt with the secret's key");
  }

  // Alarms → topic: no AWS managed SNS key (CloudWatch cannot use it); CloudWatch may publish.
  const topic = resolver.resolve(template.Resources.AlertTopic?.Properties as Json) as {
    KmsMasterKeyId?: string;
  };
  if (topic.KmsMasterKeyId) problems.push(`the alert topic is encrypted with ${topic.KmsMasterKeyId}`);
  const topicPolicy = resolver.resolveAs<{ PolicyDocument: { Statement: Statement[] } }>(
    template.Resources.AlertTopicPolicy?.Properties,
  );
  const cloudwatch = topicPolicy.PolicyDocument.Statement.some(
    (s) =>
      s.Effect === "Allow" &&
      list((s.Principal as { Service?: Json }).Service).includes("cloudwatch.amazonaws.com") &&
      list(s.Action).includes("sns:Publish"),
  );
  if (!cloudwatch) problems.push("CloudWatch may not publish to the alert topic");
  return problems;
}

const noConsumers = { ...FULL_PARAMS, ElasticStackInstanceRoleArns: [""], ElasticStackScalerRoleArns: [""] };

describe("the stack wires its own access to the agent token", () => {
  const template = transformTemplate();

  it("with instance and scaler roles: exact Allow, Deny exempting exactly the readers", () => {
    expect(accessProblems(template, FULL_PARAMS)).toEqual([]);
  });

  it("with only a scaler role, without the reader function, and with an existing secret", () => {
    expect(accessProblems(template, { ...FULL_PARAMS, ElasticStackInstanceRoleArns: [""] })).toEqual([]);
    expect(accessProblems(template, { ...FULL_PARAMS, ReadTokenAllowedPrincipals: [""] })).toEqual([]);
    expect(
      accessProblems(template, { ...FULL_PARAMS, ExistingAgentTokenSecretArn: AGENT, KmsKeyArn: "" }),
    ).toEqual([]);
  });

  it("without consumer roles there is no resource policy (a Deny could stop a running fleet booting)", () => {
    expect(accessProblems(template, noConsumers)).toEqual([]);
    expect(new Resolver(template, noConsumers).exists("AgentTokenSecretPolicy")).toBe(false);
  });

  it("fails when a principal is broken", () => {
    const text = readFileSync(join(ROOT, "template.yaml"), "utf8");
    const noReader = text.replace(
      "                      - !If [DeployReader, !GetAtt ReadTokenFunctionRole.Arn, !Ref AWS::NoValue]\n",
      "",
    );
    expect(noReader).not.toBe(text);
    expect(accessProblems(transformTemplate(noReader), FULL_PARAMS)).toEqual([
      expect.stringContaining("the Deny exempts"),
    ]);
    const alias = text.replace(
      "      DisplayName: Buildkite agent token rotation\n",
      "      DisplayName: Buildkite agent token rotation\n      KmsMasterKeyId: alias/aws/sns\n",
    );
    expect(accessProblems(transformTemplate(alias), FULL_PARAMS)).toEqual([
      "the alert topic is encrypted with alias/aws/sns",
    ]);
  });
});

import { describe, expect, it } from "vitest";
import {
  allows,
  denyExemptions,
  type SecretFacts,
  type StackFacts,
  stackChecks,
} from "../../../../cli/operator/stack-checks";

const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/agent-token-AbC123";
const secret = {
  arn: ARN,
  parameterPath: "/aws/reference/secretsmanager/bk/agent-token",
  customerKey: undefined,
  resourcePolicy: undefined,
};
const stack = (parameters: Record<string, string>, over: Partial<StackFacts> = {}): StackFacts => ({
  region: "us-east-1",
  stackName: "buildkite",
  parameters,
  error: undefined,
  groups: [
    {
      name: "buildkite-AgentAutoScaleGroup-X",
      instances: 2,
      protectedInstances: 2,
      newInstancesProtected: true,
    },
  ],
  policies: [],
  instanceRoleArn: "arn:aws:iam::123456789012:role/buildkite-Role",
  ...over,
});
const levels = (facts: StackFacts, s: SecretFacts = secret) =>
  Object.fromEntries(
    stackChecks(facts, s).map((c) => [c.name.replace("stack us-east-1:buildkite ", ""), c.level]),
  );

describe("stackChecks", () => {
  const good = {
    BuildkiteAgentTokenParameterStorePath: "/aws/reference/secretsmanager/bk/agent-token",
    ManagedPolicyARNs: "arn:aws:iam::123456789012:policy/p",
    BuildkiteAgentTokenParameterStoreKMSKey: "",
  };
  const grant = {
    arn: "arn:aws:iam::123456789012:policy/p",
    document: {
      Statement: [
        {
          Effect: "Allow",
          Action: ["secretsmanager:Get*"],
          Resource: "arn:aws:secretsmanager:us-east-1:123456789012:secret:bk/*",
        },
      ],
    },
    error: undefined,
  };

  it("passes a stack wired to this secret", () => {
    expect(levels(stack(good, { policies: [grant] }))).toEqual({
      "token path": "PASS",
      "read permission": "PASS",
      "kms key": "PASS",
      "resource policy": "PASS",
      "group buildkite-AgentAutoScaleGroup-X": "PASS",
    });
  });

  it("fails a stack reading another parameter, with no read policy, or missing the CMK", () => {
    const bad = levels(
      stack({ BuildkiteAgentTokenParameterStorePath: "/buildkite/token", ManagedPolicyARNs: "" }),
      {
        ...secret,
        customerKey: "arn:aws:kms:us-east-1:123456789012:key/k",
      },
    );
    expect(bad).toMatchObject({ "token path": "FAIL", "read permission": "FAIL", "kms key": "FAIL" });
  });

  it("cannot verify a policy it cannot read (WARN), and fails one that grants nothing", () => {
    const unreadable = stack(good, {
      policies: [{ arn: grant.arn, document: undefined, error: "AccessDenied" }],
    });
    expect(levels(unreadable)["read permission"]).toBe("WARN");
    const none = {
      ...grant,
      document: { Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "*" }] },
    };
    expect(levels(stack(good, { policies: [none] }))["read permission"]).toBe("FAIL");
  });

  it("refuses a secret name the stack's parameter pattern cannot hold (+, =, @)", () => {
    const odd = { ...secret, parameterPath: "/aws/reference/secretsmanager/bk+token" };
    const facts = stack({ ...good, BuildkiteAgentTokenParameterStorePath: odd.parameterPath });
    expect(levels(facts, odd)["token path"]).toBe("FAIL");
  });

  it("fails a stack whose groups cannot be found", () => {
    expect(levels(stack(good, { groups: [], policies: [grant] })).groups).toBe("FAIL");
  });

  it("matches IAM wildcards in actions and resources, and ignores Deny", () => {
    const action = "secretsmanager:GetSecretValue";
    expect(allows({ Statement: { Effect: "Allow", Action: "*", Resource: "*" } }, action, ARN)).toBe(true);
    expect(allows({ Statement: [{ Effect: "Deny", Action: "*", Resource: "*" }] }, action, ARN)).toBe(false);
    expect(
      allows({ Statement: [{ Effect: "Allow", Action: action, Resource: `${ARN}x` }] }, action, ARN),
    ).toBe(false);
  });
});

describe("stackChecks: the secret's resource policy", () => {
  const deny = (exempt: string[]) => ({
    Statement: [
      { Effect: "Allow", Action: "secretsmanager:GetSecretValue", Resource: "*" },
      {
        Effect: "Deny",
        Action: "secretsmanager:GetSecretValue",
        Resource: "*",
        Condition: { StringNotEquals: { "aws:PrincipalArn": exempt } },
      },
    ],
  });
  const role = "arn:aws:iam::123456789012:role/buildkite-Role";
  const facts = (instanceRoleArn: string | undefined): StackFacts => ({
    region: "us-east-1",
    stackName: "buildkite",
    parameters: { BuildkiteAgentTokenParameterStorePath: secret.parameterPath },
    error: undefined,
    groups: [],
    policies: [],
    instanceRoleArn,
  });
  const level = (policy: SecretFacts["resourcePolicy"], arn: string | undefined = role) =>
    stackChecks(facts(arn), { ...secret, resourcePolicy: policy }).find((c) =>
      c.name.endsWith("resource policy"),
    )?.level;

  it("FAILs a stack whose instance role the Deny does not exempt (its instances could not boot)", () => {
    expect(level(deny(["arn:aws:iam::123456789012:role/rotate-token"]))).toBe("FAIL");
    expect(level(deny([role, "arn:aws:iam::123456789012:role/rotate-token"]))).toBe("PASS");
    expect(level(undefined)).toBe("PASS");
    expect(level(deny([role]), "")).toBe("WARN");
  });

  it("reads what every Deny of GetSecretValue lets through", () => {
    expect(denyExemptions(undefined)).toBeUndefined();
    expect(denyExemptions(deny(["a", "b"]))).toEqual(["a", "b"]);
    expect(
      denyExemptions({ Statement: [{ Effect: "Deny", Action: "secretsmanager:*", Resource: "*" }] }),
    ).toEqual([]);
  });
});

import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SAM_FUNCTIONS } from "../../scripts/build";
import { OWN_TAG_KEYS } from "../../shared/rollout/markers";
import { readCloudFormationYaml } from "../support/cfn-yaml";

/**
 * Invariants of template.yaml that cfn-lint cannot see: least privilege (no "*" resource for any
 * write action), the intrinsic expression that turns TargetGroups into ASG ARNs, and the settings
 * the design depends on.
 */
const root = new URL("../..", import.meta.url).pathname;

type Node = unknown;
type Template = {
  Globals: { Function: Record<string, unknown> };
  Resources: Record<string, { Type: string; Metadata?: unknown; Properties: Record<string, Node> }>;
};
// The JSON round trip turns the YAML nodes inside tagged values into plain data.
const load = (file: string) => readCloudFormationYaml<Template>(`${root}/${file}`);

/** Evaluates the string intrinsics used in IAM resources, with the given parameters. */
function evaluate(node: Node, params: Record<string, string | string[]>): Node {
  if (Array.isArray(node)) return node.map((n) => evaluate(n, params));
  if (node && typeof node === "object") {
    const [key, arg] = Object.entries(node)[0] ?? [];
    const a = evaluate(arg, params) as never;
    switch (key) {
      case "Ref":
        return params[arg as string] ?? `<${arg as string}>`;
      case "Fn::Join":
        return (a[1] as string[]).join(a[0]);
      case "Fn::Split":
        return (a[1] as string).split(a[0]);
      case "Fn::Sub":
        return (a as string).replace(/\$\{([^}]+)\}/g, (_, k: string) => String(params[k] ?? `<${k}>`));
      default:
        return node;
    }
  }
  return node;
}

const template = load("template.yaml");
const functions = Object.entries(template.Resources).filter(
  ([, r]) => r.Type === "AWS::Serverless::Function",
);

function statements(resource: { Properties: Record<string, Node> }) {
  const policies = (resource.Properties.Policies ?? []) as Node[];
  const out: Array<{ Sid?: string; Action: string | string[]; Resource: Node }> = [];
  const visit = (n: Node) => {
    if (Array.isArray(n)) n.forEach(visit);
    else if (n && typeof n === "object") {
      if ("Statement" in n) {
        // A statement may sit in an Fn::If (deployed only when its targets are given).
        for (const st of (n as { Statement: Node[] }).Statement ?? []) {
          const choice =
            st && typeof st === "object" && !Array.isArray(st)
              ? (st as Record<string, Node>)["Fn::If"]
              : undefined;
          const candidates = Array.isArray(choice) ? [choice[1], choice[2]] : [st];
          for (const c of candidates)
            if (c && typeof c === "object" && "Action" in c) out.push(c as (typeof out)[number]);
        }
      } else Object.values(n).forEach(visit);
    }
  };
  visit(policies);
  return out;
}

describe("template.yaml", () => {
  it("deploys every bundle on nodejs22.x arm64, each built by its own Makefile target", () => {
    const globals = template.Globals.Function;
    expect(globals.Runtime).toBe("nodejs22.x");
    expect(globals.Architectures).toEqual(["arm64"]);
    expect(functions.length).toBeGreaterThanOrEqual(2);
    const makefile = readFileSync(`${root}/Makefile`, "utf8");
    expect(Object.keys(SAM_FUNCTIONS).sort()).toEqual(functions.map(([id]) => id).sort());
    for (const [id, fn] of functions) {
      expect(fn.Properties.CodeUri, id).toBe(".");
      expect(fn.Metadata, id).toEqual({ BuildMethod: "makefile" });
      const bundle = SAM_FUNCTIONS[id] ?? "";
      expect(existsSync(`${root}/functions/${bundle}/handler.ts`), id).toBe(true);
      expect(makefile).toContain(`build-${id}: BUNDLE := ${bundle}\n`);
      expect(makefile).toMatch(new RegExp(`^FUNCTIONS :=.*\\bbuild-${id}\\b`, "m"));
    }
  });

  it("grants no write action on a '*' resource", () => {
    const readOnly =
      /^(autoscaling:Describe|ec2:Describe|secretsmanager:(Describe|List|Get)|ssm:(Get|Describe|List)|sts:GetCallerIdentity|logs:)/;
    expect(functions.flatMap(([, fn]) => statements(fn)).length).toBeGreaterThan(5);
    for (const [name, fn] of functions) {
      for (const s of statements(fn)) {
        const actions = [s.Action].flat();
        if (s.Resource === "*") {
          expect(
            actions.filter((a) => !readOnly.test(a)),
            `${name} ${s.Sid}`,
          ).toEqual([]);
        }
      }
    }
  });

  it("scopes group writes to exactly the target groups and the target stacks' own group name pattern", () => {
    const reconcile = template.Resources.ReconcileFunction;
    const bySid = (sid: string) => statements(reconcile ?? { Properties: {} }).find((s) => s.Sid === sid);
    const params = {
      TargetGroups: ["us-east-1:ci-a", "eu-west-1:ci-b"],
      TargetStacks: ["us-east-1:buildkite"],
    };
    for (const sid of ["RefreshAndReplaceInTheTargetGroups", "TagTheTargetGroupsWithOurKeysOnly"]) {
      expect(evaluate(bySid(sid)?.Resource, params), sid).toEqual([
        "arn:*:autoscaling:us-east-1:*:autoScalingGroup:*:autoScalingGroupName/ci-a",
        "arn:*:autoscaling:eu-west-1:*:autoScalingGroup:*:autoScalingGroupName/ci-b",
      ]);
    }
    for (const sid of [
      "RefreshAndReplaceInTheTargetStacksGroups",
      "TagTheTargetStacksGroupsWithOurKeysOnly",
    ]) {
      expect(evaluate(bySid(sid)?.Resource, params), sid).toEqual([
        "arn:*:autoscaling:us-east-1:*:autoScalingGroup:*:autoScalingGroupName/buildkite-AgentAutoScaleGroup-*",
      ]);
    }
  });

  it("lets reconcile write only this project's tag keys, and send only the install document", () => {
    const all = statements(template.Resources.ReconcileFunction ?? { Properties: {} });
    const tagging = all.filter((s) => [s.Action].flat().includes("autoscaling:CreateOrUpdateTags"));
    expect(tagging.length).toBe(2);
    for (const s of tagging) {
      expect(
        (s as { Condition?: Record<string, Record<string, string[]>> }).Condition?.[
          "ForAllValues:StringEquals"
        ]?.["aws:TagKeys"],
      ).toEqual([...OWN_TAG_KEYS]);
    }
    const send = all.filter((s) => [s.Action].flat().includes("ssm:SendCommand"));
    expect(send.map((s) => JSON.stringify(s.Resource))).toEqual([
      expect.stringContaining("document/BuildkiteAgentTokenRotation-InstallAgentToken"),
      expect.stringContaining(":instance/*"),
    ]);
  });

  it("sends a reconcile trigger that could not be handled to the alert topic instead of dropping it", () => {
    const config = template.Resources.ReconcileAsyncConfig?.Properties as
      | { MaximumEventAgeInSeconds?: number; DestinationConfig?: { OnFailure?: { Destination?: unknown } } }
      | undefined;
    expect(config?.MaximumEventAgeInSeconds).toBe(3600);
    expect(config?.DestinationConfig?.OnFailure?.Destination).toEqual({ Ref: "AlertTopic" });
  });

  it("runs one reconciler at a time and lets Secrets Manager invoke rotate-token only for the secret", () => {
    expect(template.Resources.ReconcileFunction?.Properties.ReservedConcurrentExecutions).toBe(1);
    const permission = template.Resources.RotateTokenInvokedBySecretsManager?.Properties;
    expect(permission?.Principal).toBe("secretsmanager.amazonaws.com");
    expect(permission?.SourceAccount).toEqual({ Ref: "AWS::AccountId" });
    expect(permission?.SourceArn).toBeDefined();
  });

  it("lets each allowed reader call the function URL with both actions Lambda requires", () => {
    for (let i = 1; i <= 5; i++) {
      const url = template.Resources[`ReadTokenInvokedBy${i}`]?.Properties;
      const invoke = template.Resources[`ReadTokenInvokedViaUrlBy${i}`]?.Properties;
      expect(url).toMatchObject({ Action: "lambda:InvokeFunctionUrl", FunctionUrlAuthType: "AWS_IAM" });
      expect(invoke).toMatchObject({ Action: "lambda:InvokeFunction", InvokedViaFunctionUrl: true });
      expect(invoke?.Principal).toEqual(url?.Principal);
    }
    const fn = template.Resources.ReadTokenFunction?.Properties as
      | { FunctionUrlConfig?: unknown }
      | undefined;
    expect(fn?.FunctionUrlConfig).toEqual({ AuthType: "AWS_IAM" });
  });

  it("keeps every log group's retention", () => {
    const groups = Object.values(template.Resources).filter((r) => r.Type === "AWS::Logs::LogGroup");
    expect(groups.length).toBe(functions.length);
    for (const g of groups) expect(g.Properties.RetentionInDays).toEqual({ Ref: "LogRetentionDays" });
  });
});

describe("hardening against hostile input and overlap", () => {
  const parameters = (
    load("template.yaml") as unknown as {
      Parameters: Record<string, { AllowedPattern?: string; Default?: string }>;
    }
  ).Parameters;

  it("runs one rotation step at a time and caps the reader's concurrency", () => {
    expect(template.Resources.RotateTokenFunction?.Properties.ReservedConcurrentExecutions).toBe(1);
    const reader = template.Resources.ReadTokenFunction?.Properties.ReservedConcurrentExecutions;
    expect(typeof reader).toBe("number");
    expect(reader as number).toBeGreaterThan(0);
    expect(reader as number).toBeLessThanOrEqual(10);
  });

  it("refuses '*' and any other principal shape in ReadTokenAllowedPrincipals, per element, keeping the empty default", () => {
    const parameter = parameters.ReadTokenAllowedPrincipals;
    expect(parameter?.Default).toBe("");
    // CloudFormation applies the pattern to each element of a CommaDelimitedList (Java regex,
    // whole-value match); JavaScript's RegExp reads this pattern the same way.
    const pattern = new RegExp(`^(?:${parameter?.AllowedPattern ?? "(?!)"})$`);
    const elements = (value: string) => value.split(",");
    const accepts = (value: string) => elements(value).every((e) => pattern.test(e));
    expect(accepts("")).toBe(true);
    expect(accepts("111111111111")).toBe(true);
    expect(accepts("111111111111,arn:aws:iam::222222222222:role/path/agent-reader")).toBe(true);
    expect(accepts("arn:aws-us-gov:iam::222222222222:role/reader")).toBe(true);
    for (const bad of [
      "*",
      "111111111111,*",
      "arn:aws:iam::*:role/x",
      "arn:aws:iam::222222222222:root",
      "arn:aws:iam::222222222222:user/bob",
      "1111",
      "ec2.amazonaws.com",
      "o-abcdefghij",
    ]) {
      expect(accepts(bad), bad).toBe(false);
    }
  });
});

import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SAM_FUNCTIONS } from "../../scripts/build";
import { RECONCILE_MESSAGE_GROUP } from "../../shared/lib/aws/sqs";
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

  it("puts every trigger of reconcile on one FIFO queue, in one message group, with a dead-letter queue and an alarm", () => {
    const queue = template.Resources.ReconcileQueue?.Properties as Record<string, Node>;
    const reconcileTimeout = template.Resources.ReconcileFunction?.Properties.Timeout as number;
    expect(queue).toMatchObject({
      FifoQueue: true,
      ContentBasedDeduplication: true,
      SqsManagedSseEnabled: true,
    });
    expect(queue.KmsMasterKeyId).toBeUndefined();
    // AWS: at least six times the function's timeout; at most 12 hours (SQS's maximum).
    expect(queue.VisibilityTimeout as number).toBeGreaterThanOrEqual(6 * reconcileTimeout);
    expect(queue.VisibilityTimeout as number).toBeLessThanOrEqual(43_200);
    // At least the 3600 s event age the asynchronous invocation had.
    expect(queue.MessageRetentionPeriod as number).toBeGreaterThanOrEqual(3600);
    const redrive = queue.RedrivePolicy as { deadLetterTargetArn: Node; maxReceiveCount: number };
    expect(redrive.deadLetterTargetArn).toEqual({ "Fn::GetAtt": ["ReconcileDeadLetterQueue", "Arn"] });
    // Enough receives to ride out an outage of about an hour with the handler's backoff (at most
    // 15 minutes between tries), few enough that a batch that keeps failing is alarmed the same day.
    expect(redrive.maxReceiveCount).toBeGreaterThanOrEqual(5);
    expect(redrive.maxReceiveCount).toBeLessThanOrEqual(20);
    const dlq = template.Resources.ReconcileDeadLetterQueue?.Properties as Record<string, Node>;
    expect(dlq).toMatchObject({ FifoQueue: true, SqsManagedSseEnabled: true });
    expect(dlq.MessageRetentionPeriod as number).toBeGreaterThan(queue.MessageRetentionPeriod as number);

    const alarmOn = (queueId: string) =>
      Object.values(template.Resources).find(
        (r) =>
          r.Type === "AWS::CloudWatch::Alarm" &&
          JSON.stringify(r.Properties.Dimensions) ===
            JSON.stringify([{ Name: "QueueName", Value: { "Fn::GetAtt": [queueId, "QueueName"] } }]),
      )?.Properties;
    for (const id of ["ReconcileDeadLetterQueue", "TriggerDeliveryDeadLetterQueue"]) {
      expect(alarmOn(id), id).toMatchObject({
        Namespace: "AWS/SQS",
        MetricName: "ApproximateNumberOfMessagesVisible",
        Threshold: 1,
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
        AlarmActions: [{ Ref: "AlertTopic" }],
      });
    }

    const rules = Object.entries(template.Resources).filter(([, r]) => r.Type === "AWS::Events::Rule");
    expect(rules.map(([id]) => id).sort()).toEqual([
      "InstanceRefreshesRule",
      "ReconcileScheduleRule",
      "SecretPromotedRule",
    ]);
    for (const [id, rule] of rules) {
      const targets = rule.Properties.Targets as Array<Record<string, Node>>;
      expect(targets, id).toEqual([
        {
          Id: "reconcile-queue",
          Arn: { "Fn::GetAtt": ["ReconcileQueue", "Arn"] },
          SqsParameters: { MessageGroupId: RECONCILE_MESSAGE_GROUP },
          RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 3600 },
          // EventBridge dead-letter queues must be standard queues.
          DeadLetterConfig: { Arn: { "Fn::GetAtt": ["TriggerDeliveryDeadLetterQueue", "Arn"] } },
        },
      ]);
    }
    expect(template.Resources.TriggerDeliveryDeadLetterQueue?.Properties.FifoQueue).toBeUndefined();
    expect(template.Resources.ReconcileScheduleRule?.Properties.ScheduleExpression).toEqual({
      Ref: "ReconcileSchedule",
    });

    const mapping = template.Resources.ReconcileQueueMapping?.Properties;
    expect(mapping).toEqual({
      FunctionName: { Ref: "ReconcileFunction" },
      EventSourceArn: { "Fn::GetAtt": ["ReconcileQueue", "Arn"] },
      BatchSize: 10,
      Enabled: true,
    });
  });

  it("leaves no way to invoke reconcile directly: no SAM events, async config or invoke permission", () => {
    const reconcile = template.Resources.ReconcileFunction?.Properties ?? {};
    expect(reconcile.Events).toBeUndefined();
    expect(reconcile.EventInvokeConfig).toBeUndefined();
    const mentions = (r: { Properties: Record<string, Node> }) =>
      JSON.stringify(r.Properties).includes("ReconcileFunction");
    const invokers = Object.entries(template.Resources).filter(
      ([, r]) =>
        (r.Type === "AWS::Lambda::EventInvokeConfig" || r.Type === "AWS::Lambda::Permission") && mentions(r),
    );
    expect(invokers).toEqual([]);
    const grants = functions.flatMap(([id, fn]) =>
      statements(fn)
        .filter((s) => [s.Action].flat().some((a) => a.startsWith("lambda:")))
        .map((s) => `${id} ${s.Sid}`),
    );
    expect(grants).toEqual([]);
    const rotateEnv = (
      template.Resources.RotateTokenFunction?.Properties.Environment as
        | { Variables: Record<string, Node> }
        | undefined
    )?.Variables;
    expect(rotateEnv?.RECONCILE_QUEUE_URL).toEqual({ Ref: "ReconcileQueue" });
    expect(rotateEnv?.RECONCILE_FUNCTION_NAME).toBeUndefined();
  });

  it("lets only our rules, rotate-token's role and reconcile's own send to the queue, over TLS only", () => {
    const policy = template.Resources.ReconcileQueuePolicy?.Properties as {
      Queues: Node;
      PolicyDocument: { Statement: Array<Record<string, Node>> };
    };
    expect(policy.Queues).toEqual([{ Ref: "ReconcileQueue" }]);
    const [rules, rotate, continuation, tls, ...rest] = policy.PolicyDocument.Statement;
    expect(rest).toEqual([]);
    const arn = { "Fn::GetAtt": ["ReconcileQueue", "Arn"] };
    expect(rules).toEqual({
      Sid: "OurRulesSendTriggers",
      Effect: "Allow",
      Principal: { Service: "events.amazonaws.com" },
      Action: "sqs:SendMessage",
      Resource: arn,
      Condition: {
        ArnEquals: {
          "aws:SourceArn": ["SecretPromotedRule", "InstanceRefreshesRule", "ReconcileScheduleRule"].map(
            (id) => ({
              "Fn::GetAtt": [id, "Arn"],
            }),
          ),
        },
      },
    });
    expect(rotate).toEqual({
      Sid: "RotateTokenStartsTheReconciler",
      Effect: "Allow",
      Principal: { AWS: { "Fn::GetAtt": ["RotateTokenFunctionRole", "Arn"] } },
      Action: "sqs:SendMessage",
      Resource: arn,
    });
    expect(continuation).toEqual({
      Sid: "ReconcileContinuesAfterAHandover",
      Effect: "Allow",
      Principal: { AWS: { "Fn::GetAtt": ["ReconcileFunctionRole", "Arn"] } },
      Action: "sqs:SendMessage",
      Resource: arn,
    });
    expect(tls).toMatchObject({
      Effect: "Deny",
      Principal: "*",
      Action: "sqs:*",
      Condition: { Bool: { "aws:SecureTransport": "false" } },
    });
    // The dead-letter queues: EventBridge may dead-letter into the standard one only, from our rules.
    const dead = template.Resources.ReconcileDeadLetterQueuePolicy?.Properties as {
      PolicyDocument: { Statement: Array<Record<string, Node>> };
    };
    const allows = dead.PolicyDocument.Statement.filter((s) => s.Effect === "Allow");
    expect(allows).toHaveLength(1);
    expect(allows[0]).toMatchObject({
      Principal: { Service: "events.amazonaws.com" },
      Action: "sqs:SendMessage",
      Resource: { "Fn::GetAtt": ["TriggerDeliveryDeadLetterQueue", "Arn"] },
    });
    expect(dead.PolicyDocument.Statement.filter((s) => s.Effect === "Deny")).toHaveLength(1);
  });

  it("lets reconcile's role read, delete and send (its continuations) messages of its own queue only", () => {
    const reading = statements(template.Resources.ReconcileFunction ?? { Properties: {} }).filter((s) =>
      [s.Action].flat().some((a) => a.startsWith("sqs:")),
    );
    expect(reading).toEqual([
      expect.objectContaining({
        Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
        Resource: { "Fn::GetAtt": ["ReconcileQueue", "Arn"] },
      }),
      expect.objectContaining({
        Action: "sqs:ChangeMessageVisibility",
        Resource: { "Fn::GetAtt": ["ReconcileQueue", "Arn"] },
      }),
      expect.objectContaining({
        Action: "sqs:SendMessage",
        Resource: { "Fn::GetAtt": ["ReconcileQueue", "Arn"] },
      }),
    ]);
    const env = (
      template.Resources.ReconcileFunction?.Properties.Environment as
        | { Variables: Record<string, Node> }
        | undefined
    )?.Variables;
    expect(env?.RECONCILE_QUEUE_URL).toEqual({ Ref: "ReconcileQueue" });
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

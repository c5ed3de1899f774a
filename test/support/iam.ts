import { existsSync, readFileSync } from "node:fs";
import { metafilePath } from "../../scripts/build";
import { type Json, type Resolver, SAMPLE, type Template, wildcardMatch } from "./cloudformation";

/**
 * The IAM contract: what each built bundle can call (from esbuild's metafile), against what the
 * transformed template grants its role.
 */

/** IAM service prefix of each SDK client package (Service Authorization Reference). */
const SERVICE_PREFIX: Record<string, string> = {
  "client-secrets-manager": "secretsmanager",
  "client-auto-scaling": "autoscaling",
  "client-sns": "sns",
  "client-sqs": "sqs",
  "client-lambda": "lambda",
  "client-ssm": "ssm",
  "client-ec2": "ec2",
  "client-cloudformation": "cloudformation",
  "client-sts": "sts",
  "client-kms": "kms",
  "client-cloudwatch": "cloudwatch",
  "client-eventbridge": "events",
};

/**
 * Where the IAM action is not the API operation's name. Lambda's Invoke API is authorised as
 * lambda:InvokeFunction (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html).
 */
const ACTION_FOR_OPERATION: Record<string, string> = {
  "lambda:Invoke": "lambda:InvokeFunction",
  "lambda:InvokeAsync": "lambda:InvokeAsync",
};

interface Metafile {
  outputs: Record<string, { inputs: Record<string, { bytesInOutput: number }> }>;
}

/**
 * The AWS actions a bundle can call: every SDK command module that contributes bytes to the
 * output. The SDK's nested credential clients (@aws-sdk/nested-clients: STS web identity, SSO,
 * sign-in) belong to the credential chain; in Lambda the role's credentials come from the
 * environment and those are never called.
 */
export function actionsOfBundle(bundle: string): string[] {
  const path = metafilePath(bundle);
  if (!existsSync(path)) throw new Error(`${path} is missing: run npm run build first`);
  const meta = JSON.parse(readFileSync(path, "utf8")) as Metafile;
  const output = meta.outputs[`dist/${bundle}/index.mjs`];
  if (!output) throw new Error(`the metafile of ${bundle} has no dist/${bundle}/index.mjs output`);
  const actions = new Set<string>();
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    if (bytesInOutput <= 0) continue;
    const m =
      /node_modules\/@aws-sdk\/(client-[a-z0-9-]+)\/dist-es\/commands\/([A-Za-z0-9]+)Command\.js$/.exec(
        input,
      );
    if (!m?.[1] || !m[2]) continue;
    const prefix = SERVICE_PREFIX[m[1]];
    if (!prefix) throw new Error(`${bundle} calls @aws-sdk/${m[1]}: add its IAM prefix to SERVICE_PREFIX`);
    const action = `${prefix}:${m[2]}`;
    actions.add(ACTION_FOR_OPERATION[action] ?? action);
  }
  return [...actions].sort();
}

export interface Sample {
  agentSecret: string;
  agentSecretIn(region: string): string;
  apiTokenSecret: string;
  agentKey: string;
  apiTokenKey: string;
  replicaRegion: string;
  reconcileFunctionArn: string;
  alertTopic: string;
  groups: string[];
}

/** A use of an action on resources; `indirect` says why a function needs a grant it never calls itself. */
export interface Use {
  resources: string[];
  indirect?: string;
}
export type Uses = Record<string, Use>;

/**
 * What AWSLambdaBasicExecutionRole grants (its policy document, as published by AWS):
 * https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html
 */
const MANAGED_POLICIES: Record<string, Array<{ Action: string[]; Resource: string[] }>> = {
  "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
    { Action: ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], Resource: ["*"] },
  ],
};
const BASIC_EXECUTION: Uses = {
  "logs:CreateLogGroup": {
    resources: ["*"],
    indirect: "AWSLambdaBasicExecutionRole: the runtime writes the logs",
  },
  "logs:CreateLogStream": {
    resources: ["*"],
    indirect: "AWSLambdaBasicExecutionRole: the runtime writes the logs",
  },
  "logs:PutLogEvents": {
    resources: ["*"],
    indirect: "AWSLambdaBasicExecutionRole: the runtime writes the logs",
  },
};

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string[];
  Resource: string[];
}

const asList = (v: Json | undefined): string[] =>
  v === undefined || v === null ? [] : (Array.isArray(v) ? v : [v]).map(String);

/** Every Allow statement attached to a role, with intrinsics resolved; NotAction/NotResource are refused. */
export function roleStatements(resolver: Resolver, roleId: string): Statement[] {
  const role = resolver.template.Resources[roleId];
  if (!role) throw new Error(`no role ${roleId}`);
  const props = resolver.resolve(role.Properties as Json) as {
    Policies?: Array<{ PolicyDocument: { Statement: Json } }>;
    ManagedPolicyArns?: string[];
  };
  const out: Statement[] = [];
  for (const policy of props.Policies ?? []) {
    for (const s of [policy.PolicyDocument.Statement].flat() as Array<Record<string, Json>>) {
      if ("NotAction" in s || "NotResource" in s)
        throw new Error(`${roleId}: NotAction/NotResource not modelled`);
      out.push({
        ...(typeof s.Sid === "string" ? { Sid: s.Sid } : {}),
        Effect: String(s.Effect),
        Action: asList(s.Action),
        Resource: asList(s.Resource),
      });
    }
  }
  for (const arn of props.ManagedPolicyArns ?? []) {
    const doc = MANAGED_POLICIES[arn];
    if (!doc) throw new Error(`${roleId} attaches ${arn}: add its document to MANAGED_POLICIES`);
    for (const s of doc) out.push({ Sid: arn, Effect: "Allow", ...s });
  }
  return out.filter((s) => s.Effect === "Allow");
}

/** Does any statement allow `action` on `resource`? (Conditions are not evaluated.) */
export function allows(statements: Statement[], action: string, resource: string): boolean {
  return statements.some(
    (s) =>
      s.Action.some((a) => wildcardMatch(a, action, true)) &&
      s.Resource.some((r) => wildcardMatch(r, resource)),
  );
}

/** Resources no function should reach: a grant that matches one is broader than the code's use. */
const DECOYS = [
  `arn:aws:secretsmanager:${SAMPLE.region}:${SAMPLE.account}:secret:someone-else-Zz9Yy8`,
  `arn:aws:lambda:${SAMPLE.region}:${SAMPLE.account}:function:someone-else`,
  `arn:aws:autoscaling:${SAMPLE.region}:${SAMPLE.account}:autoScalingGroup:0000:autoScalingGroupName/someone-else`,
  `arn:aws:sns:${SAMPLE.region}:${SAMPLE.account}:someone-else`,
  `arn:aws:sqs:${SAMPLE.region}:${SAMPLE.account}:someone-else.fifo`,
  `arn:aws:kms:${SAMPLE.region}:${SAMPLE.account}:key/00000000-0000-0000-0000-000000000000`,
];

/**
 * Every problem with one function's role: an action the bundle calls with no expected use
 * recorded, a use not granted, a grant nobody calls (outside the indirect allow-list), and a grant
 * on resources broader than the uses.
 */
export function iamProblems(resolver: Resolver, functionId: string, calls: string[], uses: Uses): string[] {
  const problems: string[] = [];
  const statements = roleStatements(resolver, `${functionId}Role`);
  const expected: Uses = { ...BASIC_EXECUTION, ...uses };
  for (const action of calls) {
    const use = uses[action];
    if (!use || use.indirect) {
      problems.push(`${functionId} calls ${action}, but the contract records no resource for it`);
      continue;
    }
    for (const resource of use.resources) {
      if (!allows(statements, action, resource))
        problems.push(`${functionId} is not granted ${action} on ${resource}`);
    }
  }
  for (const s of statements) {
    for (const pattern of s.Action) {
      const matched = Object.keys(expected).filter((a) => wildcardMatch(pattern, a, true));
      const used = matched.filter((a) => calls.includes(a) || expected[a]?.indirect);
      if (used.length === 0) {
        problems.push(`${functionId} is granted ${pattern} (${s.Sid ?? "no Sid"}), which no code calls`);
        continue;
      }
      for (const action of used) {
        const resources = expected[action]?.resources ?? [];
        for (const r of s.Resource) {
          if (!resources.some((u) => wildcardMatch(r, u))) {
            problems.push(
              `${functionId}: ${action} granted on ${r} (${s.Sid ?? ""}), which the code never uses`,
            );
          }
          if (resources.includes("*")) continue;
          for (const decoy of DECOYS) {
            if (wildcardMatch(r, decoy) && !resources.includes(decoy)) {
              problems.push(`${functionId}: ${action} on ${r} (${s.Sid ?? ""}) also reaches ${decoy}`);
            }
          }
        }
      }
    }
  }
  return problems;
}

export type { Template };

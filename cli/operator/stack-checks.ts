import type { Check } from "./preflight-checks";

/**
 * Preflight's checks of one Elastic CI Stack, as a pure function of what was read: the stack's
 * parameters (templates/aws-stack.yml of buildkite/elastic-ci-stack-for-aws names them) and the
 * managed policies it attaches to its instance role.
 */
export interface StackFacts {
  region: string;
  stackName: string;
  /** undefined when DescribeStacks failed; `error` says why. */
  parameters: Record<string, string> | undefined;
  error: string | undefined;
  /** The stack's groups found by their tags, with the instances' protection and platform. */
  groups: Array<{
    name: string;
    instances: number;
    protectedInstances: number;
    newInstancesProtected: boolean;
  }>;
  /** Each ARN of ManagedPolicyARNs with its default version's document, or why it could not be read. */
  policies: Array<{ arn: string; document: PolicyDocument | undefined; error: string | undefined }>;
  /**
   * The role its instances run as: the `InstanceRoleARN` parameter when the user brought one,
   * otherwise the role its `InstanceRoleName` output names; undefined when neither is known.
   */
  instanceRoleArn: string | undefined;
}

export interface SecretFacts {
  arn: string;
  /**
   * The secret's resource policy (GetResourcePolicy), parsed; undefined when it has none.
   * This stack writes one with a Deny for everyone but the roles it was given (ElasticStackInstanceRoleArns, …).
   */
  resourcePolicy: PolicyDocument | undefined;
  /** The SSM parameter path through which instances read the secret. */
  parameterPath: string;
  /** The secret's KMS key when it is a customer managed key (not aws/secretsmanager). */
  customerKey: string | undefined;
}

export interface PolicyDocument {
  Statement?: PolicyStatement | PolicyStatement[];
}
interface PolicyStatement {
  Effect?: string;
  Action?: string | string[];
  Resource?: string | string[];
  Condition?: unknown;
}

/** The Elastic CI Stack's own pattern for BuildkiteAgentTokenParameterStorePath (templates/aws-stack.yml). */
const STACK_PATH_PATTERN = /^\/[a-zA-Z0-9_.\-/]+$/;

export function stackChecks(stack: StackFacts, secret: SecretFacts): Check[] {
  const name = `stack ${stack.region}:${stack.stackName}`;
  const checks: Check[] = [];
  const add = (level: Check["level"], what: string, detail: string) =>
    checks.push({ level, name: `${name} ${what}`.trim(), detail });
  if (!stack.parameters) {
    add("FAIL", "", `cannot DescribeStacks: ${stack.error ?? "not found"}`);
    return checks;
  }
  const p = stack.parameters;
  const path = p.BuildkiteAgentTokenParameterStorePath ?? "";
  if (!STACK_PATH_PATTERN.test(secret.parameterPath)) {
    add(
      "FAIL",
      "token path",
      `${secret.parameterPath} does not match the stack's pattern ^/[a-zA-Z0-9_.\\-/]+$ (a secret name with +, = or @ cannot be referenced by the stack): rename the secret`,
    );
  } else if (path !== secret.parameterPath) {
    add(
      "FAIL",
      "token path",
      `BuildkiteAgentTokenParameterStorePath is "${path || "(empty)"}", not ${secret.parameterPath}: its agents never see a rotated token. Set it and update the stack`,
    );
  } else {
    add("PASS", "token path", `BuildkiteAgentTokenParameterStorePath is ${path}`);
  }

  const arns = (p.ManagedPolicyARNs ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (arns.length === 0) {
    add(
      "FAIL",
      "read permission",
      "ManagedPolicyARNs is empty: the stack's instance role gets no secretsmanager:GetSecretValue, so instances cannot read the token through the SSM reference path. Attach this stack's output AgentTokenReadPolicyArn",
    );
  } else {
    const grants = stack.policies.filter(
      (x) => x.document && allows(x.document, "secretsmanager:GetSecretValue", secret.arn),
    );
    const unreadable = stack.policies.filter((x) => !x.document);
    if (grants.length > 0) {
      add(
        "PASS",
        "read permission",
        `${grants.map((g) => g.arn).join(", ")} allows secretsmanager:GetSecretValue on the secret (conditions not evaluated)`,
      );
    } else if (unreadable.length > 0) {
      add(
        "WARN",
        "read permission",
        `cannot verify: ${unreadable.map((u) => `${u.arn} (${u.error ?? "unreadable"})`).join(", ")}; none of the readable ManagedPolicyARNs allows secretsmanager:GetSecretValue on ${secret.arn}`,
      );
    } else {
      add(
        "FAIL",
        "read permission",
        `none of ManagedPolicyARNs (${arns.join(", ")}) allows secretsmanager:GetSecretValue on ${secret.arn}`,
      );
    }
  }

  const stackKey = p.BuildkiteAgentTokenParameterStoreKMSKey ?? "";
  if (secret.customerKey && !stackKey) {
    add(
      "FAIL",
      "kms key",
      `the secret is encrypted with ${secret.customerKey} but BuildkiteAgentTokenParameterStoreKMSKey is empty: the instance role gets no kms:Decrypt. Set it to the key id`,
    );
  } else {
    add(
      "PASS",
      "kms key",
      secret.customerKey
        ? `BuildkiteAgentTokenParameterStoreKMSKey is ${stackKey}`
        : "the secret uses the AWS managed key",
    );
  }

  // A Deny in the secret's resource policy that does not exempt the stack's instance role stops
  // every booting instance from reading the token (the template exempts exactly the roles it was given).
  const deny = denyExemptions(secret.resourcePolicy);
  if (deny === undefined) {
    add("PASS", "resource policy", "the secret's resource policy denies nobody GetSecretValue");
  } else if (!stack.instanceRoleArn) {
    add(
      "WARN",
      "resource policy",
      "cannot verify: the stack names no instance role (InstanceRoleName output or InstanceRoleARN)",
    );
  } else if (deny.some((pattern) => glob(pattern, stack.instanceRoleArn ?? ""))) {
    add("PASS", "resource policy", `the secret's Deny exempts the instance role ${stack.instanceRoleArn}`);
  } else {
    add(
      "FAIL",
      "resource policy",
      `the secret's resource policy denies GetSecretValue to the instance role ${stack.instanceRoleArn}: its instances cannot read the token at boot. Add it to ElasticStackInstanceRoleArns (and the scaler's role to ElasticStackScalerRoleArns) and update this stack`,
    );
  }

  if (stack.groups.length === 0) {
    add(
      "FAIL",
      "groups",
      "no Auto Scaling group carries the stack's tags (aws:cloudformation:stack-name, logical id AgentAutoScaleGroup)",
    );
  }
  for (const g of stack.groups) {
    add(
      "PASS",
      `group ${g.name}`,
      `${p.InstanceOperatingSystem ?? "linux"}, ${g.instances} instance(s), ${g.protectedInstances} protected from scale-in${g.newInstancesProtected ? " (every new instance is protected)" : ""}`,
    );
  }
  return checks;
}

/** Whether an identity policy has an Allow statement for `action` on `resource` (wildcards as IAM matches them). */
export function allows(doc: PolicyDocument, action: string, resource: string): boolean {
  const statements = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement ? [doc.Statement] : [];
  const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  return statements.some(
    (s) =>
      s.Effect === "Allow" &&
      list(s.Action).some((a) => glob(a.toLowerCase(), action.toLowerCase())) &&
      list(s.Resource).some((r) => glob(r, resource)),
  );
}

/**
 * The principals a Deny of GetSecretValue exempts through `aws:PrincipalArn` (StringNotEquals or
 * StringNotLike); undefined when no statement denies it. A Deny without such a condition exempts nobody.
 */
export function denyExemptions(doc: PolicyDocument | undefined): string[] | undefined {
  const statements = Array.isArray(doc?.Statement) ? doc.Statement : doc?.Statement ? [doc.Statement] : [];
  const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  const denies = statements.filter(
    (s) =>
      s.Effect === "Deny" &&
      list(s.Action).some((a) => glob(a.toLowerCase(), "secretsmanager:getsecretvalue")),
  );
  if (denies.length === 0) return undefined;
  // Every Deny must exempt the principal: the intersection of what each one lets through.
  let exempt: string[] | undefined;
  for (const d of denies) {
    const condition = (d.Condition ?? {}) as Record<string, Record<string, string | string[]>>;
    const own = [
      ...list(condition.StringNotEquals?.["aws:PrincipalArn"]),
      ...list(condition.StringNotLike?.["aws:PrincipalArn"]),
    ];
    exempt = exempt === undefined ? own : exempt.filter((p) => own.includes(p));
  }
  return exempt ?? [];
}

function glob(pattern: string, value: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
  );
  return re.test(value);
}

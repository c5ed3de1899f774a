import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The deployed shape of a template without an AWS account: AWS's own SAM translator
 * (aws-sam-translator, run offline by sam-transform.py) expands AWS::Serverless::*, then the
 * CloudFormation intrinsics are resolved here with sample parameters, the way CloudFormation
 * resolves them at deploy time (Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Split, Fn::Select, Fn::If
 * with AWS::NoValue, and the condition functions). Physical ids of resources are sample values in
 * the formats AWS documents for each type's Ref / GetAtt.
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export interface Resource {
  Type: string;
  Condition?: string;
  Properties?: Record<string, Json>;
}
export interface Template {
  Parameters?: Record<string, { Type: string; Default?: Json }>;
  Conditions?: Record<string, Json>;
  Resources: Record<string, Resource>;
  Outputs?: Record<string, { Value: Json; Condition?: string }>;
}

export const ROOT = new URL("../..", import.meta.url).pathname;
export const SAMPLE = {
  region: "us-east-1",
  account: "123456789012",
  partition: "aws",
  stack: "bk-rotation",
};

/** template.yaml transformed by samtranslator (optionally with another text, for mutation checks). */
export function transformTemplate(text?: string, file = join(ROOT, "template.yaml")): Template {
  let path = file;
  if (text !== undefined) {
    path = join(mkdtempSync(join(tmpdir(), "sam-")), "template.yaml");
    writeFileSync(path, text);
  }
  const out = execFileSync("python3", [join(ROOT, "test/support/sam-transform.py"), path], {
    encoding: "utf8",
    env: { ...process.env, AWS_DEFAULT_REGION: SAMPLE.region },
    timeout: 60_000,
  });
  return JSON.parse(out) as Template;
}

const NO_VALUE = Symbol("AWS::NoValue");
type Value = Json | typeof NO_VALUE;

/** Ref / GetAtt of a resource, in the formats the CloudFormation resource reference documents. */
function physical(logicalId: string, type: string, attribute?: string): string {
  const { region, account, partition, stack } = SAMPLE;
  const name = `${stack}-${logicalId}-ABC123`;
  switch (type) {
    case "AWS::SecretsManager::Secret":
      return `arn:${partition}:secretsmanager:${region}:${account}:secret:buildkite/agent-token-AbCdEf`;
    case "AWS::Lambda::Function":
      return attribute === "Arn" ? `arn:${partition}:lambda:${region}:${account}:function:${name}` : name;
    case "AWS::IAM::Role":
      return attribute === "Arn" ? `arn:${partition}:iam::${account}:role/${name}` : name;
    case "AWS::IAM::ManagedPolicy":
      return `arn:${partition}:iam::${account}:policy/${name}`;
    case "AWS::SNS::Topic":
      return attribute === "TopicName" ? name : `arn:${partition}:sns:${region}:${account}:${name}`;
    case "AWS::SQS::Queue": {
      // Ref is the queue URL; GetAtt Arn / QueueName (FIFO names end in .fifo; the sample gives every queue one).
      const queueName = `${name}.fifo`;
      if (attribute === "Arn") return `arn:${partition}:sqs:${region}:${account}:${queueName}`;
      if (attribute === "QueueName") return queueName;
      return `https://sqs.${region}.amazonaws.com/${account}/${queueName}`;
    }
    case "AWS::Events::Rule":
      return attribute === "Arn" ? `arn:${partition}:events:${region}:${account}:rule/${name}` : name;
    case "AWS::Lambda::Url":
      return `https://${logicalId.toLowerCase()}.lambda-url.${region}.on.aws/`;
    default:
      return attribute ? `${name}.${attribute}` : name;
  }
}

export class Resolver {
  private readonly conditions = new Map<string, boolean>();
  readonly params: Record<string, string | string[]>;

  constructor(
    readonly template: Template,
    params: Record<string, string | string[]>,
  ) {
    const all: Record<string, string | string[]> = {};
    for (const [name, p] of Object.entries(template.Parameters ?? {})) {
      const given = params[name];
      const raw = given ?? (p.Default === undefined ? undefined : String(p.Default));
      if (raw === undefined) throw new Error(`sample parameters lack ${name} (no default)`);
      all[name] = p.Type === "CommaDelimitedList" ? (Array.isArray(raw) ? raw : raw.split(",")) : String(raw);
    }
    this.params = all;
  }

  condition(name: string): boolean {
    const known = this.conditions.get(name);
    if (known !== undefined) return known;
    const expr = this.template.Conditions?.[name];
    if (expr === undefined) throw new Error(`unknown condition ${name}`);
    const value = this.truth(expr);
    this.conditions.set(name, value);
    return value;
  }

  private truth(expr: Json): boolean {
    const v = this.resolve(expr);
    if (typeof v !== "boolean")
      throw new Error(`condition did not evaluate to a boolean: ${JSON.stringify(expr)}`);
    return v;
  }

  /** Does the resource exist with these parameters? */
  exists(logicalId: string): boolean {
    const r = this.template.Resources[logicalId];
    return r !== undefined && (r.Condition === undefined || this.condition(r.Condition));
  }

  resolve(node: Json): Json {
    const v = this.value(node);
    if (v === NO_VALUE) throw new Error("AWS::NoValue where a value is required");
    return v;
  }

  /** resolve(), typed as the shape the caller then checks (a wrong shape fails those checks). */
  resolveAs<T>(node: Json | undefined): T {
    return this.resolve(node ?? null) as unknown as T;
  }

  private ref(name: string): Value {
    const { region, account, partition, stack } = SAMPLE;
    const pseudo: Record<string, Value> = {
      "AWS::Region": region,
      "AWS::AccountId": account,
      "AWS::Partition": partition,
      "AWS::StackName": stack,
      "AWS::URLSuffix": "amazonaws.com",
      "AWS::NoValue": NO_VALUE,
    };
    if (name in pseudo) return pseudo[name] as Value;
    const p = this.params[name];
    if (p !== undefined) return p;
    const r = this.template.Resources[name];
    if (!r) throw new Error(`Ref to unknown ${name}`);
    if (!this.exists(name)) throw new Error(`Ref to ${name}, which these parameters do not create`);
    return physical(name, r.Type);
  }

  private getAtt(logicalId: string, attribute: string): string {
    const r = this.template.Resources[logicalId];
    if (!r) throw new Error(`GetAtt of unknown ${logicalId}`);
    if (!this.exists(logicalId))
      throw new Error(`GetAtt of ${logicalId}, which these parameters do not create`);
    return physical(logicalId, r.Type, attribute);
  }

  private value(node: Json): Value {
    if (Array.isArray(node)) {
      return node.map((n) => this.value(n)).filter((v): v is Json => v !== NO_VALUE);
    }
    if (node === null || typeof node !== "object") return node;
    const keys = Object.keys(node);
    const [key] = keys;
    const arg = key === undefined ? undefined : node[key];
    if (
      keys.length === 1 &&
      key !== undefined &&
      arg !== undefined &&
      (key === "Ref" || key.startsWith("Fn::") || key === "Condition")
    ) {
      return this.intrinsic(key, arg);
    }
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(node)) {
      const r = this.value(v);
      if (r !== NO_VALUE) out[k] = r;
    }
    return out;
  }

  private intrinsic(key: string, arg: Json): Value {
    const list = (v: Json): Json[] => {
      if (!Array.isArray(v)) throw new Error(`${key} expects a list, got ${JSON.stringify(v)}`);
      return v;
    };
    switch (key) {
      case "Ref":
        return this.ref(String(arg));
      case "Condition":
        return this.condition(String(arg));
      case "Fn::GetAtt": {
        const [id, attr] = Array.isArray(arg) ? arg.map(String) : String(arg).split(".");
        return this.getAtt(String(id), String(attr));
      }
      case "Fn::If": {
        const [cond, yes, no] = list(arg);
        return this.condition(String(cond)) ? this.value(yes ?? null) : this.value(no ?? null);
      }
      case "Fn::Equals": {
        const [a, b] = list(arg).map((x) => this.resolve(x));
        return JSON.stringify(a) === JSON.stringify(b);
      }
      case "Fn::Not":
        return !this.truth(list(arg)[0] ?? null);
      case "Fn::And":
        return list(arg).every((c) => this.truth(c));
      case "Fn::Or":
        return list(arg).some((c) => this.truth(c));
      case "Fn::Join": {
        const [sep, items] = list(arg);
        const values = this.resolve(items ?? null);
        return list(values).map(String).join(String(sep));
      }
      case "Fn::Split": {
        const [sep, text] = list(arg);
        return String(this.resolve(text ?? null)).split(String(sep));
      }
      case "Fn::Select": {
        const [index, items] = list(arg);
        const values = list(this.resolve(items ?? null));
        const i = Number(this.resolve(index ?? null));
        if (!(i >= 0 && i < values.length)) throw new Error(`Fn::Select index ${i} out of range`);
        return values[i] ?? null;
      }
      case "Fn::Sub": {
        const [text, vars] = typeof arg === "string" ? [arg, {}] : list(arg);
        const bound: Record<string, Json> = {};
        for (const [k, v] of Object.entries((vars ?? {}) as Record<string, Json>)) bound[k] = this.resolve(v);
        return String(text).replace(/\$\{([^}!]+)\}/g, (_, name: string) => {
          if (name in bound) return String(bound[name]);
          if (name.includes(".") && !name.startsWith("AWS::")) {
            const [id, attr] = name.split(".");
            return this.getAtt(String(id), String(attr));
          }
          const v = this.ref(name);
          if (v === NO_VALUE || Array.isArray(v)) throw new Error(`Fn::Sub cannot use ${name}`);
          return String(v);
        });
      }
      default:
        throw new Error(`unsupported intrinsic ${key}`);
    }
  }
}

/** IAM's wildcard match (`*` any run of characters, `?` one character), case-sensitive for resources. */
export function wildcardMatch(pattern: string, value: string, caseInsensitive = false): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
    caseInsensitive ? "i" : "",
  );
  return re.test(value);
}

import { DescribeInstanceRefreshesCommand } from "@aws-sdk/client-auto-scaling";
import { DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { GetPolicyCommand, GetPolicyVersionCommand } from "@aws-sdk/client-iam";
import {
  DescribeSecretCommand,
  type DescribeSecretCommandOutput,
  GetResourcePolicyCommand,
} from "@aws-sdk/client-secrets-manager";
import { GetTopicAttributesCommand } from "@aws-sdk/client-sns";
import { DescribeDocumentCommand, DescribeInstanceInformationCommand } from "@aws-sdk/client-ssm";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { apiTokenLoader } from "../../shared/buildkite/api-token";
import { isManagedFor, parseManagedTokenDescription } from "../../shared/buildkite/description";
import { parseSecretArn } from "../../shared/config";
import { describeError } from "../../shared/errors";
import { observeGroups } from "../../shared/rollout/observe";
import { ACTIVE_REFRESH } from "../../shared/rollout/plan";
import { tokenParameterName } from "../../shared/rollout/reconcile";
import type { StatusReport } from "../../shared/rollout/status";
import { duration, useColor } from "../../shared/terminal";
import { parseCommandArgs } from "../args";
import { cliLogger } from "../logger";
import type { CommandRunner } from "../types";
import {
  OPERATOR_HELP,
  OPERATOR_OPTIONS,
  type OperatorContext,
  operatorContext,
  operatorSettings,
} from "./context";
import { blockedAdvice } from "./render/advice";
import { type PolicyDocument, type StackFacts, stackChecks } from "./stack-checks";

const HELP = `Usage: bk-agent-token preflight [options]

Dry run: check everything a rotation needs, then print what the reconcile function would do next.
Changes nothing (only Describe/Get/List calls and Buildkite GETs).

Each check prints one line, "PASS|WARN|FAIL name: detail":
  configuration, identity (sts:GetCallerIdentity), secret (DescribeSecret), rotation (enabled,
  schedule, function, overdue, pending), replica <region> (serves the current version),
  api token secret (readable), api token scopes (read_clusters + write_clusters), cluster tokens
  (listable; managed / not managed), group <region:name> (exists, instances protected from
  scale-in vs REFRESH_SCALE_IN_PROTECTED_INSTANCES), refresh <region:name> (none running),
  refresh preferences, alerts (ALERT_TOPIC_ARN), iam (write permissions cannot be verified
  without a change: reported as WARN "not verified").

${OPERATOR_HELP}

Exit codes:
  0  no FAIL (warnings allowed)
  1  at least one FAIL, or an error
  2  usage
`;

export type Level = "PASS" | "WARN" | "FAIL";

export interface Check {
  level: Level;
  name: string;
  detail: string;
}

export interface PreflightResult {
  checks: Check[];
  /** What reconcile would do next (describeNext of the current plan); undefined when it could not be observed. */
  plan: string[] | undefined;
  report: StatusReport | undefined;
}

const REQUIRED_SCOPES = ["read_clusters", "write_clusters"] as const;
/** IN_PLACE_FALLBACK=terminate lists agents and stops them gracefully. */
const TERMINATE_SCOPES = ["read_agents", "write_agents"] as const;

const reason = (error: unknown) => {
  const e = describeError(error);
  return `${e.name}: ${e.message}`;
};

/** Every check, in a stable order. Read-only: never calls anything that changes state. */
export async function runPreflight(ctx: OperatorContext): Promise<PreflightResult> {
  const { config } = ctx;
  const checks: Check[] = [];
  const add = (level: Level, name: string, detail: string) => checks.push({ level, name, detail });
  const primary = config.secret.region;

  add(
    "PASS",
    "configuration",
    `from ${ctx.source}: secret ${config.secret.name}, strategy ${config.strategy}${config.strategy === "in-place" ? ` (fallback ${config.inPlace.fallback} after ${duration(config.inPlace.fallbackAfterSeconds)})` : ""}, ${config.targets.length} target group(s) (${config.targets.map((t) => `${t.region}:${t.groupName}`).join(", ") || "none"}), ${config.stacks.length} target stack(s) (${config.stacks.map((t) => `${t.region}:${t.stackName}`).join(", ") || "none"}), replica regions: ${config.replicaRegions.join(", ") || "none"}`,
  );

  try {
    const who = await ctx.sts(primary).send(new GetCallerIdentityCommand({}));
    const sameAccount = who.Account === config.secret.account;
    add(
      sameAccount ? "PASS" : "WARN",
      "identity",
      `checking as ${who.Arn ?? "?"} (account ${who.Account ?? "?"})${sameAccount ? "" : `; the secret is in account ${config.secret.account}: a cross-account check shows your access, not the functions'`}`,
    );
  } catch (error) {
    add("FAIL", "identity", `no usable AWS credentials: ${reason(error)}`);
  }

  // The secret and its rotation settings.
  let secret: DescribeSecretCommandOutput | undefined;
  try {
    secret = await ctx.secrets(primary).send(new DescribeSecretCommand({ SecretId: config.secret.arn }));
  } catch (error) {
    add("FAIL", "secret", `cannot DescribeSecret ${config.secret.arn}: ${reason(error)}`);
  }
  const stages = Object.entries(secret?.VersionIdsToStages ?? {});
  const current = stages.find(([, s]) => s.includes("AWSCURRENT"))?.[0];
  const pending = stages.find(([, s]) => s.includes("AWSPENDING") && !s.includes("AWSCURRENT"))?.[0];
  if (secret) {
    add(
      current ? "PASS" : "FAIL",
      "secret",
      current
        ? `readable: ${secret.Name ?? config.secret.name}, current version ${current} (${stages.length} labelled version(s))`
        : `${secret.Name ?? config.secret.name} has no AWSCURRENT version`,
    );
    const rules = secret.RotationRules;
    const schedule =
      rules?.ScheduleExpression ??
      (rules?.AutomaticallyAfterDays ? `every ${rules.AutomaticallyAfterDays} days` : undefined);
    if (secret.RotationEnabled !== true) {
      add(
        "FAIL",
        "rotation",
        "not enabled on the secret: deploy the stack's rotation schedule (or aws secretsmanager rotate-secret --rotation-lambda-arn … --rotation-rules …)",
      );
    } else if (!schedule) {
      add("FAIL", "rotation", "enabled but without a schedule (RotationRules)");
    } else if (!secret.RotationLambdaARN) {
      add("FAIL", "rotation", `schedule ${schedule} but no rotation function`);
    } else {
      const next = secret.NextRotationDate;
      const overdue = next !== undefined && Date.now() > next.getTime() + 3_600_000;
      add(
        overdue ? "WARN" : "PASS",
        "rotation",
        `enabled, ${schedule}, function ${secret.RotationLambdaARN}; next ${next ? next.toISOString() : "unknown"}${overdue ? ` — OVERDUE by ${duration((Date.now() - next.getTime()) / 1000)}: check the rotate-token function's logs` : ""}`,
      );
    }
    if (pending) {
      add(
        "WARN",
        "rotation pending",
        `version ${pending} holds AWSPENDING: a rotation is under way (or stuck: see the rotate-token function's logs); rotate refuses to start another`,
      );
    }
  }

  // A replica the configuration does not list is still watched by reconcile, but groups there
  // cannot be targets until REPLICA_REGIONS names it.
  const unlisted = (secret?.ReplicationStatus ?? [])
    .map((r) => r.Region ?? "")
    .filter((region) => region && region !== config.secret.region && !config.replicaRegions.includes(region));
  if (unlisted.length > 0) {
    add(
      "WARN",
      "replica regions",
      `Secrets Manager also replicates to ${unlisted.join(", ")}, which REPLICA_REGIONS does not list: reconcile waits for ${unlisted.length === 1 ? "it" : "them"} before revoking, but no group there can be a target until it is listed`,
    );
  }

  // Every replica region must serve the current version.
  for (const region of config.replicaRegions) {
    const status = secret?.ReplicationStatus?.find((r) => r.Region === region);
    try {
      const out = await ctx.secrets(region).send(new DescribeSecretCommand({ SecretId: config.secret.name }));
      const served = Object.entries(out.VersionIdsToStages ?? {}).find(([, s]) =>
        s.includes("AWSCURRENT"),
      )?.[0];
      if (served && served === current) {
        add("PASS", `replica ${region}`, `serves the current version ${served}`);
      } else {
        add(
          status?.Status === "Failed" ? "FAIL" : "WARN",
          `replica ${region}`,
          `serves ${served ?? "no version"}, not the current ${current ?? "?"} (replication ${status?.Status ?? "status unknown"}${status?.StatusMessage ? `: ${status.StatusMessage}` : ""})`,
        );
      }
    } catch (error) {
      const e = describeError(error);
      add(
        "FAIL",
        `replica ${region}`,
        e.name === "ResourceNotFoundException"
          ? `no replica of the secret exists in ${region}`
          : reason(error),
      );
    }
  }

  // The Buildkite API token: readable, scoped, and able to list the cluster's tokens.
  let apiTokenReadable = false;
  try {
    const apiRegion = parseSecretArn(
      "BUILDKITE_API_TOKEN_SECRET_ARN",
      config.buildkite.apiTokenSecretArn,
    ).region;
    await apiTokenLoader(ctx.secrets(apiRegion), config.buildkite.apiTokenSecretArn)();
    apiTokenReadable = true;
    add("PASS", "api token secret", `readable: ${config.buildkite.apiTokenSecretArn}`);
  } catch (error) {
    add("FAIL", "api token secret", `cannot read ${config.buildkite.apiTokenSecretArn}: ${reason(error)}`);
  }
  if (apiTokenReadable) {
    try {
      const info = await ctx.buildkite.accessToken();
      const required: readonly string[] =
        config.inPlace.fallback === "terminate" ? [...REQUIRED_SCOPES, ...TERMINATE_SCOPES] : REQUIRED_SCOPES;
      const missing = required.filter((s) => !info.scopes.includes(s));
      add(
        missing.length === 0 ? "PASS" : "FAIL",
        "api token scopes",
        missing.length === 0
          ? `has ${required.join(", ")}`
          : `missing ${missing.join(" and ")} (read_clusters lists tokens; write_clusters creates and revokes them; read_agents and write_agents find and stop agents for IN_PLACE_FALLBACK=terminate); the token has: ${info.scopes.join(", ") || "no scopes"}`,
      );
    } catch (error) {
      add("FAIL", "api token scopes", `cannot ask Buildkite for the token's scopes: ${reason(error)}`);
    }
    try {
      const tokens = await ctx.buildkite.listTokens();
      const managed = tokens.filter((t) => isManagedFor(t.description, config.secret.arn));
      add(
        "PASS",
        "cluster tokens",
        `${tokens.length} token(s) in cluster ${config.buildkite.clusterId} of ${config.buildkite.organization}: ${managed.length} created by this project, ${tokens.length - managed.length} not`,
      );
      if (
        current &&
        !managed.some((t) => parseManagedTokenDescription(t.description)?.versionId === current)
      ) {
        add(
          "WARN",
          "current token",
          `the current version ${current} has no token created by this project (the initial token, or set by hand): the next rotation rolls out normally; revoke the old token by hand in Buildkite once that rollout is complete`,
        );
      }
    } catch (error) {
      add("FAIL", "cluster tokens", `cannot list the cluster's tokens: ${reason(error)}`);
    }
  } else {
    add("FAIL", "api token scopes", "not checked: the API token could not be read");
  }

  // Target groups (named, and every group of each target stack), by the rule observe() uses.
  const { targets, stacks } = await observeGroups(ctx);
  const setting = config.refresh.scaleInProtectedInstances;
  const refreshStrategy = config.strategy === "refresh";
  for (const t of targets) {
    const where = `${t.region}:${t.groupName}`;
    if (t.error) {
      add("FAIL", `group ${where}`, `cannot DescribeAutoScalingGroups in ${t.region}: ${t.error.message}`);
      continue;
    }
    if (!t.exists) {
      add(
        "FAIL",
        `group ${where}`,
        `not found in ${t.region}: fix TARGET_GROUPS, or target the stack by name (TARGET_STACKS)`,
      );
      continue;
    }
    const members = t.raw?.Instances ?? [];
    const protectedCount = members.filter((i) => i.ProtectedFromScaleIn).length;
    const allProtected =
      t.raw?.NewInstancesProtectedFromScaleIn === true ||
      (members.length > 0 && protectedCount === members.length);
    const facts = `${members.length} instance(s), ${protectedCount} protected from scale-in${t.raw?.NewInstancesProtectedFromScaleIn ? " (new instances are protected)" : ""}`;
    if (!refreshStrategy) {
      add(
        "PASS",
        `group ${where}`,
        `${facts}; in-place rollout: instances are updated over Run Command, none is replaced`,
      );
      await inPlaceChecks(ctx, t.region, members.map((m) => m.InstanceId ?? "").filter(Boolean), where, add);
    } else if (setting === "Wait" && allProtected) {
      add(
        "FAIL",
        `group ${where}`,
        `${facts}; REFRESH_SCALE_IN_PROTECTED_INSTANCES=Wait on a group whose instances are all protected (the Elastic CI Stack's default): AWS waits an hour for protection to be removed, nothing removes it, and the refresh fails. Choose ROLLOUT_STRATEGY=in-place (recommended: no instance replaced, no job interrupted), Refresh (replaces busy instances and interrupts their jobs) or Ignore (replaces nothing protected: the old token cannot be revoked)`,
      );
    } else if (setting === "Ignore") {
      add(
        "WARN",
        `group ${where}`,
        `${facts}; REFRESH_SCALE_IN_PROTECTED_INSTANCES=Ignore: protected instances are not replaced, so the old token is never revoked while they run`,
      );
    } else if (setting === "Refresh" && protectedCount > 0) {
      add(
        "WARN",
        `group ${where}`,
        `${facts}; REFRESH_SCALE_IN_PROTECTED_INSTANCES=Refresh: busy instances are replaced anyway and their jobs are interrupted (ROLLOUT_STRATEGY=in-place interrupts nothing)`,
      );
    } else {
      add("PASS", `group ${where}`, `${facts}; protected instances: ${setting}`);
    }
    try {
      const out = await ctx
        .autoScaling(t.region)
        .send(new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: t.groupName, MaxRecords: 10 }));
      const active = (out.InstanceRefreshes ?? []).find((r) => ACTIVE_REFRESH.has(r.Status ?? ""));
      if (active) {
        const ours = t.marker?.refreshId === active.InstanceRefreshId;
        add(
          "WARN",
          `refresh ${where}`,
          `${active.InstanceRefreshId ?? "?"} is ${active.Status ?? "?"} (${active.PercentageComplete ?? 0}%)${ours ? `, started by this project for version ${t.marker?.versionId}` : ", not started by this project: reconcile waits for it"}`,
        );
      } else {
        add("PASS", `refresh ${where}`, "none running");
      }
    } catch (error) {
      add("FAIL", `refresh ${where}`, `cannot DescribeInstanceRefreshes: ${reason(error)}`);
    }
  }
  const resourcePolicy = stacks.length > 0 ? await readResourcePolicy(ctx, add) : undefined;
  for (const s of stacks) {
    const facts = await readStack(ctx, s.region, s.stackName);
    const groups = targets
      .filter((t) => t.stackName === s.stackName && t.region === s.region && t.raw)
      .map((t) => ({
        name: t.groupName,
        instances: t.raw?.Instances?.length ?? 0,
        protectedInstances: t.raw?.Instances?.filter((i) => i.ProtectedFromScaleIn).length ?? 0,
        newInstancesProtected: t.raw?.NewInstancesProtectedFromScaleIn === true,
      }));
    const customerKey =
      secret?.KmsKeyId && !/alias\/aws\/secretsmanager$/.test(secret.KmsKeyId) ? secret.KmsKeyId : undefined;
    for (const c of stackChecks(
      { ...facts, groups },
      { arn: config.secret.arn, parameterPath: tokenParameterName(config), customerKey, resourcePolicy },
    )) {
      add(c.level, c.name, c.detail);
    }
  }
  const p = config.refresh;
  add(
    "PASS",
    "refresh preferences",
    `min healthy ${p.minHealthyPercentage}%, max healthy ${p.maxHealthyPercentage === undefined ? "default" : `${p.maxHealthyPercentage}%`}, warmup ${p.instanceWarmupSeconds === undefined ? "default" : `${p.instanceWarmupSeconds}s`}, protected instances ${p.scaleInProtectedInstances}, SkipMatching false; rollout budget ${duration(config.maxRolloutSeconds)}`,
  );

  if (!config.alertTopicArn) {
    add("WARN", "alerts", "ALERT_TOPIC_ARN is not set: a blocked rollout raises no alert");
  } else {
    const topicRegion = config.alertTopicArn.split(":")[3] ?? primary;
    try {
      await ctx.sns(topicRegion).send(new GetTopicAttributesCommand({ TopicArn: config.alertTopicArn }));
      add("PASS", "alerts", `topic ${config.alertTopicArn} exists`);
    } catch (error) {
      add("WARN", "alerts", `cannot GetTopicAttributes on ${config.alertTopicArn}: ${reason(error)}`);
    }
  }

  // Write permissions cannot be tested without writing: say so instead of pretending.
  add(
    "WARN",
    "iam reconcile",
    "not verified: CreateOrUpdateTags, SendCommand, StartInstanceRefresh, TerminateInstanceInAutoScalingGroup (need a change to test); the reconcile function's role needs them on every target group (the stack's template grants them by the groups' CloudFormation tags)",
  );
  add(
    "WARN",
    "iam rotate",
    "not verified: RotateSecret (needs a change to test); `rotate` needs secretsmanager:RotateSecret on the secret, and --emergency also autoscaling:CreateOrUpdateTags on the first target group",
  );

  let report: StatusReport | undefined;
  try {
    report = await ctx.collect();
    if (report.waitingFor.includes("operator")) {
      for (const b of blockedAdvice(report)) add("WARN", "rollout blocked", b);
    }
  } catch (error) {
    add("FAIL", "plan", `could not observe the rollout: ${reason(error)}`);
  }
  return { checks, plan: report?.next, report };
}

/** In-place needs the install document in the region and reachable SSM agents. */
async function inPlaceChecks(
  ctx: OperatorContext,
  region: string,
  instanceIds: string[],
  where: string,
  add: (level: Level, name: string, detail: string) => void,
): Promise<void> {
  const name = ctx.config.inPlace.documentName;
  try {
    await ctx.ssm(region).send(new DescribeDocumentCommand({ Name: name }));
    add("PASS", `document ${where}`, `${name} exists in ${region}`);
  } catch (error) {
    add(
      "FAIL",
      `document ${where}`,
      `cannot DescribeDocument ${name} in ${region} (${reason(error)}): deploy this project's stack (primary region) or its forwarder stack (infra/forwarder.yaml) in ${region}`,
    );
  }
  const online = new Set<string>();
  try {
    for (let i = 0; i < instanceIds.length; i += 50) {
      const out = await ctx.ssm(region).send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: "InstanceIds", Values: instanceIds.slice(i, i + 50) }],
          MaxResults: 50,
        }),
      );
      for (const info of out.InstanceInformationList ?? [])
        if (info.PingStatus === "Online" && info.InstanceId) online.add(info.InstanceId);
    }
    const offline = instanceIds.filter((id) => !online.has(id));
    add(
      offline.length === 0 ? "PASS" : "WARN",
      `ssm ${where}`,
      offline.length === 0
        ? `${instanceIds.length} instance(s), every SSM agent Online`
        : `${offline.length} of ${instanceIds.length} instance(s) not Online in SSM (${offline.slice(0, 10).join(", ")}): they get IN_PLACE_FALLBACK=${ctx.config.inPlace.fallback} after ${duration(ctx.config.inPlace.fallbackAfterSeconds)} (an InstanceRoleARN of your own needs the Systems Manager permissions)`,
    );
  } catch (error) {
    add("WARN", `ssm ${where}`, `cannot DescribeInstanceInformation: ${reason(error)}`);
  }
}

/** The secret's resource policy, parsed (GetResourcePolicy; read-only); undefined when there is none. */
async function readResourcePolicy(
  ctx: OperatorContext,
  add: (level: Level, name: string, detail: string) => void,
): Promise<PolicyDocument | undefined> {
  try {
    const out = await ctx
      .secrets(ctx.config.secret.region)
      .send(new GetResourcePolicyCommand({ SecretId: ctx.config.secret.arn }));
    return out.ResourcePolicy ? (JSON.parse(out.ResourcePolicy) as PolicyDocument) : undefined;
  } catch (error) {
    add(
      "WARN",
      "secret resource policy",
      `cannot GetResourcePolicy: ${reason(error)}; the stacks' access is not verified`,
    );
    return undefined;
  }
}

/** DescribeStacks and the managed policies of the stack's ManagedPolicyARNs (read-only). */
async function readStack(
  ctx: OperatorContext,
  region: string,
  stackName: string,
): Promise<Omit<StackFacts, "groups">> {
  const base = { region, stackName };
  let parameters: Record<string, string>;
  let instanceRoleArn: string | undefined;
  try {
    const out = await ctx.cloudFormation(region).send(new DescribeStacksCommand({ StackName: stackName }));
    const stack = out.Stacks?.[0];
    parameters = Object.fromEntries(
      (stack?.Parameters ?? []).map((x) => [x.ParameterKey ?? "", x.ParameterValue ?? ""]),
    );
    const roleName = stack?.Outputs?.find((o) => o.OutputKey === "InstanceRoleName")?.OutputValue;
    instanceRoleArn =
      parameters.InstanceRoleARN ||
      (roleName ? `arn:aws:iam::${ctx.config.secret.account}:role/${roleName}` : undefined);
  } catch (error) {
    return { ...base, parameters: undefined, error: reason(error), policies: [], instanceRoleArn: undefined };
  }
  const arns = (parameters.ManagedPolicyARNs ?? "")
    .split(",")
    .map((a) => a.trim())
    .filter(Boolean);
  const policies = await Promise.all(
    arns.map(async (arn) => {
      try {
        const iam = ctx.iam();
        const policy = await iam.send(new GetPolicyCommand({ PolicyArn: arn }));
        const version = await iam.send(
          new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.Policy?.DefaultVersionId ?? "v1" }),
        );
        const raw = version.PolicyVersion?.Document ?? "";
        // IAM returns the document URL-encoded (GetPolicyVersion API reference).
        const document = JSON.parse(decodeURIComponent(raw)) as PolicyDocument;
        return { arn, document, error: undefined };
      } catch (error) {
        return { arn, document: undefined, error: reason(error) };
      }
    }),
  );
  return { ...base, parameters, error: undefined, policies, instanceRoleArn };
}

const LEVEL_COLOR: Record<Level, number> = { PASS: 32, WARN: 33, FAIL: 31 };

export function renderPreflight(result: PreflightResult, color = false): string {
  const level = (l: Level) => (color ? `\x1b[${LEVEL_COLOR[l]}m${l}\x1b[39m` : l);
  const lines = result.checks.map((c) => `${level(c.level)} ${c.name}: ${c.detail}`);
  lines.push("", "Plan (what reconcile would do next; nothing was changed):");
  for (const n of result.plan ?? ["unknown: the rollout could not be observed"]) lines.push(`  - ${n}`);
  const count = (l: Level) => result.checks.filter((c) => c.level === l).length;
  lines.push("", `preflight: ${count("PASS")} passed, ${count("WARN")} warning(s), ${count("FAIL")} failed`);
  return `${lines.join("\n")}\n`;
}

export const preflightCommand: CommandRunner = {
  async run(args, io) {
    const { values } = parseCommandArgs(args, OPERATOR_OPTIONS);
    if (values.help) {
      io.stdout.write(HELP);
      return 0;
    }
    const settings = operatorSettings(values, io.env);
    const ctx = await operatorContext(settings, io.env, cliLogger(io.env));
    try {
      const result = await runPreflight(ctx);
      io.stdout.write(renderPreflight(result, useColor(io.stdout, io.env)));
      return result.checks.some((c) => c.level === "FAIL") ? 1 : 0;
    } finally {
      ctx.dispose();
    }
  },
};

import { DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { GetPolicyCommand, GetPolicyVersionCommand } from "@aws-sdk/client-iam";
import { GetResourcePolicyCommand } from "@aws-sdk/client-secrets-manager";
import { GetTopicAttributesCommand } from "@aws-sdk/client-sns";
import { DescribeDocumentCommand } from "@aws-sdk/client-ssm";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { apiTokenLoaderForArn } from "../../shared/buildkite/api-token";
import { describeError } from "../../shared/lib/errors";
import { painter, useColor } from "../../shared/lib/terminal";
import { observeGroups, observeWithSecret } from "../../shared/rollout/observe";
import { plan } from "../../shared/rollout/plan";
import { planSettings } from "../../shared/rollout/settings";
import { buildStatus, type StatusReport } from "../../shared/rollout/status";
import { helpText, PROGRAM } from "../args";
import type { CommandRunner } from "../types";
import { OPERATOR_OPTIONS, OPERATOR_SECTION_INTROS, type OperatorContext } from "./context";
import { operatorCommand } from "./operator-command";
import {
  type Check,
  type Level,
  type Observed,
  type PreflightFacts,
  preflightChecks,
  type Read,
} from "./preflight-checks";
import type { PolicyDocument, StackFacts } from "./stack-checks";

const OPTIONS = OPERATOR_OPTIONS;

const HELP = helpText(PROGRAM, {
  usage: "preflight [options]",
  description: `Dry run: check everything a rotation needs, then print what the reconcile function would do next.
Changes nothing (only Describe/Get/List calls and Buildkite GETs).

Each check prints one line, "PASS|WARN|FAIL name: detail":
  configuration, identity (sts:GetCallerIdentity), secret (DescribeSecret), rotation (enabled,
  schedule, function, overdue, pending), replica <region> (serves the current version),
  api token secret (readable), api token scopes (read_clusters + write_clusters), cluster tokens
  (listable; managed / not managed), group <region:name> (exists, instances protected from
  scale-in vs REFRESH_SCALE_IN_PROTECTED_INSTANCES), refresh <region:name> (none running),
  refresh preferences, alerts (ALERT_TOPIC_ARN), iam (write permissions cannot be verified
  without a change: reported as WARN "not verified").`,
  options: OPTIONS,
  sectionIntros: OPERATOR_SECTION_INTROS,
  epilogue: `Exit codes:
  0  no FAIL (warnings allowed)
  1  at least one FAIL, or an error
  2  usage`,
});

export interface PreflightResult {
  checks: Check[];
  /** What reconcile would do next (describeNext of the current plan); undefined when it could not be observed. */
  plan: string[] | undefined;
  report: StatusReport | undefined;
}

const reason = (error: unknown) => {
  const e = describeError(error);
  return `${e.name}: ${e.message}`;
};

/** Runs a read, keeping its failure as a short reason instead of throwing. */
async function attempt<T>(read: () => Promise<T>): Promise<Read<T>> {
  try {
    return { ok: true, value: await read() };
  } catch (error) {
    return { ok: false, error: reason(error) };
  }
}

/**
 * Everything preflight reads. The rollout's state is the reconciler's own observation and plan
 * (observeWithSecret, plan, buildStatus: what `status` shows); NewInstancesProtectedFromScaleIn,
 * which the observation does not keep, comes from observe's observeGroups. The rest are reads only
 * preflight makes. Read-only: Describe/Get/List calls and Buildkite GETs, nothing that changes state.
 */
export async function gatherPreflight(ctx: OperatorContext): Promise<PreflightFacts> {
  const { config } = ctx;
  const primary = config.secret.region;
  const deps = ctx.statusDeps();
  const observed = await attempt(async (): Promise<Observed> => {
    const { observation, secret } = await observeWithSecret(deps);
    const report = buildStatus(config, observation, plan(observation, planSettings(config)), secret);
    return { observation, secret, report };
  });
  const groups = await attempt(() => observeGroups(ctx));
  const newInstancesProtected = new Map<string, boolean>(
    groups.ok
      ? groups.value.targets.map((t) => [
          `${t.region}:${t.groupName}`,
          t.raw?.NewInstancesProtectedFromScaleIn === true,
        ])
      : [],
  );
  const identity = await attempt(async () => {
    const who = await ctx.sts(primary).send(new GetCallerIdentityCommand({}));
    return { arn: who.Arn, account: who.Account };
  });
  const apiTokenSecret = await attempt(async () => {
    await apiTokenLoaderForArn(ctx.secrets, config.buildkite.apiTokenSecretArn)();
    return true as const;
  });
  const scopes = apiTokenSecret.ok
    ? await attempt(async () => (await ctx.buildkite.accessToken()).scopes)
    : undefined;
  // In place, every region with a target group needs the install document.
  const documents = new Map<string, Read<true>>();
  if (config.strategy !== "refresh" && observed.ok) {
    const regions = new Set(observed.value.observation.targets.filter((t) => t.exists).map((t) => t.region));
    for (const region of regions) {
      documents.set(
        region,
        await attempt(async () => {
          await ctx.ssm(region).send(new DescribeDocumentCommand({ Name: config.inPlace.documentName }));
          return true as const;
        }),
      );
    }
  }
  const resourcePolicy =
    config.stacks.length > 0
      ? await attempt(async () => {
          const out = await ctx
            .secrets(primary)
            .send(new GetResourcePolicyCommand({ SecretId: config.secret.arn }));
          return out.ResourcePolicy ? (JSON.parse(out.ResourcePolicy) as PolicyDocument) : undefined;
        })
      : undefined;
  const stacks = [];
  for (const s of config.stacks) stacks.push(await readStack(ctx, s.region, s.stackName));
  const topicArn = config.alertTopicArn;
  const alertTopic = topicArn
    ? await attempt(async () => {
        await ctx
          .sns(topicArn.split(":")[3] ?? primary)
          .send(new GetTopicAttributesCommand({ TopicArn: topicArn }));
        return true as const;
      })
    : undefined;
  return {
    config,
    source: ctx.source,
    now: deps.now(),
    identity,
    observed,
    newInstancesProtected,
    apiTokenSecret,
    scopes,
    documents,
    stacks,
    resourcePolicy,
    alertTopic,
  };
}

/** Every check, in a stable order, and the plan. Read-only: never calls anything that changes state. */
export async function runPreflight(ctx: OperatorContext): Promise<PreflightResult> {
  const facts = await gatherPreflight(ctx);
  const report = facts.observed.ok ? facts.observed.value.report : undefined;
  return { checks: preflightChecks(facts), plan: report?.next, report };
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

const LEVEL_COLOR = { PASS: "green", WARN: "yellow", FAIL: "red" } as const satisfies Record<Level, string>;

export function renderPreflight(result: PreflightResult, color = false): string {
  const paint = painter(color);
  const level = (l: Level) => paint(l, LEVEL_COLOR[l]);
  const lines = result.checks.map((c) => `${level(c.level)} ${c.name}: ${c.detail}`);
  lines.push("", "Plan (what reconcile would do next; nothing was changed):");
  for (const n of result.plan ?? ["unknown: the rollout could not be observed"]) lines.push(`  - ${n}`);
  const count = (l: Level) => result.checks.filter((c) => c.level === l).length;
  lines.push("", `preflight: ${count("PASS")} passed, ${count("WARN")} warning(s), ${count("FAIL")} failed`);
  return `${lines.join("\n")}\n`;
}

export const preflightCommand: CommandRunner = operatorCommand(OPTIONS, HELP, async (ctx, _values, io) => {
  const result = await runPreflight(ctx);
  io.stdout.write(renderPreflight(result, useColor(io.stdout, io.env)));
  return result.checks.some((c) => c.level === "FAIL") ? 1 : 0;
});

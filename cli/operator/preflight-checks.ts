import type { ReconcileConfig } from "../../shared/lib/config";
import { duration } from "../../shared/lib/terminal";
import { ACTIVE_REFRESH } from "../../shared/rollout/plan";
import { tokenParameterName } from "../../shared/rollout/settings";
import type { StatusReport } from "../../shared/rollout/status";
import type { Observation, TargetObservation } from "../../shared/rollout/types";
import type { SecretState } from "../../shared/secrets/describe";
import { blockedAdvice } from "./render/advice";
import { type PolicyDocument, type StackFacts, stackChecks } from "./stack-checks";

/**
 * Preflight's checks as a pure function of what was read: the reconciler's own observation (the
 * same observe() and plan() a reconcile run makes, so preflight and reconcile cannot disagree on
 * what a group, a replica or a token is) plus the few reads only preflight needs (identity, the
 * API token's scopes, install documents, stacks and their policies, the alert topic). No clock
 * (`now` is a fact), no I/O: every check is table-testable, PASS, WARN and FAIL.
 */

export type Level = "PASS" | "WARN" | "FAIL";

export interface Check {
  level: Level;
  name: string;
  detail: string;
}

/** A read that may have failed; `error` is a short, safe reason ("Name: message"). */
export type Read<T> = { ok: true; value: T } | { ok: false; error: string };

/** What the reconciler observes and plans, as `status` shows it. */
export interface Observed {
  observation: Observation;
  secret: SecretState;
  report: StatusReport;
}

export interface PreflightFacts {
  config: ReconcileConfig;
  /** Where the configuration came from (`function <arn>` or `environment`). */
  source: string;
  now: Date;
  identity: Read<{ arn: string | undefined; account: string | undefined }>;
  /** The reconciler's observation and plan; failed when the secret or the tokens could not be read. */
  observed: Read<Observed>;
  /** NewInstancesProtectedFromScaleIn of each existing target group (`region:name`), from observeGroups. */
  newInstancesProtected: ReadonlyMap<string, boolean>;
  apiTokenSecret: Read<true>;
  /** The API token's scopes; undefined when not asked (the API token could not be read). */
  scopes: Read<string[]> | undefined;
  /** DescribeDocument of the install document, per region with target groups (in place only). */
  documents: ReadonlyMap<string, Read<true>>;
  /** Each target stack's parameters and policies (groups are joined from the observation). */
  stacks: Array<Omit<StackFacts, "groups">>;
  /** The secret's resource policy; undefined when not read (no target stack). */
  resourcePolicy: Read<PolicyDocument | undefined> | undefined;
  /** GetTopicAttributes of ALERT_TOPIC_ARN; undefined when it is not set. */
  alertTopic: Read<true> | undefined;
}

const REQUIRED_SCOPES = ["read_clusters", "write_clusters"] as const;
/** IN_PLACE_FALLBACK=terminate lists agents and stops them gracefully. */
const TERMINATE_SCOPES = ["read_agents", "write_agents"] as const;
const HOUR_MS = 3_600_000;

/** Every check, in a stable order. */
export function preflightChecks(facts: PreflightFacts): Check[] {
  const { config } = facts;
  const checks: Check[] = [];
  const add = (level: Level, name: string, detail: string) => checks.push({ level, name, detail });

  add(
    "PASS",
    "configuration",
    `from ${facts.source}: secret ${config.secret.name}, strategy ${config.strategy}${config.strategy === "in-place" ? ` (fallback ${config.inPlace.fallback} after ${duration(config.inPlace.fallbackAfterSeconds)})` : ""}, ${config.targets.length} target group(s) (${config.targets.map((t) => `${t.region}:${t.groupName}`).join(", ") || "none"}), ${config.stacks.length} target stack(s) (${config.stacks.map((t) => `${t.region}:${t.stackName}`).join(", ") || "none"}), replica regions: ${config.replicaRegions.join(", ") || "none"}`,
  );
  identityCheck(facts, add);
  const observed = facts.observed.ok ? facts.observed.value : undefined;
  if (!facts.observed.ok) {
    add(
      "FAIL",
      "secret",
      `cannot observe the rotation (secret ${config.secret.arn}): ${facts.observed.error}`,
    );
  }
  if (observed) secretChecks(facts, observed, add);
  apiTokenChecks(facts, observed, add);
  if (observed) {
    for (const t of observed.observation.targets) groupChecks(facts, t, add);
    stackCheckLines(facts, observed, add);
  }

  const p = config.refresh;
  add(
    "PASS",
    "refresh preferences",
    `min healthy ${p.minHealthyPercentage}%, max healthy ${p.maxHealthyPercentage === undefined ? "default" : `${p.maxHealthyPercentage}%`}, warmup ${p.instanceWarmupSeconds === undefined ? "default" : `${p.instanceWarmupSeconds}s`}, protected instances ${p.scaleInProtectedInstances}, SkipMatching false; rollout budget ${duration(config.maxRolloutSeconds)}`,
  );
  if (!config.alertTopicArn || !facts.alertTopic) {
    add("WARN", "alerts", "ALERT_TOPIC_ARN is not set: a blocked rollout raises no alert");
  } else if (facts.alertTopic.ok) {
    add("PASS", "alerts", `topic ${config.alertTopicArn} exists`);
  } else {
    add("WARN", "alerts", `cannot GetTopicAttributes on ${config.alertTopicArn}: ${facts.alertTopic.error}`);
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

  if (!observed) {
    add("FAIL", "plan", "could not observe the rollout: see the secret check");
  } else if (observed.report.waitingFor.includes("operator")) {
    for (const b of blockedAdvice(observed.report)) add("WARN", "rollout blocked", b);
  }
  return checks;
}

type Add = (level: Level, name: string, detail: string) => void;

function identityCheck(facts: PreflightFacts, add: Add): void {
  if (!facts.identity.ok) {
    add("FAIL", "identity", `no usable AWS credentials: ${facts.identity.error}`);
    return;
  }
  const who = facts.identity.value;
  const sameAccount = who.account === facts.config.secret.account;
  add(
    sameAccount ? "PASS" : "WARN",
    "identity",
    `checking as ${who.arn ?? "?"} (account ${who.account ?? "?"})${sameAccount ? "" : `; the secret is in account ${facts.config.secret.account}: a cross-account check shows your access, not the functions'`}`,
  );
}

/** The secret, its rotation settings, and every replica region serving its current version. */
function secretChecks(facts: PreflightFacts, { observation, secret }: Observed, add: Add): void {
  const { config } = facts;
  const current = secret.current;
  const name = secret.name ?? config.secret.name;
  add(
    current ? "PASS" : "FAIL",
    "secret",
    current
      ? `readable: ${name}, current version ${current} (${Object.keys(secret.stages).length} labelled version(s))`
      : `${name} has no AWSCURRENT version`,
  );
  const rules = secret.rotationRules;
  const schedule =
    rules?.scheduleExpression ??
    (rules?.automaticallyAfterDays ? `every ${rules.automaticallyAfterDays} days` : undefined);
  if (!secret.rotationEnabled) {
    add(
      "FAIL",
      "rotation",
      "not enabled on the secret: deploy the stack's rotation schedule (or aws secretsmanager rotate-secret --rotation-lambda-arn … --rotation-rules …)",
    );
  } else if (!schedule) {
    add("FAIL", "rotation", "enabled but without a schedule (RotationRules)");
  } else if (!secret.rotationLambdaArn) {
    add("FAIL", "rotation", `schedule ${schedule} but no rotation function`);
  } else {
    const next = secret.nextRotationDate;
    const late = next ? facts.now.getTime() - next.getTime() : 0;
    const overdue = next !== undefined && late > HOUR_MS;
    add(
      overdue ? "WARN" : "PASS",
      "rotation",
      `enabled, ${schedule}, function ${secret.rotationLambdaArn}; next ${next ? next.toISOString() : "unknown"}${overdue ? ` — OVERDUE by ${duration(late / 1000)}: check the rotate-token function's logs` : ""}`,
    );
  }
  if (secret.pending) {
    add(
      "WARN",
      "rotation pending",
      `version ${secret.pending} holds AWSPENDING: a rotation is under way (or stuck: see the rotate-token function's logs); rotate refuses to start another`,
    );
  }

  // A replica the configuration does not list is still watched by reconcile, but groups there
  // cannot be targets until REPLICA_REGIONS names it.
  const unlisted = secret.replication
    .map((r) => r.region)
    .filter((region) => region && region !== config.secret.region && !config.replicaRegions.includes(region));
  if (unlisted.length > 0) {
    add(
      "WARN",
      "replica regions",
      `Secrets Manager also replicates to ${unlisted.join(", ")}, which REPLICA_REGIONS does not list: reconcile waits for ${unlisted.length === 1 ? "it" : "them"} before revoking, but no group there can be a target until it is listed`,
    );
  }

  for (const region of config.replicaRegions) {
    const r = observation.replicas.find((x) => x.region === region);
    if (!r || r.error) {
      add("FAIL", `replica ${region}`, r?.error?.message ?? `not observed in ${region}`);
    } else if (r.current && r.current === current) {
      add("PASS", `replica ${region}`, `serves the current version ${r.current}`);
    } else {
      add(
        r.replicationStatus === "Failed" ? "FAIL" : "WARN",
        `replica ${region}`,
        `serves ${r.current ?? "no version"}, not the current ${current ?? "?"} (replication ${r.replicationStatus ?? "status unknown"}${r.statusMessage ? `: ${r.statusMessage}` : ""})`,
      );
    }
  }
}

/** The Buildkite API token: readable, scoped, and able to list the cluster's tokens. */
function apiTokenChecks(facts: PreflightFacts, observed: Observed | undefined, add: Add): void {
  const { config } = facts;
  if (!facts.apiTokenSecret.ok) {
    add(
      "FAIL",
      "api token secret",
      `cannot read ${config.buildkite.apiTokenSecretArn}: ${facts.apiTokenSecret.error}`,
    );
    add("FAIL", "api token scopes", "not checked: the API token could not be read");
    return;
  }
  add("PASS", "api token secret", `readable: ${config.buildkite.apiTokenSecretArn}`);
  if (!facts.scopes) {
    add("FAIL", "api token scopes", "not checked: the API token could not be read");
  } else if (!facts.scopes.ok) {
    add("FAIL", "api token scopes", `cannot ask Buildkite for the token's scopes: ${facts.scopes.error}`);
  } else {
    const scopes = facts.scopes.value;
    const required: readonly string[] =
      config.inPlace.fallback === "terminate" ? [...REQUIRED_SCOPES, ...TERMINATE_SCOPES] : REQUIRED_SCOPES;
    const missing = required.filter((s) => !scopes.includes(s));
    add(
      missing.length === 0 ? "PASS" : "FAIL",
      "api token scopes",
      missing.length === 0
        ? `has ${required.join(", ")}`
        : `missing ${missing.join(" and ")} (read_clusters lists tokens; write_clusters creates and revokes them; read_agents and write_agents find and stop agents for IN_PLACE_FALLBACK=terminate); the token has: ${scopes.join(", ") || "no scopes"}`,
    );
  }
  if (!observed) {
    add("FAIL", "cluster tokens", "cannot list the cluster's tokens: the rotation could not be observed");
    return;
  }
  const tokens = observed.observation.tokens;
  const managed = tokens.filter((t) => t.versionId !== undefined);
  add(
    "PASS",
    "cluster tokens",
    `${tokens.length} token(s) in cluster ${config.buildkite.clusterId} of ${config.buildkite.organization}: ${managed.length} created by this project, ${tokens.length - managed.length} not`,
  );
  const current = observed.secret.current;
  if (current && !managed.some((t) => t.versionId === current)) {
    add(
      "WARN",
      "current token",
      `the current version ${current} has no token created by this project (the initial token, or set by hand): the next rotation rolls out normally; revoke the old token by hand in Buildkite once that rollout is complete`,
    );
  }
}

/** One target group: it exists, its protection against the refresh setting, in place: document and SSM. */
function groupChecks(facts: PreflightFacts, t: TargetObservation, add: Add): void {
  const { config } = facts;
  const where = `${t.region}:${t.groupName}`;
  if (t.error) {
    add("FAIL", `group ${where}`, `cannot observe the group in ${t.region}: ${t.error.message}`);
    return;
  }
  if (!t.exists) {
    add(
      "FAIL",
      `group ${where}`,
      `not found in ${t.region}: fix TARGET_GROUPS, or target the stack by name (TARGET_STACKS)`,
    );
    return;
  }
  const newProtected = facts.newInstancesProtected.get(where) === true;
  const protectedCount = t.members.filter((m) => m.protectedFromScaleIn).length;
  const allProtected = newProtected || (t.members.length > 0 && protectedCount === t.members.length);
  const seen = `${t.members.length} instance(s), ${protectedCount} protected from scale-in${newProtected ? " (new instances are protected)" : ""}`;
  const setting = config.refresh.scaleInProtectedInstances;
  if (config.strategy !== "refresh") {
    add(
      "PASS",
      `group ${where}`,
      `${seen}; in-place rollout: instances are updated over Run Command, none is replaced`,
    );
    inPlaceChecks(facts, t, where, add);
  } else if (setting === "Wait" && allProtected) {
    add(
      "FAIL",
      `group ${where}`,
      `${seen}; REFRESH_SCALE_IN_PROTECTED_INSTANCES=Wait on a group whose instances are all protected (the Elastic CI Stack's default): AWS waits an hour for protection to be removed, nothing removes it, and the refresh fails. Choose ROLLOUT_STRATEGY=in-place (recommended: no instance replaced, no job interrupted), Refresh (replaces busy instances and interrupts their jobs) or Ignore (replaces nothing protected: the old token cannot be revoked)`,
    );
  } else if (setting === "Ignore") {
    add(
      "WARN",
      `group ${where}`,
      `${seen}; REFRESH_SCALE_IN_PROTECTED_INSTANCES=Ignore: protected instances are not replaced, so the old token is never revoked while they run`,
    );
  } else if (setting === "Refresh" && protectedCount > 0) {
    add(
      "WARN",
      `group ${where}`,
      `${seen}; REFRESH_SCALE_IN_PROTECTED_INSTANCES=Refresh: busy instances are replaced anyway and their jobs are interrupted (ROLLOUT_STRATEGY=in-place interrupts nothing)`,
    );
  } else {
    add("PASS", `group ${where}`, `${seen}; protected instances: ${setting}`);
  }
  // observe() reads a group's refreshes whenever the rollout may start one (the refresh strategy or
  // fallback); in place without that fallback no refresh is started, so none is waited for.
  if (config.strategy === "refresh" || config.inPlace.fallback === "refresh") {
    const active = t.refreshes.find((r) => ACTIVE_REFRESH.has(r.status));
    if (active) {
      const ours = t.marker?.refreshId === active.id;
      add(
        "WARN",
        `refresh ${where}`,
        `${active.id} is ${active.status} (${active.percentageComplete ?? 0}%)${ours ? `, started by this project for version ${t.marker?.versionId}` : ", not started by this project: reconcile waits for it"}`,
      );
    } else {
      add("PASS", `refresh ${where}`, "none running");
    }
  }
}

/** In place needs the install document in the region and reachable SSM agents. */
function inPlaceChecks(facts: PreflightFacts, t: TargetObservation, where: string, add: Add): void {
  const { inPlace } = facts.config;
  const document = facts.documents.get(t.region);
  if (document?.ok) {
    add("PASS", `document ${where}`, `${inPlace.documentName} exists in ${t.region}`);
  } else {
    add(
      "FAIL",
      `document ${where}`,
      `cannot DescribeDocument ${inPlace.documentName} in ${t.region} (${document?.error ?? "not read"}): deploy this project's stack (primary region) or its forwarder stack (infra/forwarder.yaml) in ${t.region}`,
    );
  }
  const offline = t.members.filter((m) => m.ssmPing !== "Online").map((m) => m.instanceId);
  add(
    offline.length === 0 ? "PASS" : "WARN",
    `ssm ${where}`,
    offline.length === 0
      ? `${t.members.length} instance(s), every SSM agent Online`
      : `${offline.length} of ${t.members.length} instance(s) not Online in SSM (${offline.slice(0, 10).join(", ")}): they get IN_PLACE_FALLBACK=${inPlace.fallback} after ${duration(inPlace.fallbackAfterSeconds)} (an InstanceRoleARN of your own needs the Systems Manager permissions)`,
  );
}

/** Each target stack's checks (stack-checks.ts), with its groups as the observation found them. */
function stackCheckLines(facts: PreflightFacts, { observation, secret }: Observed, add: Add): void {
  if (facts.resourcePolicy && !facts.resourcePolicy.ok) {
    add(
      "WARN",
      "secret resource policy",
      `cannot GetResourcePolicy: ${facts.resourcePolicy.error}; the stacks' access is not verified`,
    );
  }
  const resourcePolicy = facts.resourcePolicy?.ok ? facts.resourcePolicy.value : undefined;
  const customerKey =
    secret.kmsKeyId && !/alias\/aws\/secretsmanager$/.test(secret.kmsKeyId) ? secret.kmsKeyId : undefined;
  for (const s of facts.stacks) {
    const groups = observation.targets
      .filter((t) => t.stackName === s.stackName && t.region === s.region && t.exists)
      .map((t) => ({
        name: t.groupName,
        instances: t.members.length,
        protectedInstances: t.members.filter((m) => m.protectedFromScaleIn).length,
        newInstancesProtected: facts.newInstancesProtected.get(`${t.region}:${t.groupName}`) === true,
      }));
    for (const c of stackChecks(
      { ...s, groups },
      {
        arn: facts.config.secret.arn,
        parameterPath: tokenParameterName(facts.config),
        customerKey,
        resourcePolicy,
      },
    )) {
      add(c.level, c.name, c.detail);
    }
  }
}

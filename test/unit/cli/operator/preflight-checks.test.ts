import { describe, expect, it } from "vitest";
import {
  type Check,
  type Observed,
  type PreflightFacts,
  preflightChecks,
} from "../../../../cli/operator/preflight-checks";
import { loadReconcileConfig, type ReconcileConfig } from "../../../../shared/lib/config";
import { plan } from "../../../../shared/rollout/plan";
import { planSettings } from "../../../../shared/rollout/settings";
import { buildStatus } from "../../../../shared/rollout/status";
import type { Observation } from "../../../../shared/rollout/types";
import type { SecretState } from "../../../../shared/secrets/describe";
import {
  ARN,
  member,
  NOW,
  observation,
  ours,
  reconcileEnv,
  refresh,
  target,
  token,
  V1,
  V2,
  V3,
} from "../../../support/rollout-fixtures";

const baseConfig = loadReconcileConfig(reconcileEnv());
const refreshConfig = (setting: "Wait" | "Refresh" | "Ignore"): ReconcileConfig => ({
  ...baseConfig,
  strategy: "refresh",
  refresh: { ...baseConfig.refresh, scaleInProtectedInstances: setting },
});

function secretState(over: Partial<SecretState> = {}): SecretState {
  return {
    arn: ARN,
    name: "bk/agent-token",
    rotationEnabled: true,
    stages: { [V2]: ["AWSCURRENT"], [V1]: ["AWSPREVIOUS"] },
    current: V2,
    pending: undefined,
    lastRotatedDate: new Date(NOW.getTime() - 300_000),
    nextRotationDate: new Date(NOW.getTime() + 30 * 86_400_000),
    rotationRules: { scheduleExpression: "rate(30 days)" },
    replication: [{ region: "eu-west-1", status: "InSync", message: undefined }],
    rotationLambdaArn: "arn:aws:lambda:us-east-1:123456789012:function:rotate-token",
    kmsKeyId: undefined,
    ...over,
  };
}

function observed(
  config: ReconcileConfig,
  obs: Observation = observation(),
  secret: SecretState = secretState(),
): Observed {
  return {
    observation: obs,
    secret,
    report: buildStatus(config, obs, plan(obs, planSettings(config)), secret),
  };
}

/** Everything fine for the default in-place configuration: two groups, one replica, scoped token. */
function facts(over: Partial<PreflightFacts> = {}): PreflightFacts {
  const config = over.config ?? baseConfig;
  return {
    config,
    source: "environment",
    now: NOW,
    identity: { ok: true, value: { arn: "arn:aws:iam::123456789012:user/op", account: "123456789012" } },
    observed: { ok: true, value: observed(config) },
    newInstancesProtected: new Map([
      ["us-east-1:ci-a", false],
      ["eu-west-1:ci-b", false],
    ]),
    apiTokenSecret: { ok: true, value: true },
    scopes: { ok: true, value: ["read_clusters", "write_clusters"] },
    documents: new Map([
      ["us-east-1", { ok: true, value: true }],
      ["eu-west-1", { ok: true, value: true }],
    ]),
    stacks: [],
    resourcePolicy: undefined,
    alertTopic: undefined,
    ...over,
  };
}

const find = (checks: Check[], name: string) => checks.filter((c) => c.name === name);
const one = (checks: Check[], name: string): Check => {
  const found = find(checks, name);
  expect(found, `one check named ${name}`).toHaveLength(1);
  return found[0] as Check;
};

describe("preflightChecks: everything fine", () => {
  it("passes every check but the two it cannot verify and the unset alert topic, in a stable order", () => {
    const checks = preflightChecks(facts());
    expect(checks.filter((c) => c.level === "FAIL")).toEqual([]);
    expect(checks.filter((c) => c.level === "WARN").map((c) => c.name)).toEqual([
      "alerts",
      "iam reconcile",
      "iam rotate",
    ]);
    expect(checks.map((c) => c.name)).toEqual([
      "configuration",
      "identity",
      "secret",
      "rotation",
      "replica eu-west-1",
      "api token secret",
      "api token scopes",
      "cluster tokens",
      "group us-east-1:ci-a",
      "document us-east-1:ci-a",
      "ssm us-east-1:ci-a",
      "group eu-west-1:ci-b",
      "document eu-west-1:ci-b",
      "ssm eu-west-1:ci-b",
      "refresh preferences",
      "alerts",
      "iam reconcile",
      "iam rotate",
    ]);
    expect(one(checks, "configuration").detail).toMatch(
      /^from environment: secret bk\/agent-token, strategy in-place \(fallback alert after 30m\), 2 target group\(s\)/,
    );
  });
});

describe("preflightChecks: identity", () => {
  it("PASS in the secret's account, WARN in another, FAIL without credentials", () => {
    expect(one(preflightChecks(facts()), "identity").level).toBe("PASS");
    const other = one(
      preflightChecks(facts({ identity: { ok: true, value: { arn: "arn:x", account: "999999999999" } } })),
      "identity",
    );
    expect(other.level).toBe("WARN");
    expect(other.detail).toContain("the secret is in account 123456789012");
    const none = one(
      preflightChecks(facts({ identity: { ok: false, error: "CredentialsProviderError: none" } })),
      "identity",
    );
    expect(none).toMatchObject({
      level: "FAIL",
      detail: "no usable AWS credentials: CredentialsProviderError: none",
    });
  });
});

describe("preflightChecks: the secret and its rotation", () => {
  const withSecret = (over: Partial<SecretState>, obs: Observation = observation()) =>
    preflightChecks(facts({ observed: { ok: true, value: observed(baseConfig, obs, secretState(over)) } }));

  it("FAILs the secret without AWSCURRENT, and when the rotation cannot be observed at all", () => {
    const noCurrent = withSecret({ current: undefined, stages: { [V1]: ["AWSPREVIOUS"] } });
    expect(one(noCurrent, "secret")).toMatchObject({
      level: "FAIL",
      detail: "bk/agent-token has no AWSCURRENT version",
    });
    const failed = preflightChecks(facts({ observed: { ok: false, error: "AccessDeniedException: no" } }));
    expect(one(failed, "secret").level).toBe("FAIL");
    expect(one(failed, "secret").detail).toContain("AccessDeniedException: no");
    expect(one(failed, "cluster tokens").level).toBe("FAIL");
    expect(one(failed, "plan").level).toBe("FAIL");
    expect(find(failed, "group us-east-1:ci-a")).toEqual([]);
  });

  it("PASSes a readable secret with its current version and label count", () => {
    expect(one(withSecret({}), "secret").detail).toBe(
      `readable: bk/agent-token, current version ${V2} (2 labelled version(s))`,
    );
  });

  it("FAILs rotation disabled, without a schedule or without a function; WARNs overdue; PASSes on schedule", () => {
    expect(one(withSecret({ rotationEnabled: false }), "rotation").level).toBe("FAIL");
    expect(one(withSecret({ rotationRules: undefined }), "rotation")).toMatchObject({
      level: "FAIL",
      detail: "enabled but without a schedule (RotationRules)",
    });
    expect(one(withSecret({ rotationLambdaArn: undefined }), "rotation")).toMatchObject({
      level: "FAIL",
      detail: "schedule rate(30 days) but no rotation function",
    });
    const overdue = one(
      withSecret({ nextRotationDate: new Date(NOW.getTime() - 2 * 3_600_000) }),
      "rotation",
    );
    expect(overdue.level).toBe("WARN");
    expect(overdue.detail).toContain("OVERDUE by 2h");
    // Less than an hour late is not overdue yet.
    expect(one(withSecret({ nextRotationDate: new Date(NOW.getTime() - 60_000) }), "rotation").level).toBe(
      "PASS",
    );
    expect(one(withSecret({ rotationRules: { automaticallyAfterDays: 7 } }), "rotation").detail).toMatch(
      /^enabled, every 7 days, function arn:aws:lambda:/,
    );
  });

  it("WARNs a pending rotation and a replica region the configuration does not list", () => {
    const checks = withSecret({
      pending: V3,
      replication: [
        { region: "eu-west-1", status: "InSync", message: undefined },
        { region: "ap-south-1", status: "InSync", message: undefined },
      ],
    });
    expect(one(checks, "rotation pending")).toMatchObject({ level: "WARN" });
    expect(one(checks, "rotation pending").detail).toContain(`version ${V3} holds AWSPENDING`);
    const unlisted = one(checks, "replica regions");
    expect(unlisted.level).toBe("WARN");
    expect(unlisted.detail).toContain("ap-south-1");
    expect(unlisted.detail).not.toContain("eu-west-1");
  });

  it("replicas: PASS serving the current version, WARN lagging, FAIL replication failed or unobservable", () => {
    const replica = (over: Partial<Observation["replicas"][number]>) =>
      one(
        withSecret(
          {},
          observation({
            replicas: [
              {
                region: "eu-west-1",
                current: V2,
                replicationStatus: "InSync",
                statusMessage: undefined,
                error: undefined,
                ...over,
              },
            ],
          }),
        ),
        "replica eu-west-1",
      );
    expect(replica({}).level).toBe("PASS");
    const lagging = replica({ current: V1 });
    expect(lagging.level).toBe("WARN");
    expect(lagging.detail).toBe(`serves ${V1}, not the current ${V2} (replication InSync)`);
    expect(replica({ current: V1, replicationStatus: "Failed", statusMessage: "KMS key" })).toMatchObject({
      level: "FAIL",
      detail: `serves ${V1}, not the current ${V2} (replication Failed: KMS key)`,
    });
    expect(
      replica({
        current: undefined,
        error: { message: "no replica of the secret exists in eu-west-1", definitive: true },
      }),
    ).toMatchObject({ level: "FAIL", detail: "no replica of the secret exists in eu-west-1" });
  });
});

describe("preflightChecks: the Buildkite API token", () => {
  it("FAILs an unreadable API token secret, and does not check its scopes", () => {
    const checks = preflightChecks(
      facts({ apiTokenSecret: { ok: false, error: "AccessDeniedException: denied" }, scopes: undefined }),
    );
    expect(one(checks, "api token secret").level).toBe("FAIL");
    expect(one(checks, "api token scopes")).toMatchObject({
      level: "FAIL",
      detail: "not checked: the API token could not be read",
    });
  });

  it("FAILs missing scopes (the agent scopes only for the terminate fallback) and an unanswered scope question", () => {
    const missing = one(
      preflightChecks(facts({ scopes: { ok: true, value: ["read_clusters"] } })),
      "api token scopes",
    );
    expect(missing.level).toBe("FAIL");
    expect(missing.detail).toMatch(/^missing write_clusters .*the token has: read_clusters$/);
    const terminate: ReconcileConfig = {
      ...baseConfig,
      inPlace: { ...baseConfig.inPlace, fallback: "terminate" },
    };
    const agents = one(
      preflightChecks(facts({ config: terminate, observed: { ok: true, value: observed(terminate) } })),
      "api token scopes",
    );
    expect(agents.level).toBe("FAIL");
    expect(agents.detail).toMatch(/^missing read_agents and write_agents/);
    expect(
      one(
        preflightChecks(facts({ scopes: { ok: false, error: "BuildkiteApiError: 401" } })),
        "api token scopes",
      ),
    ).toMatchObject({
      level: "FAIL",
      detail: "cannot ask Buildkite for the token's scopes: BuildkiteApiError: 401",
    });
  });

  it("counts the cluster's tokens, and WARNs a current version without a token of this project's", () => {
    const counted = one(preflightChecks(facts()), "cluster tokens");
    expect(counted.level).toBe("PASS");
    expect(counted.detail).toMatch(/2 token\(s\) in cluster .* of acme: 2 created by this project, 0 not$/);
    const initial = observation({ tokens: [token("t0")] });
    const checks = preflightChecks(facts({ observed: { ok: true, value: observed(baseConfig, initial) } }));
    expect(one(checks, "current token").level).toBe("WARN");
    expect(one(checks, "cluster tokens").detail).toMatch(/0 created by this project, 1 not$/);
  });
});

describe("preflightChecks: groups", () => {
  const withTargets = (config: ReconcileConfig, targets: Observation["targets"], protectedNew = false) =>
    preflightChecks(
      facts({
        config,
        observed: { ok: true, value: observed(config, observation({ targets })) },
        newInstancesProtected: new Map(targets.map((t) => [`${t.region}:${t.groupName}`, protectedNew])),
      }),
    );

  it("FAILs a group that cannot be observed or does not exist", () => {
    const checks = withTargets(baseConfig, [
      target("us-east-1", "ci-a", { error: { message: "AccessDenied: no", definitive: true }, members: [] }),
      target("eu-west-1", "ci-b", { exists: false, members: [] }),
    ]);
    expect(one(checks, "group us-east-1:ci-a")).toMatchObject({
      level: "FAIL",
      detail: "cannot observe the group in us-east-1: AccessDenied: no",
    });
    expect(one(checks, "group eu-west-1:ci-b").level).toBe("FAIL");
    expect(one(checks, "group eu-west-1:ci-b").detail).toMatch(/^not found in eu-west-1: fix TARGET_GROUPS/);
  });

  it("in place: PASS the group; the install document PASS or FAIL; SSM agents PASS or WARN", () => {
    const offline = target("us-east-1", "ci-a", {
      members: [
        member("i-1"),
        member("i-2", { ssmPing: "ConnectionLost" }),
        member("i-3", { ssmPing: "Unregistered" }),
      ],
    });
    const checks = preflightChecks(
      facts({
        observed: {
          ok: true,
          value: observed(baseConfig, observation({ targets: [offline, target("eu-west-1", "ci-b")] })),
        },
        documents: new Map([
          ["us-east-1", { ok: true, value: true }],
          ["eu-west-1", { ok: false, error: "InvalidDocument: not found" }],
        ]),
      }),
    );
    expect(one(checks, "group us-east-1:ci-a").detail).toMatch(/in-place rollout: .* none is replaced$/);
    expect(one(checks, "document us-east-1:ci-a").level).toBe("PASS");
    const missingDoc = one(checks, "document eu-west-1:ci-b");
    expect(missingDoc.level).toBe("FAIL");
    expect(missingDoc.detail).toContain("InvalidDocument: not found");
    expect(missingDoc.detail).toContain("infra/forwarder.yaml");
    const ssm = one(checks, "ssm us-east-1:ci-a");
    expect(ssm.level).toBe("WARN");
    expect(ssm.detail).toMatch(
      /^2 of 3 instance\(s\) not Online in SSM \(i-2, i-3\): they get IN_PLACE_FALLBACK=alert/,
    );
    expect(one(checks, "ssm eu-west-1:ci-b")).toMatchObject({
      level: "PASS",
      detail: "2 instance(s), every SSM agent Online",
    });
    expect(find(checks, "refresh us-east-1:ci-a")).toEqual([]);
  });

  it("refresh with Wait: FAIL when every instance (or every new one) is protected, PASS otherwise", () => {
    const wait = refreshConfig("Wait");
    const allProtected = withTargets(wait, [target("us-east-1", "ci-a")]);
    expect(one(allProtected, "group us-east-1:ci-a").level).toBe("FAIL");
    expect(one(allProtected, "group us-east-1:ci-a").detail).toMatch(/in-place .*Refresh .*Ignore/);
    // Scaled to zero, but every instance it launches will be protected (the stock stack).
    const empty = withTargets(wait, [target("us-east-1", "ci-a", { members: [] })], true);
    expect(one(empty, "group us-east-1:ci-a").level).toBe("FAIL");
    expect(one(empty, "group us-east-1:ci-a").detail).toContain("(new instances are protected)");
    const unprotected = target("us-east-1", "ci-a", {
      members: [member("i-1", { protectedFromScaleIn: false })],
    });
    expect(one(withTargets(wait, [unprotected]), "group us-east-1:ci-a")).toMatchObject({
      level: "PASS",
      detail: "1 instance(s), 0 protected from scale-in; protected instances: Wait",
    });
  });

  it("refresh with Ignore WARNs always, with Refresh WARNs when instances are protected", () => {
    const ignore = one(
      withTargets(refreshConfig("Ignore"), [target("us-east-1", "ci-a")]),
      "group us-east-1:ci-a",
    );
    expect(ignore.level).toBe("WARN");
    expect(ignore.detail).toContain("the old token is never revoked while they run");
    const refreshing = one(
      withTargets(refreshConfig("Refresh"), [target("us-east-1", "ci-a")]),
      "group us-east-1:ci-a",
    );
    expect(refreshing.level).toBe("WARN");
    expect(refreshing.detail).toContain("their jobs are interrupted");
    const none = target("us-east-1", "ci-a", { members: [member("i-1", { protectedFromScaleIn: false })] });
    expect(one(withTargets(refreshConfig("Refresh"), [none]), "group us-east-1:ci-a").level).toBe("PASS");
  });

  it("refreshes: PASS none running, WARN one running (ours or someone else's)", () => {
    const config = refreshConfig("Refresh");
    const checks = withTargets(config, [
      target("us-east-1", "ci-a", { refreshes: [refresh("r-old", "Successful")] }),
      target("eu-west-1", "ci-b", { refreshes: [refresh("r-other", "InProgress")] }),
      target("eu-west-1", "ci-c", { ...ours(V2, "r-ours", "InProgress") }),
    ]);
    expect(one(checks, "refresh us-east-1:ci-a")).toMatchObject({ level: "PASS", detail: "none running" });
    expect(one(checks, "refresh eu-west-1:ci-b")).toMatchObject({
      level: "WARN",
      detail: "r-other is InProgress (40%), not started by this project: reconcile waits for it",
    });
    expect(one(checks, "refresh eu-west-1:ci-c").detail).toBe(
      `r-ours is InProgress (40%), started by this project for version ${V2}`,
    );
  });
});

describe("preflightChecks: stacks, alerts and the plan", () => {
  it("WARNs an unreadable resource policy and runs the stack checks with the observed groups", () => {
    const config: ReconcileConfig = {
      ...baseConfig,
      targets: [],
      stacks: [{ region: "us-east-1", stackName: "buildkite" }],
    };
    const obs = observation({
      targets: [target("us-east-1", "buildkite-AgentAutoScaleGroup-X", { stackName: "buildkite" })],
    });
    const checks = preflightChecks(
      facts({
        config,
        observed: { ok: true, value: observed(config, obs) },
        newInstancesProtected: new Map([["us-east-1:buildkite-AgentAutoScaleGroup-X", true]]),
        resourcePolicy: { ok: false, error: "AccessDeniedException: no" },
        stacks: [
          {
            region: "us-east-1",
            stackName: "buildkite",
            parameters: {
              BuildkiteAgentTokenParameterStorePath: "/aws/reference/secretsmanager/bk/agent-token",
            },
            error: undefined,
            policies: [],
            instanceRoleArn: undefined,
          },
        ],
      }),
    );
    expect(one(checks, "secret resource policy").level).toBe("WARN");
    expect(one(checks, "stack us-east-1:buildkite token path").level).toBe("PASS");
    expect(one(checks, "stack us-east-1:buildkite read permission").level).toBe("FAIL");
    expect(one(checks, "stack us-east-1:buildkite group buildkite-AgentAutoScaleGroup-X").detail).toBe(
      "linux, 2 instance(s), 2 protected from scale-in (every new instance is protected)",
    );
  });

  it("alerts: WARN unset, PASS an existing topic, WARN one that cannot be read", () => {
    const topic = "arn:aws:sns:us-east-1:123456789012:alerts";
    const config: ReconcileConfig = { ...baseConfig, alertTopicArn: topic };
    expect(one(preflightChecks(facts()), "alerts").detail).toBe(
      "ALERT_TOPIC_ARN is not set: a blocked rollout raises no alert",
    );
    expect(
      one(preflightChecks(facts({ config, alertTopic: { ok: true, value: true } })), "alerts"),
    ).toMatchObject({
      level: "PASS",
      detail: `topic ${topic} exists`,
    });
    expect(
      one(preflightChecks(facts({ config, alertTopic: { ok: false, error: "NotFound: gone" } })), "alerts"),
    ).toMatchObject({ level: "WARN", detail: `cannot GetTopicAttributes on ${topic}: NotFound: gone` });
  });

  it("WARNs what blocks the rollout, in the operator's words", () => {
    const blocked = observation({ targets: [target("us-east-1", "ci-a", { exists: false, members: [] })] });
    const checks = preflightChecks(facts({ observed: { ok: true, value: observed(baseConfig, blocked) } }));
    const lines = find(checks, "rollout blocked");
    expect(lines.map((l) => l.level)).toEqual(["WARN"]);
    expect(lines[0]?.detail).toMatch(/^us-east-1:ci-a: group not found: fix TARGET_GROUPS/);
  });
});

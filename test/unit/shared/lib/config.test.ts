import { describe, expect, it } from "vitest";
import { loadReconcileConfig, loadRotateTokenConfig, secretArnSetting } from "../../../../shared/lib/config";
import { ConfigError } from "../../../../shared/lib/errors";

const SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbC123";
const API_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/api-token-XyZ789";
const base = {
  ROTATION_SECRET_ARN: SECRET,
  BUILDKITE_ORGANIZATION: "acme",
  BUILDKITE_CLUSTER_ID: "e4f44564-d3ea-45eb-87c2-6506643b852a",
  BUILDKITE_API_TOKEN_SECRET_ARN: API_SECRET,
};

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("loadRotateTokenConfig", () => {
  it("parses the contract with defaults", () => {
    const c = loadRotateTokenConfig(base);
    expect(c.secret).toEqual({
      arn: SECRET,
      partition: "aws",
      region: "us-east-1",
      account: "123456789012",
      name: "buildkite/agent-token",
    });
    expect(c.buildkite.apiUrl).toBe("https://api.buildkite.com");
    expect(c.buildkite.agentApiUrl).toBe("https://agent.buildkite.com");
    expect(c.tokenExpirySeconds).toBe(0);
    expect(c.reconcileQueueUrl).toBeUndefined();
  });

  it.each([
    "https://sqs.us-east-1.amazonaws.com/123456789012/bk-rotation-ReconcileQueue-AbC123.fifo",
    "https://queue.amazonaws.com/123456789012/q.fifo",
    "http://127.0.0.1:5000/123456789012/reconcile.fifo",
  ])("accepts the FIFO queue URL %s", (url) => {
    expect(loadRotateTokenConfig({ ...base, RECONCILE_QUEUE_URL: url }).reconcileQueueUrl).toBe(url);
  });

  it.each([
    ["https://sqs.us-east-1.amazonaws.com/123456789012/reconcile", "FIFO queue URL"],
    ["https://sqs.us-east-1.amazonaws.com/reconcile.fifo", "FIFO queue URL"],
    ["https://sqs.us-east-1.amazonaws.com/123456789012/a.b.fifo", "FIFO queue URL"],
    [`https://sqs.us-east-1.amazonaws.com/123456789012/${"q".repeat(76)}.fifo`, "FIFO queue URL"],
    ["https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo?x=1", "FIFO queue URL"],
    ["http://sqs.us-east-1.amazonaws.com/123456789012/q.fifo", "https"],
    ["arn:aws:sqs:us-east-1:123456789012:q.fifo", "https"],
    ["not a url", "SQS queue URL"],
  ])("RECONCILE_QUEUE_URL=%s fails naming the variable", (value, problem) => {
    const e = errorOf(() => loadRotateTokenConfig({ ...base, RECONCILE_QUEUE_URL: value }));
    expect(e.variable).toBe("RECONCILE_QUEUE_URL");
    expect(e.message).toContain(problem);
  });

  it.each([
    ["ROTATION_SECRET_ARN", undefined, "is required"],
    ["ROTATION_SECRET_ARN", "not-an-arn", "Secrets Manager secret ARN"],
    // A partial ARN (no six-character suffix) names no one secret; an unknown partition is no ARN.
    [
      "ROTATION_SECRET_ARN",
      "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token",
      "Secrets Manager secret ARN",
    ],
    [
      "ROTATION_SECRET_ARN",
      "arn:awsx:secretsmanager:us-east-1:123456789012:secret:buildkite/agent-token-AbC123",
      "Secrets Manager secret ARN",
    ],
    [
      "BUILDKITE_API_TOKEN_SECRET_ARN",
      "arn:aws:secretsmanager:us-east-1:123456789012:secret:buildkite/api-token",
      "Secrets Manager secret ARN",
    ],
    ["BUILDKITE_ORGANIZATION", "", "is required"],
    ["BUILDKITE_ORGANIZATION", "Acme Corp", "slug"],
    ["BUILDKITE_CLUSTER_ID", "cluster-1", "UUID"],
    ["BUILDKITE_API_TOKEN_SECRET_ARN", undefined, "is required"],
    ["BUILDKITE_API_URL", "not a url", "absolute URL"],
    ["BUILDKITE_API_URL", "http://api.example.com", "https"],
    ["BUILDKITE_AGENT_API_URL", "ftp://127.0.0.1", "http(s)"],
    ["TOKEN_EXPIRY_SECONDS", "599", "at least 600"],
    ["TOKEN_EXPIRY_SECONDS", "-5", "whole number"],
    ["TOKEN_EXPIRY_SECONDS", "1h", "whole number"],
  ])("%s=%s fails naming the variable", (name, value, problem) => {
    const e = errorOf(() => loadRotateTokenConfig({ ...base, [name]: value }));
    expect(e.variable).toBe(name);
    expect(e.message).toContain(name);
    expect(e.message).toContain(problem);
  });

  it("accepts loopback http, expiry 0 and ≥ 600", () => {
    const c = loadRotateTokenConfig({
      ...base,
      BUILDKITE_API_URL: "http://127.0.0.1:8080/",
      BUILDKITE_AGENT_API_URL: "http://localhost:9",
      TOKEN_EXPIRY_SECONDS: "600",
    });
    expect(c.buildkite.apiUrl).toBe("http://127.0.0.1:8080");
    expect(c.tokenExpirySeconds).toBe(600);
    expect(loadRotateTokenConfig({ ...base, TOKEN_EXPIRY_SECONDS: "0" }).tokenExpirySeconds).toBe(0);
  });

  it("keeps names that end in a dash-and-six suffix intact only once", () => {
    expect(
      secretArnSetting("X", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:a-b-c-Q1w2E3").name,
    ).toBe("a-b-c");
  });
});

describe("loadReconcileConfig", () => {
  const env = {
    ...base,
    REPLICA_REGIONS: "us-west-2, eu-west-1",
    TARGET_GROUPS: "us-east-1:ci-a,us-west-2:ci-b eu-west-1:ci-c",
  };

  it("targets Elastic CI Stacks by name, with in-place as the default strategy", () => {
    const { TARGET_GROUPS: _, ...rest } = env;
    const c = loadReconcileConfig({
      ...rest,
      TARGET_STACKS: "us-east-1:buildkite eu-west-1:bk-arm,us-east-1:buildkite",
    });
    expect(c.targets).toEqual([]);
    expect(c.stacks).toEqual([
      { region: "us-east-1", stackName: "buildkite" },
      { region: "eu-west-1", stackName: "bk-arm" },
    ]);
    expect(c.strategy).toBe("in-place");
    expect(c.inPlace).toEqual({
      documentName: "BuildkiteAgentTokenRotation-InstallAgentToken",
      fallback: "alert",
      fallbackAfterSeconds: 1800,
      retrySeconds: 60,
      deliveryTimeoutSeconds: 300,
      bootGraceSeconds: 600,
    });
    expect(c.clockSkewMs).toBe(1000);
  });

  it("parses targets and refresh preferences", () => {
    const c = loadReconcileConfig(env);
    expect(c.replicaRegions).toEqual(["us-west-2", "eu-west-1"]);
    expect(c.targets).toEqual([
      { region: "us-east-1", groupName: "ci-a" },
      { region: "us-west-2", groupName: "ci-b" },
      { region: "eu-west-1", groupName: "ci-c" },
    ]);
    expect(c.refresh).toEqual({
      minHealthyPercentage: 90,
      maxHealthyPercentage: undefined,
      instanceWarmupSeconds: undefined,
      scaleInProtectedInstances: "Wait",
    });
  });

  it.each([
    ["TARGET_GROUPS", "ap-south-1:ci", "neither the secret's primary region nor one of its replica regions"],
    ["TARGET_GROUPS", "ci-a", "region:auto-scaling-group-name"],
    ["TARGET_STACKS", "", "or TARGET_GROUPS is required"],
    ["TARGET_STACKS", "us-east-1:1bad", "region:stack-name"],
    ["ROLLOUT_STRATEGY", "replace", "in-place or refresh"],
    ["IN_PLACE_FALLBACK", "reboot", "alert, refresh or terminate"],
    ["IN_PLACE_DELIVERY_TIMEOUT_SECONDS", "10", "between 30"],
    ["REPLICA_REGIONS", "mars-1", "not an AWS region"],
    ["REFRESH_SCALE_IN_PROTECTED_INSTANCES", "Always", "Refresh, Ignore or Wait"],
    ["REFRESH_MIN_HEALTHY_PERCENTAGE", "101", "between 0 and 100"],
    ["REFRESH_MAX_HEALTHY_PERCENTAGE", "99", "between 100 and 200"],
    ["ALERT_TOPIC_ARN", "topic", "SNS topic ARN"],
    ["ALERT_TOPIC_ARN", "arn:awsx:sns:us-east-1:123456789012:alerts", "SNS topic ARN"],
    ["MAX_ROLLOUT_SECONDS", "5", "between 60"],
  ])("%s=%s fails naming the variable", (name, value, problem) => {
    // An empty TARGET_STACKS leaves no target at all: drop TARGET_GROUPS too for that case.
    const { TARGET_GROUPS: groups, ...rest } = env;
    const base = name === "TARGET_STACKS" && value === "" ? rest : { ...rest, TARGET_GROUPS: groups };
    const e = errorOf(() => loadReconcileConfig({ ...base, [name]: value }));
    expect(e.variable).toBe(name);
    expect(e.message).toContain(problem);
  });
});

import {
  AutoScalingClient,
  type AutoScalingGroup,
  CreateOrUpdateTagsCommand,
  DescribeAutoScalingGroupsCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  DescribeSecretCommand,
  RotateSecretCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { describe, expect, it } from "vitest";
import type { OperatorContext } from "../../../../cli/operator/context";
import { parseDuration, rotateCommandWith, rotateOptions } from "../../../../cli/operator/rotate";
import type { CliIo } from "../../../../cli/types";
import type { BuildkiteClient, ClusterToken } from "../../../../shared/buildkite/client";
import { describeManagedToken } from "../../../../shared/buildkite/description";
import { loadReconcileConfig } from "../../../../shared/lib/config";
import { EMERGENCY_TAG } from "../../../../shared/rollout/plan";
import type { StatusReport } from "../../../../shared/rollout/status";
import {
  OPERATOR_CONTRACT,
  OPERATOR_SECRET_ARN,
  operatorClientMocks,
} from "../../../support/operator-fixture";

const ARN = OPERATOR_SECRET_ARN;
const CONTRACT = OPERATOR_CONTRACT;
const V1 = "11111111-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
const V2 = "22222222-bbbb-4bbb-8bbb-bbbbbbbbbbbb";

const { secrets, asg } = operatorClientMocks();

describe("rotate options", () => {
  it("parses durations", () => {
    expect(parseDuration("90s", "--t")).toBe(90_000);
    expect(parseDuration("30m", "--t")).toBe(1_800_000);
    expect(parseDuration("4h", "--t")).toBe(14_400_000);
    expect(parseDuration("0.2", "--t")).toBe(200);
    expect(() => parseDuration("soon", "--t")).toThrow(/--t must be a duration/);
    expect(() => parseDuration("0", "--t")).toThrow(/more than zero/);
  });

  it("has defaults, and --min-healthy only with --emergency", () => {
    expect(rotateOptions({})).toEqual({
      intervalMs: 5_000,
      timeoutMs: 14_400_000,
      follow: true,
      emergency: undefined,
    });
    expect(rotateOptions({ emergency: true, "no-follow": true })).toMatchObject({
      follow: false,
      emergency: { minHealthyPercentage: 50 },
    });
    expect(rotateOptions({ emergency: true, "min-healthy": "0" }).emergency).toEqual({
      minHealthyPercentage: 0,
    });
    expect(() => rotateOptions({ "min-healthy": "40" })).toThrow(/only applies with --emergency/);
    expect(() => rotateOptions({ emergency: true, "min-healthy": "101" })).toThrow(/0 to 100/);
    expect(() => rotateOptions({ interval: "0.001" })).toThrow(/--interval/);
  });
});

/** A fake context for the rotate command: real config, mocked AWS clients, scripted reports. */
function fakeContext(reports: Array<Partial<StatusReport>>, tokens: ClusterToken[] = []) {
  const config = loadReconcileConfig(CONTRACT);
  let i = 0;
  const ctx = {
    config,
    source: "environment",
    secrets: (region: string) => new SecretsManagerClient({ region }),
    autoScaling: (region: string) => new AutoScalingClient({ region }),
    buildkite: { listTokens: async () => tokens } as unknown as BuildkiteClient,
    collect: async () => report(reports[Math.min(i++, reports.length - 1)] ?? {}),
    dispose: () => {},
  } as unknown as OperatorContext;
  return { ctx, polls: () => i };
}

function report(over: Partial<StatusReport>): StatusReport {
  return {
    at: new Date("2026-11-22T12:00:00Z"),
    strategy: "refresh",
    secret: {
      arn: ARN,
      name: "bk/agent-token",
      primaryRegion: "us-east-1",
      rotationEnabled: true,
      schedule: "rate(30 days)",
      lastRotatedAt: undefined,
      nextRotationAt: undefined,
      overdue: false,
      currentVersionId: V2,
      pendingVersionId: undefined,
    },
    versions: [],
    regions: [
      { region: "us-east-1", primary: true, currentVersionId: V2, state: "in-sync", detail: undefined },
    ],
    groups: [
      {
        region: "us-east-1",
        groupName: "ci-a",
        stackName: undefined,
        phase: "refreshing",
        instances: 4,
        progress: { total: 4, safe: 1, pending: 3, unreachable: 0 },
        waiting: ["i-1", "i-2", "i-3"].map((instanceId) => ({
          instanceId,
          state: "awaiting-refresh" as const,
          detail: "launched before its region served the new token",
        })),
        refreshId: "r-a",
        refreshStatus: "InProgress",
        percentageComplete: 25,
        detail: "refresh InProgress",
      },
    ],
    managedTokensValid: [
      { id: "tok-1", versionId: V1, createdAt: undefined, expiresAt: undefined },
      { id: "tok-2", versionId: V2, createdAt: undefined, expiresAt: undefined },
    ],
    unmanagedTokens: [],
    next: ["wait for refreshes: us-east-1:ci-a"],
    waitingFor: ["refreshes"],
    complete: false,
    notices: [],
    emergency: undefined,
    ...over,
  };
}

const DONE: Partial<StatusReport> = {
  groups: [
    {
      region: "us-east-1",
      groupName: "ci-a",
      stackName: undefined,
      phase: "refreshed",
      instances: 4,
      progress: { total: 4, safe: 0, pending: 4, unreachable: 0 },
      waiting: [],
      refreshId: "r-a",
      refreshStatus: "Successful",
      percentageComplete: 100,
      detail: "refreshed",
    },
  ],
  managedTokensValid: [{ id: "tok-2", versionId: V2, createdAt: undefined, expiresAt: undefined }],
  waitingFor: [],
  complete: true,
  next: ["nothing: the rollout of the current version is complete"],
};

function fakeIo(tty = false) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = {
    stdout: Object.assign({ write: (c: string) => out.push(c) }, tty ? { isTTY: true, columns: 100 } : {}),
    stderr: { write: (c: string) => err.push(c) },
    env: { ...CONTRACT, AWS_REGION: "us-east-1" },
  };
  return { io, out: () => out.join(""), err: () => err.join("") };
}

describe("rotate", () => {
  const describeSecret = (stages: Record<string, string[]>, configured = true) =>
    secrets.on(DescribeSecretCommand).resolves({
      ARN,
      VersionIdsToStages: stages,
      RotationEnabled: configured,
      ...(configured
        ? { RotationLambdaARN: "arn:aws:lambda:us-east-1:123456789012:function:rotate-token" }
        : {}),
    });
  const command = (fake: ReturnType<typeof fakeContext>) =>
    rotateCommandWith({ sleep: async () => {}, newVersionId: () => V2, context: async () => fake.ctx });

  it("starts the rotation with its own version id and the configured function, then follows to completion", async () => {
    describeSecret({ [V1]: ["AWSCURRENT"] });
    secrets.on(RotateSecretCommand).resolves({ VersionId: V2 });
    const fake = fakeContext([
      { secret: { ...report({}).secret, currentVersionId: V1, pendingVersionId: V2 } },
      {},
      {},
      DONE,
    ]);
    const f = fakeIo();
    expect(await command(fake).run(["--interval", "0.1"], f.io)).toBe(0);
    expect(secrets.commandCalls(RotateSecretCommand)[0]?.args[0].input).toEqual({
      SecretId: ARN,
      ClientRequestToken: V2,
      RotationLambdaARN: "arn:aws:lambda:us-east-1:123456789012:function:rotate-token",
    });
    expect(fake.polls()).toBe(4);
    // Not a terminal: one line per change (the two identical reports print once).
    const lines = f.out().trim().split("\n");
    expect(lines[0]).toBe(`Rotation of bk/agent-token started: version ${V2} replaces ${V1}.`);
    expect(lines.filter((l) => l.includes(" | "))).toHaveLength(3);
    expect(lines.at(-1)).toBe(
      `Rollout of version ${V2} complete: every instance has the new token, older managed tokens revoked.`,
    );
    expect(f.out()).toContain("tokens 1 managed valid · 1 revoked since start");
    expect(f.err()).toBe("");
  });

  it("redraws the progress view on a terminal", async () => {
    describeSecret({ [V1]: ["AWSCURRENT"] });
    secrets.on(RotateSecretCommand).resolves({ VersionId: V2 });
    const f = fakeIo(true);
    expect(await command(fakeContext([{}, DONE])).run([], f.io)).toBe(0);
    expect(f.out().split("\x1b[H\x1b[2J")).toHaveLength(3);
    expect(f.out()).toContain("[###-------]  25% InProgress");
  });

  it("exits 3 when the rollout stays blocked, saying what to do", async () => {
    describeSecret({ [V1]: ["AWSCURRENT"] });
    secrets.on(RotateSecretCommand).resolves({ VersionId: V2 });
    const blocked: Partial<StatusReport> = {
      groups: [
        {
          region: "us-east-1",
          groupName: "ci-a",
          stackName: undefined,
          phase: "failed",
          instances: 4,
          progress: { total: 4, safe: 0, pending: 4, unreachable: 0 },
          waiting: [],
          refreshId: "r-a",
          refreshStatus: "Failed",
          percentageComplete: 40,
          detail: "ended Failed",
        },
      ],
      waitingFor: ["operator"],
    };
    const f = fakeIo();
    expect(await command(fakeContext([blocked, {}, blocked, blocked])).run([], f.io)).toBe(3);
    expect(f.out()).toContain(`Rollout of version ${V2} is BLOCKED until an operator acts:`);
    expect(f.out()).toContain("us-east-1:ci-a: refresh r-a ended Failed: fix the cause");
    expect(f.out()).toContain("no old token is revoked, so agents keep working");
  });

  it("exits 4 at --timeout; the rotation goes on", async () => {
    describeSecret({ [V1]: ["AWSCURRENT"] });
    secrets.on(RotateSecretCommand).resolves({ VersionId: V2 });
    const slow = rotateCommandWith({
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      newVersionId: () => V2,
      context: async () => fakeContext([{}]).ctx,
    });
    const f = fakeIo();
    expect(await slow.run(["--interval", "0.05", "--timeout", "200ms"], f.io)).toBe(4);
    expect(f.out()).toContain("Stopped following after 0s: the rollout of");
    expect(f.out()).toContain("continues without us");
  });

  it("refuses while a rotation is pending, and when rotation is not configured", async () => {
    describeSecret({ [V1]: ["AWSCURRENT"], [V2]: ["AWSPENDING"] });
    const f = fakeIo();
    expect(await command(fakeContext([{}])).run([], f.io)).toBe(1);
    expect(f.err()).toContain(
      `a rotation is already pending: version ${V2} holds AWSPENDING (current: ${V1})`,
    );
    expect(secrets.commandCalls(RotateSecretCommand)).toHaveLength(0);

    // moto's leftover AWSPENDING on the current version is no pending rotation.
    secrets.reset();
    describeSecret({ [V1]: ["AWSCURRENT", "AWSPENDING"] }, false);
    const g = fakeIo();
    expect(await command(fakeContext([{}])).run([], g.io)).toBe(1);
    expect(g.err()).toContain("rotation is not configured");
    expect(secrets.commandCalls(RotateSecretCommand)).toHaveLength(0);
  });

  it("--emergency tags the anchor group before rotating, then reports containment", async () => {
    describeSecret({ [V1]: ["AWSCURRENT"] });
    const order: string[] = [];
    secrets.on(RotateSecretCommand).callsFake(async () => {
      order.push("rotate");
      return { VersionId: V2 };
    });
    asg
      .on(DescribeAutoScalingGroupsCommand)
      .resolves({ AutoScalingGroups: [{ AutoScalingGroupName: "ci-a" } as AutoScalingGroup] });
    asg.on(CreateOrUpdateTagsCommand).callsFake(async () => {
      order.push("tag");
      return {};
    });
    const leaked = {
      id: "tok-1",
      description: describeManagedToken(ARN, V1),
      createdAt: undefined,
      expiresAt: undefined,
    };
    const fake = fakeContext(
      [
        {
          managedTokensValid: [{ id: "tok-2", versionId: V2, createdAt: undefined, expiresAt: undefined }],
          emergency: { versionId: V2, leakedVersionId: V1, minHealthyPercentage: 30 },
        },
        DONE,
      ],
      [leaked],
    );
    const f = fakeIo();
    expect(await command(fake).run(["--emergency", "--min-healthy", "30", "--no-follow"], f.io)).toBe(0);
    expect(order).toEqual(["tag", "rotate"]);
    expect(asg.commandCalls(CreateOrUpdateTagsCommand)[0]?.args[0].input.Tags).toEqual([
      {
        ResourceId: "ci-a",
        ResourceType: "auto-scaling-group",
        Key: EMERGENCY_TAG,
        Value: `version=${V2} leaked=${V1} min-healthy=30`,
        PropagateAtLaunch: false,
      },
    ]);

    const g = fakeIo();
    expect(await command(fake).run(["--emergency", "--min-healthy", "30"], g.io)).toBe(0);
    const text = g.out();
    expect(text).toContain(`Containment of the leaked token (version ${V1}):`);
    expect(text).toContain(
      "leaked token tok-1 revoked (seen gone at 2026-11-22T12:00:00.000Z), before the refreshes of us-east-1:ci-a had finished",
    );
    expect(text).toContain("every instance of every target group has the new token");
    expect(text).toContain(
      "agents already connected with the leaked token keep running until their instance is replaced",
    );
  });

  it("--emergency without a managed leaked token says to revoke it by hand", async () => {
    describeSecret({ [V1]: ["AWSCURRENT"] });
    secrets.on(RotateSecretCommand).resolves({ VersionId: V2 });
    asg
      .on(DescribeAutoScalingGroupsCommand)
      .resolves({ AutoScalingGroups: [{ AutoScalingGroupName: "ci-a" } as AutoScalingGroup] });
    asg.on(CreateOrUpdateTagsCommand).resolves({});
    const human = {
      id: "tok-0",
      description: "Initial agent token",
      createdAt: undefined,
      expiresAt: undefined,
    };
    const f = fakeIo();
    const timeout = rotateCommandWith({
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      newVersionId: () => V2,
      context: async () => fakeContext([{}], [human]).ctx,
    });
    expect(await timeout.run(["--emergency", "--interval", "0.05", "--timeout", "100ms"], f.io)).toBe(4);
    const text = f.out();
    expect(text).toContain(
      "NOT CONTAINED BY THIS TOOL: no token created by this project belongs to the leaked version",
    );
    expect(text).toContain("Revoke the leaked token by hand in Buildkite");
    expect(text).toContain('tok-0 "Initial agent token"');
    expect(text).toContain(
      "3 instance(s) may still hold the leaked token in their agent config: us-east-1:ci-a 3 (refreshing)",
    );
  });
});

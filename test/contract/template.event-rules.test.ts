import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { matchesPattern, reconcileRulePatterns } from "../../sandbox/fakes/eventbridge/rules";
import {
  type Json,
  Resolver,
  ROOT,
  SAMPLE,
  type Template,
  transformTemplate,
} from "../support/cloudformation";
import { AGENT, FULL_PARAMS, group, REPLICA } from "../support/sample";

/**
 * Every EventBridge rule's pattern against the sample events AWS documents, matched by moto's
 * implementation of EventBridge pattern matching (event-pattern.py): the events that must reach
 * the reconciler do, the ones that must not do not.
 *
 * Sample events:
 * - Secret Label Updated: https://docs.aws.amazon.com/secretsmanager/latest/userguide/event-detail-secret-label-updated-secretsmanager.html
 * - EC2 Auto Scaling Instance Refresh …: https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-eventbridge-events.html
 *   (checkpoint reached, started, succeeded, failed, cancelled, rollback started/succeeded/failed)
 */
type Event = Record<string, Json>;

function matches(cases: Array<{ pattern: Json; event: Event }>): boolean[] {
  const out = execFileSync("python3", [join(ROOT, "test/support/event-pattern.py")], {
    input: JSON.stringify(cases),
    encoding: "utf8",
    timeout: 60_000,
  });
  return JSON.parse(out) as boolean[];
}

/** The documented example, with this deployment's region, account and secret. */
const labelUpdated = (resource: string, label: string): Event => ({
  version: "0",
  id: "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
  "detail-type": "Secret Label Updated",
  source: "aws.secretsmanager",
  account: SAMPLE.account,
  time: "2024-02-06T16:43:48Z",
  region: SAMPLE.region,
  resources: [resource],
  detail: {
    name: resource.split(":secret:")[1]?.replace(/-[A-Za-z0-9]{6}$/, "") ?? "",
    labelUpdated: label,
    versionId: "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
  },
});

const REFRESH_TYPES = {
  "Checkpoint Reached": false,
  Started: false,
  Succeeded: true,
  Failed: true,
  Cancelled: true,
  "Rollback Started": false,
  "Rollback Succeeded": true,
  "Rollback Failed": true,
} as const;

const refreshEvent = (kind: string, region: string, groupName: string): Event => ({
  version: "0",
  id: "12345678-1234-1234-1234-123456789012",
  "detail-type": `EC2 Auto Scaling Instance Refresh ${kind}`,
  source: "aws.autoscaling",
  account: SAMPLE.account,
  time: "2026-01-01T00:00:00Z",
  region,
  resources: [group(region, groupName)],
  detail: {
    InstanceRefreshId: "c613620e-07e2-4ed2-a9e2-ef8258911ade",
    AutoScalingGroupName: groupName,
    ...(kind === "Checkpoint Reached" ? { CheckpointPercentage: "50", CheckpointDelay: "300" } : {}),
  },
});

function rulePattern(template: Template, params: Record<string, string | string[]>, ruleId: string): Json {
  const resolver = new Resolver(template, params);
  const rule = template.Resources[ruleId];
  if (rule?.Type !== "AWS::Events::Rule") throw new Error(`no rule ${ruleId}`);
  return (resolver.resolve(rule.Properties as Json) as { EventPattern: Json }).EventPattern;
}

interface Case {
  name: string;
  pattern: Json;
  event: Event;
  fires: boolean;
}

function mainCases(template: Template): Case[] {
  const promoted = rulePattern(template, FULL_PARAMS, "SecretPromotedRule");
  const refreshes = rulePattern(template, FULL_PARAMS, "InstanceRefreshesRule");
  const other = `arn:aws:secretsmanager:${SAMPLE.region}:${SAMPLE.account}:secret:mySecret-a1b2c3`;
  return [
    {
      name: "AWSCURRENT moved on our secret",
      pattern: promoted,
      event: labelUpdated(AGENT, "AWSCURRENT"),
      fires: true,
    },
    {
      name: "AWSCURRENT on another secret",
      pattern: promoted,
      event: labelUpdated(other, "AWSCURRENT"),
      fires: false,
    },
    {
      name: "a custom label on our secret",
      pattern: promoted,
      event: labelUpdated(AGENT, "blue"),
      fires: false,
    },
    ...Object.entries(REFRESH_TYPES).map(([kind, fires]) => ({
      name: `Instance Refresh ${kind}`,
      pattern: refreshes,
      event: refreshEvent(kind, SAMPLE.region, "ci-a"),
      fires,
    })),
    {
      name: "a refresh event from another source",
      pattern: refreshes,
      event: { ...refreshEvent("Succeeded", SAMPLE.region, "ci-a"), source: "custom.autoscaling" },
      fires: false,
    },
  ];
}

function check(cases: Case[]): string[] {
  const results = matches(cases.map(({ pattern, event }) => ({ pattern, event })));
  return cases.flatMap((c, i) =>
    results[i] === c.fires
      ? []
      : [`${c.name}: ${c.fires ? "should fire but does not" : "fires but should not"}`],
  );
}

const templateText = readFileSync(join(ROOT, "template.yaml"), "utf8");

describe("EventBridge rules against AWS's documented sample events", () => {
  it("template.yaml: promotion of our secret and every terminal refresh event reach reconcile, nothing else", () => {
    expect(check(mainCases(transformTemplate()))).toEqual([]);
  });

  it("infra/forwarder.yaml forwards the terminal refresh events (of the listed groups, when listed)", () => {
    const forwarder = transformTemplate(undefined, join(ROOT, "infra/forwarder.yaml"));
    const all = rulePattern(
      forwarder,
      { PrimaryRegion: SAMPLE.region, GroupNames: "" },
      "ForwardRefreshEvents",
    );
    const listed = rulePattern(
      forwarder,
      { PrimaryRegion: SAMPLE.region, GroupNames: "ci-b" },
      "ForwardRefreshEvents",
    );
    const cases: Case[] = Object.entries(REFRESH_TYPES).flatMap(([kind, fires]) => [
      { name: `all groups: ${kind}`, pattern: all, event: refreshEvent(kind, REPLICA, "ci-b"), fires },
      { name: `listed: ${kind} of ci-b`, pattern: listed, event: refreshEvent(kind, REPLICA, "ci-b"), fires },
      {
        name: `listed: ${kind} of ci-z`,
        pattern: listed,
        event: refreshEvent(kind, REPLICA, "ci-z"),
        fires: false,
      },
    ]);
    expect(check(cases)).toEqual([]);
  });

  it("the sandbox's bus routes by the template's patterns, and matches as moto's EventBridge does", () => {
    const template = transformTemplate();
    const sandbox = reconcileRulePatterns(AGENT);
    expect(sandbox.promoted).toEqual(rulePattern(template, FULL_PARAMS, "SecretPromotedRule"));
    expect(sandbox.refreshes).toEqual(rulePattern(template, FULL_PARAMS, "InstanceRefreshesRule"));
    const cases = mainCases(template);
    const byMoto = matches(cases.map(({ pattern, event }) => ({ pattern, event })));
    const ours = cases.map(({ pattern, event }) => matchesPattern(pattern as never, event));
    expect(ours).toEqual(byMoto);
    expect(ours).toContain(true);
    expect(ours).toContain(false);
  });

  it("fails when a pattern is broken", () => {
    const wrongLabel = templateText.replace("labelUpdated: [AWSCURRENT]", "labelUpdated: [AWSPENDING]");
    expect(wrongLabel).not.toBe(templateText);
    expect(check(mainCases(transformTemplate(wrongLabel)))).toEqual([
      "AWSCURRENT moved on our secret: should fire but does not",
    ]);
    const lostRollback = templateText.replace(
      "          - EC2 Auto Scaling Instance Refresh Rollback Failed\n",
      "",
    );
    expect(lostRollback).not.toBe(templateText);
    expect(check(mainCases(transformTemplate(lostRollback)))).toEqual([
      "Instance Refresh Rollback Failed: should fire but does not",
    ]);
  });

  it("the secret ARN parameters accept only full ARNs, which are what the rule's resources match", () => {
    const params = transformTemplate().Parameters ?? {};
    for (const name of ["ExistingAgentTokenSecretArn", "BuildkiteApiTokenSecretArn"]) {
      const pattern = new RegExp(String((params[name] as { AllowedPattern?: string }).AllowedPattern));
      expect(pattern.test(AGENT), name).toBe(true);
      expect(pattern.test(AGENT.replace(/-[A-Za-z0-9]{6}$/, "")), `${name} without the suffix`).toBe(false);
      expect(pattern.test(`${AGENT}x`), `${name} with a trailing character`).toBe(false);
    }
  });
});

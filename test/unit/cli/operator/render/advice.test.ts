import { describe, expect, it } from "vitest";
import { blockedAdvice, statusAttention } from "../../../../../cli/operator/render/advice";
import { group, report, V2 } from "../../../../support/status-report";

describe("blockedAdvice", () => {
  it("names each instance an in-place rollout is blocked on, and what to do", () => {
    const blocked = group({
      phase: "blocked",
      detail: "1 instance(s) not updated in place (fallback alert)",
      waiting: [{ instanceId: "i-off", state: "unreachable", detail: "SSM agent ConnectionLost" }],
    });
    const [advice] = blockedAdvice(report({ groups: [blocked], waitingFor: ["operator"] }));
    expect(advice).toMatch(
      /^us-east-1:ci-a: 1 instance\(s\) not updated in place .*: i-off \(SSM agent ConnectionLost\); bring their SSM agent online/,
    );
  });
});

describe("blockedAdvice and statusAttention", () => {
  it("has advice for a failed replica, a missing group and an unobservable group", () => {
    const r = report({
      regions: [
        { region: "us-east-1", primary: true, currentVersionId: V2, state: "in-sync", detail: undefined },
        {
          region: "eu-west-1",
          primary: false,
          currentVersionId: undefined,
          state: "failed",
          detail: "no replica",
        },
      ],
      groups: [
        group({ phase: "missing", detail: "group not found" }),
        group({
          region: "eu-west-1",
          groupName: "ci-b",
          stackName: undefined,
          phase: "unknown",
          detail: "could not be observed: AccessDenied",
        }),
      ],
      waitingFor: ["operator"],
    });
    const advice = blockedAdvice(r);
    expect(advice).toHaveLength(3);
    expect(advice[0]).toMatch(/^replica eu-west-1 does not serve the current version \(no replica\)/);
    expect(advice[1]).toMatch(/^us-east-1:ci-a: group not found: fix TARGET_GROUPS/);
    expect(advice[2]).toMatch(/^eu-west-1:ci-b: could not be observed: AccessDenied: check/);
    expect(statusAttention(r)).toHaveLength(3);
    expect(statusAttention(report())).toEqual([]);
  });
});

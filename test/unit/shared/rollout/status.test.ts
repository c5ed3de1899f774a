import { describe, expect, it } from "vitest";
import { loadReconcileConfig } from "../../../../shared/lib/config";
import { alertId as hash } from "../../../../shared/rollout/markers";
import { plan } from "../../../../shared/rollout/plan";
import { planSettings } from "../../../../shared/rollout/settings";
import { buildStatus, describeNext } from "../../../../shared/rollout/status";
import type { Observation } from "../../../../shared/rollout/types";
import type { SecretState } from "../../../../shared/secrets/describe";
import {
  ARN,
  observation as baseObservation,
  DAY,
  NOW,
  ours as oursIn,
  reconcileEnv,
  refresh,
  replaced,
  target,
  token,
  V1,
  V2,
  V3,
} from "../../../support/rollout-fixtures";

const config = loadReconcileConfig(
  reconcileEnv({ MAX_ROLLOUT_SECONDS: "3600", REPLICA_ALERT_SECONDS: "600", ROLLOUT_STRATEGY: "refresh" }),
);

/** Our refresh for `version`; a Successful one has replaced the group's instances with ones launched after the sync. */
const ours = (version: string, id: string, status: string, pct: number) => ({
  ...oursIn(version, id, status, { percentageComplete: pct }),
  ...(status === "Successful" ? { members: replaced(id) } : {}),
});

/** The shared observation, plus a human-made token and the last rotation five minutes ago. */
function observation(over: Partial<Observation> = {}): Observation {
  return baseObservation(
    { tokens: [token("t1", V1), token("t2", V2), token("t0", undefined)], ...over },
    { lastRotatedAt: new Date(NOW.getTime() - 300_000) },
  );
}

function secretState(over: Partial<SecretState> = {}): SecretState {
  return {
    arn: ARN,
    name: "bk/agent-token",
    rotationEnabled: true,
    stages: { [V1]: ["AWSPREVIOUS"], [V2]: ["AWSCURRENT"] },
    current: V2,
    pending: undefined,
    lastRotatedDate: new Date(NOW.getTime() - 300_000),
    nextRotationDate: new Date(NOW.getTime() + 30 * DAY),
    rotationRules: { automaticallyAfterDays: 30, scheduleExpression: "rate(30 days)" },
    replication: [{ region: "eu-west-1", status: "InSync", message: undefined }],
    ...over,
  };
}

function status(obs: Observation = observation(), secret: SecretState = secretState()) {
  return buildStatus(config, obs, plan(obs, planSettings(config)), secret);
}

describe("buildStatus", () => {
  it("reports the secret, its versions newest first, and each version's managed token", () => {
    const s = status(
      observation({
        tokens: [
          token("t1", V1),
          token("t2", V2, { expiresAt: "2026-12-22T12:00:00Z" }),
          token("t0", undefined),
        ],
      }),
    );
    expect(s.at).toEqual(NOW);
    expect(s.secret).toMatchObject({
      arn: ARN,
      name: "bk/agent-token",
      primaryRegion: "us-east-1",
      rotationEnabled: true,
      schedule: "rate(30 days)",
      overdue: false,
      currentVersionId: V2,
      pendingVersionId: undefined,
    });
    expect(s.versions.map((v) => [v.versionId, v.stages, v.ageSeconds])).toEqual([
      [V2, ["AWSCURRENT"], 300],
      [V1, ["AWSPREVIOUS"], 86_400],
    ]);
    expect(s.versions[0]?.token).toEqual({
      id: "t2",
      createdAt: "2026-11-22T11:55:00.000Z",
      expiresAt: "2026-12-22T12:00:00Z",
      expiresInSeconds: 30 * 86_400,
    });
    expect(s.versions[1]?.token).toMatchObject({
      id: "t1",
      expiresAt: undefined,
      expiresInSeconds: undefined,
    });
    expect(s.managedTokensValid.map((t) => [t.id, t.versionId])).toEqual([
      ["t1", V1],
      ["t2", V2],
    ]);
    expect(s.unmanagedTokens).toEqual([{ id: "t0", description: "Initial agent token" }]);
    expect(JSON.stringify(s)).not.toMatch(/bkct_|bkua_/);
  });

  it("orders versions created in the same instant by stage: pending, current, previous", () => {
    const same = new Date(NOW.getTime() - 1_000);
    const obs = observation();
    const tied = status(
      { ...obs, secret: { ...obs.secret, createdAt: { [V1]: same, [V2]: same, [V3]: same } } },
      secretState({ stages: { [V1]: ["AWSPREVIOUS"], [V2]: ["AWSCURRENT"], [V3]: ["AWSPENDING"] } }),
    );
    expect(tied.versions.map((v) => v.stages[0])).toEqual(["AWSPENDING", "AWSCURRENT", "AWSPREVIOUS"]);
  });

  it("gives an expired token a negative expiry and a version without token none", () => {
    const s = status(
      observation({ tokens: [token("t2", V2, { expiresAt: "2026-11-22T11:00:00Z" })] }),
      secretState({ stages: { [V1]: ["AWSPREVIOUS"], [V2]: ["AWSCURRENT"], [V3]: [] } }),
    );
    expect(s.versions.find((v) => v.versionId === V2)?.token?.expiresInSeconds).toBe(-3600);
    expect(s.versions.find((v) => v.versionId === V1)?.token).toBeUndefined();
    // A version Secrets Manager lists without a creation date has no age.
    expect(s.versions.find((v) => v.versionId === V3)).toMatchObject({
      createdAt: undefined,
      ageSeconds: undefined,
    });
  });

  describe("overdue", () => {
    it("is overdue more than an hour after the scheduled rotation", () => {
      const s = status(observation(), secretState({ nextRotationDate: new Date(NOW.getTime() - 3_600_001) }));
      expect(s.secret.overdue).toBe(true);
    });

    it("is not overdue within the hour Secrets Manager may take", () => {
      const s = status(observation(), secretState({ nextRotationDate: new Date(NOW.getTime() - 3_000_000) }));
      expect(s.secret.overdue).toBe(false);
    });

    it("derives the next rotation from the last one and the interval when Secrets Manager gives none", () => {
      const s = status(
        observation(),
        secretState({
          nextRotationDate: undefined,
          lastRotatedDate: new Date(NOW.getTime() - 31 * DAY),
          rotationRules: { automaticallyAfterDays: 30 },
        }),
      );
      expect(s.secret.nextRotationAt).toEqual(new Date(NOW.getTime() - DAY));
      expect(s.secret.schedule).toBe("every 30 days");
      expect(s.secret.overdue).toBe(true);
    });

    it("is never overdue while rotation is disabled", () => {
      const s = status(
        observation(),
        secretState({ rotationEnabled: false, nextRotationDate: new Date(NOW.getTime() - 10 * DAY) }),
      );
      expect(s.secret.overdue).toBe(false);
    });
  });

  describe("region states", () => {
    it("in-sync for the primary and a replica serving the current version", () => {
      expect(status().regions).toEqual([
        { region: "us-east-1", primary: true, currentVersionId: V2, state: "in-sync", detail: undefined },
        { region: "eu-west-1", primary: false, currentVersionId: V2, state: "in-sync", detail: undefined },
      ]);
    });

    it("lagging for a replica still serving an older version", () => {
      const s = status(
        observation({
          replicas: [
            {
              region: "eu-west-1",
              current: V1,
              replicationStatus: "InProgress",
              statusMessage: "Replication in progress",
              error: undefined,
            },
          ],
        }),
      );
      expect(s.regions[1]).toMatchObject({
        currentVersionId: V1,
        state: "lagging",
        detail: "Replication in progress",
      });
    });

    it("failed for a replica that failed to replicate or cannot be asked", () => {
      const failed = status(
        observation({
          replicas: [
            {
              region: "eu-west-1",
              current: V1,
              replicationStatus: "Failed",
              statusMessage: "KMS key disabled",
              error: undefined,
            },
          ],
        }),
      );
      expect(failed.regions[1]).toMatchObject({ state: "failed", detail: "KMS key disabled" });
      const missing = status(
        observation({
          replicas: [
            {
              region: "eu-west-1",
              current: undefined,
              replicationStatus: undefined,
              statusMessage: undefined,
              error: { message: "no replica of the secret exists in eu-west-1", definitive: true },
            },
          ],
        }),
      );
      expect(missing.regions[1]).toMatchObject({
        state: "failed",
        detail: "no replica of the secret exists in eu-west-1",
      });
    });
  });

  it("reports each group's phase, instances and the refresh of the current version", () => {
    const s = status(
      observation({
        targets: [
          target("us-east-1", "ci-a", ours(V2, "r-a", "InProgress", 50)),
          target("eu-west-1", "ci-b", ours(V2, "r-b", "Successful", 100)),
        ],
      }),
    );
    expect(s.groups).toEqual([
      {
        region: "us-east-1",
        groupName: "ci-a",
        stackName: undefined,
        phase: "refreshing",
        instances: 2,
        progress: { total: 2, safe: 0, pending: 2, unreachable: 0 },
        waiting: [
          {
            instanceId: "i-ci-a-1",
            state: "awaiting-refresh",
            detail: "launched before its region served the new token",
          },
          {
            instanceId: "i-ci-a-2",
            state: "awaiting-refresh",
            detail: "launched before its region served the new token",
          },
        ],
        refreshId: "r-a",
        refreshStatus: "InProgress",
        percentageComplete: 50,
        detail: "refresh InProgress",
      },
      {
        region: "eu-west-1",
        groupName: "ci-b",
        stackName: undefined,
        phase: "refreshed",
        instances: 2,
        progress: { total: 2, safe: 2, pending: 0, unreachable: 0 },
        waiting: [],
        refreshId: "r-b",
        refreshStatus: "Successful",
        percentageComplete: 100,
        detail: "every instance has the new token",
      },
    ]);
    expect(s.waitingFor).toEqual(["refreshes"]);
    expect(s.complete).toBe(false);
  });

  it("carries the emergency declaration", () => {
    const emergency = { versionId: V2, leakedVersionId: V1, minHealthyPercentage: 50 };
    expect(status(observation({ emergency })).emergency).toEqual(emergency);
  });
});

describe("describeNext", () => {
  const next = (obs: Observation) => describeNext(plan(obs, planSettings(config)));

  it("names the refreshes it will start, with their preferences", () => {
    expect(next(observation())).toEqual([
      "start an instance refresh of ci-a in us-east-1 (min healthy 90%, protected instances: Wait)",
      "start an instance refresh of ci-b in eu-west-1 (min healthy 90%, protected instances: Wait)",
    ]);
  });

  it("waits for refreshes under way", () => {
    expect(
      next(
        observation({
          targets: [
            target("us-east-1", "ci-a", ours(V2, "r-a", "InProgress", 50)),
            target("eu-west-1", "ci-b", ours(V2, "r-b", "Successful", 100)),
          ],
        }),
      ),
    ).toEqual(["wait for refreshes: us-east-1:ci-a"]);
  });

  it("waits for a lagging replica (and refreshes the primary region meanwhile)", () => {
    const obs = observation({
      replicas: [
        {
          region: "eu-west-1",
          current: V1,
          replicationStatus: "InProgress",
          statusMessage: undefined,
          error: undefined,
        },
      ],
      targets: [target("us-east-1", "ci-a", ours(V2, "r-a", "InProgress", 10)), target("eu-west-1", "ci-b")],
    });
    expect(next(obs)).toEqual([
      "wait for eu-west-1 to serve the current version",
      "wait for refreshes: us-east-1:ci-a",
    ]);
  });

  it("revokes the old managed tokens once every group is refreshed, then records completion", () => {
    const obs = observation({
      targets: [
        target("us-east-1", "ci-a", ours(V2, "r-a", "Successful", 100)),
        target("eu-west-1", "ci-b", ours(V2, "r-b", "Successful", 100)),
      ],
    });
    expect(next(obs)).toEqual([`revoke token t1 (version ${V1})`, `record the rollout of ${V2} as complete`]);
  });

  it("says nothing is left once the rollout is complete", () => {
    const obs = observation({
      targets: [
        target("us-east-1", "ci-a", ours(V2, "r-a", "Successful", 100)),
        target("eu-west-1", "ci-b", ours(V2, "r-b", "Successful", 100)),
      ],
      tokens: [token("t2", V2)],
      rollout: { alertsSent: [], complete: true, unobservableSince: undefined, observedAt: undefined },
    });
    expect(next(obs)).toEqual(["nothing: the rollout of the current version is complete"]);
  });

  it("alerts once on a failed refresh, then waits for an operator", () => {
    const obs = observation({
      targets: [
        target("us-east-1", "ci-a", ours(V2, "r-a", "Successful", 100)),
        target("eu-west-1", "ci-b", ours(V2, "r-b", "Failed", 30)),
      ],
    });
    expect(next(obs)).toEqual([
      expect.stringMatching(
        /^alert: Buildkite token rollout blocked: refresh did not complete: ci-b \(eu-west-1\)/,
      ),
      `record the rollout state of ${V2} (alerts sent)`,
    ]);
    const p = plan(obs, planSettings(config));
    const sent = p.actions.flatMap((a) => (a.kind === "alert" ? [hash(a.key)] : []));
    const again = describeNext(
      plan({ ...obs, rollout: { ...obs.rollout, alertsSent: sent } }, planSettings(config)),
    );
    expect(again).toEqual([
      "nothing until an operator acts: eu-west-1:ci-b ended Failed: instances failed health checks",
    ]);
  });

  it("waits for an operator when a group is missing or a replica failed", () => {
    const obs = observation({
      replicas: [
        {
          region: "eu-west-1",
          current: V1,
          replicationStatus: "Failed",
          statusMessage: undefined,
          error: undefined,
        },
      ],
      targets: [target("us-east-1", "ci-a", { exists: false }), target("eu-west-1", "ci-b")],
      rollout: {
        alertsSent: [hash("replica-failed:eu-west-1"), hash("group-missing:us-east-1:ci-a")],
        complete: false,
        unobservableSince: undefined,
        observedAt: undefined,
      },
    });
    expect(next(obs)).toEqual([
      "nothing until an operator acts: us-east-1:ci-a group not found; replica eu-west-1",
    ]);
  });

  it("waits for a refresh someone else started", () => {
    const obs = observation({
      targets: [
        target("us-east-1", "ci-a", {
          refreshes: [refresh("theirs", "InProgress", { percentageComplete: 20 })],
        }),
        target("eu-west-1", "ci-b", ours(V2, "r-b", "Successful", 100)),
      ],
    });
    expect(next(obs)).toEqual(["wait for refreshes: us-east-1:ci-a"]);
  });

  it("does nothing for a current version this project did not make", () => {
    expect(next(observation({ tokens: [token("t0", undefined)] }))).toEqual([
      "nothing: no rotation of this project's is being rolled out",
    ]);
  });

  it("in an emergency, revokes the leaked token as soon as every region serves the new version", () => {
    const obs = observation({ emergency: { versionId: V2, leakedVersionId: V1, minHealthyPercentage: 50 } });
    expect(next(obs)).toEqual([
      "start an instance refresh of ci-a in us-east-1 (min healthy 50%, protected instances: Refresh)",
      "start an instance refresh of ci-b in eu-west-1 (min healthy 50%, protected instances: Refresh)",
      "send the install command to 2 instance(s) in us-east-1",
      "send the install command to 2 instance(s) in eu-west-1",
      `revoke token t1 (version ${V1})`,
    ]);
  });
});

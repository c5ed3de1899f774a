import { describe, expect, it } from "vitest";
import { alertId } from "../../../../shared/rollout/markers";
import { plan } from "../../../../shared/rollout/plan";
import type { Observation, PlanSettings } from "../../../../shared/rollout/types";
import {
  NOW,
  observation,
  ours,
  refresh,
  target,
  token,
  V1,
  V2,
  V3,
} from "../../../support/rollout-fixtures";

const settings: PlanSettings = {
  primaryRegion: "us-east-1",
  preferences: {
    minHealthyPercentage: 90,
    maxHealthyPercentage: undefined,
    instanceWarmupSeconds: undefined,
    scaleInProtectedInstances: "Wait",
  },
  maxRolloutSeconds: 3600,
  replicaAlertSeconds: 600,
};

const world = observation;
const refreshedFor = (version: string, id = `r-${version}`) => ours(version, id);

const kinds = (p: ReturnType<typeof plan>) =>
  p.actions.map((a) => (a.kind === "alert" ? `alert:${a.key.split(":")[0]}` : a.kind));
const phases = (p: ReturnType<typeof plan>) => p.targets.map((t) => `${t.region}:${t.groupName}=${t.phase}`);
const revoked = (p: ReturnType<typeof plan>) =>
  p.actions.flatMap((a) => (a.kind === "revoke" ? [a.tokenId] : []));

describe("plan", () => {
  it.each<[string, Observation, string[], string[], string[], boolean]>([
    [
      "fresh promotion, everything in sync: refresh every group, revoke nothing",
      world(),
      ["us-east-1:ci-a=start-refresh", "eu-west-1:ci-b=start-refresh"],
      ["start-refresh", "start-refresh"],
      [],
      false,
    ],
    [
      "replica not yet in sync: refresh the primary region only, wait for the replica",
      world({
        replicas: [
          {
            region: "eu-west-1",
            current: V1,
            replicationStatus: "InSync",
            statusMessage: undefined,
            error: undefined,
          },
        ],
      }),
      ["us-east-1:ci-a=start-refresh", "eu-west-1:ci-b=waiting-for-replica"],
      ["start-refresh"],
      [],
      false,
    ],
    [
      "replication failed: alert, refresh nothing there, revoke nothing",
      world({
        replicas: [
          {
            region: "eu-west-1",
            current: V1,
            replicationStatus: "Failed",
            statusMessage: "KMS key disabled",
            error: undefined,
          },
        ],
        targets: [target("us-east-1", "ci-a", refreshedFor(V2)), target("eu-west-1", "ci-b")],
      }),
      ["us-east-1:ci-a=refreshed", "eu-west-1:ci-b=waiting-for-replica"],
      ["alert:replica-failed"],
      [],
      false,
    ],
    [
      "replica missing in its region: alert",
      world({
        replicas: [
          {
            region: "eu-west-1",
            current: undefined,
            replicationStatus: undefined,
            statusMessage: undefined,
            error: "no replica of the secret exists in eu-west-1",
          },
        ],
      }),
      ["us-east-1:ci-a=start-refresh", "eu-west-1:ci-b=waiting-for-replica"],
      ["start-refresh", "alert:replica-failed"],
      [],
      false,
    ],
    [
      "a refresh we did not start is running: wait for it",
      world({
        targets: [
          target("us-east-1", "ci-a", { refreshes: [refresh("human", "InProgress")] }),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
      }),
      ["us-east-1:ci-a=waiting-for-other-refresh", "eu-west-1:ci-b=refreshed"],
      [],
      [],
      false,
    ],
    [
      "that refresh finished: start ours (its success does not count for our version)",
      world({
        targets: [
          target("us-east-1", "ci-a", { refreshes: [refresh("human", "Successful")] }),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
      }),
      ["us-east-1:ci-a=start-refresh", "eu-west-1:ci-b=refreshed"],
      ["start-refresh"],
      [],
      false,
    ],
    [
      "our refresh in progress: wait",
      world({
        targets: [
          target("us-east-1", "ci-a", {
            marker: { versionId: V2, refreshId: "r" },
            refreshes: [refresh("r", "InProgress")],
          }),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
      }),
      ["us-east-1:ci-a=refreshing", "eu-west-1:ci-b=refreshed"],
      [],
      [],
      false,
    ],
    ...(["Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"] as const).map(
      (status): [string, Observation, string[], string[], string[], boolean] => [
        `our refresh ended ${status}: block revocation and alert`,
        world({
          targets: [
            target("us-east-1", "ci-a", {
              marker: { versionId: V2, refreshId: "r" },
              refreshes: [refresh("r", status, { statusReason: "boot failed" })],
            }),
            target("eu-west-1", "ci-b", refreshedFor(V2)),
          ],
        }),
        ["us-east-1:ci-a=failed", "eu-west-1:ci-b=refreshed"],
        ["alert:refresh-failed"],
        [],
        false,
      ],
    ),
    [
      "a refresh that succeeded but left instances unreplaced (protected, Ignore) blocks and alerts",
      world({
        targets: [
          target("us-east-1", "ci-a", {
            marker: { versionId: V2, refreshId: "r" },
            refreshes: [refresh("r", "Successful", { percentageComplete: 50, instancesToUpdate: 2 })],
          }),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
      }),
      ["us-east-1:ci-a=partial", "eu-west-1:ci-b=refreshed"],
      ["alert:refresh-partial"],
      [],
      false,
    ],
    [
      "every group refreshed: revoke every managed token but the current one, record completion",
      world({
        targets: [
          target("us-east-1", "ci-a", refreshedFor(V2)),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
      }),
      ["us-east-1:ci-a=refreshed", "eu-west-1:ci-b=refreshed"],
      ["revoke", "record-complete"],
      ["t1"],
      true,
    ],
    [
      "a group with zero instances needs no refresh",
      world({
        targets: [
          target("us-east-1", "ci-a", refreshedFor(V2)),
          target("eu-west-1", "ci-b", { instances: 0 }),
        ],
      }),
      ["us-east-1:ci-a=refreshed", "eu-west-1:ci-b=empty"],
      ["revoke", "record-complete"],
      ["t1"],
      true,
    ],
    [
      "an empty group with a refresh still running waits for it",
      world({
        targets: [
          target("us-east-1", "ci-a", refreshedFor(V2)),
          target("eu-west-1", "ci-b", { instances: 0, refreshes: [refresh("x", "InProgress")] }),
        ],
      }),
      ["us-east-1:ci-a=refreshed", "eu-west-1:ci-b=waiting-for-other-refresh"],
      [],
      [],
      false,
    ],
    [
      "old token already revoked by hand: nothing to revoke, rollout complete",
      world({
        targets: [
          target("us-east-1", "ci-a", refreshedFor(V2)),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
        tokens: [token("t2", V2)],
      }),
      ["us-east-1:ci-a=refreshed", "eu-west-1:ci-b=refreshed"],
      ["record-complete"],
      [],
      true,
    ],
    [
      "initial token not created by us: never revoked",
      world({
        targets: [
          target("us-east-1", "ci-a", refreshedFor(V2)),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
        tokens: [token("initial"), token("t2", V2)],
      }),
      ["us-east-1:ci-a=refreshed", "eu-west-1:ci-b=refreshed"],
      ["record-complete"],
      [],
      true,
    ],
    [
      "completion already recorded: nothing left to do",
      world({
        targets: [
          target("us-east-1", "ci-a", refreshedFor(V2)),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
        tokens: [token("t2", V2)],
        completedVersion: V2,
      }),
      ["us-east-1:ci-a=refreshed", "eu-west-1:ci-b=refreshed"],
      [],
      [],
      true,
    ],
    [
      "the pending version's token is never revoked",
      world(
        {
          targets: [
            target("us-east-1", "ci-a", refreshedFor(V2)),
            target("eu-west-1", "ci-b", refreshedFor(V2)),
          ],
          tokens: [token("t1", V1), token("t2", V2), token("t3", V3)],
        },
        { pending: V3 },
      ),
      ["us-east-1:ci-a=refreshed", "eu-west-1:ci-b=refreshed"],
      ["revoke", "record-complete"],
      ["t1"],
      true,
    ],
    [
      "our marker names a refresh no longer in the history: refresh again (never assume success)",
      world({
        targets: [
          target("us-east-1", "ci-a", { marker: { versionId: V2, refreshId: "gone" } }),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
      }),
      ["us-east-1:ci-a=start-refresh", "eu-west-1:ci-b=refreshed"],
      ["start-refresh"],
      [],
      false,
    ],
    [
      "a group that does not exist blocks and alerts",
      world({
        targets: [
          target("us-east-1", "ci-a", { exists: false }),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
      }),
      ["us-east-1:ci-a=missing", "eu-west-1:ci-b=refreshed"],
      ["alert:group-missing"],
      [],
      false,
    ],
    [
      "a group that could not be observed blocks without guessing",
      world({
        targets: [
          target("us-east-1", "ci-a", { error: "AccessDenied" }),
          target("eu-west-1", "ci-b", refreshedFor(V2)),
        ],
      }),
      ["us-east-1:ci-a=unknown", "eu-west-1:ci-b=refreshed"],
      [],
      [],
      false,
    ],
  ])("%s", (_, observation, expectedPhases, expectedKinds, expectedRevoked, complete) => {
    const p = plan(observation, settings);
    expect(phases(p)).toEqual(expectedPhases);
    expect(kinds(p)).toEqual(expectedKinds);
    expect(revoked(p)).toEqual(expectedRevoked);
    expect(p.complete).toBe(complete);
  });

  describe("a new rotation while the previous refresh still runs", () => {
    const tokens = [token("t1", V1), token("t2", V2), token("t3", V3)];
    const secret = {
      current: V3,
      createdAt: {
        [V1]: new Date(0),
        [V2]: new Date(NOW.getTime() - 600_000),
        [V3]: new Date(NOW.getTime() - 60_000),
      },
    };
    const replicas = [
      {
        region: "eu-west-1",
        current: V3,
        replicationStatus: "InSync",
        statusMessage: undefined,
        error: undefined,
      },
    ];

    it("revokes nothing while v2's refresh runs, then starts v3's", () => {
      const running = plan(
        world(
          {
            replicas,
            tokens,
            targets: [
              target("us-east-1", "ci-a", {
                marker: { versionId: V2, refreshId: "r2" },
                refreshes: [refresh("r2", "InProgress")],
              }),
              target("eu-west-1", "ci-b", refreshedFor(V2)),
            ],
          },
          secret,
        ),
        settings,
      );
      expect(phases(running)).toEqual([
        "us-east-1:ci-a=waiting-for-other-refresh",
        "eu-west-1:ci-b=start-refresh",
      ]);
      expect(revoked(running)).toEqual([]);

      const finished = plan(
        world(
          {
            replicas,
            tokens,
            targets: [
              target("us-east-1", "ci-a", refreshedFor(V2, "r2")),
              target("eu-west-1", "ci-b", refreshedFor(V3)),
            ],
          },
          secret,
        ),
        settings,
      );
      expect(phases(finished)).toEqual(["us-east-1:ci-a=start-refresh", "eu-west-1:ci-b=refreshed"]);
      expect(revoked(finished)).toEqual([]);
    });

    it("revokes both old tokens once the newest refresh succeeded everywhere", () => {
      const done = plan(
        world(
          {
            replicas,
            tokens,
            targets: [
              target("us-east-1", "ci-a", refreshedFor(V3)),
              target("eu-west-1", "ci-b", refreshedFor(V3)),
            ],
          },
          secret,
        ),
        settings,
      );
      expect(revoked(done)).toEqual(["t1", "t2"]);
      expect(done.complete).toBe(true);
    });
  });

  it("alerts once: an alert already recorded for this version is not sent again", () => {
    const failing = world({
      targets: [
        target("us-east-1", "ci-a", {
          marker: { versionId: V2, refreshId: "r" },
          refreshes: [refresh("r", "Failed")],
        }),
        target("eu-west-1", "ci-b", refreshedFor(V2)),
      ],
    });
    const first = plan(failing, settings);
    const alert = first.actions.find((a) => a.kind === "alert");
    expect(alert?.kind === "alert" && alert.message).toMatch(/To do: .*delete-tags/s);
    const again = plan(
      { ...failing, alertsSent: [alertId(alert?.kind === "alert" ? alert.key : "")] },
      settings,
    );
    expect(again.actions).toEqual([]);
    expect(again.waitingFor).toEqual(["operator"]);
  });

  it("alerts when the rollout exceeds its time budget, and when a replica lags too long", () => {
    const old = world(
      {
        replicas: [
          {
            region: "eu-west-1",
            current: V1,
            replicationStatus: "InProgress",
            statusMessage: undefined,
            error: undefined,
          },
        ],
      },
      { createdAt: { [V2]: new Date(NOW.getTime() - 7_200_000) } },
    );
    const p = plan(old, settings);
    expect(kinds(p)).toEqual(["start-refresh", "alert:replica-slow", "alert:budget"]);
    const budget = p.actions.find((a) => a.kind === "alert" && a.key === "budget");
    expect(budget?.kind === "alert" && budget.message).toContain("replica eu-west-1");
  });

  it("dates the rollout from the earlier of the version's creation and the last rotation", () => {
    // moto reports "now" as every version's CreatedDate; LastRotatedDate is when RotateSecret ran.
    const p = plan(
      world(
        {
          replicas: [
            {
              region: "eu-west-1",
              current: V1,
              replicationStatus: "InProgress",
              statusMessage: undefined,
              error: undefined,
            },
          ],
        },
        { createdAt: { [V2]: NOW }, lastRotatedAt: new Date(NOW.getTime() - 7_200_000) },
      ),
      settings,
    );
    expect(kinds(p)).toEqual(["start-refresh", "alert:replica-slow", "alert:budget"]);
  });

  it("alerts once when the current token expires within a day, even after a complete rollout", () => {
    const expiring = world({
      targets: [target("us-east-1", "ci-a", refreshedFor(V2)), target("eu-west-1", "ci-b", refreshedFor(V2))],
      tokens: [{ ...token("t2", V2), expiresAt: new Date(NOW.getTime() + 3 * 3_600_000).toISOString() }],
      completedVersion: V2,
    });
    const p = plan(expiring, settings);
    const alert = p.actions.find((a) => a.kind === "alert");
    expect(alert?.kind === "alert" && alert.key).toBe(`token-expiring:${V2}`);
    expect(alert?.kind === "alert" && alert.message).toMatch(
      /expires .*in 3 h.*\nEffect: .*\nTo do: .*rotate/s,
    );
    const later = plan({ ...expiring, alertsSent: [alertId(`token-expiring:${V2}`)] }, settings);
    expect(later.actions).toEqual([]);
    const farOff = world({
      tokens: [{ ...token("t2", V2), expiresAt: new Date(NOW.getTime() + 3 * 86_400_000).toISOString() }],
    });
    expect(kinds(plan(farOff, settings))).not.toContain("alert:token-expiring");
  });

  it("waits for lagging replicas even while another region is blocked", () => {
    const p = plan(
      world({
        replicas: [
          {
            region: "eu-west-1",
            current: V1,
            replicationStatus: "InSync",
            statusMessage: undefined,
            error: undefined,
          },
          {
            region: "us-west-2",
            current: undefined,
            replicationStatus: undefined,
            statusMessage: undefined,
            error: "AccessDenied",
          },
        ],
      }),
      settings,
    );
    expect(p.regionsLagging).toEqual(["eu-west-1"]);
    expect(p.regionsBehind).toEqual(["eu-west-1", "us-west-2"]);
    expect(p.waitingFor).toEqual(["replicas", "refreshes", "operator"]);
  });

  it("does not roll out a version it did not create (the initial token): no refresh, no revocation", () => {
    const p = plan(
      world({ tokens: [token("initial"), token("t1", V1)] }, { current: "hand-made" }),
      settings,
    );
    expect(p.actions).toEqual([]);
    expect(phases(p)).toEqual(["us-east-1:ci-a=unmanaged", "eu-west-1:ci-b=unmanaged"]);
    expect(p.waitingFor).toEqual([]);
    expect(p.complete).toBe(false);
    expect(p.notices.join(" ")).toMatch(/has no token created by this project/);
  });

  describe("emergency rotation (the old token leaked)", () => {
    const emergency = { versionId: V2, leakedVersionId: V1, minHealthyPercentage: 50 };

    it("revokes the leaked token as soon as every region serves the new one, before any refresh", () => {
      const p = plan(world({ emergency }), settings);
      expect(revoked(p)).toEqual(["t1"]);
      expect(phases(p)).toEqual(["us-east-1:ci-a=start-refresh", "eu-west-1:ci-b=start-refresh"]);
      const start = p.actions.find((a) => a.kind === "start-refresh");
      expect(start?.kind === "start-refresh" && start.preferences).toMatchObject({
        minHealthyPercentage: 50,
        scaleInProtectedInstances: "Refresh",
      });
      expect(p.complete).toBe(false);
    });

    it("keeps the leaked token while a region still serves it", () => {
      const p = plan(
        world({
          emergency,
          replicas: [
            {
              region: "eu-west-1",
              current: V1,
              replicationStatus: "InSync",
              statusMessage: undefined,
              error: undefined,
            },
          ],
        }),
        settings,
      );
      expect(revoked(p)).toEqual([]);
    });

    it("applies only to the version it was declared for", () => {
      const p = plan(world({ emergency: { ...emergency, versionId: V3 } }), settings);
      expect(revoked(p)).toEqual([]);
      const start = p.actions.find((a) => a.kind === "start-refresh");
      expect(start?.kind === "start-refresh" && start.preferences.scaleInProtectedInstances).toBe("Wait");
    });

    it("says so when the leaked token is not one it can revoke", () => {
      const p = plan(world({ emergency, tokens: [token("initial"), token("t2", V2)] }), settings);
      expect(revoked(p)).toEqual([]);
      expect(p.notices.join(" ")).toMatch(/leaked token .* revoke it by hand/);
    });
  });

  it("reports tokens it did not create and a secret without AWSCURRENT", () => {
    const p = plan(world({ tokens: [token("initial")] }, { current: undefined }), settings);
    expect(p.actions).toEqual([]);
    expect(p.waitingFor).toEqual(["operator"]);
    expect(p.notices.join(" ")).toMatch(/never revoked by it: initial \("Initial agent token"\)/);
  });
});

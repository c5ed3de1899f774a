import { describe, expect, it } from "vitest";
import { PROFILES, validateScenario } from "../../../../sandbox/scenario/profiles";

describe("validateScenario", () => {
  it("accepts the defaults and every documented combination", () => {
    expect(validateScenario({})).toBeUndefined();
    expect(validateScenario({ profile: PROFILES.quick, rotations: 5, strategy: "refresh" })).toBeUndefined();
    expect(validateScenario({ failRefreshRegion: "eu-west-1" })).toBeUndefined();
    expect(validateScenario({ ssmOffline: true, replicaLagSeconds: 0.5 })).toBeUndefined();
  });

  it("refuses what cannot run, saying why", () => {
    expect(validateScenario({ rotations: 0 })).toMatch(/--rotations must be a whole number from 1 to 5/);
    expect(validateScenario({ rotations: 1.5 })).toMatch(/--rotations/);
    expect(validateScenario({ failRefreshRegion: "eu-west-1", strategy: "in-place" })).toMatch(
      /cannot be combined with --strategy in-place/,
    );
    expect(validateScenario({ ssmOffline: true, strategy: "refresh" })).toMatch(/--ssm-offline/);
    expect(validateScenario({ failRefreshRegion: "ap-south-1" })).toMatch(
      /needs a region with Auto Scaling groups \(us-east-1, us-west-2, eu-west-1\)/,
    );
    expect(validateScenario({ replicaLagSeconds: 301 })).toMatch(/--replica-lag must be/);
  });
});

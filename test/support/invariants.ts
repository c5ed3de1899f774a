import type { World } from "../../sandbox/world/world";
import { describeManagedToken, isManagedFor } from "../../shared/buildkite/description";

/** The safety facts every rollout must keep, computed from what the local servers recorded. */
export function invariants(world: World) {
  const tokens = world.buildkite.tokens();
  const managed = tokens.filter((t) => isManagedFor(t.description, world.secretArn));
  const registrations = world.buildkite.registrations();
  const boots = world.fleet.boots();
  return {
    managedValid: managed.filter((t) => t.valid),
    tokenFor: (versionId: string) =>
      tokens.find((t) => t.description === describeManagedToken(world.secretArn, versionId)),
    failedRegistrations: registrations.filter((r) => !r.ok),
    registrations,
    failedBoots: boots.filter((b) => b.result && !b.result.ok),
    boots,
  };
}

/** The sandbox's invariants, in the order they are checked, for a complete in-place run. */
export const IN_PLACE_COMPLETE_INVARIANTS = [
  "no-registration-with-revoked-token",
  "no-cfg-holds-revoked-token",
  "cfgs-hold-valid-tokens",
  "foreign-token-never-revoked",
  "one-managed-token-valid",
  "no-token-in-output",
  "every-instance-safe-for-final",
  "in-place-replaced-nothing",
];

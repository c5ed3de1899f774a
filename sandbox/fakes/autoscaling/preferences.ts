import { validationError } from "./errors";
import type {
  RefreshPreferences,
  RefreshPreferencesInput,
  ScaleInProtectedInstances,
  StandbyInstances,
} from "./types";

const SCALE_IN_PROTECTED: readonly ScaleInProtectedInstances[] = ["Refresh", "Ignore", "Wait"];
const STANDBY: readonly StandbyInstances[] = ["Terminate", "Ignore", "Wait"];

/** Applies AWS's defaults and validation rules to StartInstanceRefresh preferences. */
export function normalizePreferences(input: RefreshPreferencesInput = {}): RefreshPreferences {
  const minHealthyPercentage = input.minHealthyPercentage ?? 90;
  const maxHealthyPercentage = input.maxHealthyPercentage ?? 100;
  if (minHealthyPercentage < 0 || minHealthyPercentage > 100) {
    throw validationError("MinHealthyPercentage must be between 0 and 100.");
  }
  if (maxHealthyPercentage < 100 || maxHealthyPercentage > 200) {
    throw validationError("MaxHealthyPercentage must be between 100 and 200.");
  }
  if (maxHealthyPercentage - minHealthyPercentage > 100) {
    throw validationError(
      "The difference between MaxHealthyPercentage and MinHealthyPercentage cannot be greater than 100.",
    );
  }
  if (input.instanceWarmup !== undefined && input.instanceWarmup < 0) {
    throw validationError("InstanceWarmup must be greater than or equal to 0.");
  }
  // Our refreshes never carry a DesiredConfiguration, and AWS refuses AutoRollback without one.
  if (input.autoRollback === true) {
    throw validationError("AutoRollback requires a desired configuration");
  }
  return {
    minHealthyPercentage,
    maxHealthyPercentage,
    ...(input.instanceWarmup === undefined ? {} : { instanceWarmup: input.instanceWarmup }),
    skipMatching: input.skipMatching ?? false,
    autoRollback: false,
    scaleInProtectedInstances: oneOf(
      "scaleInProtectedInstances",
      input.scaleInProtectedInstances ?? "Ignore",
      SCALE_IN_PROTECTED,
    ),
    standbyInstances: oneOf("standbyInstances", input.standbyInstances ?? "Ignore", STANDBY),
  };
}

function oneOf<T extends string>(field: string, value: string, allowed: readonly T[]): T {
  const match = allowed.find((candidate) => candidate === value);
  if (match === undefined) {
    throw validationError(
      `1 validation error detected: Value '${value}' at 'preferences.${field}' failed to satisfy constraint: ` +
        `Member must satisfy enum value set: [${allowed.join(", ")}]`,
    );
  }
  return match;
}

/**
 * How many instances one batch replaces. MinHealthyPercentage bounds how far below desired capacity
 * the group may go and MaxHealthyPercentage how far above; their gap is the batch (at least 1).
 */
export function batchSize(desiredCapacity: number, preferences: RefreshPreferences): number {
  const ceiling = Math.floor((desiredCapacity * preferences.maxHealthyPercentage) / 100);
  const floor = Math.ceil((desiredCapacity * preferences.minHealthyPercentage) / 100);
  return Math.max(1, ceiling - floor);
}

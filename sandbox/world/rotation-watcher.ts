import { DescribeSecretCommand } from "@aws-sdk/client-secrets-manager";
import { versionHolding } from "../../shared/secrets/stages";
import { playRotation, type RotationPlayerOptions } from "./secrets-manager-rotation";

/**
 * Plays Secrets Manager for rotations started by someone else (`bk-agent-token rotate`,
 * `aws secretsmanager rotate-secret`) against the sandbox: moto only labels the new version
 * AWSPENDING and cannot run our function, so this notices the version and hands it to the one
 * player (secrets-manager-rotation.ts), which drives the steps as for every other caller.
 */
export interface RotationWatcher {
  /** Versions this watcher drove, oldest first. */
  driven: string[];
  /** Failures, as "attempt N for VERSION: step: errorType: message" (never a token). */
  errors: string[];
  stop(): Promise<void>;
}

export interface RotationWatcherDeps extends Omit<RotationPlayerOptions, "signal"> {
  /** Versions being driven already (by world.rotate()); shared so nobody drives one twice. */
  claimed: Set<string>;
  pollMs?: number;
}

export function watchRotations(deps: RotationWatcherDeps): RotationWatcher {
  const driven: string[] = [];
  const errors: string[] = [];
  let stopped = false;
  let wake: (() => void) | undefined;
  const player: RotationPlayerOptions = {
    ...deps,
    onEvent: (event) => {
      if (event.kind === "step" && !event.ok)
        errors.push(
          `attempt ${event.attempt} for ${event.versionId}: ${event.step}: ${event.error ?? "failed"}`,
        );
      deps.onEvent?.(event);
    },
  };
  const loop = (async () => {
    while (!stopped) {
      try {
        const d = await deps.secrets.send(new DescribeSecretCommand({ SecretId: deps.secretArn }));
        const stages = d.VersionIdsToStages ?? {};
        // A pending version not yet current: a rotation someone else started.
        const pending = versionHolding(stages, "AWSPENDING");
        const started = pending !== undefined && pending !== versionHolding(stages, "AWSCURRENT");
        if (started && !deps.claimed.has(pending)) {
          deps.claimed.add(pending);
          driven.push(pending);
          await playRotation(player, pending);
        }
      } catch (error) {
        errors.push(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, deps.pollMs ?? 100);
      });
    }
  })();
  return {
    driven,
    errors,
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}

import { DescribeSecretCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { removeLeftoverPending, STEP_ORDER } from "./rotation-driver";

/**
 * Plays Secrets Manager for rotations started by someone else (`bk-agent-token rotate`,
 * `aws secretsmanager rotate-secret`) against the sandbox: moto only labels the new version
 * AWSPENDING and cannot run our function, so this notices the version and invokes the four steps
 * through the local Lambda, then sends the native label event — as Secrets Manager would.
 */
export interface RotationWatcher {
  /** Versions this watcher drove, oldest first. */
  driven: string[];
  /** Failures, as "step: errorType: message" (never a token). */
  errors: string[];
  stop(): Promise<void>;
}

export interface RotationWatcherDeps {
  secrets: SecretsManagerClient;
  secretArn: string;
  /** Versions being driven already (by world.rotate()); shared so nobody drives one twice. */
  claimed: Set<string>;
  invokeStep: (step: string, versionId: string) => Promise<{ ok: boolean; error?: string }>;
  promoted: (versionId: string) => void;
  pollMs?: number;
}

export function watchRotations(deps: RotationWatcherDeps): RotationWatcher {
  const driven: string[] = [];
  const errors: string[] = [];
  let stopped = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (!stopped) {
      try {
        const d = await deps.secrets.send(new DescribeSecretCommand({ SecretId: deps.secretArn }));
        const pending = Object.entries(d.VersionIdsToStages ?? {}).find(
          ([, s]) => s.includes("AWSPENDING") && !s.includes("AWSCURRENT"),
        )?.[0];
        if (pending && !deps.claimed.has(pending)) {
          deps.claimed.add(pending);
          driven.push(pending);
          await drive(deps, pending, errors);
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

/** Secrets Manager retries a failed rotation with the same version id; so does this, a few times. */
async function drive(deps: RotationWatcherDeps, versionId: string, errors: string[]): Promise<void> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    let failed: string | undefined;
    for (const step of STEP_ORDER) {
      const r = await deps.invokeStep(step, versionId);
      if (!r.ok) {
        failed = `${step}: ${r.error ?? "failed"}`;
        break;
      }
    }
    if (!failed) {
      await removeLeftoverPending(deps.secrets, deps.secretArn);
      deps.promoted(versionId);
      return;
    }
    errors.push(`attempt ${attempt} for ${versionId}: ${failed}`);
    await new Promise((r) => setTimeout(r, 200 * attempt));
  }
}

import { rmSync, writeFileSync } from "node:fs";
import type { World } from "../world/world";

/**
 * Leaves the world up for the operator CLI until the signal aborts. The environment file holds
 * endpoints, ARNs and the fake AWS credentials only; no token is in it.
 */
export async function keepServing(
  world: World,
  envFile: string,
  write: (text: string) => void,
  signal: AbortSignal,
  scheduleMs: number,
): Promise<void> {
  const env = { ...world.env, BUILDKITE_AGENT_TOKEN_SECRET_ID: world.secretArn };
  writeFileSync(
    envFile,
    `${Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n")}\n`,
    { mode: 0o600 },
  );
  const watcher = world.watchRotations();
  const timer = setInterval(() => world.schedule(), scheduleMs);
  write(
    [
      "",
      "The sandbox keeps running (Ctrl-C stops it). In another terminal, point the operator CLI at it:",
      "  npm run build",
      `  set -a; . ${envFile}; set +a`,
      "  node dist/cli/index.mjs status",
      "  node dist/cli/index.mjs preflight",
      "  node dist/cli/index.mjs rotate --interval 1",
      "  node dist/cli/index.mjs rotate --emergency --interval 1",
      '  aws --endpoint-url "$AWS_ENDPOINT_URL" secretsmanager rotate-secret --secret-id "$ROTATION_SECRET_ARN"',
      "Rotations started there are driven as Secrets Manager would (the four steps, then the label event).",
      "",
    ].join("\n"),
  );
  if (!signal.aborted)
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  clearInterval(timer);
  await watcher.stop();
  rmSync(envFile, { force: true });
}

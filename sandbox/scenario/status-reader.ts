import { apiTokenLoaderForArn } from "../../shared/buildkite/api-token";
import { buildkiteClientFromConfig } from "../../shared/buildkite/client-from-config";
import { autoScalingClients } from "../../shared/lib/aws/auto-scaling";
import { ec2Clients } from "../../shared/lib/aws/ec2";
import { secretsManagerClients } from "../../shared/lib/aws/secrets-manager";
import { ssmClients } from "../../shared/lib/aws/ssm";
import { loadReconcileConfig } from "../../shared/lib/config";
import { collectStatus, type StatusReport } from "../../shared/rollout/status";
import type { World } from "../world/world";

export interface StatusReader {
  read(): Promise<StatusReport>;
  /**
   * Whether a failed Buildkite answer was one of this reader's own (it retried it): true once per
   * retry its client reported, so the narrator tells the handlers' failures from the view's.
   */
  claimOwnFailure(method: string, path: string, status: number): boolean;
  /** Destroys every SDK client it made. */
  close(): void;
}

/** Status as the operator CLI sees it, built against the world's endpoints. */
export function statusReader(world: World): StatusReader {
  const config = loadReconcileConfig(world.env);
  const clients = new Set<{ destroy(): void }>();
  const tracked =
    <T extends { destroy(): void }>(factory: (region: string) => T) =>
    (region: string): T => {
      const client = factory(region);
      clients.add(client);
      return client;
    };
  const secrets = tracked(secretsManagerClients());
  const autoScaling = tracked(autoScalingClients());
  const ec2 = tracked(ec2Clients());
  const ssm = tracked(ssmClients());
  const ownRetries: Array<{ method: string; path: string; status: number }> = [];
  // Each retry the client reports is remembered (its fields: method, path, status), not printed.
  const remember = (_message: string, fields?: Record<string, unknown>) =>
    void ownRetries.push({
      method: String(fields?.method),
      path: String(fields?.path),
      status: Number(fields?.status),
    });
  const buildkite = buildkiteClientFromConfig(config.buildkite, {
    // The token is read in the region of its own ARN, as the functions read it.
    apiToken: apiTokenLoaderForArn(secrets, config.buildkite.apiTokenSecretArn),
    logger: { info: remember, warn: remember },
    tuning: { timeoutMs: 5_000, maxAttempts: 4, baseDelayMs: 50, maxDelayMs: 500 },
  });
  return {
    read: (): Promise<StatusReport> =>
      collectStatus({ config, secrets, autoScaling, ec2, ssm, buildkite, now: () => new Date() }),
    claimOwnFailure(method, path, status) {
      const i = ownRetries.findIndex((r) => r.method === method && r.path === path && r.status === status);
      if (i >= 0) ownRetries.splice(i, 1);
      return i >= 0;
    },
    close() {
      for (const client of clients) client.destroy();
      clients.clear();
    },
  };
}

/**
 * The shapes the Buildkite stand-in is configured with and reports through its inspection methods
 * (see `BuildkiteApi` in api.ts). Token values appear only in `SandboxToken`: never log one.
 */

export interface BuildkiteApiOptions {
  organization: string;
  clusterId: string;
  /** The REST API token (`Authorization: Bearer <apiToken>`). */
  apiToken: string;
  /** Default `["read_clusters", "write_clusters"]`. */
  apiTokenScopes?: readonly string[];
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0: the OS picks a free port. */
  port?: number;
  /** Millisecond clock for created_at, expiry, validity and rate-limit windows. Default `Date.now`. */
  now?: () => number;
  /** Enforce the real 200 (org) / 50 (user) requests-per-minute budgets. Default false. */
  enforceRateLimits?: boolean;
}

/** The fleet's side of the agents the REST API lists (`name` is the instance id agents register with). */
export interface AgentHooks {
  connected(name: string): boolean;
  /** `PUT …/agents/{id}/stop` with `force: false`: the agent finishes its job, then exits. */
  stop(name: string): void;
}

export interface SandboxToken {
  id: string;
  description: string;
  value: string;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  /** Exists, not revoked, and not expired at the time of the call. */
  valid: boolean;
}

export interface SandboxRegistration {
  at: Date;
  name: string;
  /** The token the Authorization header named, valid or not; null when it named none. */
  tokenId: string | null;
  ok: boolean;
  status: number;
  /** The agent's `meta_data` (`key=value` strings) as it registered; empty when it sent none. */
  metaData: string[];
}

export interface SandboxRequest {
  method: string;
  path: string;
  /** 0 while the response is pending, or when the socket was dropped by `dropNext`. */
  status: number;
  at: Date;
}

export interface FlakyOptions {
  /** Chance in [0, 1] that a request fails (half the failures are 502, half 429). */
  probability: number;
  seed: number;
}

export interface SeedToken {
  description: string;
  /** May already be in the past: seeds skip the 10-minute rule the REST API enforces. */
  expiresAt?: Date | null;
  /** Default: a fresh `bkct_` value. */
  value?: string;
}

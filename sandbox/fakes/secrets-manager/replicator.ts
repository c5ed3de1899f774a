/**
 * Simulated Secrets Manager replication between regions of ONE moto server. moto keeps a separate
 * Secrets Manager backend per region, but its own replicas (AddReplicaRegions) are live views of
 * the primary: always in sync, so lag and failure cannot be exercised through them. This copies
 * instead, the way replication behaves as seen from a replica region:
 *
 * - every `pollMs` it reads the primary (DescribeSecret, then GetSecretValue per labelled version,
 *   always with an explicit VersionId: a plain GetSecretValue can return the wrong version in moto);
 * - each distinct primary state is applied to every replica region `lag` ms after it was seen: the
 *   replica is created with the same name (CreateSecret with ClientRequestToken = the AWSCURRENT
 *   version id, so ids match), every labelled version that has a value is copied with
 *   PutSecretValue(ClientRequestToken = the same id), and the AWSCURRENT / AWSPREVIOUS / AWSPENDING
 *   labels are moved to match. A version without a value (the empty AWSPENDING Secrets Manager
 *   creates at the start of a rotation) is never copied: moto's SSM reference lookup fails while
 *   any version has no value, and a replica region would then fail simulated boots.
 *
 * Regions can be slowed (`setLag`), failed (`fail`: the replica keeps serving what it had), healed,
 * or have their replica deleted (`remove`: a missing replica; replication to it stops until `heal`).
 * The primary's DescribeSecret shows no ReplicationStatus for these simulated replicas.
 *
 * Secret values pass through memory only; nothing here logs.
 */

import {
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { isNotFound } from "../../../shared/lib/aws/errors";
import { versionHolding } from "../../../shared/secrets/stages";
import { applySnapshot, type Snapshot, type VersionSnapshot } from "./replica-apply";

export { REPLICATED_LABELS } from "./replica-apply";

export interface ReplicatorOptions {
  motoUrl: string;
  primaryRegion: string;
  /** The secret's name (or ARN) in the primary region; replicas get the primary's name. */
  secretName: string;
  replicaRegions: string[];
  /** Default delay between seeing a primary state and applying it to a replica. */
  lagMs: number;
  /** How often the primary is read (default 50 ms). */
  pollMs?: number;
}

export type RegionMode = "replicating" | "failed" | "removed";

export interface RegionStatus {
  region: string;
  mode: RegionMode;
  lagMs: number;
  /** Sequence number of the primary state last applied (0 = none yet). */
  appliedSeq: number;
  appliedAt?: Date;
  /** The last error applying to this region, cleared by the next success. */
  lastError?: string;
}

export interface Replicator {
  setLag(region: string, ms: number): void;
  /** Stop replicating to the region; its replica keeps serving what it had. */
  fail(region: string): void;
  /** Resume replicating to a failed or removed region (a removed replica is re-created). */
  heal(region: string): Promise<void>;
  /** Delete the region's replica (ForceDeleteWithoutRecovery) and stop replicating to it. */
  remove(region: string): Promise<void>;
  /** Resolves when every replicating region's AWSCURRENT is `versionId`; rejects after `timeoutMs`. */
  whenInSync(versionId: string, timeoutMs?: number): Promise<void>;
  /** AWSCURRENT version id each replica region serves right now (undefined: no replica / no version). */
  currentVersions(): Promise<Record<string, string | undefined>>;
  status(): RegionStatus[];
  /** The last error reading the primary, if the latest read failed. */
  lastPrimaryError(): string | undefined;
  /** Stops polling and waits for work in flight. Idempotent. */
  stop(): Promise<void>;
}

/** What the replicator keeps per region is exactly what status() reports (as copies). */
type RegionState = RegionStatus;

const credentials = { accessKeyId: "test", secretAccessKey: "test" };
const MAX_SNAPSHOTS = 100;

export async function startReplicator(options: ReplicatorOptions): Promise<Replicator> {
  const replicator = new SimulatedReplicator(options);
  try {
    await replicator.start();
  } catch (error) {
    await replicator.stop();
    throw error;
  }
  return replicator;
}

class SimulatedReplicator implements Replicator {
  private readonly clients = new Map<string, SecretsManagerClient>();
  private readonly regions = new Map<string, RegionState>();
  private readonly values = new Map<string, string>(); // version id → value; versions are immutable
  private readonly pollMs: number;
  private snapshots: Snapshot[] = [];
  private signature = "";
  private seq = 0;
  private primaryError: string | undefined;
  /** The secret's name as the primary reports it (options.secretName may be an ARN). */
  private name: string;
  private timer: NodeJS.Timeout | undefined;
  private tickRunning: Promise<void> | undefined;
  private stopped = false;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: ReplicatorOptions) {
    this.name = options.secretName;
    this.pollMs = options.pollMs ?? 50;
    if (!(this.pollMs > 0)) throw new RangeError("pollMs must be > 0");
    checkLag(options.lagMs);
    for (const region of new Set(options.replicaRegions)) {
      if (region === options.primaryRegion) throw new Error(`replica region ${region} is the primary region`);
      this.regions.set(region, { region, mode: "replicating", lagMs: options.lagMs, appliedSeq: 0 });
    }
  }

  /** Reads the primary once (so a missing secret fails fast), then starts the loop. */
  async start(): Promise<void> {
    await this.readPrimary();
    this.schedule();
  }

  // ---- Knobs ----------------------------------------------------------------------------------

  setLag(region: string, ms: number): void {
    checkLag(ms);
    this.region(region).lagMs = ms;
  }

  fail(region: string): void {
    this.region(region).mode = "failed";
  }

  async heal(region: string): Promise<void> {
    const state = this.region(region);
    if (state.mode === "removed") state.appliedSeq = 0; // the replica is gone: rebuild it
    state.mode = "replicating";
  }

  async remove(region: string): Promise<void> {
    const state = this.region(region);
    state.mode = "removed";
    await this.tickRunning; // an apply in flight must not re-create what we delete
    try {
      await this.client(region).send(
        new DeleteSecretCommand({ SecretId: this.name, ForceDeleteWithoutRecovery: true }),
      );
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    state.appliedSeq = 0;
  }

  // ---- Inspection -----------------------------------------------------------------------------

  async whenInSync(versionId: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen: Record<string, string | undefined> = {};
    for (;;) {
      const wanted = [...this.regions.values()].filter((r) => r.mode === "replicating").map((r) => r.region);
      seen = await this.currentVersions(wanted);
      if (wanted.every((region) => seen[region] === versionId)) return;
      if (Date.now() >= deadline) {
        const behind = wanted
          .filter((region) => seen[region] !== versionId)
          .map((region) => {
            const error = this.regions.get(region)?.lastError;
            return `${region} serves ${seen[region] ?? "nothing"}${error ? ` (last error: ${error})` : ""}`;
          });
        throw new Error(`replicas not in sync with ${versionId} after ${timeoutMs} ms: ${behind.join("; ")}`);
      }
      await sleep(Math.min(this.pollMs, 25));
    }
  }

  async currentVersions(
    regions: string[] = [...this.regions.keys()],
  ): Promise<Record<string, string | undefined>> {
    const entries = await Promise.all(
      regions.map(async (region): Promise<[string, string | undefined]> => {
        try {
          const out = await this.client(region).send(new DescribeSecretCommand({ SecretId: this.name }));
          return [region, versionHolding(out.VersionIdsToStages ?? {}, "AWSCURRENT")];
        } catch (error) {
          if (isNotFound(error)) return [region, undefined];
          throw error;
        }
      }),
    );
    return Object.fromEntries(entries);
  }

  status(): RegionStatus[] {
    return [...this.regions.values()].map((r) => ({ ...r }));
  }

  lastPrimaryError(): string | undefined {
    return this.primaryError;
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      clearTimeout(this.timer);
      await this.tickRunning;
      for (const client of this.clients.values()) client.destroy();
      this.clients.clear();
    })();
    return this.stopping;
  }

  // ---- Loop -----------------------------------------------------------------------------------

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.tickRunning = this.tick().finally(() => {
        this.tickRunning = undefined;
        this.schedule();
      });
    }, this.pollMs);
  }

  private async tick(): Promise<void> {
    try {
      await this.readPrimary();
      this.primaryError = undefined;
    } catch (error) {
      this.primaryError = describeError(error);
    }
    if (this.stopped) return;
    const now = Date.now();
    await Promise.all(
      [...this.regions.values()].map(async (state) => {
        if (state.mode !== "replicating") return;
        const due = this.dueSnapshot(state, now);
        if (!due || due.seq <= state.appliedSeq) return;
        try {
          await applySnapshot(this.client(state.region), due);
          // The region may have been failed or removed meanwhile; the apply still happened.
          state.appliedSeq = due.seq;
          state.appliedAt = new Date();
          delete state.lastError;
        } catch (error) {
          state.lastError = describeError(error);
        }
      }),
    );
  }

  /** The newest primary state that is at least `lag` old for this region. */
  private dueSnapshot(state: RegionState, now: number): Snapshot | undefined {
    for (let i = this.snapshots.length - 1; i >= 0; i--) {
      const snapshot = this.snapshots[i];
      if (snapshot && snapshot.seenAt + state.lagMs <= now) return snapshot;
    }
    return undefined;
  }

  private async readPrimary(): Promise<void> {
    const primary = this.client(this.options.primaryRegion);
    const described = await primary.send(new DescribeSecretCommand({ SecretId: this.options.secretName }));
    const name = described.Name ?? this.options.secretName;
    this.name = name;
    const versions: VersionSnapshot[] = [];
    for (const [id, stages] of Object.entries(described.VersionIdsToStages ?? {})) {
      // Versions without a label are history nobody reads; they are not replicated.
      if (stages.length === 0) continue;
      let value = this.values.get(id);
      if (value === undefined) {
        try {
          const out = await primary.send(
            new GetSecretValueCommand({ SecretId: this.options.secretName, VersionId: id }),
          );
          value = out.SecretString;
        } catch (error) {
          // The version exists (DescribeSecret listed it) but has no value yet.
          if (!isNotFound(error)) throw error;
        }
        if (value !== undefined) this.values.set(id, value);
      }
      versions.push({ id, stages: [...stages].sort(), value });
    }
    versions.sort((a, b) => a.id.localeCompare(b.id));
    const signature = JSON.stringify([name, versions.map((v) => [v.id, v.stages, v.value !== undefined])]);
    if (signature === this.signature) return;
    this.signature = signature;
    this.seq += 1;
    this.snapshots.push({
      seq: this.seq,
      seenAt: Date.now(),
      name,
      description: described.Description,
      versions,
    });
    if (this.snapshots.length > MAX_SNAPSHOTS)
      this.snapshots.splice(0, this.snapshots.length - MAX_SNAPSHOTS);
  }

  private region(region: string): RegionState {
    const state = this.regions.get(region);
    if (!state) throw new Error(`${region} is not a replica region (${[...this.regions.keys()].join(", ")})`);
    return state;
  }

  private client(region: string): SecretsManagerClient {
    let client = this.clients.get(region);
    if (!client) {
      client = new SecretsManagerClient({
        region,
        endpoint: this.options.motoUrl,
        credentials,
        maxAttempts: 2,
        requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 },
      });
      this.clients.set(region, client);
    }
    return client;
  }
}

function checkLag(ms: number): void {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`lag must be a non-negative number of ms: ${ms}`);
}

/** Error names and messages from Secrets Manager carry no secret values. */
function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

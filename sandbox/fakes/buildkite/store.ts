/**
 * The Buildkite stand-in's state: the cluster's agent tokens, the API token's scopes, the agents
 * that registered and which of them were asked to stop. Pure in-memory state behind a clock; the
 * HTTP side (server.ts, routes.ts) reads and changes it only through these methods.
 *
 * Token values are secrets even here: they leave only through `tokens()` (inspection) and the
 * create response routes.ts builds.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { AgentHooks, SandboxRegistration, SandboxToken, SeedToken } from "./types";

const DEFAULT_SCOPES = ["read_clusters", "write_clusters"] as const;

export interface StoredToken {
  id: string;
  description: string;
  value: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

/** An agent as the REST agents API lists it: one per instance name, from its latest registration. */
export interface ListedAgent {
  id: string;
  name: string;
  metaData: string[];
  state: "connected" | "stopping" | "disconnected";
}

export class BuildkiteStore {
  private readonly byId = new Map<string, StoredToken>(); // in creation order
  private readonly byValue = new Map<string, StoredToken>();
  private readonly registrationLog: SandboxRegistration[] = [];
  private readonly agentIds = new Map<string, string>();
  private readonly stopping = new Set<string>();
  private readonly revokeListeners = new Set<(tokenId: string) => void>();
  private agentHooks: AgentHooks | undefined;
  private scopeList: string[] = [];

  constructor(
    readonly now: () => number,
    private readonly defaultScopes: readonly string[] = DEFAULT_SCOPES,
  ) {
    this.resetScopes();
  }

  // --- The API token's scopes -----------------------------------------------------------------

  get scopes(): readonly string[] {
    return this.scopeList;
  }

  setScopes(scopes: readonly string[]): void {
    this.scopeList = [...scopes];
  }

  resetScopes(): void {
    this.scopeList = [...this.defaultScopes];
  }

  // --- Tokens ---------------------------------------------------------------------------------

  commitToken(description: string, expiresAt: number | null, value?: string): StoredToken {
    const token: StoredToken = {
      id: randomUUID(),
      description,
      value: value ?? `bkct_${randomBytes(20).toString("hex")}`,
      createdAt: this.now(),
      expiresAt,
      revokedAt: null,
    };
    this.byId.set(token.id, token);
    this.byValue.set(token.value, token);
    return token;
  }

  addToken(input: SeedToken): { id: string; value: string } {
    if (input.value !== undefined && this.byValue.has(input.value))
      throw new Error("a token with that value exists");
    const token = this.commitToken(input.description, input.expiresAt?.getTime() ?? null, input.value);
    return { id: token.id, value: token.value };
  }

  /** Revoke directly, as a human in the UI would. Throws for an unknown id; idempotent otherwise. */
  revokeToken(id: string): void {
    const token = this.byId.get(id);
    if (!token) throw new Error(`no token with id ${id}`);
    if (token.revokedAt !== null) return;
    this.revoke(token);
  }

  /** Revoke a live token (the REST DELETE) and tell the listeners. */
  revoke(token: StoredToken): void {
    token.revokedAt = this.now();
    for (const listener of this.revokeListeners) {
      try {
        listener(token.id);
      } catch {
        // an observer must never change what the API answers
      }
    }
  }

  onRevoke(listener: (tokenId: string) => void): () => void {
    this.revokeListeners.add(listener);
    return () => this.revokeListeners.delete(listener);
  }

  /** Every token not revoked, in creation order: what the REST API lists. */
  liveTokens(): StoredToken[] {
    return [...this.byId.values()].filter((t) => t.revokedAt === null);
  }

  /** A revoked token no longer exists as far as the REST API is concerned. */
  liveToken(id: string | undefined): StoredToken | undefined {
    const token = id === undefined ? undefined : this.byId.get(id);
    return token?.revokedAt === null ? token : undefined;
  }

  /** The token with this value, whether or not it is still valid. */
  tokenByValue(value: string | undefined): StoredToken | undefined {
    return value === undefined ? undefined : this.byValue.get(value);
  }

  isValid(t: StoredToken, nowMs: number = this.now()): boolean {
    return t.revokedAt === null && (t.expiresAt === null || t.expiresAt > nowMs);
  }

  tokens(): SandboxToken[] {
    const nowMs = this.now();
    return [...this.byId.values()].map((t) => ({
      id: t.id,
      description: t.description,
      value: t.value,
      createdAt: new Date(t.createdAt),
      expiresAt: t.expiresAt === null ? null : new Date(t.expiresAt),
      revokedAt: t.revokedAt === null ? null : new Date(t.revokedAt),
      valid: this.isValid(t, nowMs),
    }));
  }

  // --- Agents ---------------------------------------------------------------------------------

  setAgentHooks(hooks: AgentHooks | undefined): void {
    this.agentHooks = hooks;
  }

  recordRegistration(registration: SandboxRegistration): void {
    // A new registration is a new agent process: a stop asked of the old one no longer applies.
    if (registration.ok) this.stopping.delete(registration.name);
    this.registrationLog.push(registration);
  }

  registrations(): SandboxRegistration[] {
    return this.registrationLog.map((r) => ({ ...r, at: new Date(r.at), metaData: [...r.metaData] }));
  }

  /** One agent per instance that registered successfully: its latest registration. */
  agents(): ListedAgent[] {
    const latest = new Map<string, SandboxRegistration>();
    for (const r of this.registrationLog) if (r.ok) latest.set(r.name, r);
    return [...latest.values()].map((r) => {
      let id = this.agentIds.get(r.name);
      if (!id) {
        id = randomUUID();
        this.agentIds.set(r.name, id);
      }
      const connected = this.agentHooks?.connected(r.name) ?? false;
      const state = connected ? (this.stopping.has(r.name) ? "stopping" : "connected") : "disconnected";
      return { id, name: r.name, metaData: [...r.metaData], state };
    });
  }

  /** Ask the fleet to stop a listed agent once; a second ask while it is stopping does nothing. */
  stopAgent(name: string): void {
    if (this.stopping.has(name)) return;
    this.stopping.add(name);
    this.agentHooks?.stop(name);
  }
}

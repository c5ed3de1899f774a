/** What a fleet is built from, and the settings resolved (and checked) from it once. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Clock } from "./clock";
import type { AgentStartContext, BootContext, BootResult, GroupSpec, RefreshEvent } from "./types";

export interface FleetOptions {
  groups: GroupSpec[];
  /** Time to launch and boot one instance before `boot` is called (default 200 ms). */
  replaceMs?: number;
  /** Default job length when a group's jobs give none (default 500 ms). */
  jobMs?: number;
  /**
   * User data of a launched instance: read the token, write the cfg at `configPath`, start the
   * agent (register). `ok: false` fails the refresh that launched it. Defaults to writing a cfg with
   * an empty token and succeeding.
   */
  boot?: (context: BootContext) => Promise<BootResult>;
  /** `buildkite-agent start` on a live instance (token from the cfg). Default: ok when the cfg has a non-empty token. */
  startAgent?: (context: AgentStartContext) => Promise<BootResult>;
  onEvent?: (event: RefreshEvent) => void;
  clock?: Clock;
  /** Where instances' cfg files live; default a fresh temp directory that close() removes. */
  configDir?: string;
  /** A Wait refresh fails after this long blocked on protected instances (AWS: one hour). Default 2000 ms. */
  protectedWaitMs?: number;
  /**
   * StatusReason of such a failure. AWS documents the behaviour, not the wording, so the default
   * text is ours and this makes it replaceable.
   */
  protectedWaitReason?: (instanceIds: readonly string[]) => string;
  /** Terminated instances stay visible to EC2 DescribeInstances this long (AWS: "usually less than one hour"). Default 60 s. */
  terminatedVisibleMs?: number;
  /** systemd `RestartSec=5`, scaled (default 50 ms). */
  linuxRestartDelayMs?: number;
  /** nssm `AppRestartDelay 10000`, scaled (default 100 ms). */
  windowsRestartDelayMs?: number;
  /** terminate-instance's `sleep 10` before it calls Auto Scaling, scaled (default 100 ms). */
  terminateDelayMs?: number;
  /** Bound on agent restarts per instance (AWS loops forever; the simulation must not). Default 5. */
  maxAgentRestarts?: number;
}

export interface AddGroupOptions {
  /**
   * `true`: the group is new, its instances launch and boot now (as when CloudFormation creates
   * it). `false` (default): they already run, launched an hour ago; `bootInitialInstances` boots them.
   */
  launch?: boolean;
}

/** FleetOptions with every default applied; `replaceMs` and `protectedWaitMs` change through knobs. */
export interface FleetSettings {
  replaceMs: number;
  jobMs: number;
  protectedWaitMs: number;
  protectedWaitReason: (instanceIds: readonly string[]) => string;
  terminatedVisibleMs: number;
  linuxRestartDelayMs: number;
  windowsRestartDelayMs: number;
  terminateDelayMs: number;
  maxAgentRestarts: number;
  configDir: string;
  ownsConfigDir: boolean;
}

function defaultWaitReason(instanceIds: readonly string[]): string {
  return (
    `Instance refresh failed: ${instanceIds.length} instance(s) (${instanceIds.join(", ")}) are protected ` +
    "from scale in, and scale-in protection was not removed within the wait period."
  );
}

export function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number`);
  return value;
}

export function fleetSettings(options: FleetOptions): FleetSettings {
  return {
    replaceMs: nonNegative("replaceMs", options.replaceMs ?? 200),
    jobMs: nonNegative("jobMs", options.jobMs ?? 500),
    protectedWaitMs: nonNegative("protectedWaitMs", options.protectedWaitMs ?? 2_000),
    protectedWaitReason: options.protectedWaitReason ?? defaultWaitReason,
    terminatedVisibleMs: nonNegative("terminatedVisibleMs", options.terminatedVisibleMs ?? 60_000),
    linuxRestartDelayMs: nonNegative("linuxRestartDelayMs", options.linuxRestartDelayMs ?? 50),
    windowsRestartDelayMs: nonNegative("windowsRestartDelayMs", options.windowsRestartDelayMs ?? 100),
    terminateDelayMs: nonNegative("terminateDelayMs", options.terminateDelayMs ?? 100),
    maxAgentRestarts: nonNegative("maxAgentRestarts", options.maxAgentRestarts ?? 5),
    ownsConfigDir: options.configDir === undefined,
    configDir: options.configDir ?? mkdtempSync(join(tmpdir(), "bk-fleet-")),
  };
}

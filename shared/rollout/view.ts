import { groupKey } from "./model";
import type { Observation, Plan } from "./types";

/**
 * What one run knows of every group it has seen: the newest observation of each (a full
 * observation replaces everything), with the sync times the run itself recorded applied, so that a
 * poll built on it sees the ledger the plan used. Pure; the run's polls read only commands on top.
 */
export function foldIntoView(view: Observation | undefined, obs: Observation, acted: Plan): Observation {
  // Keyed once: at a thousand groups, comparing every pair cost about 0.3 s of each start phase.
  const seenGroups = new Set(obs.targets.map(groupKey));
  const seenRegions = new Set(obs.replicas.map((r) => r.region));
  const base: Observation =
    !view || obs.scope === "full"
      ? obs
      : {
          ...obs,
          targets: [...view.targets.filter((t) => !seenGroups.has(groupKey(t))), ...obs.targets],
          replicas: [...view.replicas.filter((r) => !seenRegions.has(r.region)), ...obs.replicas],
          stacks: view.stacks,
          tokens: view.tokens,
          agents: view.agents,
        };
  const synced = new Map(
    acted.actions.flatMap((a) => (a.kind === "record-sync" ? [[groupKey(a.target), a.at] as const] : [])),
  );
  if (synced.size === 0) return base;
  return {
    ...base,
    targets: base.targets.map((t) => {
      const at = synced.get(groupKey(t));
      return at ? { ...t, syncedAt: at, badSyncTag: undefined } : t;
    }),
  };
}

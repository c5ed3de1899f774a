import type { Fleet } from "../fakes/autoscaling/index";
import type { BuildkiteApi } from "../fakes/buildkite/api";

/** How many 50 ms polls a graceful stop waits for the running job (5 minutes, scaled). */
const MAX_STOP_POLLS = 6_000;

/**
 * Connects the Buildkite stand-in's agents to the fleet: the agents REST API reads the agents'
 * live state from the fleet, and a graceful stop (force: false) lets the running job finish before
 * the agent exits cleanly (on the stock stack a clean exit runs terminate-instance: ExecStopPost on
 * Linux, the nssm exit hook on Windows). Returns the cleanup that disconnects them.
 */
export function connectAgents(buildkite: BuildkiteApi, fleet: Fleet): () => void {
  const stopTimers = new Set<NodeJS.Timeout>();
  buildkite.setAgentHooks({
    connected: (name) => {
      const found = fleet.findInstance(name);
      return (
        found !== undefined && found.instance.lifecycleState === "InService" && found.instance.bootFinished
      );
    },
    stop: (name) => {
      let polls = 0;
      const poll = () => {
        const found = fleet.findInstance(name);
        if (found?.instance.lifecycleState !== "InService") return;
        if (found.instance.busy && polls++ < MAX_STOP_POLLS) {
          const t = setTimeout(() => {
            stopTimers.delete(t);
            poll();
          }, 50);
          stopTimers.add(t);
          return;
        }
        fleet.restartAgent(found.region, name, "clean");
      };
      poll();
    },
  });
  return () => {
    for (const t of stopTimers) clearTimeout(t);
    buildkite.setAgentHooks(undefined);
  };
}

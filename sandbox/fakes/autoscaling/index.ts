/**
 * Local stand-in for the EC2 Auto Scaling API (moto has no instance refreshes). It speaks the real
 * AWS Query protocol, so `new AutoScalingClient({ endpoint: standIn.url, region, credentials })`
 * works unchanged, and it serves every region from one port (the region comes from the request's
 * SigV4 credential scope).
 */

import { RegionThrottle, type ThrottleProfile } from "../aws/throttle";
import { Fleet, type FleetOptions } from "./fleet";
import { startQueryServer } from "./server";

export type { Clock } from "./clock";
export { AutoScalingError } from "./errors";
export { ACCOUNT_ID, type AddGroupOptions, Fleet, type FleetOptions } from "./fleet";
export type * from "./types";

export interface AutoScalingStandInOptions extends FleetOptions {
  host?: string;
  port?: number;
  /** Per-region request bucket answering `Throttling`; off by default. */
  throttle?: ThrottleProfile;
}

export interface AutoScalingStandIn {
  /** Base URL for the SDK's `endpoint` option, e.g. `http://127.0.0.1:41234`. */
  url: string;
  fleet: Fleet;
  /** Requests answered with `Throttling` so far (every region). */
  throttled(): number;
  /** Stops the simulation's timers and the HTTP server; safe with refreshes in flight. */
  close(): Promise<void>;
}

export async function startAutoScalingStandIn(
  options: AutoScalingStandInOptions,
): Promise<AutoScalingStandIn> {
  const { host, port, throttle: profile, ...fleetOptions } = options;
  const fleet = new Fleet(fleetOptions);
  try {
    const throttle = profile ? new RegionThrottle(profile) : undefined;
    const server = await startQueryServer(fleet, {
      ...(host === undefined ? {} : { host }),
      ...(port === undefined ? {} : { port }),
      ...(throttle ? { throttle } : {}),
    });
    return {
      url: server.url,
      fleet,
      throttled: () => throttle?.throttled ?? 0,
      close: async () => {
        fleet.close();
        await server.close();
      },
    };
  } catch (error) {
    fleet.close();
    throw error;
  }
}

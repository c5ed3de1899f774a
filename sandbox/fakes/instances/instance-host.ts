/**
 * The seam between the simulated fleet (which owns instances) and the Systems Manager Run Command
 * stand-in (which executes documents on them). The fleet implements it; the Run Command stand-in
 * only reads it, so either side can be tested with a small fake of the other.
 */

export type Platform = "Linux" | "Windows";

/**
 * SSM agent state as DescribeInstanceInformation would report it:
 * - `online`: registered, PingStatus Online; commands are delivered.
 * - `connection-lost`: registered but not reachable (PingStatus ConnectionLost); SendCommand accepts the
 *   instance and the invocation ends undelivered after the delivery timeout.
 * - `unregistered`: the SSM agent never registered (or the instance role lacks the permissions); the
 *   instance is absent from DescribeInstanceInformation and SendCommand fails with InvalidInstanceId.
 */
export type SsmAgentState = "online" | "connection-lost" | "unregistered";

export interface InstanceHost {
  readonly instanceId: string;
  readonly region: string;
  readonly platform: Platform;
  /**
   * Absolute path, on the sandbox's disk, of the file this instance knows as
   * `/etc/buildkite-agent/buildkite-agent.cfg` (Linux) or `C:\buildkite-agent\buildkite-agent.cfg` (Windows).
   */
  readonly configPath: string;
  /** Not terminated (running or still booting). */
  running(): boolean;
  ssmAgent(): SsmAgentState;
  /**
   * User data (cloud-init / EC2Launch) has finished and the agent service has started: until then the
   * boot script may still write the token it read at boot into the cfg.
   */
  bootFinished(): boolean;
}

export interface InstanceDirectory {
  find(region: string, instanceId: string): InstanceHost | undefined;
  /** Every instance of the region that is not terminated. */
  list(region: string): InstanceHost[];
}

/**
 * The banner `npm run sandbox` prints once the world is up: what runs where, the fleet, the
 * strategy and its settings, and what the scenario will do.
 */
import { type Paint, secondsText as secs, short as shortId } from "../../shared/lib/terminal";
import type { Strategy } from "../verdict/facts";
import type { World } from "../world/world";
import type { Profile } from "./profiles";

const short = (id: string | undefined) => shortId(id, "?");

export function printBanner(
  line: (text: string) => void,
  world: World,
  profile: Profile,
  o: {
    strategy: Strategy;
    ssmOffline: boolean;
    lagMs: number;
    rotations: number;
    failRefreshRegion: string | undefined;
    buildkiteFlaky: boolean;
    logFile: string | undefined;
    paint: Paint;
    startupMs: number;
  },
) {
  const instances = profile.stacks.reduce((n, g) => n + g.instances, 0);
  const busy = profile.stacks.reduce((n, g) => n + (g.jobs?.busyAtStart ?? 0), 0);
  const services: Array<[string, string]> = [
    ["moto server (Secrets Manager, SSM, SNS, SQS)", world.motoUrl],
    ["Buildkite REST + agent API stand-in", world.buildkite.url],
    ["EC2 Auto Scaling stand-in", world.autoScalingUrl],
    ["EC2 / CloudFormation stand-ins", `${world.ec2Url} ${world.cloudFormationUrl}`],
    ["SSM Run Command stand-in (+ Parameter Store)", world.runCommand.url],
    ["Lambda endpoint (rotate-token, reconcile)", world.lambda.url],
  ];
  const width = Math.max(...services.map(([name]) => name.length));
  const stackWidth = Math.max(...profile.stacks.map((g) => g.stackName.length));
  const regionWidth = Math.max(...profile.stacks.map((g) => g.region.length));
  const linuxStep =
    profile.runCommand.linuxStep === "mirror"
      ? "the Linux step runs the install script's TypeScript mirror (faster; the default profile runs it with real bash and the AWS CLI)"
      : "the Linux step runs the install script with real bash and the AWS CLI against moto";
  const lines = [
    "",
    o.paint(`Buildkite agent token rotation: local sandbox (profile ${profile.name})`, "bold"),
    `started in ${secs(o.startupMs)}, all on loopback, no AWS account involved:`,
    ...services.map(([name, url]) => `  ${name.padEnd(width)}  ${url}`),
    `secret ${world.secretName} in ${world.primaryRegion}, replicated to ${world.replicaRegions.join(", ")} (replication lag ${secs(o.lagMs)})`,
    `Elastic CI Stacks: ${instances} instances, all protected from scale-in (the stack's default), ${busy} running a job at the start:`,
    ...profile.stacks.map(
      (g) =>
        `  ${g.region.padEnd(regionWidth)}  ${g.stackName.padEnd(stackWidth)}  ${(g.platform ?? "Linux").padEnd(7)}  ${String(g.instances).padStart(2)} instances${g.jobs?.busyAtStart ? `, ${g.jobs.busyAtStart} busy` : ""}  (group ${world.stacks.groupName(g.region, g.stackName)})`,
    ),
    `initial token ${short(world.stack.initialToken.id)}: made by a human, every agent registered with it; this tool never revokes it`,
    o.strategy === "in-place"
      ? `strategy in-place (ROLLOUT_STRATEGY): Run Command rewrites each cfg's token line, nothing is replaced or restarted; ${linuxStep}`
      : `strategy refresh (ROLLOUT_STRATEGY): instance refresh, MinHealthyPercentage ${profile.minHealthyPercentage}, ScaleInProtectedInstances Refresh (jobs on replaced instances are interrupted), SkipMatching false`,
    ...(o.strategy === "in-place"
      ? [
          `in-place: IN_PLACE_RETRY_SECONDS ${profile.inPlace.retrySeconds}, IN_PLACE_FALLBACK alert after ${profile.inPlace.fallbackAfterSeconds} s (small for the sandbox)`,
        ]
      : []),
    `reconcile: timeout ${secs(profile.reconcileTimeoutMs)} (waits up to ${secs(Math.max(0, profile.reconcileTimeoutMs - 20_000))} per run for replicas and commands); safety-net schedule every ${secs(profile.scheduleEveryMs)}`,
    `scenario: ${o.rotations} rotation(s)${
      o.strategy === "in-place"
        ? o.ssmOffline
          ? `; rotation ${o.rotations}: one instance's SSM agent is offline and stays so (--ssm-offline)`
          : `; rotation ${o.rotations}: one instance's SSM agent is offline at first and back ${secs(profile.ssmOutageMs)} after promotion`
        : ""
    }${o.failRefreshRegion ? `; refreshes in ${o.failRefreshRegion} fail during rotation ${o.rotations}` : ""}${o.buildkiteFlaky ? "; Buildkite API flaky (15% of requests answer 502 or 429)" : ""}`,
    ...(o.logFile ? [`handler logs (JSON lines): ${o.logFile}`] : []),
  ];
  for (const l of lines) line(l);
}

/**
 * A stock-stack fleet for integration tests: moto (the agent-token secret, read through the SSM
 * reference path) + the local Buildkite API + the Auto Scaling, EC2 and CloudFormation stand-ins,
 * with agents that boot and restart through the real agentBoot hook. Real SDK clients for each.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  AutoScalingClient,
  DescribeInstanceRefreshesCommand,
  type InstanceRefresh,
  StartInstanceRefreshCommand,
} from "@aws-sdk/client-auto-scaling";
import { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { EC2Client } from "@aws-sdk/client-ec2";
import { GetSecretValueCommand, PutSecretValueCommand } from "@aws-sdk/client-secrets-manager";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import {
  type AutoScalingStandIn,
  type FleetOptions,
  type GroupSpec,
  startAutoScalingStandIn,
} from "../../sandbox/fakes/autoscaling/index";
import {
  type CloudFormationStandIn,
  ElasticStacks,
  startCloudFormationStandIn,
} from "../../sandbox/fakes/cloudformation/index";
import { type Ec2StandIn, startEc2StandIn } from "../../sandbox/fakes/ec2/index";
import { agentBoot, type BootHook } from "../../sandbox/fakes/instances/agent-boot";
import { type RotationStack, startRotationStack, TEST_CREDENTIALS } from "../../sandbox/world/rotation-stack";

export const REGION = "us-east-1";

export interface FleetFixture {
  stack: RotationStack;
  boot: BootHook;
  autoScaling: AutoScalingStandIn;
  ec2StandIn: Ec2StandIn;
  cloudFormationStandIn: CloudFormationStandIn;
  stacks: ElasticStacks;
  asg: AutoScalingClient;
  ec2: EC2Client;
  cfn: CloudFormationClient;
  close(): Promise<void>;
}

/** moto and Buildkite, started once per test file. */
export async function startBackends(): Promise<RotationStack> {
  return startRotationStack({ region: REGION });
}

export async function startFleet(
  stack: RotationStack,
  groups: GroupSpec[],
  options: Partial<FleetOptions> = {},
): Promise<FleetFixture> {
  const boot = agentBoot({
    motoUrl: stack.moto.url,
    secretName: "buildkite/agent-token",
    buildkiteUrl: stack.buildkite.url,
  });
  const autoScaling = await startAutoScalingStandIn({
    groups,
    replaceMs: 40,
    jobMs: 100,
    boot,
    startAgent: boot.startAgent,
    linuxRestartDelayMs: 20,
    windowsRestartDelayMs: 30,
    terminateDelayMs: 60,
    ...options,
  });
  const stacks = new ElasticStacks({ fleet: autoScaling.fleet });
  const cloudFormationStandIn = await startCloudFormationStandIn({ stacks });
  const ec2StandIn = await startEc2StandIn({ instances: autoScaling.fleet });
  const client = { region: REGION, credentials: TEST_CREDENTIALS, maxAttempts: 1 };
  const asg = new AutoScalingClient({ ...client, endpoint: autoScaling.url });
  const ec2 = new EC2Client({ ...client, endpoint: ec2StandIn.url });
  const cfn = new CloudFormationClient({ ...client, endpoint: cloudFormationStandIn.url });
  return {
    stack,
    boot,
    autoScaling,
    ec2StandIn,
    cloudFormationStandIn,
    stacks,
    asg,
    ec2,
    cfn,
    close: async () => {
      for (const c of [asg, ec2, cfn]) c.destroy();
      boot.destroy();
      await cloudFormationStandIn.close();
      await ec2StandIn.close();
      await autoScaling.close();
    },
  };
}

/** Makes a new Buildkite token the secret's AWSCURRENT value (what a rotation leaves behind). */
export async function putNewToken(
  stack: RotationStack,
  description: string,
): Promise<{ id: string; value: string }> {
  const token = stack.buildkite.addToken({ description });
  await stack.secrets.send(
    new PutSecretValueCommand({ SecretId: stack.secretArn, SecretString: token.value }),
  );
  return token;
}

export async function until(condition: () => boolean, timeoutMs = 8_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

export interface StockFleet {
  /** moto and Buildkite, started once for the test file. */
  readonly stack: RotationStack;
  /** The current test's fleet; closed after each test. */
  fixture: FleetFixture | undefined;
  /** Starts a fleet and boots its initial instances, expecting every one to register. */
  start(groups: GroupSpec[], options?: Partial<FleetOptions>): Promise<FleetFixture>;
  tokenIdOf(value: string): string | undefined;
  /** The secret's AWSCURRENT value and the id of the Buildkite token it is. */
  currentToken(): Promise<{ id: string; value: string }>;
}

/** Registers the hooks of a test file over stock fleets: backends once, a fleet per test. */
export function useStockFleet(): StockFleet {
  let stack: RotationStack | undefined;
  const sf: StockFleet = {
    get stack() {
      if (stack === undefined) throw new Error("the backends start in beforeAll");
      return stack;
    },
    fixture: undefined,
    async start(groups, options = {}) {
      sf.fixture = await startFleet(sf.stack, groups, options);
      const boots = await sf.fixture.autoScaling.fleet.bootInitialInstances();
      expect(boots.map((b) => b.result?.reason)).toEqual(
        boots.map(() => expect.stringContaining("registered")),
      );
      return sf.fixture;
    },
    tokenIdOf(value) {
      return sf.stack.buildkite.tokens().find((t) => t.value === value)?.id;
    },
    async currentToken() {
      const out = await sf.stack.secrets.send(
        new GetSecretValueCommand({ SecretId: sf.stack.secretArn, VersionStage: "AWSCURRENT" }),
      );
      const value = out.SecretString ?? "";
      return { id: sf.tokenIdOf(value) ?? "", value };
    },
  };
  beforeAll(async () => {
    stack = await startBackends();
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });
  afterEach(async () => {
    await sf.fixture?.close();
    sf.fixture = undefined;
  });
  return sf;
}

export async function startRefresh(
  f: FleetFixture,
  group: string,
  mode: "Wait" | "Refresh" | "Ignore",
): Promise<string> {
  const out = await f.asg.send(
    new StartInstanceRefreshCommand({
      AutoScalingGroupName: group,
      Preferences: {
        MinHealthyPercentage: 50,
        InstanceWarmup: 0,
        SkipMatching: false,
        ScaleInProtectedInstances: mode,
      },
    }),
  );
  return out.InstanceRefreshId ?? "";
}

export async function refreshStatus(f: FleetFixture, group: string, id: string): Promise<InstanceRefresh> {
  const out = await f.asg.send(
    new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: group, InstanceRefreshIds: [id] }),
  );
  const refresh = out.InstanceRefreshes?.[0];
  if (refresh === undefined) throw new Error("no refresh");
  return refresh;
}

export async function untilRefreshEnds(
  f: FleetFixture,
  group: string,
  id: string,
  timeoutMs = 8_000,
): Promise<InstanceRefresh> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const refresh = await refreshStatus(f, group, id);
    if (!["Pending", "InProgress", "Cancelling"].includes(refresh.Status ?? "")) return refresh;
    if (Date.now() > deadline) throw new Error(`refresh still ${refresh.Status}`);
    await sleep(20);
  }
}

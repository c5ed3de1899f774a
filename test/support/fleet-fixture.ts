/**
 * A stock-stack fleet for integration tests: moto (the agent-token secret, read through the SSM
 * reference path) + the local Buildkite API + the Auto Scaling, EC2 and CloudFormation stand-ins,
 * with agents that boot and restart through the real agentBoot hook. Real SDK clients for each.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { EC2Client } from "@aws-sdk/client-ec2";
import { PutSecretValueCommand } from "@aws-sdk/client-secrets-manager";
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

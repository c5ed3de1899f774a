/**
 * The world with Elastic CI Stacks and stock-stack options: the EC2 and CloudFormation stand-ins
 * are started and named in the environment, stacks' groups carry generated names and are listed as
 * targets, the instance directory shows every booted instance with its cfg, and an idle agent's
 * self-termination is natural churn, not the rollout's doing. Handlers are stubs: no rotation here.
 */
import { readFile } from "node:fs/promises";
import { CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_CREDENTIALS } from "../../../../sandbox/world/rotation-stack";
import { startWorld, type World } from "../../../../sandbox/world/world";
import { until } from "../../../support/fleet-fixture";

let world: World;

beforeAll(async () => {
  world = await startWorld({
    replicaRegions: ["us-west-2"],
    groups: [{ region: "us-east-1", name: "plain", instances: 1, newInstancesProtectedFromScaleIn: false }],
    stacks: [
      {
        region: "us-east-1",
        stackName: "bk-linux",
        instances: 2,
        jobs: { busyAtStart: 1, schedule: [60_000] },
      },
      {
        region: "us-west-2",
        stackName: "bk-windows",
        instances: 2,
        platform: "Windows",
        idlePeriodMs: 200,
        scaler: false,
      },
    ],
    protectedWaitMs: 500,
    replaceMs: 40,
    handlers: { rotateToken: async () => ({}), reconcile: async () => ({}) },
  });
}, 60_000);

afterAll(async () => {
  await world?.stop();
});

describe("the world with Elastic CI Stacks", () => {
  it("starts the EC2 and CloudFormation stand-ins and names stacks and their groups as targets", async () => {
    const linuxGroup = world.stacks.groupName("us-east-1", "bk-linux");
    expect(world.stacks.groupName("us-west-2", "bk-windows")).toMatch(/^bk-windows-AgentAutoScaleGroup-/);
    expect(linuxGroup).toMatch(/^bk-linux-AgentAutoScaleGroup-[A-Z0-9]{12}$/);
    // The handlers reach the stand-ins through the call meter's endpoints, not directly.
    for (const key of ["AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_CLOUDFORMATION", "AWS_ENDPOINT_URL_SSM"]) {
      expect(world.env[key]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    }
    expect(world.env.AWS_ENDPOINT_URL_EC2).not.toBe(world.ec2Url);
    expect(world.env).toMatchObject({
      // Stacks are targets by name (their groups are found by tags); only plain groups by name.
      TARGET_GROUPS: "us-east-1:plain",
      TARGET_STACKS: "us-east-1:bk-linux,us-west-2:bk-windows",
    });
    expect(process.env.AWS_ENDPOINT_URL_EC2).toBe(world.env.AWS_ENDPOINT_URL_EC2);

    const cfn = new CloudFormationClient({
      region: "us-west-2",
      credentials: TEST_CREDENTIALS,
      endpoint: world.cloudFormationUrl,
    });
    const ec2 = new EC2Client({ region: "us-west-2", credentials: TEST_CREDENTIALS, endpoint: world.ec2Url });
    try {
      const stack = (await cfn.send(new DescribeStacksCommand({ StackName: "bk-windows" }))).Stacks?.[0];
      expect(stack?.Parameters).toEqual(
        expect.arrayContaining([
          {
            ParameterKey: "BuildkiteAgentTokenParameterStorePath",
            ParameterValue: `/aws/reference/secretsmanager/${world.secretName}`,
          },
          { ParameterKey: "InstanceOperatingSystem", ParameterValue: "windows" },
        ]),
      );
      const instances = (await ec2.send(new DescribeInstancesCommand({}))).Reservations?.flatMap(
        (r) => r.Instances ?? [],
      );
      expect(instances?.length).toBeGreaterThanOrEqual(2);
      expect(
        instances?.every((i) =>
          i.Tags?.some((t) => t.Key === "aws:cloudformation:stack-name" && t.Value === "bk-windows"),
        ),
      ).toBe(true);
    } finally {
      cfn.destroy();
      ec2.destroy();
    }
  });

  it("exposes the instance directory: every booted instance with a cfg holding the token it read at boot", async () => {
    const directory = world.instanceDirectory();
    const east = directory.list("us-east-1");
    expect(east).toHaveLength(3);
    const initialToken =
      world.buildkite.tokens().find((t) => t.id === world.stack.initialToken.id)?.value ?? "";
    for (const host of east) {
      expect(host.bootFinished()).toBe(true);
      expect(host.platform).toBe("Linux");
      expect(await readFile(host.configPath, "utf8")).toContain(`token="${initialToken}"`);
    }
    const [first] = east;
    if (first === undefined) throw new Error("no instance");
    world.fleet.setSsmAgent("us-east-1", first.instanceId, "connection-lost");
    expect(directory.find("us-east-1", first.instanceId)?.ssmAgent()).toBe("connection-lost");
    world.fleet.setSsmAgent("us-east-1", first.instanceId, "online");
    // The stock stack protects the stacks' instances; the plain group opted out.
    const linuxGroup = world.stacks.groupName("us-east-1", "bk-linux");
    expect(world.fleet.instances("us-east-1", linuxGroup).every((i) => i.protectedFromScaleIn)).toBe(true);
    expect(world.fleet.instances("us-east-1", linuxGroup).filter((i) => i.busy)).toHaveLength(1);
    expect(world.fleet.instances("us-east-1", "plain").every((i) => !i.protectedFromScaleIn)).toBe(true);
  });

  it("counts idle Windows agents terminating themselves as natural churn", async () => {
    await until(() => world.fleet.counters().selfTerminated >= 2, 8_000, "idle self-termination");
    const counters = world.fleet.counters();
    expect(counters.replacedByRollout).toBe(0);
    expect(counters.jobsInterrupted).toBe(0);
    expect(counters.registrations.failed).toBe(0);
    const windowsGroup = world.stacks.groupName("us-west-2", "bk-windows");
    expect(world.fleet.groups().find((g) => g.name === windowsGroup)?.desiredCapacity).toBe(0);
  });

  it("settled() waits for a stack's group replacement to finish", async () => {
    const oldGroup = world.stacks.groupName("us-east-1", "bk-linux");
    const replacing = world.stacks.replaceGroup("us-east-1", "bk-linux");
    await world.settled(10_000);
    const stack = world.stacks.describe("us-east-1", "bk-linux")[0];
    expect(stack?.status).toBe("UPDATE_COMPLETE");
    const newGroup = world.stacks.groupName("us-east-1", "bk-linux");
    expect(newGroup).not.toBe(oldGroup);
    expect(world.fleet.groups().map((g) => g.name)).not.toContain(oldGroup);
    expect(world.fleet.groupFilled("us-east-1", newGroup)).toBe(true);
    await replacing;
  });
});

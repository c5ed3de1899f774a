/**
 * The CloudFormation DescribeStacks stand-in and the Elastic CI Stacks it describes, through the
 * real @aws-sdk/client-cloudformation, -auto-scaling and -ec2 clients: parameters and outputs by
 * their names in templates/aws-stack.yml, the generated group name and its aws:cloudformation:*
 * tags (on instances too), and a replacing update that creates a new group before deleting the old.
 */
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { DescribeStacksCommand, type Stack } from "@aws-sdk/client-cloudformation";
import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import {
  type FleetFixture,
  REGION,
  startFleet,
  until,
  useStockFleet,
} from "../../../../support/fleet-fixture";

const sf = useStockFleet();

const TOKEN_PATH = "/aws/reference/secretsmanager/buildkite/agent-token";

async function start(): Promise<FleetFixture> {
  const fixture = await startFleet(sf.stack, []);
  sf.fixture = fixture;
  fixture.stacks.create({
    region: REGION,
    stackName: "buildkite-linux",
    instances: 2,
    tokenParameterPath: TOKEN_PATH,
    managedPolicyArns: ["arn:aws:iam::123456789012:policy/read-agent-token"],
    tokenKmsKey: "1234abcd-12ab-34cd-56ef-1234567890ab",
    tags: { owner: "ci" },
  });
  fixture.stacks.create({
    region: REGION,
    stackName: "buildkite-windows",
    instances: 1,
    platform: "Windows",
    tokenParameterPath: TOKEN_PATH,
    instanceRoleArn: "arn:aws:iam::123456789012:role/path/to/shared-agent-role",
  });
  await fixture.autoScaling.fleet.bootInitialInstances();
  return fixture;
}

function output(stack: Stack | undefined, key: string): string | undefined {
  return stack?.Outputs?.find((o) => o.OutputKey === key)?.OutputValue;
}

function parameter(stack: Stack | undefined, key: string): string | undefined {
  return stack?.Parameters?.find((p) => p.ParameterKey === key)?.ParameterValue;
}

async function describeStack(f: FleetFixture, name: string): Promise<Stack | undefined> {
  return (await f.cfn.send(new DescribeStacksCommand({ StackName: name }))).Stacks?.[0];
}

describe("CloudFormation DescribeStacks stand-in", () => {
  it("describes Elastic CI Stacks with the template's parameter and output names", async () => {
    const f = await start();
    const all = await f.cfn.send(new DescribeStacksCommand({}));
    expect(all.Stacks?.map((s) => s.StackName).sort()).toEqual(["buildkite-linux", "buildkite-windows"]);

    const linux = await describeStack(f, "buildkite-linux");
    expect(linux).toMatchObject({
      StackName: "buildkite-linux",
      StackStatus: "CREATE_COMPLETE",
      StackId: expect.stringMatching(
        /^arn:aws:cloudformation:us-east-1:123456789012:stack\/buildkite-linux\/[0-9a-f-]{36}$/,
      ),
      Tags: [{ Key: "owner", Value: "ci" }],
    });
    expect(parameter(linux, "BuildkiteAgentTokenParameterStorePath")).toBe(TOKEN_PATH);
    expect(parameter(linux, "ManagedPolicyARNs")).toBe("arn:aws:iam::123456789012:policy/read-agent-token");
    expect(parameter(linux, "BuildkiteAgentTokenParameterStoreKMSKey")).toBe(
      "1234abcd-12ab-34cd-56ef-1234567890ab",
    );
    expect(parameter(linux, "InstanceOperatingSystem")).toBe("linux");
    expect(parameter(linux, "InstanceScaleInProtection")).toBe("true");
    expect(parameter(linux, "ScaleInIdlePeriod")).toBe("600");
    expect(parameter(linux, "MinSize")).toBe("0");
    expect(parameter(linux, "BuildkiteAgentToken")).toBe("****");
    expect(output(linux, "InstanceRoleName")).toBe("buildkite-linux-Role");
    const groupName = output(linux, "AutoScalingGroupName");
    expect(groupName).toMatch(/^buildkite-linux-AgentAutoScaleGroup-[A-Z0-9]{12}$/);
    expect(linux?.Outputs?.find((o) => o.OutputKey === "AutoScalingGroupName")?.ExportName).toBe(
      "buildkite-linux-AutoScalingGroupName",
    );

    const windows = await describeStack(f, "buildkite-windows");
    expect(parameter(windows, "InstanceOperatingSystem")).toBe("windows");
    expect(parameter(windows, "InstanceRoleARN")).toBe(
      "arn:aws:iam::123456789012:role/path/to/shared-agent-role",
    );
    expect(output(windows, "InstanceRoleName")).toBe("shared-agent-role");

    // By stack id too; an unknown name is a ValidationError.
    expect((await describeStack(f, linux?.StackId ?? ""))?.StackName).toBe("buildkite-linux");
    await expect(f.cfn.send(new DescribeStacksCommand({ StackName: "nope" }))).rejects.toMatchObject({
      name: "ValidationError",
      message: "Stack with id nope does not exist",
      $metadata: { httpStatusCode: 400 },
    });
  });

  it("tags the group and its instances with aws:cloudformation:*, findable by tag", async () => {
    const f = await start();
    const linux = await describeStack(f, "buildkite-linux");
    const { AutoScalingGroups } = await f.asg.send(
      new DescribeAutoScalingGroupsCommand({
        Filters: [
          { Name: "tag:aws:cloudformation:stack-name", Values: ["buildkite-linux"] },
          { Name: "tag:aws:cloudformation:logical-id", Values: ["AgentAutoScaleGroup"] },
        ],
      }),
    );
    expect(AutoScalingGroups?.map((g) => g.AutoScalingGroupName)).toEqual([
      output(linux, "AutoScalingGroupName"),
    ]);
    const group = AutoScalingGroups?.[0];
    expect(group?.NewInstancesProtectedFromScaleIn).toBe(true);
    expect(group?.Tags).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Key: "aws:cloudformation:stack-id",
          Value: linux?.StackId,
          PropagateAtLaunch: true,
        }),
        expect.objectContaining({ Key: "BuildkiteQueue", Value: "default", PropagateAtLaunch: false }),
      ]),
    );
    const instances = (
      await f.ec2.send(
        new DescribeInstancesCommand({
          Filters: [{ Name: "tag:aws:cloudformation:stack-name", Values: ["buildkite-linux"] }],
        }),
      )
    ).Reservations?.flatMap((r) => r.Instances ?? []);
    expect(instances).toHaveLength(2);
    const keys = instances?.[0]?.Tags?.map((t) => t.Key);
    expect(keys).toEqual(
      expect.arrayContaining([
        "aws:autoscaling:groupName",
        "aws:cloudformation:stack-name",
        "aws:cloudformation:stack-id",
        "aws:cloudformation:logical-id",
        "owner",
      ]),
    );
    expect(keys).not.toContain("BuildkiteQueue");
    // The agent name the boot script writes carries the stack name.
    const { readFile } = await import("node:fs/promises");
    const [instance] = f.autoScaling.fleet.instances(REGION, output(linux, "AutoScalingGroupName") ?? "");
    expect(await readFile(instance?.configPath ?? "", "utf8")).toContain(
      `name="buildkite-linux-${instance?.instanceId}-%spawn"`,
    );
  });

  it("replaces the group as AutoScalingReplacingUpdate does: new group fills, output switches at completion, old group deleted", async () => {
    const f = await start();
    const fleet = f.autoScaling.fleet;
    const before = await describeStack(f, "buildkite-linux");
    const oldGroup = output(before, "AutoScalingGroupName") ?? "";
    const oldInstances = fleet.instances(REGION, oldGroup).map((i) => i.instanceId);

    const replaced = f.stacks.replaceGroup(REGION, "buildkite-linux", { cleanupDelayMs: 200 });
    const stackGroups = async () =>
      (
        await f.asg.send(
          new DescribeAutoScalingGroupsCommand({
            Filters: [{ Name: "tag:aws:cloudformation:stack-name", Values: ["buildkite-linux"] }],
          }),
        )
      ).AutoScalingGroups?.map((g) => g.AutoScalingGroupName ?? "") ?? [];

    const during = await describeStack(f, "buildkite-linux");
    expect(during?.StackStatus).toBe("UPDATE_IN_PROGRESS");
    expect(output(during, "AutoScalingGroupName")).toBe(oldGroup);
    const both = await stackGroups();
    expect(both).toHaveLength(2);
    const newGroup = both.find((name) => name !== oldGroup) ?? "";
    expect(newGroup).toMatch(/^buildkite-linux-AgentAutoScaleGroup-[A-Z0-9]{12}$/);
    await until(() => fleet.groupFilled(REGION, newGroup), 5_000, "new group filled");
    // Both groups run until cleanup.
    expect((await stackGroups()).sort()).toEqual([oldGroup, newGroup].sort());

    const final = await replaced;
    expect(final.status).toBe("UPDATE_COMPLETE");
    const after = await describeStack(f, "buildkite-linux");
    expect(after?.StackStatus).toBe("UPDATE_COMPLETE");
    expect(after?.LastUpdatedTime).toBeInstanceOf(Date);
    expect(output(after, "AutoScalingGroupName")).toBe(newGroup);
    expect(await stackGroups()).toEqual([newGroup]);
    const terminated = (
      await f.ec2.send(new DescribeInstancesCommand({ InstanceIds: oldInstances }))
    ).Reservations?.flatMap((r) => r.Instances ?? []);
    expect(terminated?.map((i) => i.State?.Name)).toEqual(["terminated", "terminated"]);
    // The new group's instances booted through SSM; the stack update is not the rollout.
    expect(fleet.boots().filter((b) => b.groupName === newGroup && b.result?.ok)).toHaveLength(2);
    expect(fleet.counters()).toMatchObject({ terminatedByStackUpdate: 2, replacedByRollout: 0 });
  });

  it("rolls back when the new group does not fill within the creation timeout", async () => {
    const f = await start();
    const oldGroup = f.stacks.groupName(REGION, "buildkite-linux");
    f.autoScaling.fleet.setReplaceMs(2_000);
    const final = await f.stacks.replaceGroup(REGION, "buildkite-linux", { timeoutMs: 100 });
    expect(final.status).toBe("UPDATE_ROLLBACK_COMPLETE");
    expect(f.stacks.groupName(REGION, "buildkite-linux")).toBe(oldGroup);
    const groups = await f.asg.send(
      new DescribeAutoScalingGroupsCommand({
        Filters: [{ Name: "tag:aws:cloudformation:stack-name", Values: ["buildkite-linux"] }],
      }),
    );
    expect(groups.AutoScalingGroups?.map((g) => g.AutoScalingGroupName)).toEqual([oldGroup]);
  });
});

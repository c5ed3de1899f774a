/**
 * Instances of the stock fleet (sandbox/fakes/autoscaling/lifecycle.ts) through the real Auto
 * Scaling client: scale-in protection on every instance, and TerminateInstanceInAutoScalingGroup.
 */
import {
  DescribeAutoScalingGroupsCommand,
  TerminateInstanceInAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { describe, expect, it } from "vitest";
import { REGION, until, useStockFleet } from "../../../../support/fleet-fixture";

const sf = useStockFleet();
const { start } = sf;

describe("scale-in protection as the stock stack sets it", () => {
  it("protects every instance by default, launched ones too, and never removes it", async () => {
    const f = await start([
      { region: REGION, name: "stock", instances: 2, jobs: { busyAtStart: 2, schedule: [50] } },
      { region: REGION, name: "open", instances: 1, newInstancesProtectedFromScaleIn: false },
    ]);
    await until(() => f.autoScaling.fleet.counters().jobsCompleted === 2, 5_000, "jobs done");
    const { AutoScalingGroups } = await f.asg.send(new DescribeAutoScalingGroupsCommand({}));
    const byName = new Map(AutoScalingGroups?.map((g) => [g.AutoScalingGroupName, g]));
    expect(byName.get("stock")?.NewInstancesProtectedFromScaleIn).toBe(true);
    expect(byName.get("stock")?.Instances?.map((i) => i.ProtectedFromScaleIn)).toEqual([true, true]);
    expect(byName.get("open")?.NewInstancesProtectedFromScaleIn).toBe(false);
    expect(byName.get("open")?.Instances?.map((i) => i.ProtectedFromScaleIn)).toEqual([false]);
  });
});

describe("TerminateInstanceInAutoScalingGroup", () => {
  it("decrements or replaces as asked, refuses to go below MinSize, and counts as replaced by the rollout", async () => {
    const f = await start([
      {
        region: REGION,
        name: "agents",
        instances: 3,
        minSize: 1,
        jobs: { busyAtStart: 1, schedule: [60_000] },
      },
    ]);
    const fleet = f.autoScaling.fleet;
    const [busy, second, third] = fleet.instances(REGION, "agents").map((i) => i.instanceId);
    if (busy === undefined || second === undefined || third === undefined)
      throw new Error("instances missing");

    const decremented = await f.asg.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: busy,
        ShouldDecrementDesiredCapacity: true,
      }),
    );
    expect(decremented.Activity).toMatchObject({
      AutoScalingGroupName: "agents",
      Description: `Terminating EC2 instance: ${busy}`,
      StatusCode: "InProgress",
    });
    expect(decremented.Activity?.Cause).toContain("shrinking the capacity from 3 to 2");
    expect(fleet.groups()[0]?.desiredCapacity).toBe(2);

    await f.asg.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: second,
        ShouldDecrementDesiredCapacity: false,
      }),
    );
    expect(fleet.groups()[0]?.desiredCapacity).toBe(2);
    await until(
      () => fleet.boots().some((b) => b.result?.ok),
      5_000,
      "replacement for the non-decrementing termination",
    );
    expect(fleet.instances(REGION, "agents").filter((i) => i.lifecycleState === "InService")).toHaveLength(2);

    // Now at 2 with MinSize 1: one more decrement is fine, the next one is refused.
    await f.asg.send(
      new TerminateInstanceInAutoScalingGroupCommand({
        InstanceId: third,
        ShouldDecrementDesiredCapacity: true,
      }),
    );
    const last =
      fleet.instances(REGION, "agents").find((i) => i.lifecycleState === "InService")?.instanceId ?? "";
    await expect(
      f.asg.send(
        new TerminateInstanceInAutoScalingGroupCommand({
          InstanceId: last,
          ShouldDecrementDesiredCapacity: true,
        }),
      ),
    ).rejects.toMatchObject({
      name: "ValidationError",
      message: expect.stringContaining("Currently, desiredSize equals minSize (1)"),
    });
    await expect(
      f.asg.send(
        new TerminateInstanceInAutoScalingGroupCommand({
          InstanceId: "i-0123456789abcdef0",
          ShouldDecrementDesiredCapacity: false,
        }),
      ),
    ).rejects.toMatchObject({
      name: "ValidationError",
      message: expect.stringContaining("i-0123456789abcdef0"),
    });

    expect(fleet.counters()).toMatchObject({
      replacedByRollout: 3,
      jobsInterrupted: 1,
      selfTerminated: 0,
      churnLaunches: 0,
    });
  });
});

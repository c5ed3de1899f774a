/**
 * The stock Elastic CI Stack fleet (sandbox/fakes/autoscaling/fleet.ts) through the real Auto
 * Scaling client: DescribeAutoScalingGroups' limits and tag filters.
 */
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { describe, expect, it } from "vitest";
import { REGION, useStockFleet } from "../../../../support/fleet-fixture";

const sf = useStockFleet();
const { start } = sf;

describe("DescribeAutoScalingGroups limits and tag filters", () => {
  it("takes at most 50 names (more with MaxRecords, up to 100) and filters by tag", async () => {
    const f = await start([
      { region: REGION, name: "a", instances: 0, tags: { team: "ci" } },
      { region: REGION, name: "b", instances: 0, tags: { team: "web" } },
    ]);
    const names = (n: number) => Array.from({ length: n }, (_, i) => `g${i}`);
    await expect(
      f.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: names(51) })),
    ).rejects.toMatchObject({
      name: "ValidationError",
    });
    const wider = await f.asg.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: names(51), MaxRecords: 100 }),
    );
    expect(wider.AutoScalingGroups).toEqual([]);
    await expect(
      f.asg.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: names(101), MaxRecords: 100 }),
      ),
    ).rejects.toMatchObject({
      name: "ValidationError",
    });
    const byTag = await f.asg.send(
      new DescribeAutoScalingGroupsCommand({ Filters: [{ Name: "tag:team", Values: ["ci"] }] }),
    );
    expect(byTag.AutoScalingGroups?.map((g) => g.AutoScalingGroupName)).toEqual(["a"]);
    const byKey = await f.asg.send(
      new DescribeAutoScalingGroupsCommand({ Filters: [{ Name: "tag-key", Values: ["team"] }] }),
    );
    expect(byKey.AutoScalingGroups).toHaveLength(2);
    const byValue = await f.asg.send(
      new DescribeAutoScalingGroupsCommand({ Filters: [{ Name: "tag-value", Values: ["web"] }] }),
    );
    expect(byValue.AutoScalingGroups?.map((g) => g.AutoScalingGroupName)).toEqual(["b"]);
  });
});

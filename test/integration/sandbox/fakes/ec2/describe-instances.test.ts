/**
 * The EC2 DescribeInstances stand-in (sandbox/fakes/ec2/) through the real @aws-sdk/client-ec2,
 * fed by the fleet: launch times, states, platform fields, tags, filters, pagination and errors.
 */

import { StartInstanceRefreshCommand } from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, type Instance, paginateDescribeInstances } from "@aws-sdk/client-ec2";
import { describe, expect, it } from "vitest";
import {
  type FleetFixture,
  REGION,
  startFleet,
  until,
  useStockFleet,
} from "../../../../support/fleet-fixture";

const sf = useStockFleet();

async function start(): Promise<FleetFixture> {
  const fixture = await startFleet(
    sf.stack,
    [
      {
        region: REGION,
        name: "linux",
        instances: 4,
        newInstancesProtectedFromScaleIn: false,
        tags: { team: "ci" },
      },
      { region: REGION, name: "windows", instances: 3, platform: "Windows" },
      { region: "eu-west-1", name: "elsewhere", instances: 1 },
    ],
    { terminatedVisibleMs: 60_000 },
  );
  sf.fixture = fixture;
  await fixture.autoScaling.fleet.bootInitialInstances();
  return fixture;
}

function instancesOf(out: { Reservations?: Array<{ Instances?: Instance[] }> }): Instance[] {
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

describe("EC2 DescribeInstances stand-in", () => {
  it("reports launch time, state, platform and launch tags per instance", async () => {
    const f = await start();
    const all = instancesOf(await f.ec2.send(new DescribeInstancesCommand({})));
    expect(all).toHaveLength(7);
    const fleet = f.autoScaling.fleet;
    const linux = fleet.instances(REGION, "linux");
    const first = all.find((i) => i.InstanceId === linux[0]?.instanceId);
    expect(first).toMatchObject({
      InstanceId: linux[0]?.instanceId,
      State: { Code: 16, Name: "running" },
      PlatformDetails: "Linux/UNIX",
      Placement: { AvailabilityZone: expect.stringMatching(/^us-east-1[abc]$/) },
    });
    expect(first?.Platform).toBeUndefined();
    // Instances already running when the fleet started were launched an hour earlier.
    expect(first?.LaunchTime?.getTime()).toBe(linux[0]?.launchTime.getTime());
    expect(first?.LaunchTime?.getTime()).toBeLessThan(Date.now() - 59 * 60_000);
    expect(first?.Tags).toEqual(
      expect.arrayContaining([
        { Key: "aws:autoscaling:groupName", Value: "linux" },
        { Key: "team", Value: "ci" },
      ]),
    );
    // The wire value is lower-case "windows" (API_Instance: "windows for Windows instances"), though
    // the SDK's enum spells it "Windows".
    const windows = all.filter((i) => (i.Platform as string | undefined) === "windows");
    expect(windows).toHaveLength(3);
    expect(windows.every((i) => i.PlatformDetails === "Windows")).toBe(true);
  });

  it("filters by instance-id, tag:<key>, tag-key and instance-state-name, and shows terminated instances for a while", async () => {
    const f = await start();
    const fleet = f.autoScaling.fleet;
    const byTag = instancesOf(
      await f.ec2.send(
        new DescribeInstancesCommand({
          Filters: [{ Name: "tag:aws:autoscaling:groupName", Values: ["windows"] }],
        }),
      ),
    );
    expect(byTag.map((i) => i.InstanceId).sort()).toEqual(
      fleet
        .instances(REGION, "windows")
        .map((i) => i.instanceId)
        .sort(),
    );
    const byKey = instancesOf(
      await f.ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: "tag-key", Values: ["team"] }] })),
    );
    expect(byKey).toHaveLength(4);
    const [one, two] = fleet.instances(REGION, "linux").map((i) => i.instanceId);
    const byId = instancesOf(
      await f.ec2.send(
        new DescribeInstancesCommand({ Filters: [{ Name: "instance-id", Values: [one ?? "", two ?? ""] }] }),
      ),
    );
    expect(byId.map((i) => i.InstanceId)).toEqual([one, two]);

    // A refresh replaces the linux group: the old instances show as terminated, the new ones launched just now.
    const startedAt = Date.now();
    const { InstanceRefreshId } = await f.asg.send(
      new StartInstanceRefreshCommand({
        AutoScalingGroupName: "linux",
        Preferences: { MinHealthyPercentage: 50, ScaleInProtectedInstances: "Refresh" },
      }),
    );
    await until(
      () =>
        fleet.refreshes(REGION, "linux").find((r) => r.instanceRefreshId === InstanceRefreshId)?.status ===
        "Successful",
    );
    await until(() => fleet.ec2Instances(REGION).filter((i) => i.state === "terminated").length === 4);
    const terminated = instancesOf(
      await f.ec2.send(
        new DescribeInstancesCommand({ Filters: [{ Name: "instance-state-name", Values: ["terminated"] }] }),
      ),
    );
    expect(terminated.map((i) => i.InstanceId)).toEqual(expect.arrayContaining([one, two]));
    expect(terminated.every((i) => i.State?.Code === 48)).toBe(true);
    const running = instancesOf(
      await f.ec2.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: "instance-state-name", Values: ["running"] },
            { Name: "tag:aws:autoscaling:groupName", Values: ["linux"] },
          ],
        }),
      ),
    );
    expect(running).toHaveLength(4);
    expect(running.every((i) => (i.LaunchTime?.getTime() ?? 0) >= startedAt - 1_000)).toBe(true);
  });

  it("pages with MaxResults/NextToken by AWS's rules", async () => {
    const f = await start();
    const first = await f.ec2.send(new DescribeInstancesCommand({ MaxResults: 5 }));
    expect(instancesOf(first)).toHaveLength(5);
    expect(first.NextToken).toBeDefined();
    const second = await f.ec2.send(
      new DescribeInstancesCommand({ MaxResults: 5, NextToken: first.NextToken }),
    );
    expect(instancesOf(second)).toHaveLength(2);
    expect(second.NextToken).toBeUndefined();
    const ids = [...instancesOf(first), ...instancesOf(second)].map((i) => i.InstanceId);
    expect(new Set(ids).size).toBe(7);

    const paged: string[] = [];
    for await (const page of paginateDescribeInstances({ client: f.ec2, pageSize: 5 }, {})) {
      paged.push(...instancesOf(page).map((i) => i.InstanceId ?? ""));
    }
    expect(paged.sort()).toEqual([...ids].sort());

    await expect(f.ec2.send(new DescribeInstancesCommand({ MaxResults: 4 }))).rejects.toMatchObject({
      name: "InvalidParameterValue",
    });
    await expect(f.ec2.send(new DescribeInstancesCommand({ MaxResults: 1001 }))).rejects.toMatchObject({
      name: "InvalidParameterValue",
    });
    await expect(
      f.ec2.send(new DescribeInstancesCommand({ MaxResults: 5, InstanceIds: [ids[0] ?? ""] })),
    ).rejects.toMatchObject({ name: "InvalidParameterCombination" });
  });

  it("fails unknown instance ids with InvalidInstanceID.NotFound and keeps regions apart", async () => {
    const f = await start();
    const known = f.autoScaling.fleet.instances(REGION, "linux")[0]?.instanceId ?? "";
    const found = instancesOf(await f.ec2.send(new DescribeInstancesCommand({ InstanceIds: [known] })));
    expect(found.map((i) => i.InstanceId)).toEqual([known]);
    await expect(
      f.ec2.send(new DescribeInstancesCommand({ InstanceIds: [known, "i-0123456789abcdef0"] })),
    ).rejects.toMatchObject({
      name: "InvalidInstanceID.NotFound",
      message: "The instance ID 'i-0123456789abcdef0' does not exist",
      $metadata: { httpStatusCode: 400 },
    });
    await expect(f.ec2.send(new DescribeInstancesCommand({ InstanceIds: ["nope"] }))).rejects.toMatchObject({
      name: "InvalidInstanceID.Malformed",
    });
    const { EC2Client } = await import("@aws-sdk/client-ec2");
    const eu = new EC2Client({
      region: "eu-west-1",
      endpoint: f.ec2StandIn.url,
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      maxAttempts: 1,
    });
    try {
      expect(instancesOf(await eu.send(new DescribeInstancesCommand({})))).toHaveLength(1);
      await expect(eu.send(new DescribeInstancesCommand({ InstanceIds: [known] }))).rejects.toMatchObject({
        name: "InvalidInstanceID.NotFound",
      });
    } finally {
      eu.destroy();
    }
  });
});

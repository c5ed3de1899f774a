/**
 * The EC2 Auto Scaling stand-in, driven through the real `@aws-sdk/client-auto-scaling` client over
 * loopback HTTP, so both the Query-protocol codec and the fleet simulation are exercised as the
 * tool will use them.
 */
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ActiveInstanceRefreshNotFoundFault,
  AutoScalingClient,
  CancelInstanceRefreshCommand,
  CreateOrUpdateTagsCommand,
  DeleteTagsCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
  DescribeTagsCommand,
  type InstanceRefresh,
  InstanceRefreshInProgressFault,
  type RefreshPreferences,
  SetInstanceProtectionCommand,
  StartInstanceRefreshCommand,
} from "@aws-sdk/client-auto-scaling";
import { afterEach, describe, expect, it } from "vitest";
import {
  type AutoScalingStandIn,
  type AutoScalingStandInOptions,
  type Clock,
  Fleet,
  type RefreshEvent,
  startAutoScalingStandIn,
} from "../../../../../sandbox/fakes/autoscaling/index";
import { QueryParams } from "../../../../../sandbox/fakes/autoscaling/query";
import { regionFromAuthorization } from "../../../../../sandbox/fakes/autoscaling/server";

const REGION = "us-east-1";
const credentials = { accessKeyId: "test", secretAccessKey: "test" };

const standIns: AutoScalingStandIn[] = [];
const clients: AutoScalingClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await Promise.all(standIns.splice(0).map((standIn) => standIn.close()));
});

/**
 * These tests exercise the refresh mechanics on unprotected groups unless a test says otherwise:
 * the stock Elastic CI Stack default (every instance protected) has its own tests in fleet.test.ts.
 */
async function start(options: AutoScalingStandInOptions): Promise<AutoScalingStandIn> {
  const groups = options.groups.map((group) => ({ newInstancesProtectedFromScaleIn: false, ...group }));
  const standIn = await startAutoScalingStandIn({ replaceMs: 20, ...options, groups });
  standIns.push(standIn);
  return standIn;
}

function clientFor(standIn: AutoScalingStandIn, region = REGION): AutoScalingClient {
  // One attempt: a retried request would hide which call failed and slow the suite down.
  const client = new AutoScalingClient({ region, endpoint: standIn.url, credentials, maxAttempts: 1 });
  clients.push(client);
  return client;
}

async function startRefresh(
  asg: AutoScalingClient,
  groupName: string,
  preferences: RefreshPreferences = {},
): Promise<string> {
  const { InstanceRefreshId } = await asg.send(
    new StartInstanceRefreshCommand({
      AutoScalingGroupName: groupName,
      Strategy: "Rolling",
      Preferences: preferences,
    }),
  );
  if (InstanceRefreshId === undefined) throw new Error("StartInstanceRefresh returned no id");
  return InstanceRefreshId;
}

async function describeRefresh(
  asg: AutoScalingClient,
  groupName: string,
  id: string,
): Promise<InstanceRefresh> {
  const { InstanceRefreshes } = await asg.send(
    new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: groupName, InstanceRefreshIds: [id] }),
  );
  const refresh = InstanceRefreshes?.[0];
  if (refresh === undefined) throw new Error(`refresh ${id} not found`);
  return refresh;
}

/** Polls DescribeInstanceRefreshes until the refresh reaches one of `statuses` (bounded). */
async function waitForStatus(
  asg: AutoScalingClient,
  groupName: string,
  id: string,
  statuses: readonly string[],
  timeoutMs = 5_000,
): Promise<InstanceRefresh> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const refresh = await describeRefresh(asg, groupName, id);
    if (refresh.Status !== undefined && statuses.includes(refresh.Status)) return refresh;
    if (Date.now() > deadline) throw new Error(`refresh ${id} is ${refresh.Status} after ${timeoutMs} ms`);
    await sleep(10);
  }
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}

async function describeGroup(asg: AutoScalingClient, groupName: string) {
  const { AutoScalingGroups } = await asg.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }),
  );
  const group = AutoScalingGroups?.[0];
  if (group === undefined) throw new Error(`group ${groupName} not found`);
  return group;
}

function instanceIds(standIn: AutoScalingStandIn, groupName: string, region = REGION): string[] {
  return standIn.fleet.instances(region, groupName).map((instance) => instance.instanceId);
}

describe("Query protocol encoding of the real SDK", () => {
  it("decodes lists, nested structures and the SigV4 region exactly as the SDK sends them", async () => {
    const captured: Array<{ body: string; headers: IncomingHttpHeaders }> = [];
    const server = createServer((request, response) => {
      let body = "";
      request.setEncoding("utf8");
      request.on("data", (chunk: string) => {
        body += chunk;
      });
      request.on("end", () => {
        captured.push({ body, headers: request.headers });
        response.writeHead(400, { "content-type": "text/xml" });
        response.end(
          "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>captured</Message>" +
            "</Error><RequestId>1</RequestId></ErrorResponse>",
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const asg = new AutoScalingClient({
      region: "eu-west-1",
      endpoint: `http://127.0.0.1:${port}`,
      credentials,
      maxAttempts: 1,
    });
    clients.push(asg);
    // Each request is captured and answered with an error; only what the SDK sent matters here.
    const requests: Array<() => Promise<unknown>> = [
      () =>
        asg.send(
          new StartInstanceRefreshCommand({
            AutoScalingGroupName: "g",
            Strategy: "Rolling",
            Preferences: {
              MinHealthyPercentage: 50,
              MaxHealthyPercentage: 150,
              InstanceWarmup: 0,
              SkipMatching: false,
              ScaleInProtectedInstances: "Wait",
              CheckpointPercentages: [20, 100],
            },
          }),
        ),
      () =>
        asg.send(
          new DescribeTagsCommand({
            Filters: [
              { Name: "auto-scaling-group", Values: ["a", "b"] },
              { Name: "key", Values: ["k"] },
            ],
          }),
        ),
      () =>
        asg.send(
          new CreateOrUpdateTagsCommand({
            Tags: [
              {
                ResourceId: "g",
                ResourceType: "auto-scaling-group",
                Key: "k",
                Value: "v&=x y",
                PropagateAtLaunch: true,
              },
            ],
          }),
        ),
      () =>
        asg.send(
          new DescribeInstanceRefreshesCommand({
            AutoScalingGroupName: "g",
            InstanceRefreshIds: ["x", "y"],
            MaxRecords: 2,
          }),
        ),
      () => asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [] })),
    ];
    for (const request of requests) await expect(request()).rejects.toThrow("captured");
    server.close();

    const [start, tags, createTags, refreshes, groups] = captured.map(({ body }) => body);
    const raw = (body: string | undefined) => decodeURIComponent(body ?? "").split("&");
    expect(raw(start)).toEqual(
      expect.arrayContaining([
        "Action=StartInstanceRefresh",
        "Version=2011-01-01",
        "Preferences.MinHealthyPercentage=50",
        "Preferences.CheckpointPercentages.member.2=100",
        "Preferences.ScaleInProtectedInstances=Wait",
      ]),
    );
    expect(raw(tags)).toEqual(
      expect.arrayContaining(["Filters.member.1.Values.member.2=b", "Filters.member.2.Name=key"]),
    );
    expect(raw(refreshes)).toEqual(expect.arrayContaining(["InstanceRefreshIds.member.2=y"]));
    // An empty list is sent as the bare name, not left out.
    expect(raw(groups)).toContain("AutoScalingGroupNames=");

    const preferences = QueryParams.parse(start ?? "").struct("Preferences");
    expect(preferences?.integer("MinHealthyPercentage")).toBe(50);
    expect(preferences?.integer("MaxHealthyPercentage")).toBe(150);
    expect(preferences?.boolean("SkipMatching")).toBe(false);
    expect(preferences?.strings("CheckpointPercentages")).toEqual(["20", "100"]);
    const filters = QueryParams.parse(tags ?? "").structs("Filters") ?? [];
    expect(filters.map((filter) => [filter.string("Name"), filter.strings("Values")])).toEqual([
      ["auto-scaling-group", ["a", "b"]],
      ["key", ["k"]],
    ]);
    const tag = QueryParams.parse(createTags ?? "").structs("Tags")?.[0];
    expect([tag?.string("Key"), tag?.string("Value"), tag?.boolean("PropagateAtLaunch")]).toEqual([
      "k",
      "v&=x y",
      true,
    ]);
    expect(QueryParams.parse(refreshes ?? "").strings("InstanceRefreshIds")).toEqual(["x", "y"]);
    expect(QueryParams.parse(groups ?? "").strings("AutoScalingGroupNames")).toEqual([]);
    expect(regionFromAuthorization(captured[0]?.headers.authorization)).toBe("eu-west-1");
  });

  it("answers unsigned requests and unknown actions with Query-protocol errors", async () => {
    const standIn = await start({ groups: [] });
    const unsigned = await fetch(standIn.url, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "Action=DescribeAutoScalingGroups&Version=2011-01-01",
    });
    expect(unsigned.status).toBe(403);
    expect(await unsigned.text()).toMatch(
      /<ErrorResponse[^>]*><Error><Type>Sender<\/Type><Code>MissingAuthenticationToken<\/Code>/,
    );

    const unknown = await fetch(standIn.url, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `AWS4-HMAC-SHA256 Credential=test/20260101/${REGION}/autoscaling/aws4_request, Signature=x`,
      },
      body: "Action=DeleteAutoScalingGroup&Version=2011-01-01&AutoScalingGroupName=g",
    });
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain("<Code>InvalidAction</Code>");
  });
});

describe("groups and tags", () => {
  it("describes groups by name or all in the region, with instances and tags", async () => {
    const standIn = await start({
      groups: [
        {
          region: REGION,
          name: "agents",
          instances: 3,
          newInstancesProtectedFromScaleIn: true,
          maxSize: 10,
          tags: { team: "ci" },
        },
        { region: REGION, name: "builders", instances: 1 },
      ],
    });
    const asg = clientFor(standIn);

    const all = await asg.send(new DescribeAutoScalingGroupsCommand({}));
    expect(all.AutoScalingGroups?.map((group) => group.AutoScalingGroupName)).toEqual(["agents", "builders"]);
    const missing = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["nope"] }));
    expect(missing.AutoScalingGroups).toEqual([]);

    const group = await describeGroup(asg, "agents");
    expect(group).toMatchObject({
      AutoScalingGroupName: "agents",
      MinSize: 0,
      MaxSize: 10,
      DesiredCapacity: 3,
      NewInstancesProtectedFromScaleIn: true,
      Tags: [
        {
          ResourceId: "agents",
          ResourceType: "auto-scaling-group",
          Key: "team",
          Value: "ci",
          PropagateAtLaunch: true,
        },
      ],
    });
    expect(group.AutoScalingGroupARN).toMatch(
      /^arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:[0-9a-f-]{36}:autoScalingGroupName\/agents$/,
    );
    expect(group.CreatedTime).toBeInstanceOf(Date);
    expect(group.Instances).toHaveLength(3);
    expect(group.Instances?.map((instance) => instance.ProtectedFromScaleIn)).toEqual([true, true, true]);
    const builders = await describeGroup(asg, "builders");
    expect(builders.NewInstancesProtectedFromScaleIn).toBe(false);
    expect(builders.Instances?.map((instance) => instance.ProtectedFromScaleIn)).toEqual([false]);
    expect(group.Instances?.[0]).toMatchObject({
      InstanceId: expect.stringMatching(/^i-[0-9a-f]{17}$/),
      LifecycleState: "InService",
      HealthStatus: "Healthy",
      LaunchTemplate: { LaunchTemplateName: "agents", Version: "1" },
    });
    expect(group.Status).toBeUndefined();
  });

  it("creates, updates, filters and deletes tags, escaping values on the way back", async () => {
    const standIn = await start({
      groups: [
        { region: REGION, name: "agents", instances: 1 },
        { region: REGION, name: "builders", instances: 1, tags: { team: "build" } },
      ],
    });
    const asg = clientFor(standIn);
    const tricky = `token <v2> & "quoted" 'single'`;
    const tag = (Key: string, Value?: string) => ({
      ResourceId: "agents",
      ResourceType: "auto-scaling-group",
      Key,
      ...(Value === undefined ? {} : { Value }),
    });

    await asg.send(new CreateOrUpdateTagsCommand({ Tags: [tag("rotation", "1"), tag("note", tricky)] }));
    await asg.send(new CreateOrUpdateTagsCommand({ Tags: [tag("rotation", "2")] }));
    const byGroup = await asg.send(
      new DescribeTagsCommand({ Filters: [{ Name: "auto-scaling-group", Values: ["agents"] }] }),
    );
    expect(byGroup.Tags).toEqual([
      {
        ResourceId: "agents",
        ResourceType: "auto-scaling-group",
        Key: "note",
        Value: tricky,
        PropagateAtLaunch: false,
      },
      {
        ResourceId: "agents",
        ResourceType: "auto-scaling-group",
        Key: "rotation",
        Value: "2",
        PropagateAtLaunch: false,
      },
    ]);
    const byKey = await asg.send(
      new DescribeTagsCommand({ Filters: [{ Name: "key", Values: ["rotation", "team"] }] }),
    );
    expect(byKey.Tags?.map((row) => `${row.ResourceId}:${row.Key}=${row.Value}`)).toEqual([
      "agents:rotation=2",
      "builders:team=build",
    ]);
    const both = await asg.send(
      new DescribeTagsCommand({
        Filters: [
          { Name: "auto-scaling-group", Values: ["builders"] },
          { Name: "key", Values: ["rotation"] },
        ],
      }),
    );
    expect(both.Tags).toEqual([]);

    await asg.send(new DeleteTagsCommand({ Tags: [tag("rotation"), tag("absent")] }));
    expect((await describeGroup(asg, "agents")).Tags?.map((row) => row.Key)).toEqual(["note"]);

    await expect(
      asg.send(new CreateOrUpdateTagsCommand({ Tags: [{ ...tag("k", "v"), ResourceId: "nope" }] })),
    ).rejects.toMatchObject({ name: "ValidationError", message: "AutoScalingGroup name not found - nope" });
  });
});

describe("instance refreshes", () => {
  it("replaces every instance, booting each new one once, and reports progress", async () => {
    const standIn = await start({
      groups: [{ region: REGION, name: "agents", instances: 3 }],
      replaceMs: 150,
    });
    const asg = clientFor(standIn);
    const before = instanceIds(standIn, "agents");

    const id = await startRefresh(asg, "agents", { InstanceWarmup: 0 });
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    // Watch the group through the API while the refresh runs.
    const seenStates = new Set<string>();
    let refresh = await describeRefresh(asg, "agents", id);
    while (refresh.Status === "Pending" || refresh.Status === "InProgress") {
      const group = await describeGroup(asg, "agents");
      for (const instance of group.Instances ?? []) seenStates.add(instance.LifecycleState ?? "");
      refresh = await describeRefresh(asg, "agents", id);
    }

    expect(refresh).toMatchObject({
      Status: "Successful",
      AutoScalingGroupName: "agents",
      PercentageComplete: 100,
      InstancesToUpdate: 0,
      ProgressDetails: { LivePoolProgress: { PercentageComplete: 100, InstancesToUpdate: 0 } },
      Preferences: {
        MinHealthyPercentage: 90,
        MaxHealthyPercentage: 100,
        InstanceWarmup: 0,
        SkipMatching: false,
        AutoRollback: false,
        ScaleInProtectedInstances: "Ignore",
        StandbyInstances: "Ignore",
      },
    });
    expect(refresh.StartTime).toBeInstanceOf(Date);
    expect(refresh.EndTime?.getTime()).toBeGreaterThanOrEqual(refresh.StartTime?.getTime() ?? Number.NaN);
    expect([...seenStates]).toEqual(expect.arrayContaining(["InService", "Pending", "Terminating"]));

    const group = await describeGroup(asg, "agents");
    const after = group.Instances?.map((instance) => instance.InstanceId ?? "") ?? [];
    expect(after).toHaveLength(3);
    expect(after.filter((instanceId) => before.includes(instanceId))).toEqual([]);
    expect(group.Instances?.every((instance) => instance.LifecycleState === "InService")).toBe(true);
    const boots = standIn.fleet.boots();
    expect(boots.map((boot) => boot.instanceId).sort()).toEqual([...after].sort());
    expect(boots.every((boot) => boot.result?.ok === true && boot.instanceRefreshId === id)).toBe(true);
  });

  it("refuses a second refresh while one is active with InstanceRefreshInProgress", async () => {
    const standIn = await start({
      groups: [{ region: REGION, name: "agents", instances: 2 }],
      replaceMs: 200,
    });
    const asg = clientFor(standIn);
    await startRefresh(asg, "agents");

    const second = asg.send(new StartInstanceRefreshCommand({ AutoScalingGroupName: "agents" }));
    await expect(second).rejects.toBeInstanceOf(InstanceRefreshInProgressFault);
    await expect(second).rejects.toMatchObject({
      name: "InstanceRefreshInProgressFault",
      Code: "InstanceRefreshInProgress",
      $metadata: { httpStatusCode: 400 },
    });
  });

  it("cancels: in-flight replacements finish (Cancelling), nothing new starts (Cancelled)", async () => {
    const standIn = await start({
      groups: [{ region: REGION, name: "agents", instances: 4 }],
      replaceMs: 150,
    });
    const asg = clientFor(standIn);
    const before = instanceIds(standIn, "agents");
    const id = await startRefresh(asg, "agents");
    await until(() => standIn.fleet.instances(REGION, "agents").some((i) => i.lifecycleState === "Pending"));

    const cancelled = await asg.send(new CancelInstanceRefreshCommand({ AutoScalingGroupName: "agents" }));
    expect(cancelled.InstanceRefreshId).toBe(id);
    expect((await describeRefresh(asg, "agents", id)).Status).toBe("Cancelling");
    const refresh = await waitForStatus(asg, "agents", id, ["Cancelled"]);
    expect(refresh).toMatchObject({ PercentageComplete: 25, InstancesToUpdate: 3 });
    expect(refresh.EndTime).toBeInstanceOf(Date);
    expect(instanceIds(standIn, "agents").filter((instanceId) => before.includes(instanceId))).toHaveLength(
      3,
    );

    await expect(
      asg.send(new CancelInstanceRefreshCommand({ AutoScalingGroupName: "agents" })),
    ).rejects.toBeInstanceOf(ActiveInstanceRefreshNotFoundFault);
  });

  it("fails with the instance and reason when a boot fails, leaving the remaining old instances", async () => {
    let calls = 0;
    const standIn = await start({
      groups: [{ region: REGION, name: "agents", instances: 4 }],
      boot: async () => {
        calls += 1;
        return calls === 2 ? { ok: false, reason: "agent token rejected" } : { ok: true };
      },
    });
    const asg = clientFor(standIn);
    const before = instanceIds(standIn, "agents");
    const id = await startRefresh(asg, "agents");

    const refresh = await waitForStatus(asg, "agents", id, ["Failed", "Successful"]);
    const failedBoot = standIn.fleet.boots()[1];
    expect(failedBoot?.result).toEqual({ ok: false, reason: "agent token rejected" });
    expect(refresh.Status).toBe("Failed");
    expect(refresh.StatusReason).toBe(
      `Instance ${failedBoot?.instanceId} failed to boot: agent token rejected`,
    );
    expect(refresh).toMatchObject({ PercentageComplete: 25, InstancesToUpdate: 3 });
    const after = instanceIds(standIn, "agents");
    expect(after).toHaveLength(4);
    expect(after.filter((instanceId) => before.includes(instanceId))).toHaveLength(3);
    expect(after).not.toContain(failedBoot?.instanceId);
    expect(standIn.fleet.boots()).toHaveLength(2);
  });

  it("treats protected instances per ScaleInProtectedInstances: Refresh, Ignore, Wait (fails after the wait)", async () => {
    const protectedWaitMs = 300;
    // Stock protection on every instance; SetInstanceProtection lifts it from two of the four.
    const spec = (name: string) => ({
      region: REGION,
      name,
      instances: 4,
      newInstancesProtectedFromScaleIn: true,
    });
    const standIn = await start({ groups: [spec("refresh"), spec("ignore"), spec("wait")], protectedWaitMs });
    const asg = clientFor(standIn);
    for (const name of ["refresh", "ignore", "wait"]) {
      await asg.send(
        new SetInstanceProtectionCommand({
          AutoScalingGroupName: name,
          InstanceIds: instanceIds(standIn, name).slice(2),
          ProtectedFromScaleIn: false,
        }),
      );
    }
    const protectedIds = (name: string) =>
      standIn.fleet
        .instances(REGION, name)
        .filter((instance) => instance.protectedFromScaleIn)
        .map((instance) => instance.instanceId);
    const originally = {
      refresh: protectedIds("refresh"),
      ignore: protectedIds("ignore"),
      wait: protectedIds("wait"),
    };
    expect(originally.wait).toHaveLength(2);
    const preferences = { MinHealthyPercentage: 50, InstanceWarmup: 0 };
    const ids = {
      refresh: await startRefresh(asg, "refresh", { ...preferences, ScaleInProtectedInstances: "Refresh" }),
      ignore: await startRefresh(asg, "ignore", { ...preferences, ScaleInProtectedInstances: "Ignore" }),
      wait: await startRefresh(asg, "wait", { ...preferences, ScaleInProtectedInstances: "Wait" }),
    };

    // Unprotected instances go first; Wait then blocks on the protected ones.
    await until(
      () => standIn.fleet.boots().filter((boot) => boot.groupName === "wait" && boot.result).length === 2,
    );
    expect((await describeRefresh(asg, "wait", ids.wait)).Status).toBe("InProgress");
    expect(instanceIds(standIn, "wait")).toEqual(expect.arrayContaining(originally.wait));

    const refreshed = await waitForStatus(asg, "refresh", ids.refresh, ["Successful", "Failed"]);
    expect(refreshed).toMatchObject({ Status: "Successful", PercentageComplete: 100 });
    expect(instanceIds(standIn, "refresh").filter((id) => originally.refresh.includes(id))).toEqual([]);

    const ignored = await waitForStatus(asg, "ignore", ids.ignore, ["Successful", "Failed"]);
    expect(ignored).toMatchObject({ Status: "Successful", PercentageComplete: 50, InstancesToUpdate: 2 });
    expect(ignored.StatusReason).toContain("protected from scale in");
    expect(instanceIds(standIn, "ignore")).toEqual(expect.arrayContaining(originally.ignore));

    const waited = await waitForStatus(asg, "wait", ids.wait, ["Successful", "Failed"]);
    expect(waited).toMatchObject({ Status: "Failed", PercentageComplete: 50, InstancesToUpdate: 2 });
    expect(waited.StatusReason).toContain("protected from scale in");
    for (const id of originally.wait) expect(waited.StatusReason).toContain(id);
    const elapsed = (waited.EndTime?.getTime() ?? 0) - (waited.StartTime?.getTime() ?? 0);
    expect(elapsed).toBeGreaterThanOrEqual(protectedWaitMs);
    expect(instanceIds(standIn, "wait")).toEqual(expect.arrayContaining(originally.wait));
    // Rollout replacements: 4 (refresh) + 2 (ignore) + 2 (wait).
    expect(standIn.fleet.counters().replacedByRollout).toBe(8);
  });

  it("Wait proceeds once scale-in protection is removed within the wait", async () => {
    const standIn = await start({
      groups: [{ region: REGION, name: "agents", instances: 2, newInstancesProtectedFromScaleIn: true }],
      protectedWaitMs: 5_000,
    });
    const asg = clientFor(standIn);
    const id = await startRefresh(asg, "agents", {
      MinHealthyPercentage: 50,
      ScaleInProtectedInstances: "Wait",
    });
    await sleep(150);
    expect((await describeRefresh(asg, "agents", id)).Status).toBe("InProgress");
    expect(standIn.fleet.boots()).toEqual([]);
    await asg.send(
      new SetInstanceProtectionCommand({
        AutoScalingGroupName: "agents",
        InstanceIds: instanceIds(standIn, "agents"),
        ProtectedFromScaleIn: false,
      }),
    );
    expect(await waitForStatus(asg, "agents", id, ["Successful", "Failed"])).toMatchObject({
      Status: "Successful",
    });
  });

  it("sizes batches so MinHealthyPercentage (and MaxHealthyPercentage) of capacity stays in service", async () => {
    const inFlight = new Map<string, number>();
    const peak = new Map<string, number>();
    const cases = [
      { name: "default", preferences: {}, expected: 1 },
      { name: "eighty", preferences: { MinHealthyPercentage: 80 }, expected: 2 },
      { name: "half", preferences: { MinHealthyPercentage: 50 }, expected: 5 },
      { name: "surge", preferences: { MinHealthyPercentage: 90, MaxHealthyPercentage: 110 }, expected: 2 },
    ];
    const standIn = await start({
      groups: cases.map(({ name }) => ({ region: REGION, name, instances: 10 })),
      replaceMs: 5,
      boot: async ({ groupName }) => {
        const now = (inFlight.get(groupName) ?? 0) + 1;
        inFlight.set(groupName, now);
        peak.set(groupName, Math.max(peak.get(groupName) ?? 0, now));
        await sleep(25);
        inFlight.set(groupName, (inFlight.get(groupName) ?? 1) - 1);
        return { ok: true };
      },
    });
    const asg = clientFor(standIn);
    const ids = await Promise.all(cases.map(({ name, preferences }) => startRefresh(asg, name, preferences)));
    await Promise.all(
      cases.map(({ name }, index) => waitForStatus(asg, name, ids[index] ?? "", ["Successful"])),
    );

    expect(Object.fromEntries(peak)).toEqual(
      Object.fromEntries(cases.map(({ name, expected }) => [name, expected])),
    );
  });

  it("completes at once for a group with no instances", async () => {
    const standIn = await start({ groups: [{ region: REGION, name: "empty", instances: 0 }] });
    const asg = clientFor(standIn);
    const id = await startRefresh(asg, "empty");

    const refresh = await waitForStatus(asg, "empty", id, ["Successful", "Failed"], 1_000);
    expect(refresh).toMatchObject({ Status: "Successful", PercentageComplete: 100, InstancesToUpdate: 0 });
    expect((await describeGroup(asg, "empty")).Instances).toEqual([]);
    expect(standIn.fleet.boots()).toEqual([]);
  });

  it("rejects AutoRollback, since our refreshes carry no desired configuration", async () => {
    const standIn = await start({ groups: [{ region: REGION, name: "agents", instances: 1 }] });
    const asg = clientFor(standIn);

    await expect(startRefresh(asg, "agents", { AutoRollback: true })).rejects.toMatchObject({
      name: "ValidationError",
      message: "AutoRollback requires a desired configuration",
      $metadata: { httpStatusCode: 400 },
    });
    await expect(startRefresh(asg, "agents", { MinHealthyPercentage: 101 })).rejects.toMatchObject({
      name: "ValidationError",
    });
    expect(standIn.fleet.refreshes(REGION, "agents")).toEqual([]);
  });

  it("pages DescribeInstanceRefreshes newest first", async () => {
    const standIn = await start({ groups: [{ region: REGION, name: "empty", instances: 0 }] });
    const asg = clientFor(standIn);
    const started: string[] = [];
    for (let round = 0; round < 3; round += 1) {
      const id = await startRefresh(asg, "empty");
      await waitForStatus(asg, "empty", id, ["Successful"], 1_000);
      started.push(id);
    }

    const first = await asg.send(
      new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: "empty", MaxRecords: 2 }),
    );
    expect(first.InstanceRefreshes?.map((refresh) => refresh.InstanceRefreshId)).toEqual([
      started[2],
      started[1],
    ]);
    expect(first.NextToken).toBeDefined();
    const second = await asg.send(
      new DescribeInstanceRefreshesCommand({
        AutoScalingGroupName: "empty",
        MaxRecords: 2,
        NextToken: first.NextToken,
      }),
    );
    expect(second.InstanceRefreshes?.map((refresh) => refresh.InstanceRefreshId)).toEqual([started[0]]);
    expect(second.NextToken).toBeUndefined();
  });
});

describe("regions", () => {
  it("keeps same-named groups in different regions apart", async () => {
    const standIn = await start({
      groups: [
        { region: "us-east-1", name: "agents", instances: 2 },
        { region: "eu-west-1", name: "agents", instances: 3 },
      ],
    });
    const us = clientFor(standIn, "us-east-1");
    const eu = clientFor(standIn, "eu-west-1");
    const sydney = clientFor(standIn, "ap-southeast-2");
    const usBefore = instanceIds(standIn, "agents", "us-east-1");

    expect((await describeGroup(us, "agents")).Instances).toHaveLength(2);
    expect((await describeGroup(eu, "agents")).Instances).toHaveLength(3);
    expect((await describeGroup(eu, "agents")).AutoScalingGroupARN).toContain(":eu-west-1:");
    expect((await sydney.send(new DescribeAutoScalingGroupsCommand({}))).AutoScalingGroups).toEqual([]);

    await eu.send(
      new CreateOrUpdateTagsCommand({
        Tags: [{ ResourceId: "agents", ResourceType: "auto-scaling-group", Key: "only", Value: "eu" }],
      }),
    );
    expect((await us.send(new DescribeTagsCommand({}))).Tags).toEqual([]);

    const id = await startRefresh(eu, "agents");
    expect(
      (await us.send(new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: "agents" })))
        .InstanceRefreshes,
    ).toEqual([]);
    await waitForStatus(eu, "agents", id, ["Successful"]);
    expect(instanceIds(standIn, "agents", "us-east-1")).toEqual(usBefore);
    expect(standIn.fleet.boots().every((boot) => boot.region === "eu-west-1")).toBe(true);

    await expect(startRefresh(sydney, "agents")).rejects.toMatchObject({ name: "ValidationError" });
    await expect(
      sydney.send(new CancelInstanceRefreshCommand({ AutoScalingGroupName: "agents" })),
    ).rejects.toMatchObject({
      name: "ValidationError",
    });
  });
});

describe("events and knobs", () => {
  it("emits EventBridge-shaped Started/Succeeded/Failed/Cancelled events", async () => {
    const events: RefreshEvent[] = [];
    const standIn = await start({
      groups: [
        { region: REGION, name: "ok", instances: 1 },
        { region: REGION, name: "bad", instances: 1 },
        { region: REGION, name: "stop", instances: 2 },
      ],
      onEvent: (event) => events.push(event),
    });
    const undo = standIn.fleet.failRefreshes({ groupName: "bad" });
    const asg = clientFor(standIn);
    const ok = await startRefresh(asg, "ok");
    const bad = await startRefresh(asg, "bad");
    const stop = await startRefresh(asg, "stop");
    await waitForStatus(asg, "stop", stop, ["InProgress"]);
    await asg.send(new CancelInstanceRefreshCommand({ AutoScalingGroupName: "stop" }));
    await waitForStatus(asg, "ok", ok, ["Successful"]);
    const failed = await waitForStatus(asg, "bad", bad, ["Failed"]);
    expect(failed.StatusReason).toBe("simulated failure");
    await waitForStatus(asg, "stop", stop, ["Cancelled"]);
    undo();

    const typesFor = (id: string) =>
      events.filter((event) => event.detail.InstanceRefreshId === id).map((event) => event["detail-type"]);
    expect(typesFor(ok)).toEqual([
      "EC2 Auto Scaling Instance Refresh Started",
      "EC2 Auto Scaling Instance Refresh Succeeded",
    ]);
    expect(typesFor(bad)).toEqual([
      "EC2 Auto Scaling Instance Refresh Started",
      "EC2 Auto Scaling Instance Refresh Failed",
    ]);
    expect(typesFor(stop)).toEqual([
      "EC2 Auto Scaling Instance Refresh Started",
      "EC2 Auto Scaling Instance Refresh Cancelled",
    ]);

    const okArn = (await describeGroup(asg, "ok")).AutoScalingGroupARN;
    expect(events.find((event) => event.detail.InstanceRefreshId === ok)).toEqual({
      version: "0",
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      "detail-type": "EC2 Auto Scaling Instance Refresh Started",
      source: "aws.autoscaling",
      account: "123456789012",
      time: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/),
      region: REGION,
      resources: [okArn],
      detail: { InstanceRefreshId: ok, AutoScalingGroupName: "ok" },
    });
  });

  it("fails only as many refreshes as asked, and the undo stops failures", async () => {
    const standIn = await start({ groups: [{ region: REGION, name: "agents", instances: 1 }] });
    const asg = clientFor(standIn);
    standIn.fleet.failRefreshes({ region: REGION, groupName: "agents", count: 1 });
    const first = await startRefresh(asg, "agents");
    expect(await waitForStatus(asg, "agents", first, ["Failed", "Successful"])).toMatchObject({
      Status: "Failed",
    });
    const second = await startRefresh(asg, "agents");
    expect(await waitForStatus(asg, "agents", second, ["Failed", "Successful"])).toMatchObject({
      Status: "Successful",
    });
    // Injected failures never reach the boot hook.
    expect(standIn.fleet.boots()).toHaveLength(1);

    const undo = standIn.fleet.failRefreshes({ region: "eu-west-1" });
    undo();
    const third = await startRefresh(asg, "agents");
    expect((await waitForStatus(asg, "agents", third, ["Failed", "Successful"])).Status).toBe("Successful");
  });

  it("runs external refreshes like API ones, and rolls back the active refresh", async () => {
    const events: RefreshEvent[] = [];
    const standIn = await start({
      groups: [{ region: REGION, name: "agents", instances: 2 }],
      replaceMs: 100,
      onEvent: (event) => events.push(event),
    });
    const asg = clientFor(standIn);
    const external = standIn.fleet.startExternalRefresh(REGION, "agents");

    await expect(startRefresh(asg, "agents")).rejects.toBeInstanceOf(InstanceRefreshInProgressFault);
    expect(standIn.fleet.refreshes(REGION, "agents")[0]).toMatchObject({
      instanceRefreshId: external,
      origin: "external",
    });
    await waitForStatus(asg, "agents", external, ["InProgress"]);

    expect(standIn.fleet.rollback(REGION, "agents")).toBe(external);
    const rolledBack = await describeRefresh(asg, "agents", external);
    expect(rolledBack.Status).toBe("RollbackSuccessful");
    expect(rolledBack.EndTime).toBeInstanceOf(Date);
    expect(events.map((event) => event["detail-type"])).toEqual([
      "EC2 Auto Scaling Instance Refresh Started",
      "EC2 Auto Scaling Instance Refresh Rollback Succeeded",
    ]);
    // The group is free again.
    standIn.fleet.setReplaceMs(5);
    const next = await startRefresh(asg, "agents");
    expect((await waitForStatus(asg, "agents", next, ["Successful"])).Status).toBe("Successful");
  });

  it("skips instances already on the group's launch template when SkipMatching is set", async () => {
    const standIn = await start({ groups: [{ region: REGION, name: "agents", instances: 2 }] });
    const asg = clientFor(standIn);
    const noop = await startRefresh(asg, "agents", { SkipMatching: true });
    expect(await waitForStatus(asg, "agents", noop, ["Successful"])).toMatchObject({
      PercentageComplete: 100,
    });
    expect(standIn.fleet.boots()).toEqual([]);

    standIn.fleet.setLaunchTemplateVersion(REGION, "agents", "2");
    const real = await startRefresh(asg, "agents", { SkipMatching: true });
    await waitForStatus(asg, "agents", real, ["Successful"]);
    expect(standIn.fleet.boots()).toHaveLength(2);
    const group = await describeGroup(asg, "agents");
    expect(group.Instances?.map((instance) => instance.LaunchTemplate?.Version)).toEqual(["2", "2"]);
  });

  it("closes promptly with a refresh in flight and a boot that never returns", async () => {
    const standIn = await startAutoScalingStandIn({
      groups: [{ region: REGION, name: "agents", instances: 2, newInstancesProtectedFromScaleIn: false }],
      replaceMs: 5,
      boot: () => new Promise(() => {}),
    });
    const asg = clientFor(standIn);
    await startRefresh(asg, "agents");
    await until(() => standIn.fleet.boots().length > 0);

    const started = Date.now();
    await standIn.close();
    expect(Date.now() - started).toBeLessThan(1_000);
    await standIn.close();
  });
});

describe("fleet simulation on an injected clock", () => {
  /** A clock the test advances by hand; timers fire in due order with the event loop drained between. */
  class ManualClock implements Clock {
    #now = Date.UTC(2026, 0, 1);
    #sequence = 0;
    #timers: Array<{ due: number; sequence: number; callback: () => void }> = [];

    now(): number {
      return this.#now;
    }

    setTimeout(callback: () => void, ms: number): unknown {
      const timer = { due: this.#now + ms, sequence: this.#sequence++, callback };
      this.#timers.push(timer);
      return timer;
    }

    clearTimeout(handle: unknown): void {
      this.#timers = this.#timers.filter((timer) => timer !== handle);
    }

    /** Moves time forward by `ms`, firing every timer due by then (including ones they schedule). */
    async advance(ms: number): Promise<void> {
      const target = this.#now + ms;
      await drain();
      for (;;) {
        const next = this.#timers
          .filter((timer) => timer.due <= target)
          .sort((a, b) => a.due - b.due || a.sequence - b.sequence)[0];
        if (next === undefined) break;
        this.clearTimeout(next);
        this.#now = next.due;
        next.callback();
        await drain();
      }
      this.#now = target;
    }
  }

  const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

  it("replaces instances on an exact, repeatable timeline", async () => {
    const clock = new ManualClock();
    const t0 = clock.now();
    const events: RefreshEvent[] = [];
    const fleet = new Fleet({
      groups: [{ region: REGION, name: "agents", instances: 2, newInstancesProtectedFromScaleIn: false }],
      replaceMs: 100,
      clock,
      onEvent: (event) => events.push(event),
    });
    const states = () => fleet.instances(REGION, "agents").map((instance) => instance.lifecycleState);
    const [oldA, oldB] = fleet.instances(REGION, "agents").map((instance) => instance.instanceId);
    const id = fleet.startInstanceRefresh(REGION, "agents", { instanceWarmup: 0 });
    expect(fleet.refreshes(REGION, "agents")[0]).toMatchObject({ status: "Pending", instancesToUpdate: 2 });

    await clock.advance(0);
    expect(fleet.refreshes(REGION, "agents")[0]?.status).toBe("InProgress");
    expect(states()).toEqual(["InService", "InService", "Pending"]);

    await clock.advance(100); // t0+100: first replacement boots; its predecessor starts terminating
    expect(states()).toEqual(["Terminating", "InService", "InService"]);
    expect(fleet.refreshes(REGION, "agents")[0]).toMatchObject({
      percentageComplete: 50,
      instancesToUpdate: 1,
    });

    await clock.advance(25); // t0+125: old instance gone, second batch launched
    expect(states()).toEqual(["InService", "InService", "Pending"]);

    await clock.advance(125); // t0+250: second replacement done
    const refresh = fleet.refreshes(REGION, "agents")[0];
    expect(refresh).toMatchObject({ instanceRefreshId: id, status: "Successful", percentageComplete: 100 });
    expect(refresh?.endTime?.getTime()).toBe(t0 + 250);
    expect(fleet.boots().map((boot) => boot.startedAt.getTime() - t0)).toEqual([100, 225]);
    expect(fleet.instances(REGION, "agents").map((instance) => instance.instanceId)).not.toContain(oldA);
    expect(fleet.instances(REGION, "agents").map((instance) => instance.instanceId)).not.toContain(oldB);
    expect(events.map((event) => [event["detail-type"], event.time])).toEqual([
      ["EC2 Auto Scaling Instance Refresh Started", "2026-01-01T00:00:00Z"],
      ["EC2 Auto Scaling Instance Refresh Succeeded", "2026-01-01T00:00:00Z"],
    ]);
    fleet.close();
  });
});

describe("throttling profile", () => {
  it("answers over-rate calls with the Query error Throttling, per region, and counts them", async () => {
    const standIn = await start({
      groups: [
        { region: REGION, name: "a", instances: 1 },
        { region: "eu-west-1", name: "b", instances: 1 },
      ],
      // A slow refill: the test's calls all land within the burst window.
      throttle: { ratePerSecond: 0.01, burst: 2 },
    });
    const asg = clientFor(standIn);
    const describeA = () => asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["a"] }));
    await describeA();
    await describeA();
    const refused = await describeA().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({
      name: "Throttling",
      message: "Rate exceeded",
      $metadata: { httpStatusCode: 400 },
    });
    expect(standIn.throttled()).toBe(1);
    // Another region has its own bucket.
    const other = clientFor(standIn, "eu-west-1");
    await other.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["b"] }));
    expect(standIn.throttled()).toBe(1);
  });

  it("is a throttling error the SDK's standard retry strategy retries with backoff", async () => {
    // 20/s refill after a burst of 1: the second call is throttled, and a retry 50+ ms later succeeds.
    const standIn = await start({
      groups: [{ region: REGION, name: "a", instances: 1 }],
      throttle: { ratePerSecond: 20, burst: 1 },
    });
    const asg = new AutoScalingClient({ region: REGION, endpoint: standIn.url, credentials, maxAttempts: 5 });
    clients.push(asg);
    await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["a"] }));
    const out = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["a"] }));
    expect(out.AutoScalingGroups?.[0]?.AutoScalingGroupName).toBe("a");
    expect(out.$metadata.attempts).toBeGreaterThan(1);
    expect(standIn.throttled()).toBeGreaterThanOrEqual(1);
  });

  it("shares the bucket with other callers in the account", async () => {
    // Other callers take 9 of the 10 tokens per second: only ~1/s is left for us.
    const standIn = await start({
      groups: [{ region: REGION, name: "a", instances: 1 }],
      throttle: { ratePerSecond: 10, burst: 1, otherCallersPerSecond: 9.9 },
    });
    const asg = clientFor(standIn);
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () =>
        asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["a"] })),
      ),
    );
    expect(results.filter((r) => r.status === "rejected").length).toBeGreaterThanOrEqual(3);
    expect(standIn.throttled()).toBeGreaterThanOrEqual(3);
  });
});

/**
 * The call meter in front of real stand-ins, driven by the real SDK client and plain HTTP: counts
 * by service:action and by Buildkite route, follows Link pagination through itself, passes
 * answers and failures through unchanged, and resets.
 */
import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeTagsCommand,
} from "@aws-sdk/client-auto-scaling";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AutoScalingStandIn,
  startAutoScalingStandIn,
} from "../../../../../sandbox/fakes/autoscaling/index";
import { type CallMeter, createCallMeter } from "../../../../../sandbox/fakes/aws/call-meter";
import { type BuildkiteApi, startBuildkiteApi } from "../../../../../sandbox/fakes/buildkite/api";

const API_TOKEN = "bkua_meter_test_token";
let meter: CallMeter;
let buildkite: BuildkiteApi;
let autoScaling: AutoScalingStandIn;
let asg: AutoScalingClient;
let buildkiteUrl: string;

beforeAll(async () => {
  meter = createCallMeter();
  buildkite = await startBuildkiteApi({ organization: "acme", clusterId: "c-1", apiToken: API_TOKEN });
  for (let i = 0; i < 5; i++) buildkite.addToken({ description: `token ${i}` });
  autoScaling = await startAutoScalingStandIn({
    groups: [{ region: "us-east-1", name: "agents", instances: 1, newInstancesProtectedFromScaleIn: false }],
    replaceMs: 10,
  });
  buildkiteUrl = await meter.buildkite(buildkite.url);
  asg = new AutoScalingClient({
    region: "us-east-1",
    endpoint: await meter.aws(autoScaling.url, "autoscaling"),
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  asg?.destroy();
  await meter?.close();
  await autoScaling?.close();
  await buildkite?.close();
});

const rest = (path: string, init: RequestInit = {}) =>
  fetch(`${buildkiteUrl}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${API_TOKEN}` },
    signal: AbortSignal.timeout(5_000),
  });

describe("call meter", () => {
  it("counts AWS calls by signing service and action, answers passing through unchanged", async () => {
    meter.reset();
    const out = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["agents"] }));
    expect(out.AutoScalingGroups?.[0]?.AutoScalingGroupName).toBe("agents");
    await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["agents"] }));
    await asg.send(new DescribeTagsCommand({}));
    // An error answer passes through too, and is a call.
    await expect(
      asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: Array(101).fill("x") })),
    ).rejects.toMatchObject({ name: "ValidationError" });
    expect(meter.counts().aws).toEqual({
      "autoscaling:DescribeAutoScalingGroups": 3,
      "autoscaling:DescribeTags": 1,
    });
  });

  it("counts Buildkite calls by route and follows Link pages through the meter", async () => {
    meter.reset();
    const first = await rest("/v2/organizations/acme/clusters/c-1/tokens?per_page=2");
    expect(first.status).toBe(200);
    expect(first.headers.get("ratelimit-remaining")).not.toBeNull();
    let link = first.headers.get("link");
    await first.body?.cancel();
    let pages = 1;
    while (link && /rel="next"/.test(link) && pages < 10) {
      const next = /<([^>]+)>;\s*rel="next"/.exec(link)?.[1] ?? "";
      expect(next.startsWith(buildkiteUrl)).toBe(true);
      const page = await fetch(next, {
        headers: { Authorization: `Bearer ${API_TOKEN}` },
        signal: AbortSignal.timeout(5_000),
      });
      await page.body?.cancel();
      link = page.headers.get("link");
      pages++;
    }
    expect(pages).toBe(3); // 5 tokens (plus none other) at 2 per page
    const id = buildkite.tokens()[0]?.id ?? "";
    const deleted = await rest(`/v2/organizations/acme/clusters/c-1/tokens/${id}`, { method: "DELETE" });
    expect(deleted.status).toBe(204);
    expect(meter.counts().buildkite).toEqual({
      "GET /v2/organizations/{org}/clusters/{cluster}/tokens": 3,
      "DELETE /v2/organizations/{org}/clusters/{cluster}/tokens/{id}": 1,
    });
    expect(meter.counts().aws).toEqual({});
  });

  it("drops the caller's connection when the upstream drops it", async () => {
    meter.reset();
    buildkite.dropNext(1);
    await expect(rest("/v2/organizations/acme/clusters/c-1/tokens")).rejects.toThrow();
    expect(meter.counts().buildkite["GET /v2/organizations/{org}/clusters/{cluster}/tokens"]).toBe(1);
    const ok = await rest("/v2/organizations/acme/clusters/c-1/tokens");
    expect(ok.status).toBe(200);
    await ok.body?.cancel();
  });

  it("counts nothing that bypasses it, and resets to empty", async () => {
    meter.reset();
    const direct = await fetch(`${buildkite.url}/v2/organizations/acme/clusters/c-1/tokens`, {
      headers: { Authorization: `Bearer ${API_TOKEN}` },
      signal: AbortSignal.timeout(5_000),
    });
    await direct.body?.cancel();
    expect(meter.counts()).toEqual({ aws: {}, buildkite: {} });
  });
});

/**
 * The one SSM endpoint (sandbox/fakes/ssm/server.ts): Parameter Store passed to moto, and throttling.
 */
import {
  DescribeInstanceInformationCommand,
  GetParameterCommand,
  PutParameterCommand,
} from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import { startRunCommandStandIn } from "../../../../../sandbox/fakes/ssm/index";
import {
  PARAMETER,
  PREVIOUS,
  REGION,
  SECRET,
  ssm,
  useRunCommandStandIns,
} from "../../../../support/run-command-fixture";

const rc = useRunCommandStandIns({ expectOutput: false });

describe("the one SSM endpoint", () => {
  it("passes Parameter Store to moto, with Secrets Manager references shaped as AWS returns them", async () => {
    const client = ssm(rc.standIn.url);
    await client.send(new PutParameterCommand({ Name: "/sandbox/plain", Value: "hello", Type: "String" }));
    const plain = await client.send(new GetParameterCommand({ Name: "/sandbox/plain" }));
    expect(plain.Parameter).toMatchObject({ Name: "/sandbox/plain", Value: "hello", Type: "String" });
    await expect(client.send(new GetParameterCommand({ Name: "/sandbox/absent" }))).rejects.toMatchObject({
      name: "ParameterNotFound",
    });
    const reference = await client.send(
      new GetParameterCommand({ Name: `${PARAMETER}:AWSCURRENT`, WithDecryption: true }),
    );
    expect(reference.Parameter?.Name).toBe(PARAMETER);
    expect(reference.Parameter?.Selector).toBe(":AWSCURRENT");
    const source = JSON.parse(reference.Parameter?.SourceResult ?? "{}") as Record<string, unknown>;
    expect(source).toMatchObject({
      Name: SECRET,
      VersionId: rc.currentVersion,
      VersionStages: ["AWSCURRENT"],
    });
    const previous = await client.send(
      new GetParameterCommand({ Name: `${PARAMETER}:AWSPREVIOUS`, WithDecryption: true }),
    );
    expect(JSON.parse(previous.Parameter?.SourceResult ?? "{}")).toMatchObject({
      VersionStages: ["AWSPREVIOUS"],
    });
    expect(previous.Parameter?.Value === PREVIOUS).toBe(true);
    client.destroy();
  });

  it("throttles per region with a token bucket when a profile is set", async () => {
    const throttled = await startRunCommandStandIn({
      motoUrl: rc.moto.url,
      directory: rc.fleet,
      throttle: { ratePerSecond: 0.5, burst: 2 },
    });
    rc.standIns.push(throttled);
    const client = ssm(throttled.url, REGION, 1);
    await client.send(new DescribeInstanceInformationCommand({}));
    await client.send(new DescribeInstanceInformationCommand({}));
    await expect(client.send(new DescribeInstanceInformationCommand({}))).rejects.toMatchObject({
      name: "ThrottlingException",
      message: "Rate exceeded",
    });
    // Another region has its own bucket.
    const west = ssm(throttled.url, "us-west-2", 1);
    await west.send(new DescribeInstanceInformationCommand({}));
    expect(throttled.throttled()).toBe(1);
    client.destroy();
    west.destroy();
  });
});

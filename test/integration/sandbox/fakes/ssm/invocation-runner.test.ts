/**
 * How invocations run (sandbox/fakes/ssm/invocation-runner.ts), seen through the real SSM client:
 * delivery and its timeouts, mid-run termination, cancel, MaxErrors and MaxConcurrency.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  CancelCommandCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import { parseCommandDocument } from "../../../../../sandbox/fakes/ssm/documents";
import { INSTALL_AGENT_TOKEN_DOCUMENT, startRunCommandStandIn } from "../../../../../sandbox/fakes/ssm/index";
import {
  CURRENT,
  cfgWith,
  FOREIGN,
  PARAMETER,
  PREVIOUS,
  printLotsYaml,
  REGION,
  ssm,
  useRunCommandStandIns,
  waitForInvocations,
} from "../../../../support/run-command-fixture";

const rc = useRunCommandStandIns();
const { install, statusesOf } = rc;

describe("Run Command as the API reports it", () => {
  it("ends a connection-lost instance's invocation Delivery Timed Out after the (scaled) total timeout", async () => {
    const lost = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
    lost.agent = "connection-lost";
    const client = ssm(rc.fast.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
        InstanceIds: [lost.instanceId],
        Parameters: { TokenParameterName: [PARAMETER] },
        TimeoutSeconds: 30,
      }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    await new Promise((r) => setTimeout(r, 300));
    const midway = await client.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
    expect(midway.CommandInvocations?.[0]).toMatchObject({ Status: "Delayed", StatusDetails: "Delayed" });
    const invocation = (await waitForInvocations(ssm(rc.fast.url), commandId, 1)).get(lost.instanceId);
    expect(invocation).toMatchObject({ Status: "TimedOut", StatusDetails: "Delivery Timed Out" });
    const command = (await client.send(new ListCommandsCommand({ CommandId: commandId }))).Commands?.[0];
    expect(command).toMatchObject({ Status: "TimedOut", DeliveryTimedOutCount: 1, ErrorCount: 0 });
    expect(statusesOf(lost.instanceId)).toEqual(["Delayed", "TimedOut"]);
    expect(rc.events.find((e) => e.detail["instance-id"] === lost.instanceId)).toMatchObject({
      "detail-type": "EC2 Command Invocation Status-change Notification",
      source: "aws.ssm",
      region: REGION,
      detail: { "command-id": commandId, "document-name": INSTALL_AGENT_TOKEN_DOCUMENT },
    });
    expect(readFileSync(lost.configPath, "utf8")).toBe(cfgWith(PREVIOUS));
    client.destroy();
  });

  it("delivers to a connection-lost instance that comes back before the timeout", async () => {
    const flaky = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
    flaky.agent = "connection-lost";
    setTimeout(() => {
      flaky.agent = "online";
    }, 300);
    const invocation = (await install([flaky], { timeoutSeconds: 600 })).get(flaky.instanceId);
    expect(invocation?.Status).toBe("Success");
    expect(readFileSync(flaky.configPath, "utf8")).toBe(cfgWith(CURRENT));
  });

  it("ends an invocation whose instance terminates mid-run as configured, and one whose instance is gone Undeliverable", async () => {
    const doomed = rc.fleet.add();
    const vanishing = rc.fleet.add();
    vanishing.agent = "connection-lost";
    const client = ssm(rc.fast.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: "Sandbox-PrintLots",
        InstanceIds: [doomed.instanceId, vanishing.instanceId],
        Parameters: { Sleep: ["30"] },
        TimeoutSeconds: 600,
      }),
    );
    await new Promise((r) => setTimeout(r, 400));
    doomed.isRunning = false;
    vanishing.isRunning = false;
    const results = await waitForInvocations(ssm(rc.fast.url), sent.Command?.CommandId ?? "", 2);
    expect(results.get(doomed.instanceId)).toMatchObject({
      Status: "Cancelled",
      StatusDetails: "Terminated",
    });
    expect(results.get(vanishing.instanceId)).toMatchObject({
      Status: "Failed",
      StatusDetails: "Undeliverable",
    });
    client.destroy();
  });

  it("by default ends a mid-run termination Delivery Timed Out at the total timeout, and a slow step Execution Timed Out", async () => {
    // One AWS second = 1 ms: TimeoutSeconds 30 + the step's default execution timeout 3600 → 3.63 s.
    const literal = await startRunCommandStandIn({
      motoUrl: rc.moto.url,
      directory: rc.fleet,
      documents: [parseCommandDocument("Sandbox-PrintLots", printLotsYaml)],
      invocationDelayMs: 10,
      commandLatencyMs: 10,
      msPerAwsSecond: 1,
      deliveryRetryMs: 10,
    });
    rc.standIns.push(literal);
    const doomed = rc.fleet.add();
    const slow = rc.fleet.add();
    const client = ssm(literal.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: "Sandbox-PrintLots",
        InstanceIds: [doomed.instanceId, slow.instanceId],
        Parameters: { Sleep: ["30"] },
        TimeoutSeconds: 30,
      }),
    );
    await new Promise((r) => setTimeout(r, 500));
    doomed.isRunning = false;
    const midway = await client.send(
      new ListCommandInvocationsCommand({ CommandId: sent.Command?.CommandId }),
    );
    expect(midway.CommandInvocations?.map((i) => i.Status)).toEqual(["InProgress", "InProgress"]);
    const results = await waitForInvocations(ssm(literal.url), sent.Command?.CommandId ?? "", 2);
    expect(results.get(doomed.instanceId)).toMatchObject({
      Status: "TimedOut",
      StatusDetails: "Delivery Timed Out",
    });
    expect(results.get(slow.instanceId)).toMatchObject({
      Status: "TimedOut",
      StatusDetails: "Execution Timed Out",
    });
    client.destroy();
  });

  it("cancels: a queued invocation at once, a running one through Cancelling", async () => {
    const busy = rc.fleet.add();
    const lost = rc.fleet.add();
    lost.agent = "connection-lost";
    const client = ssm(rc.standIn.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: "Sandbox-PrintLots",
        InstanceIds: [busy.instanceId, lost.instanceId],
        Parameters: { Sleep: ["30"] },
      }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    const started = Date.now();
    for (;;) {
      const page = await client.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
      if (page.CommandInvocations?.find((i) => i.InstanceId === busy.instanceId)?.Status === "InProgress")
        break;
      if (Date.now() - started > 10_000) throw new Error("never started");
      await new Promise((r) => setTimeout(r, 50));
    }
    await expect(client.send(new CancelCommandCommand({ CommandId: randomUUID() }))).rejects.toMatchObject({
      name: "InvalidCommandId",
    });
    await expect(
      client.send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: ["i-0000000000000beef"] })),
    ).rejects.toMatchObject({ name: "InvalidInstanceId" });
    await client.send(new CancelCommandCommand({ CommandId: commandId }));
    const results = await waitForInvocations(ssm(rc.standIn.url), commandId, 2);
    expect(Date.now() - started).toBeLessThan(20_000); // the 30 s sleep was stopped
    expect(results.get(busy.instanceId)).toMatchObject({ Status: "Cancelled", StatusDetails: "Cancelled" });
    expect(results.get(lost.instanceId)).toMatchObject({ Status: "Cancelled", StatusDetails: "Cancelled" });
    const command = (await client.send(new ListCommandsCommand({ CommandId: commandId }))).Commands?.[0];
    expect(command).toMatchObject({ Status: "Cancelled" });
    client.destroy();
  });

  it("stops starting invocations once MaxErrors is exceeded (Terminated), one at a time with MaxConcurrency 1", async () => {
    const hosts = [rc.fleet.add({ cfg: cfgWith(FOREIGN) }), rc.fleet.add({ cfg: cfgWith(PREVIOUS) })];
    const client = ssm(rc.standIn.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
        InstanceIds: hosts.map((h) => h.instanceId),
        Parameters: { TokenParameterName: [PARAMETER] },
        MaxConcurrency: "1",
        MaxErrors: "0",
      }),
    );
    const results = await waitForInvocations(ssm(rc.standIn.url), sent.Command?.CommandId ?? "", 2);
    expect(results.get(hosts[0]?.instanceId ?? "")).toMatchObject({
      Status: "Failed",
      StatusDetails: "Failed",
    });
    expect(results.get(hosts[1]?.instanceId ?? "")).toMatchObject({
      Status: "Cancelled",
      StatusDetails: "Terminated",
    });
    expect(readFileSync(hosts[1]?.configPath ?? "", "utf8")).toBe(cfgWith(PREVIOUS));
    const command = (await client.send(new ListCommandsCommand({ CommandId: sent.Command?.CommandId })))
      .Commands?.[0];
    expect(command).toMatchObject({ Status: "Failed", ErrorCount: 1 });
    client.destroy();
  });
});

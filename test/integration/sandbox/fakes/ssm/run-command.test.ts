/**
 * Run Command's operations as the API reports them (sandbox/fakes/ssm/run-command.ts), with the real
 * SSM client: validation, eventual visibility, output caps, paging.
 */
import { readFileSync } from "node:fs";
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import { INSTALL_AGENT_TOKEN_DOCUMENT } from "../../../../../sandbox/fakes/ssm/index";
import { parseInstallResult } from "../../../../../shared/rollout/install-result";
import {
  CURRENT,
  cfgWith,
  PARAMETER,
  PREVIOUS,
  ssm,
  useRunCommandStandIns,
  waitForInvocations,
} from "../../../../support/run-command-fixture";

const rc = useRunCommandStandIns();

describe("Run Command as the API reports it", () => {
  it("fails the whole SendCommand with InvalidInstanceId for an unregistered or terminated instance", async () => {
    const good = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
    const unregistered = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
    unregistered.agent = "unregistered";
    const gone = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
    gone.isRunning = false;
    const client = ssm(rc.standIn.url);
    const before = rc.standIn.invocations().length;
    for (const bad of [unregistered, gone, { instanceId: "i-0000000000000dead" }]) {
      await expect(
        client.send(
          new SendCommandCommand({
            DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
            InstanceIds: [good.instanceId, bad.instanceId],
            Parameters: { TokenParameterName: [PARAMETER] },
          }),
        ),
      ).rejects.toMatchObject({ name: "InvalidInstanceId", $metadata: { httpStatusCode: 400 } });
    }
    expect(rc.standIn.invocations().length).toBe(before);
    expect(readFileSync(good.configPath, "utf8")).toBe(cfgWith(PREVIOUS));
    // DescribeInstanceInformation does not list the unregistered one.
    const info = await client.send(
      new DescribeInstanceInformationCommand({
        Filters: [{ Key: "InstanceIds", Values: [good.instanceId, unregistered.instanceId] }],
      }),
    );
    expect(info.InstanceInformationList?.map((i) => [i.InstanceId, i.PingStatus, i.PlatformType])).toEqual([
      [good.instanceId, "Online", "Linux"],
    ]);
    client.destroy();
  });

  it("validates documents, parameters and limits", async () => {
    const host = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
    const client = ssm(rc.standIn.url);
    const send = (input: Partial<ConstructorParameters<typeof SendCommandCommand>[0]>) =>
      client.send(
        new SendCommandCommand({
          DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
          InstanceIds: [host.instanceId],
          Parameters: { TokenParameterName: [PARAMETER] },
          ...input,
        }),
      );
    await expect(send({ DocumentName: "AWS-RunShellScript" })).rejects.toMatchObject({
      name: "InvalidDocument",
    });
    await expect(send({ Parameters: {} })).rejects.toMatchObject({ name: "InvalidParameters" });
    await expect(
      send({ Parameters: { TokenParameterName: ["/buildkite/agent-token"] } }),
    ).rejects.toMatchObject({
      name: "InvalidParameters",
    });
    await expect(
      send({ Parameters: { TokenParameterName: [PARAMETER], Bogus: ["x"] } }),
    ).rejects.toMatchObject({
      name: "InvalidParameters",
    });
    await expect(
      send({ Parameters: { TokenParameterName: [PARAMETER], LinuxConfigPath: ["/etc/x.cfg; rm -rf /"] } }),
    ).rejects.toMatchObject({ name: "InvalidParameters" });
    const many = Array.from({ length: 51 }, () => rc.fleet.add().instanceId);
    await expect(send({ InstanceIds: many })).rejects.toMatchObject({ name: "ValidationException" });
    await expect(send({ InstanceIds: [host.instanceId, host.instanceId] })).rejects.toMatchObject({
      name: "DuplicateInstanceId",
    });
    await expect(send({ TimeoutSeconds: 10 })).rejects.toMatchObject({ name: "ValidationException" });
    await expect(send({ MaxConcurrency: "0" })).rejects.toMatchObject({ name: "ValidationException" });
    await expect(send({ MaxErrors: "-1" })).rejects.toMatchObject({ name: "ValidationException" });
    expect(readFileSync(host.configPath, "utf8")).toBe(cfgWith(PREVIOUS));
    client.destroy();
  });

  it("shows invocations only after a delay (InvocationDoesNotExist until then)", async () => {
    const host = rc.fleet.add({ cfg: cfgWith(CURRENT) });
    const client = ssm(rc.standIn.url);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
        InstanceIds: [host.instanceId],
        Parameters: { TokenParameterName: [PARAMETER] },
      }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    expect(sent.Command).toMatchObject({
      Status: "Pending",
      TargetCount: 1,
      MaxConcurrency: "50",
      MaxErrors: "0",
    });
    const early = await client.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
    expect(early.CommandInvocations).toEqual([]);
    await expect(
      client.send(
        new GetCommandInvocationCommand({
          CommandId: commandId,
          InstanceId: host.instanceId,
          PluginName: "InstallAgentTokenLinux",
        }),
      ),
    ).rejects.toMatchObject({ name: "InvocationDoesNotExist" });
    await waitForInvocations(ssm(rc.standIn.url), commandId, 1);
    // Two steps: GetCommandInvocation needs the step name.
    await expect(
      client.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: host.instanceId })),
    ).rejects.toMatchObject({ name: "InvalidPluginName" });
    const got = await client.send(
      new GetCommandInvocationCommand({
        CommandId: commandId,
        InstanceId: host.instanceId,
        PluginName: "InstallAgentTokenLinux",
      }),
    );
    expect(got).toMatchObject({ Status: "Success", StatusDetails: "Success", ResponseCode: 0 });
    expect(parseInstallResult(got.StandardOutputContent ?? "")?.result).toBe("unchanged");
    const listed = await client.send(new ListCommandsCommand({ CommandId: commandId }));
    expect(listed.Commands?.[0]).toMatchObject({ Status: "Success", CompletedCount: 1, ErrorCount: 0 });
    client.destroy();
  });

  it("truncates plugin Output to 2500 characters in ListCommandInvocations, not in GetCommandInvocation", async () => {
    const host = rc.fleet.add();
    const client = ssm(rc.standIn.url);
    const sent = await client.send(
      new SendCommandCommand({ DocumentName: "Sandbox-PrintLots", InstanceIds: [host.instanceId] }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    const invocation = (await waitForInvocations(ssm(rc.standIn.url), commandId, 1)).get(host.instanceId);
    expect(invocation?.CommandPlugins?.[0]?.Output).toBe("x".repeat(2500));
    const got = await client.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: host.instanceId }),
    );
    expect(got.StandardOutputContent).toBe("x".repeat(3000));
    client.destroy();
  });

  it("pages ListCommandInvocations, ListCommands and DescribeInstanceInformation within their limits", async () => {
    const region = "ap-southeast-2";
    const hosts = Array.from({ length: 7 }, () => rc.fleet.add({ region }));
    const client = ssm(rc.standIn.url, region);
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: "Sandbox-PrintLots",
        InstanceIds: hosts.slice(0, 5).map((h) => h.instanceId),
      }),
    );
    const commandId = sent.Command?.CommandId ?? "";
    await waitForInvocations(ssm(rc.standIn.url, region), commandId, 5);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await client.send(
        new ListCommandInvocationsCommand({ CommandId: commandId, MaxResults: 2, NextToken: token }),
      );
      seen.push(...(page.CommandInvocations ?? []).map((i) => i.InstanceId ?? ""));
      token = page.NextToken;
      pages++;
    } while (token !== undefined && pages < 10);
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual(
      hosts
        .slice(0, 5)
        .map((h) => h.instanceId)
        .sort(),
    );
    await expect(client.send(new ListCommandInvocationsCommand({ MaxResults: 51 }))).rejects.toMatchObject({
      name: "ValidationException",
    });
    await expect(
      client.send(new ListCommandInvocationsCommand({ NextToken: "bogus" })),
    ).rejects.toMatchObject({
      name: "InvalidNextToken",
    });

    await client.send(
      new SendCommandCommand({
        DocumentName: "Sandbox-PrintLots",
        InstanceIds: [hosts[5]?.instanceId ?? ""],
      }),
    );
    const byDocument = await client.send(
      new ListCommandsCommand({
        Filters: [{ key: "DocumentName", value: "Sandbox-PrintLots" }],
        MaxResults: 1,
      }),
    );
    expect(byDocument.Commands).toHaveLength(1);
    expect(byDocument.NextToken).toBeDefined();
    const none = await client.send(
      new ListCommandsCommand({ Filters: [{ key: "DocumentName", value: INSTALL_AGENT_TOKEN_DOCUMENT }] }),
    );
    expect(none.Commands).toEqual([]);
    const succeeded = await client.send(
      new ListCommandsCommand({
        Filters: [
          { key: "Status", value: "Success" },
          { key: "DocumentName", value: "Sandbox-PrintLots" },
        ],
      }),
    );
    expect(succeeded.Commands?.map((c) => c.CommandId)).toContain(commandId);
    const oneInstance = await client.send(
      new ListCommandInvocationsCommand({ InstanceId: hosts[1]?.instanceId, Details: true }),
    );
    expect(oneInstance.CommandInvocations?.map((i) => [i.CommandId, i.InstanceId])).toEqual([
      [commandId, hosts[1]?.instanceId],
    ]);
    const later = await client.send(
      new ListCommandsCommand({
        Filters: [{ key: "InvokedAfter", value: new Date(Date.now() + 60_000).toISOString() }],
      }),
    );
    expect(later.Commands).toEqual([]);
    await expect(
      client.send(new ListCommandsCommand({ Filters: [{ key: "Nope", value: "x" }] as never })),
    ).rejects.toMatchObject({
      name: "InvalidFilterKey",
    });

    const lost = hosts[6];
    if (lost) lost.agent = "connection-lost";
    const ids: string[] = [];
    let infoToken: string | undefined;
    do {
      const page = await client.send(
        new DescribeInstanceInformationCommand({ MaxResults: 5, NextToken: infoToken }),
      );
      ids.push(...(page.InstanceInformationList ?? []).map((i) => `${i.InstanceId}:${i.PingStatus}`));
      infoToken = page.NextToken;
    } while (infoToken !== undefined);
    expect(ids).toHaveLength(7);
    expect(ids).toContain(`${hosts[6]?.instanceId}:ConnectionLost`);
    const online = await client.send(
      new DescribeInstanceInformationCommand({
        Filters: [{ Key: "PingStatus", Values: ["Online"] }],
        MaxResults: 50,
      }),
    );
    expect(online.InstanceInformationList).toHaveLength(6);
    const windowsHost = rc.fleet.add({ region, platform: "Windows" });
    const legacy = await client.send(
      new DescribeInstanceInformationCommand({
        InstanceInformationFilterList: [
          { key: "InstanceIds", valueSet: [windowsHost.instanceId, hosts[0]?.instanceId ?? ""] },
          { key: "PlatformTypes", valueSet: ["Windows"] },
        ],
      }),
    );
    expect(legacy.InstanceInformationList?.map((i) => [i.InstanceId, i.PlatformType, i.PingStatus])).toEqual([
      [windowsHost.instanceId, "Windows", "Online"],
    ]);
    await expect(
      client.send(
        new DescribeInstanceInformationCommand({
          InstanceInformationFilterList: [{ key: "PingStatus", valueSet: ["Online"] }],
          Filters: [{ Key: "PingStatus", Values: ["Online"] }],
        }),
      ),
    ).rejects.toMatchObject({ name: "InvalidFilter" });
    await expect(
      client.send(new DescribeInstanceInformationCommand({ MaxResults: 4 })),
    ).rejects.toMatchObject({
      name: "ValidationException",
    });
    await rc.standIn.settled();
    client.destroy();
  });
});

/**
 * The Linux step of the product's document (sandbox/fakes/ssm/linux-step.ts), run for real: bash and
 * the AWS CLI against the Run Command stand-in, moto behind it, on instances whose cfg files are temp files.
 */
import { chmodSync, chownSync, readdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { dirname } from "node:path";
import { CreateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { ListCommandsCommand, SendCommandCommand } from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import { INSTALL_AGENT_TOKEN_DOCUMENT } from "../../../../../sandbox/fakes/ssm/index";
import { parseInstallResult } from "../../../../../shared/rollout/install-result";
import {
  CREDENTIALS,
  CURRENT,
  cfgWith,
  FOREIGN,
  linuxOutput,
  PARAMETER,
  PREVIOUS,
  SECRET,
  sha12,
  ssm,
  useRunCommandStandIns,
  waitForInvocations,
} from "../../../../support/run-command-fixture";

const rc = useRunCommandStandIns();
const { install } = rc;

describe("the Linux step, run for real", () => {
  it("installs AWSCURRENT over AWSPREVIOUS's token: only the token line changes; owner and mode stay", async () => {
    const host = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
    chownSync(host.configPath, 1234, 2345);
    chmodSync(host.configPath, 0o640);
    const before = statSync(host.configPath);
    const invocation = (await install([host])).get(host.instanceId);
    expect(invocation?.Status).toBe("Success");
    expect(invocation?.StatusDetails).toBe("Success");
    const plugins = invocation?.CommandPlugins ?? [];
    expect(plugins.map((p) => [p.Name, p.Status])).toEqual([
      ["InstallAgentTokenLinux", "Success"],
      ["InstallAgentTokenWindows", "Success"],
    ]);
    expect(plugins[1]?.Output).toContain("Step execution skipped due to unsatisfied preconditions");
    expect(linuxOutput(invocation)).toBe(
      `buildkite-agent-token-rotation result=installed version=${rc.currentVersion} sha256=${sha12(CURRENT)} reason=replaced-AWSPREVIOUS\n`,
    );
    expect(parseInstallResult(linuxOutput(invocation))).toEqual({
      result: "installed",
      version: rc.currentVersion,
      sha256Prefix: sha12(CURRENT),
      reason: "replaced-AWSPREVIOUS",
    });
    expect(readFileSync(host.configPath, "utf8")).toBe(cfgWith(CURRENT));
    const after = statSync(host.configPath);
    expect([after.uid, after.gid, after.mode & 0o7777]).toEqual([1234, 2345, 0o640]);
    expect(after.ino).not.toBe(before.ino); // renamed into place, not rewritten in place
    // Nothing left beside the cfg.
    expect(readdirSync(dirname(host.configPath))).toEqual(["buildkite-agent.cfg"]);
  });

  it("leaves a cfg that already holds AWSCURRENT's token alone (unchanged)", async () => {
    const host = rc.fleet.add({ cfg: cfgWith(CURRENT) });
    const before = statSync(host.configPath);
    const invocation = (await install([host])).get(host.instanceId);
    expect(invocation?.Status).toBe("Success");
    expect(parseInstallResult(linuxOutput(invocation))).toMatchObject({
      result: "unchanged",
      version: rc.currentVersion,
      sha256Prefix: sha12(CURRENT),
    });
    expect(statSync(host.configPath).ino).toBe(before.ino);
    expect(statSync(host.configPath).mtimeMs).toBe(before.mtimeMs);
  });

  it("refuses to touch a token this secret never held (foreign-token, exit 1, Failed)", async () => {
    const host = rc.fleet.add({ cfg: cfgWith(FOREIGN) });
    const invocation = (await install([host])).get(host.instanceId);
    expect(invocation?.Status).toBe("Failed");
    expect(invocation?.StatusDetails).toBe("Failed");
    expect(invocation?.CommandPlugins?.map((p) => [p.Name, p.Status, p.ResponseCode])).toEqual([
      ["InstallAgentTokenLinux", "Failed", 1],
      ["InstallAgentTokenWindows", "Success", 0], // skipped
    ]);
    expect(parseInstallResult(linuxOutput(invocation))).toMatchObject({
      result: "foreign-token",
      version: rc.currentVersion,
      sha256Prefix: sha12(FOREIGN),
    });
    expect(readFileSync(host.configPath, "utf8")).toBe(cfgWith(FOREIGN));
  });

  it("refuses a cfg that is a symlink, missing, or has no single token line", async () => {
    const target = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
    const linked = rc.fleet.add();
    symlinkSync(target.configPath, linked.configPath);
    const missing = rc.fleet.add();
    const noToken = rc.fleet.add({ cfg: 'name="x"\n' });
    const results = await install([linked, missing, noToken]);
    const reasons = [linked, missing, noToken].map((h) => {
      const i = results.get(h.instanceId);
      return [
        i?.Status,
        parseInstallResult(linuxOutput(i))?.result,
        parseInstallResult(linuxOutput(i))?.reason,
      ];
    });
    expect(reasons).toEqual([
      ["Failed", "refused", "cfg-is-a-symlink"],
      ["Failed", "refused", "cfg-missing"],
      ["Failed", "refused", "cfg-has-0-token-lines"],
    ]);
    expect(readFileSync(target.configPath, "utf8")).toBe(cfgWith(PREVIOUS));
  });

  it("reports boot-in-progress and changes nothing until user data and the agent service are done", async () => {
    const host = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
    host.booted = false;
    const invocation = (await install([host])).get(host.instanceId);
    expect(invocation?.Status).toBe("Success");
    expect(parseInstallResult(linuxOutput(invocation))).toEqual({
      result: "boot-in-progress",
      version: undefined,
      sha256Prefix: undefined,
      reason: "cloud-init-running",
    });
    expect(readFileSync(host.configPath, "utf8")).toBe(cfgWith(PREVIOUS));
    host.booted = true;
    const again = (await install([host])).get(host.instanceId);
    expect(parseInstallResult(linuxOutput(again))?.result).toBe("installed");
  });

  it("reads the token in the instance's own region", async () => {
    const sm = new SecretsManagerClient({
      region: "eu-west-1",
      endpoint: rc.moto.url,
      credentials: CREDENTIALS,
    });
    await sm.send(new CreateSecretCommand({ Name: SECRET, SecretString: FOREIGN }));
    sm.destroy();
    // In eu-west-1 this secret has no AWSPREVIOUS: the cfg's PREVIOUS token is foreign there.
    const host = rc.fleet.add({ region: "eu-west-1", cfg: cfgWith(PREVIOUS) });
    const client = ssm(rc.standIn.url, "eu-west-1");
    const sent = await client.send(
      new SendCommandCommand({
        DocumentName: INSTALL_AGENT_TOKEN_DOCUMENT,
        InstanceIds: [host.instanceId],
        Parameters: { TokenParameterName: [PARAMETER] },
      }),
    );
    const invocation = (await waitForInvocations(client, sent.Command?.CommandId ?? "", 1)).get(
      host.instanceId,
    );
    expect(parseInstallResult(linuxOutput(invocation))?.result).toBe("foreign-token");
    // The us-east-1 view of the stand-in does not see the eu-west-1 command.
    const east = ssm(rc.standIn.url);
    await expect(
      east.send(new ListCommandsCommand({ CommandId: sent.Command?.CommandId })),
    ).rejects.toMatchObject({
      name: "InvalidCommandId",
    });
    east.destroy();
  });
});

/**
 * The TypeScript mirror of the document's steps (sandbox/fakes/ssm/windows-step.ts): the Windows
 * step, and the Linux step's mirror (linuxStep: mirror) that must print and rewrite as bash does.
 */
import { chmodSync, chownSync, readFileSync, statSync } from "node:fs";
import type { CommandInvocation } from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import { startRunCommandStandIn } from "../../../../../sandbox/fakes/ssm/index";
import { parseInstallResult } from "../../../../../shared/rollout/install-result";
import type { FakeInstance } from "../../../../support/fake-instances";
import {
  CURRENT,
  cfgWith,
  FOREIGN,
  linuxOutput,
  PREVIOUS,
  useRunCommandStandIns,
} from "../../../../support/run-command-fixture";

const rc = useRunCommandStandIns();
const { install } = rc;

describe("the Linux step's TypeScript mirror (linuxStep: mirror)", () => {
  it("prints what bash prints, and rewrites the cfg the same way", async () => {
    const mirror = await startRunCommandStandIn({
      motoUrl: rc.moto.url,
      directory: rc.fleet,
      invocationDelayMs: 10,
      commandLatencyMs: 10,
      linuxStep: "mirror",
    });
    rc.standIns.push(mirror);
    const scenario = () => {
      const previous = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
      chownSync(previous.configPath, 4321, 5432);
      chmodSync(previous.configPath, 0o604);
      const current = rc.fleet.add({ cfg: cfgWith(CURRENT) });
      const foreign = rc.fleet.add({ cfg: cfgWith(FOREIGN) });
      const booting = rc.fleet.add({ cfg: cfgWith(PREVIOUS) });
      booting.booted = false;
      const missing = rc.fleet.add();
      return [previous, current, foreign, booting, missing];
    };
    const viaBash = scenario();
    const viaMirror = scenario();
    const bash = await install(viaBash);
    const mirrored = await install(viaMirror, { via: mirror });
    const lines = (hosts: FakeInstance[], results: Map<string, CommandInvocation>) =>
      hosts.map((h) => [results.get(h.instanceId)?.Status, linuxOutput(results.get(h.instanceId))]);
    expect(lines(viaMirror, mirrored)).toEqual(lines(viaBash, bash));
    expect(lines(viaMirror, mirrored).map(([, l]) => parseInstallResult(l ?? "")?.result)).toEqual([
      "installed",
      "unchanged",
      "foreign-token",
      "boot-in-progress",
      "refused",
    ]);
    for (const [a, b] of viaBash.map((h, i) => [h, viaMirror[i]] as const)) {
      if (!b || a.instanceId === viaBash[4]?.instanceId) continue;
      expect(readFileSync(b.configPath, "utf8")).toBe(readFileSync(a.configPath, "utf8"));
      const [sa, sb] = [statSync(a.configPath), statSync(b.configPath)];
      expect([sb.uid, sb.gid, sb.mode]).toEqual([sa.uid, sa.gid, sa.mode]);
    }
  });
});

describe("the Windows step (TypeScript mirror)", () => {
  it("installs over AWSPREVIOUS keeping CRLF, the encoding and the mode", async () => {
    const crlf = cfgWith(PREVIOUS).replaceAll("\n", "\r\n");
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const host = rc.fleet.add({ platform: "Windows", cfg: Buffer.concat([bom, Buffer.from(crlf, "utf8")]) });
    chmodSync(host.configPath, 0o600);
    const invocation = (await install([host])).get(host.instanceId);
    expect(invocation?.Status).toBe("Success");
    const windows = invocation?.CommandPlugins?.find((p) => p.Name === "InstallAgentTokenWindows");
    expect(parseInstallResult(windows?.Output ?? "")).toMatchObject({
      result: "installed",
      version: rc.currentVersion,
    });
    expect(invocation?.CommandPlugins?.[0]?.Output).toContain("skipped");
    const bytes = readFileSync(host.configPath);
    expect(bytes.subarray(0, 3)).toEqual(bom);
    expect(bytes.subarray(3).toString("utf8")).toBe(cfgWith(CURRENT).replaceAll("\n", "\r\n"));
    expect(statSync(host.configPath).mode & 0o7777).toBe(0o600);
  });

  it("leaves a foreign token alone and waits for the agent service", async () => {
    const foreign = rc.fleet.add({ platform: "Windows", cfg: cfgWith(FOREIGN).replaceAll("\n", "\r\n") });
    const booting = rc.fleet.add({ platform: "Windows", cfg: cfgWith(PREVIOUS).replaceAll("\n", "\r\n") });
    booting.booted = false;
    const results = await install([foreign, booting]);
    const windows = (h: FakeInstance) =>
      parseInstallResult(
        results.get(h.instanceId)?.CommandPlugins?.find((p) => p.Name === "InstallAgentTokenWindows")
          ?.Output ?? "",
      )?.result;
    expect([windows(foreign), windows(booting)]).toEqual(["foreign-token", "boot-in-progress"]);
    expect(results.get(foreign.instanceId)?.Status).toBe("Failed");
    expect(readFileSync(foreign.configPath, "utf8")).toBe(cfgWith(FOREIGN).replaceAll("\n", "\r\n"));
    expect(readFileSync(booting.configPath, "utf8")).toBe(cfgWith(PREVIOUS).replaceAll("\n", "\r\n"));
  });
});

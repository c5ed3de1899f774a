import { describe, expect, it } from "vitest";
import {
  agentConfigPathOnInstance,
  parseAgentToken,
  renderAgentConfig,
} from "../../../../../sandbox/fakes/autoscaling/agent-config";

const input = {
  token: "bkct_secret",
  stackName: "bk",
  instanceId: "i-00000000000000001",
  endpoint: "http://127.0.0.1:1/v3",
  idleTimeoutSeconds: 300,
};

describe("agent cfg as the stack's boot scripts write it", () => {
  it("Linux: LF lines, quoted token, the stack's name pattern and idle timeout", () => {
    const text = renderAgentConfig({ ...input, platform: "Linux" });
    expect(text.endsWith("\n")).toBe(true);
    expect(text).not.toContain("\r");
    expect(text.split("\n")).toEqual(
      expect.arrayContaining([
        'name="bk-i-00000000000000001-%spawn"',
        'token="bkct_secret"',
        "endpoint=http://127.0.0.1:1/v3",
        "disconnect-after-idle-timeout=300",
        "hooks-path=/etc/buildkite-agent/hooks",
      ]),
    );
    expect(agentConfigPathOnInstance("Linux")).toBe("/etc/buildkite-agent/buildkite-agent.cfg");
  });

  it("Windows: CRLF lines, Windows paths and shell=powershell", () => {
    const text = renderAgentConfig({ ...input, platform: "Windows" });
    expect(text).toContain('\r\ntoken="bkct_secret"\r\n');
    expect(text).toContain("shell=powershell");
    expect(text).toContain('hooks-path="C:\\buildkite-agent\\hooks"');
    expect(agentConfigPathOnInstance("Windows")).toBe("C:\\buildkite-agent\\buildkite-agent.cfg");
  });

  it("reads back the token a restart would use: the last token= line, quotes optional", () => {
    expect(parseAgentToken(renderAgentConfig({ ...input, platform: "Linux" }))).toBe("bkct_secret");
    expect(parseAgentToken(renderAgentConfig({ ...input, platform: "Windows" }))).toBe("bkct_secret");
    expect(parseAgentToken('token="a"\nname=x\n  token = b  \n')).toBe("b");
    expect(parseAgentToken("name=x\n")).toBeUndefined();
    expect(parseAgentToken('token=""\n')).toBe("");
  });
});

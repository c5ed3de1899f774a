import { describe, expect, it } from "vitest";
import {
  parseCommandDocument,
  resolveParameters,
  substituteParameters,
} from "../../../../../sandbox/fakes/ssm/documents";
import {
  INSTALL_AGENT_TOKEN_DOCUMENT,
  installAgentTokenDocument,
} from "../../../../../sandbox/fakes/ssm/index";

const document = installAgentTokenDocument();
const PARAMETER = "/aws/reference/secretsmanager/buildkite/agent-token";

describe("the stand-in's view of a command document", () => {
  it("reads the product's document: steps, platforms, execution timeouts", () => {
    expect(document.name).toBe(INSTALL_AGENT_TOKEN_DOCUMENT);
    expect(document.steps.map((s) => [s.name, s.action, s.platform, s.timeoutSeconds])).toEqual([
      ["InstallAgentTokenLinux", "aws:runShellScript", "Linux", 120],
      ["InstallAgentTokenWindows", "aws:runPowerShellScript", "Windows", 120],
    ]);
  });

  it("fills defaults and refuses unknown, missing, multi-valued or pattern-breaking parameters", () => {
    expect(resolveParameters(document, { TokenParameterName: [PARAMETER] })).toEqual({
      TokenParameterName: PARAMETER,
      LinuxConfigPath: "/etc/buildkite-agent/buildkite-agent.cfg",
      WindowsConfigPath: "C:\\buildkite-agent\\buildkite-agent.cfg",
    });
    const bad: Record<string, string[]>[] = [
      {},
      { TokenParameterName: ["/not/a/reference"] },
      { TokenParameterName: [PARAMETER, PARAMETER] },
      { TokenParameterName: [PARAMETER], Extra: ["x"] },
      { TokenParameterName: [PARAMETER], LinuxConfigPath: ["/etc/$(reboot)"] },
    ];
    for (const parameters of bad) {
      expect(() => resolveParameters(document, parameters), JSON.stringify(parameters)).toThrow(
        expect.objectContaining({ type: "InvalidParameters" }),
      );
    }
  });

  it("substitutes {{ Name }} with or without spaces and leaves unknown placeholders", () => {
    expect(substituteParameters("a={{ A }} b={{B}} c={{ C }}", { A: "1", B: "2" })).toBe("a=1 b=2 c={{ C }}");
  });

  it("refuses documents it cannot run", () => {
    expect(() => parseCommandDocument("x", 'schemaVersion: "1.2"\nruntimeConfig: {}')).toThrow(/2\.2/);
    expect(() =>
      parseCommandDocument(
        "x",
        'schemaVersion: "2.2"\nmainSteps:\n  - action: aws:runDocument\n    name: a\n',
      ),
    ).toThrow(/unsupported action/);
  });
});

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { INSTALL_RESULTS } from "../../../../shared/rollout/install-result";
import { readCloudFormationYaml } from "../../../support/cfn-yaml";

/**
 * The product's Run Command document, statically: its fixed name and parameters, the Linux step's
 * no-leak rules (the step itself runs for real in test/integration/sandbox/fakes/ssm/run-command.test.ts),
 * and the copies embedded in template.yaml and infra/forwarder.yaml.
 */
const root = new URL("../../../..", import.meta.url).pathname;
const text = readFileSync(`${root}infra/ssm/install-agent-token.yaml`, "utf8");
type Step = {
  action: string;
  name: string;
  precondition: { StringEquals: string[] };
  inputs: { runCommand: string[]; timeoutSeconds: string };
};
type Doc = {
  schemaVersion: string;
  parameters: Record<string, { type: string; default?: string; allowedPattern: string }>;
  mainSteps: Step[];
};
const doc = parse(text) as Doc;
const linux = doc.mainSteps[0]?.inputs.runCommand.join("\n") ?? "";
/** The Linux script without its comment lines. */
const linuxCode = linux
  .split("\n")
  .filter((l) => !/^\s*#/.test(l))
  .join("\n");

const embedded = (file: string) => {
  const template = readCloudFormationYaml<{
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  }>(`${root}${file}`);
  return Object.values(template.Resources).filter((r) => r.Type === "AWS::SSM::Document");
};

describe("BuildkiteAgentTokenRotation-InstallAgentToken", () => {
  it("is one schemaVersion 2.2 document with a Linux and a Windows step", () => {
    expect(doc.schemaVersion).toBe("2.2");
    expect(doc.mainSteps.map((s) => [s.action, s.precondition.StringEquals])).toEqual([
      ["aws:runShellScript", ["platformType", "Linux"]],
      ["aws:runPowerShellScript", ["platformType", "Windows"]],
    ]);
  });

  it("takes exactly the three parameters, with the stack's cfg paths as defaults", () => {
    expect(Object.keys(doc.parameters)).toEqual([
      "TokenParameterName",
      "LinuxConfigPath",
      "WindowsConfigPath",
    ]);
    expect(doc.parameters.TokenParameterName?.default).toBeUndefined();
    expect(doc.parameters.LinuxConfigPath?.default).toBe("/etc/buildkite-agent/buildkite-agent.cfg");
    expect(doc.parameters.WindowsConfigPath?.default).toBe("C:\\buildkite-agent\\buildkite-agent.cfg");
    for (const p of Object.values(doc.parameters)) expect(p.type).toBe("String");
  });

  it("accepts only SSM reference paths the Elastic CI Stack also accepts, and plain cfg paths", () => {
    const token = new RegExp(doc.parameters.TokenParameterName?.allowedPattern ?? "^$");
    // The stack's BuildkiteAgentTokenParameterStorePath pattern (templates/aws-stack.yml): ^/[a-zA-Z0-9_.\-/]+$
    const stack = /^\/[a-zA-Z0-9_.\-/]+$/;
    for (const ok of [
      "/aws/reference/secretsmanager/buildkite/agent-token",
      "/aws/reference/secretsmanager/a.b_c-d",
    ]) {
      expect(token.test(ok), ok).toBe(true);
      expect(stack.test(ok), ok).toBe(true);
    }
    for (const bad of [
      "/buildkite/agent-token",
      "/aws/reference/secretsmanager/",
      "/aws/reference/secretsmanager/a+b",
      "/aws/reference/secretsmanager/a'b",
      "/aws/reference/secretsmanager/a b",
      "/aws/reference/secretsmanager/a:AWSPREVIOUS",
    ]) {
      expect(token.test(bad), bad).toBe(false);
    }
    const linuxPath = new RegExp(doc.parameters.LinuxConfigPath?.allowedPattern ?? "^$");
    expect(linuxPath.test("/etc/buildkite-agent/buildkite-agent.cfg")).toBe(true);
    for (const bad of ["/etc/x.cfg; rm -rf /", "/etc/$(id)", "relative.cfg", "/etc/x'y"])
      expect(linuxPath.test(bad)).toBe(false);
    const windowsPath = new RegExp(doc.parameters.WindowsConfigPath?.allowedPattern ?? "^$");
    expect(windowsPath.test("C:\\buildkite-agent\\buildkite-agent.cfg")).toBe(true);
    for (const bad of ["C:\\x'; Remove-Item", "\\\\server\\share\\x.cfg", "C:\\$(x)"])
      expect(windowsPath.test(bad)).toBe(false);
  });

  it("quotes every parameter where the Linux script uses it", () => {
    expect(linux).toContain("TOKEN_PARAMETER='{{ TokenParameterName }}'");
    expect(linux).toContain("CFG='{{ LinuxConfigPath }}'");
    expect(linux).not.toContain("WindowsConfigPath");
    expect(linux.match(/\{\{/g)).toHaveLength(2);
  });

  it("never traces or prints a token in the Linux step", () => {
    expect(linuxCode).not.toMatch(/set\s+-[a-z]*x|xtrace|bash\s+-x|\becho\b|\btee\b|\bcat\b|\bscript\b/);
    const tokenVars = /\$\{?(CURRENT_TOKEN|CFG_TOKEN|STAGE_TOKEN|INSTALLED|NOW_TOKEN|response|value|line)\b/;
    const lines = linux.split("\n");
    const rewriteStart = lines.findIndex((l) => l.includes("while IFS= read -r line"));
    const rewriteEnd = lines.findIndex((l) => l.includes('} >"$TMP"'));
    expect(rewriteStart).toBeGreaterThan(0);
    expect(rewriteEnd).toBeGreaterThan(rewriteStart);
    lines.forEach((l, index) => {
      if (!/\bprintf\b/.test(l) || !tokenVars.test(l)) return;
      const intoTheTempFile = index > rewriteStart && index < rewriteEnd;
      const intoAHashOrParser = /\|\s*(sha256sum|jq)\b/.test(l);
      const returnedToACaller = /^\s*printf '%s' "\$value"$/.test(l); // cfg_token, always called as $(cfg_token)
      expect(intoTheTempFile || intoAHashOrParser || returnedToACaller, l).toBe(true);
    });
    // Every call of cfg_token and every aws call is captured, never printed.
    for (const l of lines.filter(
      (x) => /cfg_token\)|\baws ssm\b/.test(x) && !/^\s*(cfg_token\(\)|#)/.test(x),
    )) {
      expect(l, l).toMatch(/="\$\((cfg_token|aws ssm)/);
    }
    // The token reaches tools only through pipes, never as an argument (argv is world-readable).
    expect(linux).not.toMatch(/jq[^|\n]*--arg|awk[^|\n]*-v/);
  });

  it("prints exactly the result line on stdout and exits 0 only for installed, unchanged, boot-in-progress", () => {
    const printfs = linux.match(/printf '[^']*\\n'/g) ?? [];
    expect(printfs).toEqual([
      "printf 'buildkite-agent-token-rotation result=%s version=%s sha256=%s reason=%s\\n'",
      `printf 'token="%s"\\n'`,
      "printf '%s\\n'",
    ]);
    expect(linux).toContain(
      'case "$1" in installed | unchanged | boot-in-progress) exit 0 ;; *) exit 1 ;; esac',
    );
    const results = new Set([...linux.matchAll(/finish ([a-z-]+) /g)].map((m) => m[1]));
    expect([...results].sort()).toEqual([...INSTALL_RESULTS].sort());
  });

  it("reads AWSCURRENT and AWSPREVIOUS through the SSM reference path with --with-decryption", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax, not a template
    expect(linux).toContain('aws ssm get-parameter --name "${TOKEN_PARAMETER}:$1" --with-decryption');
    expect(linux).toContain("read_stage AWSCURRENT");
    expect(linux).toContain("read_stage AWSPREVIOUS");
    expect(linux).toMatch(/fromjson \| \.VersionId/);
    expect(linux).not.toMatch(/systemctl (restart|start|stop|reload)/);
  });

  it("is embedded verbatim in template.yaml and infra/forwarder.yaml under its fixed name", () => {
    for (const file of ["template.yaml", "infra/forwarder.yaml"]) {
      const documents = embedded(file);
      expect(documents, file).toHaveLength(1);
      expect(documents[0]?.Properties).toMatchObject({
        Name: "BuildkiteAgentTokenRotation-InstallAgentToken",
        DocumentType: "Command",
        DocumentFormat: "YAML",
        UpdateMethod: "NewVersion",
      });
      expect(
        documents[0]?.Properties.Content,
        `${file}: run node --import tsx infra/ssm/embed-document.ts`,
      ).toEqual(doc);
    }
  });
});

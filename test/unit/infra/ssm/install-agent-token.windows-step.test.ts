import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { INSTALL_RESULTS } from "../../../../shared/rollout/install-result";

/**
 * PowerShell cannot run here, so the Windows step is checked statically: it never writes the token
 * to any output stream, uses the document's parameters, and follows the same result-line contract
 * as the Linux step and as its TypeScript mirror (sandbox/fakes/ssm/windows-step.ts).
 */
const root = new URL("../../../..", import.meta.url).pathname;
const doc = parse(readFileSync(`${root}infra/ssm/install-agent-token.yaml`, "utf8")) as {
  mainSteps: Array<{ name: string; inputs: { runCommand: string[] } }>;
};
const windows =
  doc.mainSteps.find((s) => s.name === "InstallAgentTokenWindows")?.inputs.runCommand.join("\n") ?? "";
const linux =
  doc.mainSteps.find((s) => s.name === "InstallAgentTokenLinux")?.inputs.runCommand.join("\n") ?? "";
const mirror = readFileSync(`${root}sandbox/fakes/ssm/windows-step.ts`, "utf8");
const code = windows
  .split("\n")
  .filter((l) => !/^\s*#/.test(l))
  .join("\n");

/** Variables that hold a token, the cfg's text, or a raw AWS response. */
const SECRET_VARIABLES = [
  "currentToken",
  "cfgToken",
  "previous",
  "current",
  "raw",
  "parameter",
  "text",
  "newText",
  "bytes",
  "again",
];

describe("the Windows step (PowerShell, statically)", () => {
  it("never traces, transcribes or writes to an output stream except the result line", () => {
    expect(code).not.toMatch(
      /Start-Transcript|Set-PSDebug\s+-Trace|Trace-Command|\$VerbosePreference|\$DebugPreference/i,
    );
    expect(code).toContain("Set-PSDebug -Off");
    expect(code).not.toMatch(/Write-(Host|Output|Verbose|Debug|Information|Warning|Error|Progress)\b/i);
    expect(code).not.toMatch(
      /\b(echo|Out-Host|Out-File|Tee-Object|Add-Content|Set-Content|Out-Default|Format-\w+)\b/i,
    );
    const writers = code.match(/\[Console\]::\w+\.Write\w*\([^\n]*/g) ?? [];
    expect(writers).toEqual([
      '[Console]::Out.WriteLine("buildkite-agent-token-rotation result=$Result version=$Version sha256=$Sha reason=$Reason")',
    ]);
  });

  it("never lets a token variable fall through to the pipeline (PowerShell prints bare expressions)", () => {
    for (const line of code.split("\n")) {
      for (const name of SECRET_VARIABLES) {
        // A statement that starts with the variable and is not an assignment would be output.
        const bare = new RegExp(`^\\s*\\$${name}(\\.[A-Za-z]+)?\\s*($|;|\\|)`, "i");
        expect(bare.test(line), line).toBe(false);
      }
    }
    // The aws CLI's answer is captured, never left on the pipeline.
    for (const line of code.split("\n").filter((l) => /&\s*aws\s/.test(l)))
      expect(line).toMatch(/^\s*\$raw = & aws /);
  });

  it("passes the token to no external program (argv is visible to every process)", () => {
    const external = code.split("\n").filter((l) => /&\s*\w|\baws\b/.test(l));
    for (const line of external) {
      for (const name of ["currentToken", "cfgToken", "newText"])
        expect(line.includes(`$${name}`), line).toBe(false);
    }
  });

  it("uses the document's parameters, quoted", () => {
    expect(code).toContain("$TokenParameterName = '{{ TokenParameterName }}'");
    expect(code).toContain("$ConfigPath = '{{ WindowsConfigPath }}'");
    expect(code).not.toContain("LinuxConfigPath");
    expect(code).toContain(
      "aws ssm get-parameter --name ($TokenParameterName + ':' + $Stage) --with-decryption",
    );
  });

  it("follows the Linux step's result-line contract", () => {
    const linuxFormat = /printf '(buildkite-agent-token-rotation [^']*)\\n'/
      .exec(linux)?.[1]
      ?.replace(/%s/g, "X");
    const windowsFormat = /WriteLine\("([^"]*)"\)/.exec(code)?.[1]?.replace(/\$[A-Za-z]+/g, "X");
    expect(windowsFormat).toBe(linuxFormat);
    const results = new Set([...code.matchAll(/Complete-Rotation '([a-z-]+)'/g)].map((m) => m[1]));
    expect([...results].sort()).toEqual([...INSTALL_RESULTS].sort());
    expect(code).toContain(
      "if (@('installed', 'unchanged', 'boot-in-progress') -contains $Result) { exit 0 } else { exit 1 }",
    );
  });

  it("keeps the cfg safe: no restart, refuses links, atomic replace without a backup copy", () => {
    expect(code).not.toMatch(/Restart-Service|Stop-Service|Start-Service|nssm/i);
    expect(code).toContain("[System.IO.FileAttributes]::ReparsePoint");
    expect(code).toContain("[System.IO.File]::Replace($tmp, $ConfigPath, [NullString]::Value)");
  });

  it("has a TypeScript mirror with the same literal reasons", () => {
    const powershell = new Set(
      [...code.matchAll(/Complete-Rotation '[a-z-]+' [^\n]*'([A-Za-z-]+)' ?}?\s*$/gm)].map((m) => m[1]),
    );
    const typescript = new Set(
      [...mirror.matchAll(/finish\(\s*"[a-z-]+"[^;]*?"([A-Za-z-]+)",?\s*\)/g)].map((m) => m[1]),
    );
    expect(powershell.size).toBeGreaterThan(5);
    // Two situations a simulated instance cannot be in: no nssm service at all (the fleet only knows
    // "boot finished or not"), and no region (every simulated instance has one).
    const unreachable = ["agent-service-missing", "region-unknown"];
    expect([...typescript].sort()).toEqual(
      [...powershell].filter((r) => !unreachable.includes(r ?? "")).sort(),
    );
  });
});

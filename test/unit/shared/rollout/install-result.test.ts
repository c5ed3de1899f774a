import { describe, expect, it } from "vitest";
import {
  formatInstallResult,
  INSTALL_RESULTS,
  parseInstallResult,
} from "../../../../shared/rollout/install-result";

const VERSION = "a1b2c3d4-0000-4000-8000-123456789abc";
const line = (result: string, version = VERSION, sha = "0123456789ab", reason = "replaced-AWSPREVIOUS") =>
  `buildkite-agent-token-rotation result=${result} version=${version} sha256=${sha} reason=${reason}`;

describe("parseInstallResult", () => {
  it("parses every result the document prints", () => {
    for (const result of INSTALL_RESULTS) {
      expect(parseInstallResult(`${line(result)}\n`)).toEqual({
        result,
        version: VERSION,
        sha256Prefix: "0123456789ab",
        reason: "replaced-AWSPREVIOUS",
      });
    }
  });

  it("reads `-` as absent", () => {
    expect(parseInstallResult(line("boot-in-progress", "-", "-", "cloud-init-running"))).toEqual({
      result: "boot-in-progress",
      version: undefined,
      sha256Prefix: undefined,
      reason: "cloud-init-running",
    });
    expect(parseInstallResult(line("error", "-", "-", "-"))?.reason).toBeUndefined();
  });

  it("tolerates output before the line, CRLF, and Run Command's stderr section after it", () => {
    const output = [
      "some banner",
      `${line("installed")}\r`,
      "----------ERROR-------",
      "mv: warning: something",
    ].join("\n");
    expect(parseInstallResult(output)?.result).toBe("installed");
  });

  it("takes the last well-formed line", () => {
    expect(parseInstallResult(`${line("unchanged")}\n${line("installed")}\n`)?.result).toBe("installed");
  });

  it("rejects malformed, truncated or unknown lines", () => {
    const bad = [
      "",
      "buildkite-agent-token-rotation result=installed",
      line("installed").slice(0, 60),
      line("exploded"),
      line("installed", VERSION, "0123456789abc"), // 13 hex
      line("installed", VERSION, "0123456789AB"), // upper case
      line("installed", "has space"),
      line("installed", VERSION, "0123456789ab", "two words"),
      `prefix ${line("installed")}`,
      `${line("installed")} extra=1`,
      line("installed", "x".repeat(65)),
    ];
    for (const text of bad) expect(parseInstallResult(text), text).toBeUndefined();
  });

  it("round-trips through formatInstallResult", () => {
    const result = {
      result: "foreign-token" as const,
      version: VERSION,
      sha256Prefix: "abcdef012345",
      reason: "x",
    };
    expect(parseInstallResult(formatInstallResult(result))).toEqual(result);
    const empty = {
      result: "refused" as const,
      version: undefined,
      sha256Prefix: undefined,
      reason: undefined,
    };
    expect(formatInstallResult(empty)).toBe(
      "buildkite-agent-token-rotation result=refused version=- sha256=- reason=-",
    );
  });
});

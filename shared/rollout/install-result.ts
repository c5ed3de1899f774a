/**
 * The one line the BuildkiteAgentTokenRotation-InstallAgentToken document prints on stdout
 * (infra/ssm/install-agent-token.yaml), parsed. The product reads a Run Command invocation's output
 * through this; the document and this parser are one contract, so keep both stable.
 *
 *   buildkite-agent-token-rotation result=<result> version=<id|-> sha256=<12 hex|-> reason=<text|->
 *
 * No field ever carries a token: the version is the secret's VersionId, the hash a 12-hex-digit
 * prefix of the token's SHA-256, the reason a short word.
 */

export const INSTALL_RESULTS = [
  "installed",
  "unchanged",
  "foreign-token",
  "boot-in-progress",
  "refused",
  "error",
] as const;
export type InstallResultKind = (typeof INSTALL_RESULTS)[number];

export interface InstallResult {
  result: InstallResultKind;
  /** AWSCURRENT's VersionId as the instance read it; undefined when the document printed `-`. */
  version: string | undefined;
  /** First 12 hex characters of the SHA-256 of the token now in the cfg; undefined for `-`. */
  sha256Prefix: string | undefined;
  reason: string | undefined;
}

/** Results the document exits 0 for; the others exit 1. */
export const SUCCESSFUL_RESULTS: ReadonlySet<InstallResultKind> = new Set([
  "installed",
  "unchanged",
  "boot-in-progress",
]);

const LINE =
  /^buildkite-agent-token-rotation result=([a-z-]+) version=([A-Za-z0-9-]{1,64}) sha256=([0-9a-f]{12}|-) reason=([A-Za-z0-9_.:-]{1,100})$/;

/**
 * The last well-formed result line in `output` (a command plugin's Output or StandardOutputContent;
 * anything else the step printed before it, and Run Command's stderr section after it, is ignored).
 * Undefined when there is none: a malformed or truncated line never parses to a result.
 */
export function parseInstallResult(output: string): InstallResult | undefined {
  const lines = output.split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const parsed = parseLine(lines[i]?.trim() ?? "");
    if (parsed !== undefined) return parsed;
  }
  return undefined;
}

function parseLine(line: string): InstallResult | undefined {
  const match = LINE.exec(line);
  if (match === null) return undefined;
  const [, result, version, sha, reason] = match;
  if (!isResult(result)) return undefined;
  return {
    result,
    version: version === "-" ? undefined : version,
    sha256Prefix: sha === "-" ? undefined : sha,
    reason: reason === "-" ? undefined : reason,
  };
}

function isResult(value: string | undefined): value is InstallResultKind {
  return (INSTALL_RESULTS as readonly string[]).includes(value ?? "");
}

/** The line itself, as the document prints it (for the TypeScript mirror of the Windows step). */
export function formatInstallResult(result: InstallResult): string {
  return `buildkite-agent-token-rotation result=${result.result} version=${result.version ?? "-"} sha256=${result.sha256Prefix ?? "-"} reason=${result.reason ?? "-"}`;
}

/** The SendCommand comment naming the version a command installs (Comment is limited to 100 characters). */
export function commandComment(versionId: string): string {
  return `bk-token-rotation v=${versionId}`;
}

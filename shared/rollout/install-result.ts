/**
 * The one line the install document (infra/ssm/install-agent-token.yaml) prints on stdout, and its
 * parser. The line never carries a token: a version id, a 12-hex-digit hash prefix and a short reason.
 *
 *   buildkite-agent-token-rotation result=<r> version=<id|-> sha256=<12 hex|-> reason=<word|->
 */

export const INSTALL_RESULTS = [
  "installed",
  "unchanged",
  "foreign-token",
  "boot-in-progress",
  "refused",
  "error",
] as const;
export type InstallOutcome = (typeof INSTALL_RESULTS)[number];

export interface InstallResult {
  result: InstallOutcome;
  /** The AWSCURRENT version the instance read (installed / unchanged), when it reported one. */
  versionId: string | undefined;
  hashPrefix: string | undefined;
  reason: string | undefined;
}

const LINE =
  /^buildkite-agent-token-rotation result=([a-z-]+) version=([A-Za-z0-9-]{1,64}) sha256=([0-9a-f]{12}|-) reason=(\S{1,100})$/;

/** The last result line of a command's output; undefined when there is none or it is malformed. */
export function parseInstallResult(output: string | undefined): InstallResult | undefined {
  if (!output) return undefined;
  const lines = output.split(/\r?\n/).map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = LINE.exec(lines[i] ?? "");
    if (!m) continue;
    const [, result = "", version = "-", hash = "-", reason = "-"] = m;
    if (!(INSTALL_RESULTS as readonly string[]).includes(result)) return undefined;
    return {
      result: result as InstallOutcome,
      versionId: version === "-" ? undefined : version,
      hashPrefix: hash === "-" ? undefined : hash,
      reason: reason === "-" ? undefined : reason,
    };
  }
  return undefined;
}

/** The SendCommand comment naming the version a command installs (Comment is limited to 100 characters). */
export function commandComment(versionId: string): string {
  return `bk-token-rotation v=${versionId}`;
}

export function versionOfComment(comment: string | undefined): string | undefined {
  const m = /^bk-token-rotation v=([A-Za-z0-9-]{1,64})$/.exec(comment ?? "");
  return m?.[1];
}

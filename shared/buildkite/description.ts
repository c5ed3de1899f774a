/**
 * The description of every token this project creates. The secret must hold the bare token, so
 * the description is the only link from a Buildkite token back to the secret version it was made
 * for; it names the secret ARN (unique across accounts and regions) and the version id.
 *
 * Format (v1):  `buildkite-agent-token-rotation secret=<secret ARN> version=<version id>`
 */
const PREFIX = "buildkite-agent-token-rotation";
const PATTERN = /^buildkite-agent-token-rotation secret=(arn:\S+) version=([A-Za-z0-9-]{1,64})$/;

export function describeManagedToken(secretArn: string, versionId: string): string {
  return `${PREFIX} secret=${secretArn} version=${versionId}`;
}

export interface ManagedTokenLabel {
  secretArn: string;
  versionId: string;
}

export function parseManagedTokenDescription(description: string): ManagedTokenLabel | undefined {
  const m = PATTERN.exec(description);
  if (!m?.[1] || !m[2]) return undefined;
  return { secretArn: m[1], versionId: m[2] };
}

/** The secret version a token was made for, when this project made it for this secret. */
export function managedVersionOf(description: string, secretArn: string): string | undefined {
  const label = parseManagedTokenDescription(description);
  return label?.secretArn === secretArn ? label.versionId : undefined;
}

/** Managed by this project for this secret: the only tokens we may ever revoke. */
export function isManagedFor(description: string, secretArn: string): boolean {
  return managedVersionOf(description, secretArn) !== undefined;
}

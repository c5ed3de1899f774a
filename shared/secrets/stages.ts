/**
 * Staging labels on secret versions, read one way for every caller. Kept apart from describe.ts
 * so that code which only parses a VersionIdsToStages (the SSM reference source) carries no
 * Secrets Manager client in its bundle.
 */

/** Version id → staging labels, as DescribeSecret's VersionIdsToStages. */
export type VersionStages = Record<string, readonly string[]>;

/**
 * The version a staging label (AWSCURRENT, AWSPENDING, AWSPREVIOUS) is on. "Each staging label can
 * be attached to only one version at a time"
 * (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_UpdateSecretVersionStage.html).
 */
export function versionHolding(stages: VersionStages, label: string): string | undefined {
  return Object.keys(stages).find((id) => stages[id]?.includes(label));
}

/**
 * Applying one primary state to one replica region, the way replication looks from there: the
 * replica is created with the same name (CreateSecret with ClientRequestToken = the AWSCURRENT
 * version id, so ids match), every labelled version that has a value is copied with
 * PutSecretValue(ClientRequestToken = the same id), and the labels are moved to match. A version
 * without a value is never copied (see replicator.ts's header for why).
 */

import {
  CreateSecretCommand,
  DescribeSecretCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { isNotFound } from "../../../shared/lib/aws/errors";
import { versionHolding } from "../../../shared/secrets/stages";

export const REPLICATED_LABELS = ["AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"] as const;

const MAX_LABEL_FIXES = 12;

export interface VersionSnapshot {
  id: string;
  stages: string[];
  /** Undefined: the version has no value (yet). */
  value: string | undefined;
}

/** One distinct state of the primary, as the replicator saw it. */
export interface Snapshot {
  seq: number;
  seenAt: number;
  name: string;
  description: string | undefined;
  versions: VersionSnapshot[];
}

export async function applySnapshot(client: SecretsManagerClient, snapshot: Snapshot): Promise<void> {
  const withValue = snapshot.versions.filter((v) => v.value !== undefined);
  let stages = await describeReplica(client, snapshot.name);
  if (stages === undefined) {
    const first = withValue.find((v) => v.stages.includes("AWSCURRENT")) ?? withValue[0];
    if (!first?.value) return; // nothing with a value to replicate yet
    await client.send(
      new CreateSecretCommand({
        Name: snapshot.name,
        SecretString: first.value,
        ClientRequestToken: first.id,
        ...(snapshot.description ? { Description: snapshot.description } : {}),
      }),
    );
    stages = (await describeReplica(client, snapshot.name)) ?? {};
  }
  for (const version of withValue) {
    if (version.id in stages || version.value === undefined) continue;
    // Labels are set right away (an empty list would make PutSecretValue move AWSCURRENT), then
    // corrected below; for a new AWSCURRENT this also moves AWSPREVIOUS, as Secrets Manager does.
    await client.send(
      new PutSecretValueCommand({
        SecretId: snapshot.name,
        ClientRequestToken: version.id,
        SecretString: version.value,
        VersionStages: version.stages,
      }),
    );
  }
  await matchLabels(client, snapshot);
}

/** Moves the three labels one at a time until the replica's match the snapshot's (bounded). */
async function matchLabels(client: SecretsManagerClient, snapshot: Snapshot): Promise<void> {
  for (let fix = 0; fix < MAX_LABEL_FIXES; fix++) {
    const stages = (await describeReplica(client, snapshot.name)) ?? {};
    let mismatch: { label: string; want: string | undefined; have: string | undefined } | undefined;
    for (const label of REPLICATED_LABELS) {
      const holder = snapshot.versions.find((v) => v.stages.includes(label));
      // A label on a version that was not copied (no value) cannot be mirrored: leave it off.
      const want = holder && holder.id in stages ? holder.id : undefined;
      const have = versionHolding(stages, label);
      if (want !== have) {
        mismatch = { label, want, have };
        break;
      }
    }
    if (!mismatch) return;
    await client.send(
      new UpdateSecretVersionStageCommand({
        SecretId: snapshot.name,
        VersionStage: mismatch.label,
        ...(mismatch.want ? { MoveToVersionId: mismatch.want } : {}),
        ...(mismatch.have ? { RemoveFromVersionId: mismatch.have } : {}),
      }),
    );
  }
  throw new Error(`labels did not converge after ${MAX_LABEL_FIXES} updates`);
}

async function describeReplica(
  client: SecretsManagerClient,
  name: string,
): Promise<Record<string, string[]> | undefined> {
  try {
    const out = await client.send(new DescribeSecretCommand({ SecretId: name }));
    return out.VersionIdsToStages ?? {};
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

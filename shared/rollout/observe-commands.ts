import {
  type CommandInvocation,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  type SSMClient,
} from "@aws-sdk/client-ssm";
import { observationError } from "../lib/aws/errors";
import { commandComment, parseInstallResult } from "./install-result";
import { type GroupRow, MAX_PAGES, type ObserveDeps } from "./observe";
import { rolloutStartedAt } from "./plan";
import type { InvocationObservation, Observation } from "./types";

/**
 * Run Command's part of an observation: our commands for the current version and their
 * invocations, merged per instance — read in full by observe(), and for the commands in flight
 * only by a poll within a run.
 */

/**
 * Our commands for the current version in each region (ListCommands by document, since the rollout
 * began, matched by the comment naming the version), with every invocation. Results merge across
 * commands: a command whose SendCommand response was lost still counts, and an instance a command
 * lists without a visible invocation yet is "Sent".
 */
export async function attachInvocations(
  deps: ObserveDeps,
  targets: GroupRow[],
  versionId: string,
  since: Date | undefined,
): Promise<void> {
  const regions = [...new Set(targets.filter((t) => t.exists && !t.error).map((t) => t.region))];
  await Promise.all(
    regions.map(async (region) => {
      const inRegion = targets.filter((t) => t.region === region && t.exists && !t.error);
      const members = new Map(inRegion.flatMap((t) => t.members.map((m) => [m.instanceId, m] as const)));
      try {
        const client = deps.ssm(region);
        const comment = commandComment(versionId);
        const after = new Date((since ?? deps.now()).getTime() - 60_000).toISOString();
        let nextToken: string | undefined;
        for (let page = 0; page < MAX_PAGES; page++) {
          const out = await client.send(
            new ListCommandsCommand({
              Filters: [
                { key: "DocumentName", value: deps.config.inPlace.documentName },
                { key: "InvokedAfter", value: after },
              ],
              MaxResults: 50,
              NextToken: nextToken,
            }),
          );
          for (const c of out.Commands ?? []) {
            if (c.Comment !== comment || !c.CommandId) continue;
            const requestedAt = c.RequestedDateTime ?? deps.now();
            const seen = new Set<string>();
            for (const inv of await listInvocations(client, c.CommandId)) {
              const m = inv.InstanceId ? members.get(inv.InstanceId) : undefined;
              if (!m || !inv.InstanceId) continue;
              seen.add(inv.InstanceId);
              m.invocations.push(invocationOf(c.CommandId, inv, requestedAt));
            }
            for (const id of c.InstanceIds ?? []) {
              const m = members.get(id);
              if (m && !seen.has(id)) m.invocations.push(sentInvocation(c.CommandId, requestedAt));
            }
          }
          nextToken = out.NextToken;
          if (!nextToken) break;
        }
        for (const m of members.values()) m.invocations.sort(newestFirst);
      } catch (error) {
        const e = observationError(error, "Run Command");
        for (const t of inRegion) t.error = e;
      }
    }),
  );
}

/** One instance's invocation as ListCommandInvocations (Details) reports it, with our result line. */
function invocationOf(commandId: string, inv: CommandInvocation, requestedAt: Date): InvocationObservation {
  const output = inv.CommandPlugins?.map((p) => p.Output ?? "").join("\n");
  return {
    commandId,
    requestedAt: inv.RequestedDateTime ?? requestedAt,
    status: inv.Status ?? "unknown",
    statusDetails: inv.StatusDetails,
    result: parseInstallResult(output ?? ""),
  };
}

/** An instance a command lists before its invocation is visible. */
const sentInvocation = (commandId: string, requestedAt: Date): InvocationObservation => ({
  commandId,
  requestedAt,
  status: "Sent",
  statusDetails: undefined,
  result: undefined,
});

const newestFirst = (a: InvocationObservation, b: InvocationObservation) =>
  b.requestedAt.getTime() - a.requestedAt.getTime();

async function listInvocations(client: SSMClient, commandId: string) {
  const all = [];
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const out = await client.send(
      new ListCommandInvocationsCommand({
        CommandId: commandId,
        Details: true,
        MaxResults: 50,
        NextToken: nextToken,
      }),
    );
    all.push(...(out.CommandInvocations ?? []));
    nextToken = out.NextToken;
    if (!nextToken) break;
  }
  return all;
}

/** The Run Command statuses after which an invocation changes no more (API reference: CommandInvocation, Status). */
const FINAL_INVOCATION = new Set(["Success", "Cancelled", "TimedOut", "Failed"]);

/**
 * A poll within a run: the previous observation with its in-flight commands read again, and nothing
 * else (ListCommandInvocations per command still running; ListCommands only in `relist` regions,
 * where a SendCommand failed and may have created a command all the same). Group membership and
 * launch times are as the previous observation saw them: a partial observation, so nothing is
 * revoked on it.
 */
export async function observeCommands(
  deps: ObserveDeps,
  previous: Observation,
  sent: ReadonlyArray<{ region: string; commandId: string; instanceIds: readonly string[] }>,
  relist: readonly string[],
): Promise<Observation> {
  const startedAt = deps.now();
  const versionId = previous.secret.current;
  const targets: GroupRow[] = previous.targets.map((t) => ({
    ...t,
    members: t.members.map((m) => ({ ...m, invocations: [...m.invocations] })),
    tags: {},
    raw: undefined,
  }));
  const commands = new Map<string, { region: string; commandId: string }>();
  for (const c of sent) commands.set(c.commandId, c);
  // A command just sent lists its instances before their invocations are visible: "Sent" until then,
  // so a poll never takes them for instances still to send to.
  const byId = new Map(targets.flatMap((t) => t.members.map((m) => [m.instanceId, m] as const)));
  for (const c of sent) {
    for (const id of c.instanceIds) {
      const m = byId.get(id);
      if (m && !m.invocations.some((i) => i.commandId === c.commandId)) {
        m.invocations = [sentInvocation(c.commandId, deps.now()), ...m.invocations];
      }
    }
  }
  for (const t of targets)
    for (const m of t.members)
      for (const inv of m.invocations)
        if (!FINAL_INVOCATION.has(inv.status))
          commands.set(inv.commandId, { region: t.region, commandId: inv.commandId });
  const relisted = new Set(relist);
  await Promise.all(
    [...commands.values()]
      .filter((c) => !relisted.has(c.region))
      .map(async ({ region, commandId }) => {
        const inRegion = targets.filter((t) => t.region === region && t.exists && !t.error);
        const members = new Map(inRegion.flatMap((t) => t.members.map((m) => [m.instanceId, m] as const)));
        try {
          for (const inv of await listInvocations(deps.ssm(region), commandId)) {
            const m = inv.InstanceId ? members.get(inv.InstanceId) : undefined;
            if (!m) continue;
            m.invocations = [
              ...m.invocations.filter((i) => i.commandId !== commandId),
              invocationOf(commandId, inv, previous.now),
            ].sort(newestFirst);
          }
        } catch (error) {
          const e = observationError(error, "Run Command");
          for (const t of inRegion) t.error = e;
        }
      }),
  );
  if (versionId && relisted.size > 0) {
    const again = targets.filter((t) => relisted.has(t.region));
    for (const t of again) for (const m of t.members) m.invocations = [];
    await attachInvocations(deps, again, versionId, rolloutStartedAt(previous));
  }
  return {
    ...previous,
    scope: "poll",
    startedAt,
    now: deps.now(),
    targets: targets.map(({ tags: _tags, raw: _raw, ...t }) => t),
    tokens: [],
    agents: undefined,
    managedVersion: versionId,
  };
}

import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { describe, expect, it } from "vitest";
import {
  playRotation,
  type RotationEvent,
  type RotationStep,
  STEP_ORDER,
  type StepOutcome,
} from "../../../../sandbox/world/secrets-manager-rotation";

/**
 * The one player of Secrets Manager's part, over an in-memory secret (no network): the four steps
 * in order with one version id, the whole rotation retried on a failed step, the failure reported
 * once at the end, and AWSPENDING removed from the promoted version only after a success.
 */
function secretStub(stages: Record<string, string[]>) {
  const calls: string[] = [];
  // Only the two commands the player sends are answered; the cast is the test double's reason to be.
  const secrets = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      calls.push(command.constructor.name);
      if (command.constructor.name === "DescribeSecretCommand") return { VersionIdsToStages: stages };
      const { VersionStage, RemoveFromVersionId = "" } = command.input as Record<string, string | undefined>;
      const labels: string[] = stages[RemoveFromVersionId] ?? [];
      stages[RemoveFromVersionId] = labels.filter((l) => l !== VersionStage);
      return {};
    },
  } as unknown as SecretsManagerClient;
  return { secrets, calls, stages };
}

function run(failures: Partial<Record<RotationStep, number>>, stages: Record<string, string[]> = {}) {
  const stub = secretStub(stages);
  const invoked: string[] = [];
  const promoted: string[] = [];
  const events: RotationEvent[] = [];
  const left = { ...failures };
  const outcome = playRotation(
    {
      secrets: stub.secrets,
      secretArn: "arn:secret",
      invokeStep: async (step, versionId): Promise<StepOutcome> => {
        invoked.push(`${step}/${versionId}`);
        if ((left[step] ?? 0) > 0) {
          left[step] = (left[step] ?? 0) - 1;
          return { ok: false, error: "Error: Buildkite API answered 403" };
        }
        return { ok: true };
      },
      promoted: (versionId) => void promoted.push(versionId),
      onEvent: (event) => void events.push(event),
      retryDelayMs: () => 1,
    },
    "v1",
  );
  return { outcome, invoked, promoted, events, stub };
}

describe("playRotation", () => {
  it("drives the four steps in order with the version id, ends the rotation and sends the label event", async () => {
    const { outcome, invoked, promoted, stub } = run({}, { v1: ["AWSCURRENT", "AWSPENDING"] });
    await expect(outcome).resolves.toMatchObject({ versionId: "v1", attempts: 1, failure: undefined });
    expect(invoked).toEqual(STEP_ORDER.map((s) => `${s}/v1`));
    expect(promoted).toEqual(["v1"]);
    // moto leaves AWSPENDING on the promoted version; AWS does not: removed.
    expect(stub.stages.v1).toEqual(["AWSCURRENT"]);
  });

  it("retries the whole rotation with the same version id after a failed step", async () => {
    const { outcome, invoked, promoted, events } = run({ testSecret: 1 });
    const result = await outcome;
    expect(result).toMatchObject({ attempts: 2, failure: undefined });
    expect(result.promotedAt).toBeInstanceOf(Date);
    expect(invoked).toEqual([
      "createSecret/v1",
      "setSecret/v1",
      "testSecret/v1",
      ...STEP_ORDER.map((s) => `${s}/v1`),
    ]);
    expect(promoted).toEqual(["v1"]);
    expect(events.filter((e) => e.kind === "retrying")).toEqual([
      expect.objectContaining({ attempt: 1, attempts: 3, step: "testSecret", delayMs: 1 }),
    ]);
  });

  it("a step that keeps failing: three attempts, one failure reported, no promotion, AWSPENDING left", async () => {
    const { outcome, invoked, promoted, events, stub } = run({ createSecret: 9 }, { v1: ["AWSPENDING"] });
    const result = await outcome;
    expect(result).toEqual({
      versionId: "v1",
      attempts: 3,
      promotedAt: undefined,
      failure: { step: "createSecret", error: "Error: Buildkite API answered 403" },
    });
    expect(invoked).toEqual(["createSecret/v1", "createSecret/v1", "createSecret/v1"]);
    expect(promoted).toEqual([]);
    expect(events.filter((e) => e.kind === "failed")).toHaveLength(1);
    expect(stub.calls).toEqual([]);
    expect(stub.stages.v1).toEqual(["AWSPENDING"]);
  });

  it("an abort during the retry wait rejects with the reason and drives nothing more", async () => {
    const controller = new AbortController();
    const stub = secretStub({});
    const invoked: string[] = [];
    const outcome = playRotation(
      {
        secrets: stub.secrets,
        secretArn: "arn:secret",
        invokeStep: async (step) => {
          invoked.push(step);
          return { ok: false, error: "Error: no" };
        },
        promoted: () => {},
        retryDelayMs: () => 10_000,
        onEvent: (e) => {
          if (e.kind === "retrying") controller.abort(new Error("stop"));
        },
        signal: controller.signal,
      },
      "v1",
    );
    await expect(outcome).rejects.toThrow("stop");
    expect(invoked).toEqual(["createSecret"]);
  });
});

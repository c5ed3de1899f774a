import { describe, expect, it } from "vitest";
import { startedRotation } from "../../../../sandbox/scenario/facts";
import { Narrator } from "../../../../sandbox/scenario/narrator";
import { painter } from "../../../../shared/lib/terminal";

/** The narrator's lines come from typed events: each kind of event, and the ones it keeps quiet about. */
function narrator() {
  const lines: string[] = [];
  const n = new Narrator({ log: (m) => void lines.push(m), line: (t) => void lines.push(t) }, painter(false));
  return { n, lines };
}

describe("Narrator", () => {
  it("a step that succeeded, one that failed (its error type only), and Secrets Manager's retry", () => {
    const { n, lines } = narrator();
    n.rotationEvent({ kind: "step", versionId: "v1", attempt: 1, step: "createSecret", ok: true, ms: 12 });
    n.rotationEvent({
      kind: "step",
      versionId: "v1",
      attempt: 1,
      step: "testSecret",
      ok: false,
      error: "TokenNotAccepted: the pending token did not authenticate",
      ms: 30,
    });
    n.rotationEvent({
      kind: "retrying",
      versionId: "v1",
      attempt: 1,
      attempts: 3,
      step: "testSecret",
      error: "TokenNotAccepted: …",
      delayMs: 300,
    });
    expect(lines).toEqual([
      "rotate-token createSecret: ok (12 ms)",
      "rotate-token testSecret: failed (TokenNotAccepted, 30 ms)",
      "testSecret failed; Secrets Manager retries the rotation with the same version id (attempt 2 of 3)",
    ]);
  });

  it("a reconcile run that failed during a rotation; rotate-token's invocations are left to the step events", () => {
    const { n, lines } = narrator();
    const record = { requestId: "r", invocationType: "Event" as const, queuedAt: new Date(), ok: false };
    n.invocationEnded({ ...record, name: "reconcile", errorName: "TimeoutError" });
    expect(lines).toEqual([]); // no rotation under way
    n.rotation = startedRotation(1);
    n.invocationEnded({ ...record, name: "rotate-token", errorName: "Error" });
    n.invocationEnded({ ...record, name: "reconcile", errorName: "TimeoutError" });
    expect(lines).toEqual(["reconcile run failed (TimeoutError); the next trigger retries"]);
  });

  it("a reconcile run that ended waiting for replicas names the regions not yet in sync", () => {
    const { n, lines } = narrator();
    const rotation = startedRotation(1);
    rotation.versionId = "v1";
    n.rotation = rotation;
    n.reconcileEnded({ versionId: "v1", complete: false, waitingFor: ["commands"] });
    expect(lines).toEqual([]);
    n.reconcileEnded({ versionId: "v1", complete: false, waitingFor: ["replicas"] });
    expect(lines).toEqual([
      "reconcile: replicas still behind when this run's wait budget ran out; the next trigger (label event, refresh notification or schedule) continues",
    ]);
  });

  it("the label event; a schedule event is not news", () => {
    const { n, lines } = narrator();
    n.busEvent({ "detail-type": "Scheduled Event" });
    n.busEvent({ "detail-type": "Secret Label Updated", detail: { versionId: "0123456789abcdef" } });
    expect(lines).toEqual(["event: Secret Label Updated (AWSCURRENT → version 01234567) → reconcile"]);
  });
});

/**
 * The event lines of `npm run sandbox`, fed by typed hooks and the world's own records, never by
 * the handlers' log text:
 * - the Secrets Manager player's events (each step, each retry): `RotationEvent`;
 * - the local Lambda's invocation records (a reconcile run that failed): `InvocationRecord`;
 * - what reconcile returned about its run (a replica wait that ran out): `ReconcileRunSummary`;
 * - the events put on the bus (the label event, instance refresh notifications);
 * - the stand-ins' records, read as they grow: Buildkite tokens created and revoked, Buildkite
 *   answers that failed (502/429, which the callers retry), Run Command invocations that ended,
 *   alerts received.
 * Its state (what it has shown already) is its own; the rotation under way is set by the caller.
 */
import { managedVersionOf } from "../../shared/buildkite/description";
import { type Paint, secondsText as secs, short as shortId } from "../../shared/lib/terminal";
import type { InvocationRecord } from "../fakes/lambda/local-lambda";
import type { RotationFacts } from "../verdict/facts";
import type { RotationEvent } from "../world/secrets-manager-rotation";
import type { World } from "../world/world";
import type { ReconcileRunSummary } from "../world/world-options";
import { TERMINAL_INVOCATION } from "./facts";

const short = (id: string | undefined | null) => shortId(id, "?");
/** The install document's one result line (README "Strategies"): only the result word is shown. */
const RESULT_WORD = /buildkite-agent-token-rotation result=([a-z-]+)/;
/** Buildkite answers a caller retries (shared/buildkite/client.ts: 429 and 5xx). */
const RETRIED = (status: number) => status === 429 || status >= 500;
/** A request still without an answer this long after it was made was dropped: stop waiting for it. */
const DROPPED_AFTER_MS = 60_000;
/** The status view's client reports a retry within milliseconds of the failed answer; judged after this. */
const OWN_RETRY_GRACE_MS = 250;

export interface NarratorOutput {
  /** A time-stamped event line. */
  log(message: string): void;
  /** A line as it is (an alert's text). */
  line(text: string): void;
}

export class Narrator {
  /** The rotation under way, for timings relative to its promotion. */
  rotation: RotationFacts | undefined;
  private world: World | undefined;
  private readonly tokens = new Map<string, { revoked: boolean }>();
  private readonly invocationsSeen = new Set<string>();
  private readonly requestsReported = new Set<number>();
  /** Buildkite requests before this index have all been answered and looked at. */
  private requestsSettled = 0;
  private alertsSeen = 0;
  private ownFailure: (method: string, path: string, status: number) => boolean = () => false;

  constructor(
    private readonly out: NarratorOutput,
    private readonly paint: Paint,
  ) {}

  /**
   * The world is up: what it holds already is not news. `ownFailure` tells the sandbox's own
   * Buildkite calls (its status view) from the handlers', so only the handlers' are shown.
   */
  attach(world: World, ownFailure?: (method: string, path: string, status: number) => boolean): void {
    this.world = world;
    if (ownFailure) this.ownFailure = ownFailure;
    for (const t of world.buildkite.tokens()) this.tokens.set(t.id, { revoked: t.revokedAt !== null });
    this.requestsSettled = world.buildkite.requests().length;
  }

  /** Alerts received so far (as far as the narrator has read them). */
  get alerts(): number {
    return this.alertsSeen;
  }

  rotationEvent(event: RotationEvent): void {
    if (event.kind === "step") {
      const took = `${event.ms} ms`;
      this.out.log(
        event.ok
          ? `rotate-token ${event.step}: ok (${took})`
          : this.paint(`rotate-token ${event.step}: failed (${errorType(event.error)}, ${took})`, "yellow"),
      );
      // After the step line: a token createSecret made is shown after it.
      this.observe();
    } else if (event.kind === "retrying") {
      this.out.log(
        this.paint(
          `${event.step} failed; Secrets Manager retries the rotation with the same version id (attempt ${event.attempt + 1} of ${event.attempts})`,
          "yellow",
        ),
      );
    }
  }

  /** A reconcile invocation ended (rotate-token's are narrated by their step events). */
  invocationEnded(record: InvocationRecord): void {
    if (record.name !== "reconcile") return;
    if (!record.ok && this.rotation) {
      this.out.log(
        this.paint(
          `reconcile run failed (${record.errorName ?? "error"}); the next trigger retries`,
          "yellow",
        ),
      );
    }
    this.observe();
  }

  reconcileEnded(summary: ReconcileRunSummary): void {
    if (!summary.versionId || !summary.waitingFor.includes("replicas")) return;
    const rotation = this.rotation;
    const lagging =
      rotation && rotation.versionId === summary.versionId
        ? (this.world?.replicaRegions ?? []).filter((r) => !rotation.replicasInSyncAt[r])
        : [];
    this.out.log(
      `reconcile: ${lagging.length > 0 ? lagging.join(", ") : "replicas"} still behind when this run's wait budget ran out; the next trigger (label event, refresh notification or schedule) continues`,
    );
  }

  busEvent(event: unknown): void {
    const e = event as { "detail-type"?: string; region?: string; detail?: Record<string, unknown> };
    const type = e["detail-type"] ?? "";
    if (type === "Secret Label Updated") {
      this.out.log(
        `event: Secret Label Updated (AWSCURRENT → version ${short(String(e.detail?.versionId ?? ""))}) → reconcile`,
      );
      return;
    }
    if (!type.startsWith("EC2 Auto Scaling Instance Refresh") || !this.world) return;
    const group = String(e.detail?.AutoScalingGroupName ?? "");
    const id = String(e.detail?.InstanceRefreshId ?? "");
    const region = e.region ?? "";
    const refresh = this.world.fleet.refreshes(region, group).find((r) => r.instanceRefreshId === id);
    const where = `${region}/${group}`;
    if (type.endsWith("Started")) {
      this.out.log(
        `${where}: instance refresh started (${refresh?.instancesToUpdate ?? "?"} instances to replace)`,
      );
    } else if (type.endsWith("Succeeded")) {
      const took = refresh?.endTime ? secs(refresh.endTime.getTime() - refresh.startTime.getTime()) : "?";
      this.out.log(this.paint(`${where}: instance refresh succeeded in ${took}`, "green"));
    } else if (type.endsWith("Failed")) {
      this.out.log(
        this.paint(`${where}: instance refresh FAILED: ${refresh?.statusReason ?? "no reason"}`, "red"),
      );
    } else {
      this.out.log(
        `${where}: ${type.replace("EC2 Auto Scaling Instance Refresh ", "instance refresh ").toLowerCase()}`,
      );
    }
  }

  /** What the stand-ins recorded since the last look: commands first, so a revocation follows the confirmations it rests on. */
  observe(): void {
    const world = this.world;
    if (!world) return;
    this.commands(world);
    this.buildkiteFailures(world);
    this.tokenChanges(world);
  }

  /** Alerts received since the last poll, each with its full text. */
  async pollAlerts(): Promise<void> {
    const alerts = await this.world?.alerts().catch(() => undefined);
    if (!alerts) return;
    for (const alert of alerts.slice(this.alertsSeen)) {
      this.out.log(this.paint(`ALERT (SNS → SQS): ${alert.subject ?? "(no subject)"}`, "yellow"));
      for (const line of alert.message.split("\n")) this.out.line(`           ${line}`);
    }
    this.alertsSeen = Math.max(this.alertsSeen, alerts.length);
  }

  /** One line per install-document invocation that ended (its result word, never its output). */
  private commands(world: World): void {
    for (const i of world.runCommand.invocations()) {
      const key = `${i.commandId}/${i.instanceId}`;
      if (this.invocationsSeen.has(key) || !TERMINAL_INVOCATION.has(i.status)) continue;
      this.invocationsSeen.add(key);
      const result = i.plugins.map((p) => RESULT_WORD.exec(p.stdout)?.[1]).find((r) => r !== undefined);
      const text = `Run Command: ${i.region}/${i.instanceId} (${i.platform ?? "?"}) ${i.status}${result ? ` result=${result}` : i.statusDetails ? ` (${i.statusDetails})` : ""}`;
      this.out.log(i.status === "Success" ? text : this.paint(text, "yellow"));
    }
  }

  /** Each REST API answer the stand-in failed with (the agent API's registrations are counted apart). */
  private buildkiteFailures(world: World): void {
    const requests = world.buildkite.requests();
    let settled = true;
    for (let n = this.requestsSettled; n < requests.length; n++) {
      const r = requests[n];
      if (!r) continue;
      const age = Date.now() - r.at.getTime();
      const answered = r.status !== 0 || age > DROPPED_AFTER_MS;
      const failed = RETRIED(r.status) && r.path.startsWith("/v2/");
      // A failure is judged once its caller had time to report its retry (see ownFailure).
      const ripe = !failed || age >= OWN_RETRY_GRACE_MS;
      if (settled && answered && ripe) this.requestsSettled = n + 1;
      else settled = false;
      if (!failed || !ripe || this.requestsReported.has(n)) continue;
      this.requestsReported.add(n);
      if (this.ownFailure(r.method, r.path, r.status)) continue;
      const path = r.path.replace(/^\/v2\/organizations\/[^/]+\/clusters\/[^/]+/, "…");
      // shared/buildkite/client.ts retries idempotent calls; a POST (token creation) never blindly.
      const then = r.method === "POST" ? "not retried blindly" : "the handler retries with backoff";
      this.out.log(
        this.paint(`Buildkite API ${r.method} ${path} answered HTTP ${r.status}; ${then}`, "yellow"),
      );
    }
    for (const n of this.requestsReported) if (n < this.requestsSettled) this.requestsReported.delete(n);
  }

  private tokenChanges(world: World): void {
    for (const t of world.buildkite.tokens()) {
      const version = managedVersionOf(t.description, world.secretArn);
      const what = version ? `version ${short(version)}` : `"${t.description}"`;
      let seen = this.tokens.get(t.id);
      if (!seen) {
        seen = { revoked: false };
        this.tokens.set(t.id, seen);
        this.out.log(`Buildkite: token ${short(t.id)} created for ${what}`);
      }
      if (t.revokedAt && !seen.revoked) {
        seen.revoked = true;
        const promoted = this.rotation?.promotedAt;
        this.out.log(
          this.paint(
            `Buildkite: token ${short(t.id)} (${what}) revoked${promoted ? `, ${secs(t.revokedAt.getTime() - promoted.getTime())} after promotion of version ${short(this.rotation?.versionId)}` : ""}`,
            "cyan",
          ),
        );
      }
    }
  }
}

/** "errorType: message" → errorType: the line shows the error's name only, as the record did. */
function errorType(error: string | undefined): string {
  if (!error) return "error";
  const i = error.indexOf(": ");
  return i > 0 ? error.slice(0, i) : error;
}

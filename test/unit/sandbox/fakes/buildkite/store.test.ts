import { describe, expect, it } from "vitest";
import { BuildkiteStore } from "../../../../../sandbox/fakes/buildkite/store";

const T0 = Date.parse("2030-01-01T12:00:00.000Z");

function store(scopes?: readonly string[]) {
  const clock = { now: T0 };
  return { clock, store: new BuildkiteStore(() => clock.now, scopes) };
}

describe("BuildkiteStore tokens", () => {
  it("a token is valid until it is revoked or its expiry passes (exclusive)", () => {
    const { clock, store: s } = store();
    const lasting = s.commitToken("lasting", null);
    const expiring = s.commitToken("expiring", T0 + 1000);
    expect(s.isValid(lasting)).toBe(true);
    expect(s.isValid(expiring)).toBe(true);

    clock.now = T0 + 1000;
    expect(s.isValid(expiring)).toBe(false);
    expect(s.liveToken(expiring.id)).toBe(expiring); // expired is not revoked: still listed
    s.revoke(lasting);
    expect(s.isValid(lasting)).toBe(false);
    expect(s.liveToken(lasting.id)).toBeUndefined();
    expect(s.liveTokens().map((t) => t.description)).toEqual(["expiring"]);
    expect(s.tokens().map((t) => [t.description, t.valid, t.revokedAt])).toEqual([
      ["lasting", false, new Date(T0 + 1000)],
      ["expiring", false, null],
    ]);
  });

  it("seeds refuse a duplicate value and revokeToken refuses an unknown id", () => {
    const { store: s } = store();
    const seeded = s.addToken({ description: "seed", value: "bkct_same" });
    expect(s.tokenByValue("bkct_same")?.id).toBe(seeded.id);
    expect(s.tokenByValue(undefined)).toBeUndefined();
    expect(() => s.addToken({ description: "again", value: "bkct_same" })).toThrow(/exists/);
    expect(() => s.revokeToken("nope")).toThrow(/no token/);
  });

  it("tells revoke listeners once per revocation, and a throwing listener changes nothing", () => {
    const { store: s } = store();
    const heard: string[] = [];
    s.onRevoke(() => {
      throw new Error("observer bug");
    });
    const off = s.onRevoke((id) => heard.push(id));
    const { id } = s.addToken({ description: "seed" });
    s.revokeToken(id);
    s.revokeToken(id); // idempotent: no second notice
    expect(heard).toEqual([id]);
    off();
    const other = s.addToken({ description: "other" });
    s.revokeToken(other.id);
    expect(heard).toEqual([id]);
  });

  it("scopes start from the options (or the cluster defaults) and reset back", () => {
    expect(store().store.scopes).toEqual(["read_clusters", "write_clusters"]);
    const { store: s } = store(["read_clusters"]);
    s.setScopes([]);
    expect(s.scopes).toEqual([]);
    s.resetScopes();
    expect(s.scopes).toEqual(["read_clusters"]);
  });
});

describe("BuildkiteStore agents", () => {
  const registration = (name: string, ok: boolean, metaData: string[] = []) => ({
    at: new Date(T0),
    name,
    tokenId: null,
    ok,
    status: ok ? 200 : 401,
    metaData,
  });

  it("lists one agent per name from its latest successful registration, with a stable id", () => {
    const { store: s } = store();
    s.recordRegistration(registration("i-1", true, ["queue=a"]));
    s.recordRegistration(registration("i-2", false));
    s.recordRegistration(registration("i-1", true, ["queue=b"]));
    const first = s.agents();
    expect(first.map((a) => [a.name, a.metaData, a.state])).toEqual([["i-1", ["queue=b"], "disconnected"]]);
    expect(s.agents()[0]?.id).toBe(first[0]?.id);
    expect(s.registrations()).toHaveLength(3);
  });

  it("asks the fleet to stop an agent once, until it registers again", () => {
    const { store: s } = store();
    const stops: string[] = [];
    s.setAgentHooks({ connected: () => true, stop: (name) => stops.push(name) });
    s.recordRegistration(registration("i-1", true));
    s.stopAgent("i-1");
    s.stopAgent("i-1");
    expect(stops).toEqual(["i-1"]);
    expect(s.agents()[0]?.state).toBe("stopping");

    s.recordRegistration(registration("i-1", true)); // a new agent process
    expect(s.agents()[0]?.state).toBe("connected");
    s.stopAgent("i-1");
    expect(stops).toEqual(["i-1", "i-1"]);
  });
});

import { describe, expect, it } from "vitest";
import { findReferences, parseReference, RenderError, renderTemplate } from "../../../../cli/consumer/render";
import { setTokenLine } from "../../../../cli/consumer/write-config";

const T = "bkct_abcdefghijklmnopqrstuvwxyz012345";

describe("setTokenLine", () => {
  it("replaces the first token line, drops later ones and keeps everything else", () => {
    const before = 'name="a"\ntoken="old"\n# token="commented"\n  token = "indented dup"\ntags="x"\n';
    expect(setTokenLine(before, T)).toBe(`name="a"\ntoken="${T}"\n# token="commented"\ntags="x"\n`);
  });

  it("appends when there is no token line, and adds the missing final newline", () => {
    expect(setTokenLine('name="a"', T)).toBe(`name="a"\ntoken="${T}"\n`);
    expect(setTokenLine("", T)).toBe(`token="${T}"\n`);
  });

  it("keeps CRLF line endings", () => {
    expect(setTokenLine('name="a"\r\ntoken="old"\r\n', T)).toBe(`name="a"\r\ntoken="${T}"\r\n`);
  });

  it("does not touch keys that merely start with token", () => {
    expect(setTokenLine('tokens-path="/x"\n', T)).toBe(`tokens-path="/x"\ntoken="${T}"\n`);
  });

  it.each(['a"b', "a\\b", "a b", "a\nb", "tökén"])("refuses %j without echoing it", (bad) => {
    expect(() => setTokenLine("", bad)).toThrow(/cannot be written/);
    try {
      setTokenLine("", bad);
    } catch (error) {
      expect(String((error as Error).message)).not.toContain(bad);
    }
  });
});

describe("render templates", () => {
  it("parses the three schemes (scheme case-insensitive)", () => {
    expect(parseReference("awsSecret://buildkite/agent-token")).toMatchObject({
      scheme: "awsSecret",
      id: "buildkite/agent-token",
    });
    expect(parseReference("AWSSECRET://x").scheme).toBe("awsSecret");
    expect(parseReference("ssm:///a/b")).toMatchObject({ scheme: "ssm", id: "/a/b" });
    expect(parseReference("env://HOME_DIR")).toMatchObject({ scheme: "env", id: "HOME_DIR" });
  });

  it.each(["vault://x", "nothing", "env://not-a-name", "://x"])("refuses %j, naming it", (ref) => {
    expect(() => parseReference(ref)).toThrow(RenderError);
    expect(() => parseReference(ref)).toThrow(ref);
  });

  it("finds distinct references in order, with or without spaces", () => {
    const refs = findReferences("{{ secret env://A }} {{secret awsSecret://s}} {{  secret env://A  }}");
    expect(refs.map((r) => r.ref)).toEqual(["env://A", "awsSecret://s"]);
  });

  it("reports every bad reference and malformed tag at once, with line numbers", () => {
    expect(() => findReferences("ok\n{{ secret vault://x }}\n{{ secret }}\n{{ secret env://B")).toThrow(
      /vault:\/\/x.*line 3.*line 4/,
    );
  });

  it("leaves other {{ }} text alone and substitutes values as they are", () => {
    const out = renderTemplate(
      "a={{ secret env://A }} b={{ other }} c={{secret env://A}}",
      new Map([["env://A", "$1&"]]),
    );
    expect(out).toBe("a=$1& b={{ other }} c=$1&");
  });
});

describe("findReferences refuses what looks like a reference but does not parse", () => {
  it.each([
    "{{ Secret awsSecret://x }}",
    "{{ SECRET env://X }}",
    "{{ secrets awsSecret://x }}",
    "{{secret}}",
    "{{ secret awsSecret://a b }}",
    "{{ awsSecret://x }}",
    "{{ ssm:///ci/param }}",
  ])("%s", (tag) => {
    expect(() => findReferences(`line one\nA=${tag}\n`)).toThrow(/malformed tag on line 2/);
  });

  it("leaves other template syntax alone", () => {
    expect(findReferences("{{ .Values.name }} {{name}} {{ secret env://OK }}")).toHaveLength(1);
  });
});

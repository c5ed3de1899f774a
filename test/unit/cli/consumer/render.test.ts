import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findReferences, parseReference, RenderError, renderTemplate } from "../../../../cli/consumer/render";
import { main } from "../../../../cli/main";
import { fakeIo } from "../../../support/cli-io";

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

describe("render refuses unsafe targets before reading any secret", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "cli-safety-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("render --out - writes to standard output and nowhere else", async () => {
    const template = join(dir, "t.tmpl");
    await writeFile(template, "QUEUE={{ secret env://QUEUE }}\n");
    const run = fakeIo({ QUEUE: "deploy" });
    // From inside the temporary directory: were "-" taken as a file name, it would land here.
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      expect(await main(["render", "--template", template, "--out", "-"], run.io)).toBe(0);
    } finally {
      process.chdir(cwd);
    }
    expect(run.out()).toBe("QUEUE=deploy\n");
    expect(await readdir(dir)).toEqual(["t.tmpl"]);
  });

  it("render refuses a tag that looks like a reference but does not parse", async () => {
    const template = join(dir, "typo.tmpl");
    await writeFile(template, "A={{ Secret env://QUEUE }}\n");
    const run = fakeIo({ QUEUE: "deploy" });
    expect(await main(["render", "--template", template, "--out", join(dir, "typo.out")], run.io)).toBe(1);
    expect(run.err()).toMatch(/malformed tag on line 1/);
    expect(existsSync(join(dir, "typo.out"))).toBe(false);
  });
});

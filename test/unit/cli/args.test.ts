import { describe, expect, it } from "vitest";
import {
  helpText,
  type OptionSpec,
  optionLines,
  parseCommandArgs,
  splitList,
  UsageError,
  withOptions,
} from "../../../cli/args";
import { main } from "../../../cli/main";
import { commands } from "../../../cli/registry";
import { fakeIo } from "../../support/cli-io";

const SPEC = {
  file: { type: "string", value: "PATH", help: "the file" },
  "a-very-long-option-name": { type: "string", value: "VALUE", help: "first line\nsecond line" },
  quiet: { type: "boolean", short: "q", help: "say less", section: "Other" },
} as const satisfies OptionSpec;

describe("one option spec: parsing and help", () => {
  it("parses exactly the options the spec lists, strictly", () => {
    const { values } = parseCommandArgs(["--file", "x", "-q"], SPEC);
    expect(values).toEqual({ file: "x", quiet: true });
    expect(() => parseCommandArgs(["--nope"], SPEC)).toThrow(UsageError);
    expect(() => parseCommandArgs(["positional"], SPEC)).toThrow(UsageError);
  });

  it("lists every option of the spec, aligned, by section, long flags on a line of their own", () => {
    expect(optionLines(SPEC)).toEqual([
      "  --file PATH               the file",
      "  --a-very-long-option-name VALUE",
      "                            first line",
      "                            second line",
      "  -q, --quiet               say less",
    ]);
    const text = helpText("prog", {
      usage: "do [options]",
      description: "Does it.",
      options: SPEC,
      sectionIntros: { Other: "  (intro)" },
      epilogue: "Exit codes: 0",
    });
    expect(text).toBe(
      [
        "Usage: prog do [options]",
        "",
        "Does it.",
        "",
        "Options:",
        "  --file PATH               the file",
        "  --a-very-long-option-name VALUE",
        "                            first line",
        "                            second line",
        "",
        "Other:",
        "  (intro)",
        "  -q, --quiet               say less",
        "",
        "Exit codes: 0",
        "",
      ].join("\n"),
    );
  });

  it("gives every command a help that fits 100 columns", async () => {
    for (const name of Object.keys(commands)) {
      const f = fakeIo();
      expect(await main([name, "--help"], f.io)).toBe(0);
      const long = f
        .out()
        .split("\n")
        .filter((l) => l.length > 100);
      expect(long, name).toEqual([]);
      expect(f.out()).toMatch(/^ {2}-h, --help {16}show this help$/m);
    }
  });

  it("splits repeatable, comma-separated lists", () => {
    expect(splitList(["a,b", " c ", "a"])).toEqual(["a", "b", "c"]);
    expect(splitList(undefined)).toEqual([]);
  });
});

describe("withOptions", () => {
  const OPTIONS = {
    name: { type: "string", help: "a name" },
    help: { type: "boolean", short: "h", help: "show this help" },
  } as const satisfies OptionSpec;

  it("answers --help without running, runs with the parsed values, and refuses unknown options", async () => {
    const seen: Array<string | undefined> = [];
    const run = withOptions(OPTIONS, "HELP TEXT\n", async (values) => {
      seen.push(values.name);
      return 7;
    });
    const help = fakeIo();
    expect(await run(["-h"], help.io)).toBe(0);
    expect(help.out()).toBe("HELP TEXT\n");
    expect(seen).toEqual([]);
    expect(await run(["--name", "x"], fakeIo().io)).toBe(7);
    expect(seen).toEqual(["x"]);
    await expect(run(["--nope"], fakeIo().io)).rejects.toThrow(UsageError);
  });
});

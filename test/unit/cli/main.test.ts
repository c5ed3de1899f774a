import { describe, expect, it } from "vitest";
import { UsageError } from "../../../cli/args";
import { main } from "../../../cli/main";
import { commands } from "../../../cli/registry";
import type { Command } from "../../../cli/types";
import { AppError } from "../../../shared/lib/errors";
import { registerSecret } from "../../../shared/lib/log";
import { fakeIo } from "../../support/cli-io";

describe("main", () => {
  const registry: Record<string, Command> = {
    ok: {
      summary: "works",
      run: async (args, io) => {
        io.stdout.write(args.join(","));
        return 0;
      },
    },
    usage: {
      summary: "bad usage",
      run: async () => {
        throw new UsageError("--x is required");
      },
    },
    fails: {
      summary: "fails",
      run: async () => {
        throw new AppError("could not do it with bkct_leakyleakyleakyleaky0000");
      },
    },
  };

  it("dispatches to the command with the remaining arguments", async () => {
    const f = fakeIo();
    expect(await main(["ok", "a", "b"], f.io, registry)).toBe(0);
    expect(f.out()).toBe("a,b");
  });

  it("lists the commands for --help (exit 0) and for no or an unknown command (exit 2)", async () => {
    const help = fakeIo();
    expect(await main(["--help"], help.io, registry)).toBe(0);
    expect(help.out()).toMatch(/ok\s+works/);
    const none = fakeIo();
    expect(await main([], none.io, registry)).toBe(2);
    expect(none.out()).toBe("");
    expect(none.err()).toContain("Usage:");
    const unknown = fakeIo();
    expect(await main(["nope"], unknown.io, registry)).toBe(2);
    expect(unknown.err()).toContain('unknown command "nope"');
  });

  it("maps usage errors to 2 and other errors to 1, redacting registered secrets", async () => {
    const u = fakeIo();
    expect(await main(["usage"], u.io, registry)).toBe(2);
    expect(u.err()).toContain("--x is required");
    registerSecret("bkct_leakyleakyleakyleaky0000");
    const f = fakeIo();
    expect(await main(["fails"], f.io, registry)).toBe(1);
    expect(f.err()).toContain("could not do it");
    expect(f.err()).not.toContain("bkct_leakyleakyleakyleaky0000");
  });

  it("registers token, write-config and render, each with a summary", () => {
    for (const name of ["token", "write-config", "render"]) expect(commands[name]?.summary).toBeTruthy();
  });

  it("gives every registered command a --help on stdout", async () => {
    for (const name of Object.keys(commands)) {
      const f = fakeIo();
      expect(await main([name, "--help"], f.io)).toBe(0);
      expect(f.out()).toContain(`bk-agent-token ${name}`);
    }
  });
});

describe("main bounds what it prints", () => {
  it("an unknown 10 MiB command name and a 10 MiB error message print a few KB at most", async () => {
    const huge = "x".repeat(10 * 1024 * 1024);
    const unknown = fakeIo();
    expect(await main([huge], unknown.io)).toBe(2);
    expect(unknown.err().length).toBeLessThan(10_000);
    const failing = fakeIo();
    const registry: Record<string, Command> = {
      boom: {
        summary: "fails loudly",
        run: async () => {
          throw new AppError(huge);
        },
      },
    };
    expect(await main(["boom"], failing.io, registry)).toBe(1);
    expect(failing.err().length).toBeLessThan(5_000);
  });
});

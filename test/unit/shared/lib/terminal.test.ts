import { describe, expect, it } from "vitest";
import {
  duration,
  iso,
  isTty,
  painter,
  short,
  stripAnsi,
  table,
  terminalWidth,
  useColor,
  wrap,
} from "../../../../shared/lib/terminal";

describe("duration", () => {
  it("formats durations", () => {
    expect([
      duration(45),
      duration(720),
      duration(3600),
      duration(11_100),
      duration(-90_000),
      duration(345_600),
    ]).toEqual(["45s", "12m", "1h", "3h 5m", "1d 1h", "4d"]);
  });
});

describe("painter and stripAnsi", () => {
  it("colors only when enabled, and the stripper undoes it", () => {
    const on = painter(true);
    expect(on("failed", "red")).toBe("\x1b[31mfailed\x1b[39m");
    expect(on("x", "bold")).toBe("\x1b[1mx\x1b[22m");
    expect(on("", "red")).toBe("");
    expect(on("plain", undefined)).toBe("plain");
    expect(painter(false)("failed", "red")).toBe("failed");
    expect(stripAnsi(`${on("a", "red")} ${on("b", "dim")}\x1b[H\x1b[2J\x1b[3A\x1b[J`)).toBe("a b");
    expect(stripAnsi("\x1b]0;title\x07text")).toBe("text");
  });
});

describe("short, iso, table and wrap", () => {
  it("shortens ids and says when there is none", () => {
    expect(short("11111111-aaaa-4aaa")).toBe("11111111");
    expect(short(undefined)).toBe("-");
    expect(short(null, "?")).toBe("?");
    expect(iso(new Date("2026-11-22T12:00:00.123Z"))).toBe("2026-11-22T12:00:00Z");
    expect(iso(undefined)).toBeUndefined();
  });

  it("pads every column but the last, dims the header and leaves no trailing space", () => {
    const rows = table(
      ["A", "LONGER"],
      [
        ["xxx", "1"],
        [{ text: "y", color: "red" }, ""],
      ],
    );
    expect(rows).toEqual(["  A    LONGER", "  xxx  1", "  y"]);
    const colored = table(["A", "B"], [[{ text: "y", color: "red" }, "z"]], painter(true));
    expect(colored[0]).toBe("  \x1b[2mA\x1b[22m  \x1b[2mB\x1b[22m");
    expect(colored[1]).toBe("  \x1b[31my\x1b[39m  z");
  });

  it("wraps words at the width with a hanging indent", () => {
    expect(wrap("one two three four", 12, "- ", 2)).toEqual(["- one two", "  three four"]);
    expect(wrap("", 10, "x: ", 3)).toEqual(["x: "]);
  });
});

describe("the output stream", () => {
  it("colors a terminal only without NO_COLOR and TERM=dumb", () => {
    const tty = { isTTY: true, columns: 120 };
    expect(isTty(tty)).toBe(true);
    expect(isTty({})).toBe(false);
    expect(terminalWidth(tty)).toBe(120);
    expect(terminalWidth({ columns: 10 })).toBeUndefined();
    expect(useColor(tty, {})).toBe(true);
    expect(useColor(tty, { NO_COLOR: "1" })).toBe(false);
    expect(useColor(tty, { TERM: "dumb" })).toBe(false);
    expect(useColor({}, {})).toBe(false);
  });
});

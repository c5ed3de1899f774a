import type { Env } from "./config";

/**
 * Terminal primitives, written once for everything that prints to a person: the CLI's views and
 * the sandbox's. Pure string functions (no I/O), plus the three questions about an output stream
 * (is it a terminal, how wide, may it be coloured).
 */

export type Color = "red" | "green" | "yellow" | "dim" | "bold" | "cyan";

/** SGR on/off pairs (ECMA-48 §8.3.117): each color is switched off on its own, never by a full reset. */
const CODES: Record<Color, [number, number]> = {
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  cyan: [36, 39],
  dim: [2, 22],
  bold: [1, 22],
};

export type Paint = (text: string, color: Color | undefined) => string;

/** The one ANSI painter: colors `text` when enabled, returns it unchanged otherwise. */
export function painter(enabled: boolean): Paint {
  return (text, color) => {
    if (!enabled || !color || text === "") return text;
    const [on, off] = CODES[color];
    return `\x1b[${on}m${text}\x1b[${off}m`;
  };
}

// CSI sequences (colors, cursor moves, erase) and OSC ones (titles, links), as terminals parse them.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching the escape character is the point
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g;

/** Cursor home, then erase the display (ECMA-48 CUP and ED): a live view redraws from the top. */
export const CLEAR_SCREEN = "\x1b[H\x1b[2J";

/** The one ANSI stripper: the text as a file or a log would want it. */
export const stripAnsi = (text: string): string => text.replace(ANSI, "");

/** The first 8 characters of an id (a version id, a refresh id), or `missing` when there is none. */
export const short = (id: string | null | undefined, missing = "-"): string =>
  id ? id.slice(0, 8) : missing;

/** An ISO 8601 UTC instant without milliseconds, for people. */
export const iso = (d: Date | undefined): string | undefined =>
  d ? d.toISOString().replace(/\.\d{3}Z$/, "Z") : undefined;

/** "45s", "12m", "3h 5m", "4d 2h". */
export function duration(seconds: number): string {
  const s = Math.abs(Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400)
    return `${Math.floor(s / 3600)}h${s % 3600 >= 60 ? ` ${Math.floor((s % 3600) / 60)}m` : ""}`;
  return `${Math.floor(s / 86_400)}d${s % 86_400 >= 3600 ? ` ${Math.floor((s % 86_400) / 3600)}h` : ""}`;
}

export type Cell = string | { text: string; color?: Color | undefined };
const cellText = (c: Cell) => (typeof c === "string" ? c : c.text);
const cellColor = (c: Cell) => (typeof c === "string" ? undefined : c.color);

/**
 * The one table helper: columns padded to their widest cell (the last column is not padded),
 * headers dimmed, no trailing spaces. Widths count characters, so cells must not hold ANSI codes:
 * color them through `Cell.color`.
 */
export function table(
  headers: string[],
  rows: Cell[][],
  paint: Paint = painter(false),
  indent = "  ",
): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => cellText(r[i] ?? "").length)));
  const line = (cells: Cell[], header = false) =>
    `${indent}${cells
      .map((c, i) => {
        const last = i === cells.length - 1;
        const text = last ? cellText(c) : cellText(c).padEnd(widths[i] ?? 0);
        return paint(text, header ? "dim" : cellColor(c));
      })
      .join("  ")}`.trimEnd();
  return [line(headers, true), ...rows.map((r) => line(r))];
}

/** Word-wraps `text` to `width` columns after the prefix `first`; continuation lines get `hang` spaces. */
export function wrap(text: string, width: number, first: string, hang: number): string[] {
  const out: string[] = [];
  let line = first;
  let fresh = true;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!fresh && line.length + 1 + word.length > width) {
      out.push(line);
      line = " ".repeat(hang) + word;
    } else {
      line = fresh ? line + word : `${line} ${word}`;
    }
    fresh = false;
  }
  out.push(line);
  return out;
}

/** Options of every text view. */
export interface RenderOptions {
  /** ANSI colors (default false). */
  color?: boolean;
  /** Wrap prose at this many columns (default 100). */
  width?: number;
}

/** Is this output a terminal (live redraw, colors)? */
export function isTty(stream: unknown): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

/** The terminal's width, when it reports a usable one. */
export function terminalWidth(stream: unknown): number | undefined {
  const columns = (stream as { columns?: unknown }).columns;
  return typeof columns === "number" && columns > 20 ? columns : undefined;
}

/** Colors only on a terminal, and never when NO_COLOR is set (https://no-color.org) or TERM=dumb. */
export function useColor(stream: unknown, env: Env): boolean {
  return isTty(stream) && !env.NO_COLOR && env.TERM !== "dumb";
}

/** Milliseconds as seconds with one decimal, "12.3 s": the sandbox's timings. */
export const secondsText = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/**
 * The sandbox's live output: an event log that scrolls, plus a progress block (the same view as
 * `bk-agent-token rotate`) kept up to date below it.
 *
 * - On a terminal the block is redrawn in place (ANSI: cursor up, clear to the end of the screen)
 *   and event lines are printed above it.
 * - Anywhere else (CI logs, pipes) nothing is redrawn: event lines are printed as they come, and of
 *   the progress block only the lines that changed since it was last printed (a change of
 *   timestamp alone does not count), at most once per `minIntervalMs`, so a log stays readable.
 */
import { stripAnsi } from "../../shared/lib/terminal";

export interface LiveViewIo {
  write(text: string): void;
  isTTY?: boolean;
  /** Terminal width, for counting wrapped rows. */
  columns?: number;
  /** Terminal height: a taller progress block is cut, since the cursor cannot move above the screen. */
  rows?: number;
}

export interface LiveViewOptions {
  /** Non-TTY: the shortest time between two printed progress updates (default 1000 ms). */
  minIntervalMs?: number;
  /** Non-TTY: prefix of progress lines (default "  │ "). */
  prefix?: string;
  now?: () => number;
}

export interface LiveView {
  /** Prints one event line (above the progress block on a terminal). */
  event(line: string): void;
  /** Replaces the progress block. */
  progress(text: string): void;
  /** Non-TTY: prints the changes of the latest progress block now, whatever the rate limit. */
  flush(): void;
  /** Stops managing the block: it stays on screen as last drawn (TTY), pending changes are printed. */
  close(): void;
}

const linesOf = (text: string): string[] => text.replace(/\n+$/, "").split("\n");
/** A line whose only change is a timestamp has not changed. */
const ISO_TIME = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g;
const comparable = (line: string): string => line.replace(ISO_TIME, "<time>");

export function createLiveView(io: LiveViewIo, options: LiveViewOptions = {}): LiveView {
  return io.isTTY ? terminalView(io) : logView(io, options);
}

function terminalView(io: LiveViewIo): LiveView {
  let block: string[] = [];
  let rows = 0;
  let closed = false;
  const width = () => Math.max(20, io.columns ?? 80);
  const countRows = (lines: string[]) =>
    lines.reduce((n, l) => n + Math.max(1, Math.ceil(stripAnsi(l).length / width())), 0);
  const erase = () => (rows > 0 ? `\r\x1b[${rows}A\x1b[J` : "");
  const draw = (lines: string[]) => {
    rows = lines.length > 0 ? countRows(lines) : 0;
    return lines.length > 0 ? `${lines.join("\n")}\n` : "";
  };
  return {
    event(line) {
      if (closed) {
        io.write(`${line}\n`);
        return;
      }
      io.write(`${erase()}${line}\n${draw(block)}`);
    },
    progress(text) {
      if (closed) return;
      const all = linesOf(text);
      const room = Math.max(3, (io.rows ?? 1_000) - 2);
      const next =
        all.length > room ? [...all.slice(0, room - 1), `… ${all.length - room + 1} more lines`] : all;
      if (next.join("\n") === block.join("\n")) return;
      const frame = erase();
      block = next;
      io.write(frame + draw(block));
    },
    flush() {},
    close() {
      closed = true;
    },
  };
}

function logView(io: LiveViewIo, options: LiveViewOptions): LiveView {
  const now = options.now ?? Date.now;
  const minIntervalMs = options.minIntervalMs ?? 1_000;
  const prefix = options.prefix ?? "  │ ";
  let printed = new Set<string>();
  let pending: string[] | undefined;
  let lastPrintAt = Number.NEGATIVE_INFINITY;
  let closed = false;

  const print = () => {
    if (!pending) return;
    const lines = pending;
    pending = undefined;
    const changed = lines.filter((l) => l.trim() !== "" && !printed.has(comparable(l)));
    printed = new Set(lines.map(comparable));
    lastPrintAt = now();
    if (changed.length > 0) io.write(`${changed.map((l) => `${prefix}${l}`).join("\n")}\n`);
  };

  return {
    event(line) {
      io.write(`${stripAnsi(line)}\n`);
    },
    progress(text) {
      if (closed) return;
      pending = linesOf(stripAnsi(text));
      if (now() - lastPrintAt >= minIntervalMs) print();
    },
    flush() {
      print();
    },
    close() {
      if (!closed) print();
      closed = true;
    },
  };
}

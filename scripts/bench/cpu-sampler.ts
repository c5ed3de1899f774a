/**
 * How busy the machine's cores were while a bench ran: this process (every thread: the stand-ins
 * and the handlers' worker containers) and moto's, sampled every 250 ms so that any window of the
 * run can be asked about afterwards. A latency figure measured with every core busy says more about
 * the machine than about the code, and the scale bench prints both side by side.
 *
 * moto's CPU comes from /proc/<pid>/stat (utime + stime, fields 14 and 15, in clock ticks of
 * 1/100 s: proc(5), USER_HZ, which is 100 on Linux's supported architectures). Where /proc is not
 * readable the moto figure is NaN.
 */

import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

const SAMPLE_MS = 250;
const TICKS_PER_SECOND = 100;

interface Sample {
  at: number;
  nodeMs: number;
  motoMs: number;
}

export interface CoresBusy {
  node: number;
  moto: number;
  /** node + moto, against `cores`. */
  total: number;
  cores: number;
}

function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    // The command name (field 2) is in parentheses and may hold spaces: fields are counted after it.
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND) * 1000;
  } catch {
    return Number.NaN;
  }
}

export function startCpuSampler(motoPid: number | undefined) {
  const samples: Sample[] = [];
  const take = () => {
    const usage = process.cpuUsage();
    samples.push({
      at: Date.now(),
      nodeMs: (usage.user + usage.system) / 1000,
      motoMs: processCpuMs(motoPid),
    });
  };
  take();
  const timer = setInterval(take, SAMPLE_MS);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      take();
    },
    /** Cores busy on average between two instants (ms since the epoch), to the nearest samples. */
    busyBetween(from: number, to: number): CoresBusy {
      const cores = availableParallelism();
      const first = [...samples].reverse().find((s) => s.at <= from) ?? samples[0];
      const last = samples.find((s) => s.at >= to) ?? samples[samples.length - 1];
      if (!first || !last || last.at <= first.at)
        return { node: Number.NaN, moto: Number.NaN, total: Number.NaN, cores };
      const wall = last.at - first.at;
      const node = (last.nodeMs - first.nodeMs) / wall;
      const moto = (last.motoMs - first.motoMs) / wall;
      return { node, moto, total: node + moto, cores };
    },
  };
}

/** `1.93/2 (node 1.21, moto 0.72)`: how much of the machine a measured run had to share. */
export const coresBusy = (c: CoresBusy): string =>
  Number.isNaN(c.total)
    ? `${Number.isNaN(c.node) ? "?" : c.node.toFixed(2)}+?/${c.cores}`
    : `${c.total.toFixed(2)}/${c.cores} (node ${c.node.toFixed(2)}, moto ${c.moto.toFixed(2)})`;

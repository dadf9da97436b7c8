/** CPU time and memory of a process from /proc (Linux): for measuring sidecars from outside. */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticks = 0;
function clkTck(): number {
  if (!ticks) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** utime + stime of `pid` in seconds (resolution 1/CLK_TCK, usually 10 ms). */
export function cpuSeconds(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces; fields after it are space-separated.
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  return (Number(rest[11]) + Number(rest[12])) / clkTck();
}

/** VmRSS and VmHWM (peak RSS) of `pid` in MB. */
export function memoryMb(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** 1-minute load average and the number of CPUs. */
export function loadAvg(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return '?';
  }
}

/** Busy and total CPU time of the whole machine so far, in seconds (from /proc/stat). */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest counted in user)
  const total = line.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = line[3] + line[4];
  return { busy: (total - idle) / clkTck(), total: total / clkTck() };
}

/** CPU cores busy on the whole machine, averaged over `ms`. */
export async function machineBusyCores(ms: number): Promise<number> {
  const a = machineCpu();
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, ms));
  const b = machineCpu();
  return (b.busy - a.busy) / ((Date.now() - t0) / 1000);
}

// The machine's CPU time, all cores, from /proc/stat: to tell whether a run was limited by the machine's
// cores (peers and relay sharing them) rather than by the relay alone.
import fs from 'node:fs';

export interface MachineTicks {
  /** Ticks not idle (everything but idle and iowait), summed over all cores. */
  busy: number;
  total: number;
}

export function machineTicks(): MachineTicks | undefined {
  try {
    const cpu = fs.readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = cpu.reduce((a, b) => a + b, 0);
    return { busy: total - cpu[3]! - (cpu[4] ?? 0), total };
  } catch {
    return undefined;
  }
}

/** The share of all cores' time that was busy between two readings (undefined without /proc/stat). */
export function busyShare(before: MachineTicks | undefined, after: MachineTicks | undefined): number | undefined {
  if (!before || !after || after.total <= before.total) return undefined;
  return (after.busy - before.busy) / (after.total - before.total);
}

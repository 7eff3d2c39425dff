// The guard (--guard on): an arm that makes a device fail is withdrawn for that device, which goes on with
// the other arms. Fed one outcome per association (ok or failed, see outcome.ts) with its calling AE title
// and arm. An arm is withdrawn for a device when, among that device's associations,
//   - its last FAILURE_RUN associations failed, in a row; or
//   - it failed more often than the device's best arm beyond noise: Fisher's exact test, one-sided,
//     p < ALPHA (fisher.ts), against the arm in play with the lowest failure rate.
// The last arm in play is never withdrawn: a device failing on every arm has a problem no arm causes.
// Pure: no clock, no I/O; the caller logs the withdrawal and counts it.

import type { Arm } from './arms.js';
import { sameArms } from './arms.js';
import { DeviceTable } from './devices.js';
import { fisherExactGreater } from './fisher.js';

/** Failed associations in a row that withdraw an arm for a device. */
export const FAILURE_RUN = 3;
/** Fisher's exact test threshold. */
export const ALPHA = 0.01;

/** One arm's record for one device. */
export interface ArmRecord {
  associations: number;
  failures: number;
  /** Failures since the last ok. */
  run: number;
  withdrawn: boolean;
}

/** Why and on what evidence an arm was withdrawn for a device (the warn line's fields). */
export interface Withdrawal {
  device: string;
  arm: Arm;
  /** `consecutive`: FAILURE_RUN failures in a row; `fisher`: worse than `best` beyond noise. */
  reason: 'consecutive' | 'fisher';
  associations: number;
  failures: number;
  run: number;
  /** The arm it was compared with and that arm's record (reason fisher). */
  best?: { arm: Arm; associations: number; failures: number } | undefined;
  /** Fisher's one-sided p-value (reason fisher). */
  p?: number | undefined;
  /** Arms still in play for the device after this withdrawal. */
  inPlay: Arm[];
}

export class Guard {
  readonly arms: readonly Arm[];
  private readonly devices: DeviceTable<ArmRecord[]>;

  constructor(arms: readonly Arm[]) {
    this.arms = arms;
    this.devices = new DeviceTable(() => arms.map(() => ({ associations: 0, failures: 0, run: 0, withdrawn: false })));
  }

  /** The indexes of the arms still in play for `device`, in list order. */
  inPlay(device: string): number[] {
    const records = this.devices.peek(device);
    if (records === undefined) return this.arms.map((a) => a.index);
    return this.arms.filter((a) => !records[a.index]!.withdrawn).map((a) => a.index);
  }

  /** The device's record of one arm (zeros for a device not seen). */
  record(device: string, arm: Arm): Readonly<ArmRecord> {
    return this.devices.peek(device)?.[arm.index] ?? { associations: 0, failures: 0, run: 0, withdrawn: false };
  }

  /**
   * One association of `device` on `arm` ended, ok or failed. Returns the arms this withdraws for the
   * device (usually none; an ok can withdraw another arm too, by making the best arm's record better).
   * Outcomes of associations on an arm withdrawn already are counted and change nothing.
   */
  outcome(device: string, arm: Arm, failed: boolean): Withdrawal[] {
    const records = this.devices.get(device);
    const own = records[arm.index]!;
    own.associations++;
    if (failed) {
      own.failures++;
      own.run++;
    } else {
      own.run = 0;
    }
    const withdrawals: Withdrawal[] = [];
    for (;;) {
      const next = this.worstToWithdraw(device, records);
      if (next === undefined) return withdrawals;
      records[next.arm.index]!.withdrawn = true;
      next.inPlay = this.arms.filter((a) => !records[a.index]!.withdrawn);
      withdrawals.push(next);
    }
  }

  /** The arm in play to withdraw now, the worst first (a run before a test), or undefined. */
  private worstToWithdraw(device: string, records: ArmRecord[]): Withdrawal | undefined {
    const inPlay = this.arms.filter((a) => !records[a.index]!.withdrawn);
    if (inPlay.length <= 1) return undefined;
    const rate = (a: Arm): number => records[a.index]!.failures / records[a.index]!.associations;
    const seen = inPlay.filter((a) => records[a.index]!.associations > 0);
    // Worst first: the highest failure rate (then the most associations, then list order).
    const byWorst = [...seen].sort((x, y) => rate(y) - rate(x) || records[y.index]!.associations - records[x.index]!.associations || x.index - y.index);
    for (const arm of byWorst) {
      const r = records[arm.index]!;
      const base = { device, arm, associations: r.associations, failures: r.failures, run: r.run, inPlay: [] };
      if (r.run >= FAILURE_RUN) return { ...base, reason: 'consecutive' };
      const best = bestOther(seen, arm, records);
      if (best === undefined) continue;
      const b = records[best.index]!;
      const p = fisherExactGreater(r.failures, r.associations - r.failures, b.failures, b.associations - b.failures);
      if (p < ALPHA) return { ...base, reason: 'fisher', best: { arm: best, associations: b.associations, failures: b.failures }, p };
    }
    return undefined;
  }

  /** Carry on another guard's records when the arms are the same (a reload). Returns whether it did. */
  continueFrom(previous: Guard): boolean {
    const same = sameArms(previous.arms, this.arms);
    if (same) this.devices.adopt(previous.devices);
    return same;
  }
}

/** The arm with the lowest failure rate among `seen` other than `arm` (then the most associations, list order). */
function bestOther(seen: readonly Arm[], arm: Arm, records: readonly ArmRecord[]): Arm | undefined {
  let best: Arm | undefined;
  for (const other of seen) {
    if (other === arm) continue;
    if (best === undefined) {
      best = other;
      continue;
    }
    const o = records[other.index]!;
    const b = records[best.index]!;
    // o.failures / o.associations < b.failures / b.associations, without division.
    const lower = o.failures * b.associations - b.failures * o.associations;
    if (lower < 0 || (lower === 0 && o.associations > b.associations)) best = other;
  }
  return best;
}

// Which arm a new association gets (--assign), decided when its A-ASSOCIATE-RQ arrives, per calling AE title:
//
//   block   permuted blocks (as in clinical trials): each block holds every arm in play twice, shuffled;
//           a device's associations take its block in order, then a new block. After every complete block
//           the device has had each arm equally often, so no arm gets the busy hours of a device.
//   rotate  round robin over the arms in play, from a seeded first arm per device.
//   random  each association draws an arm in play uniformly.
//
// Arms withdrawn for a device by the guard are left out: the rest of the device's current block keeps only
// the arms still in play (each of them still twice per block), and new blocks are built from those arms.
// Pure and seeded (src/experiment/random.ts): the same seed and the same devices' association order give
// the same arms.

import type { Arm } from './arms.js';
import { sameArms } from './arms.js';
import { DeviceTable } from './devices.js';
import type { Random } from './random.js';
import { seededRandom, shuffle } from './random.js';

export const ASSIGN_MODES = ['block', 'rotate', 'random'] as const;
export type AssignMode = (typeof ASSIGN_MODES)[number];

/** Each arm appears this many times in a block (a block is BLOCK_REPEATS x arms associations). */
export const BLOCK_REPEATS = 2;

interface DeviceAssignment {
  random: Random;
  /** block: the arm indexes still to hand out in the current block, next first. */
  block: number[];
  /** rotate: the index of the arm handed out last (-1 before the first). */
  last: number;
}

export class Assigner {
  readonly arms: readonly Arm[];
  readonly mode: AssignMode;
  readonly seed: number;
  private readonly devices: DeviceTable<DeviceAssignment>;
  private readonly all: readonly number[];

  constructor(arms: readonly Arm[], mode: AssignMode, seed: number) {
    if (arms.length === 0) throw new RangeError('an assigner needs at least one arm');
    this.arms = arms;
    this.mode = mode;
    this.seed = seed;
    this.all = arms.map((a) => a.index);
    this.devices = new DeviceTable((device) => ({ random: seededRandom(seed, device), block: [], last: -1 }));
  }

  /**
   * The arm of the next association of `device` (a trimmed calling AE title), among `inPlay` (arm indexes
   * in list order, not empty; default every arm).
   */
  next(device: string, inPlay: readonly number[] = this.all): Arm {
    if (inPlay.length === 0) throw new RangeError('no arm in play');
    const state = this.devices.get(device);
    return this.arms[this.pick(state, inPlay)]!;
  }

  private pick(state: DeviceAssignment, inPlay: readonly number[]): number {
    switch (this.mode) {
      case 'random':
        return inPlay[state.random.int(inPlay.length)]!;
      case 'rotate': {
        const after = inPlay.find((i) => i > state.last);
        state.last = state.last < 0 ? inPlay[state.random.int(inPlay.length)]! : (after ?? inPlay[0]!);
        return state.last;
      }
      case 'block': {
        if (state.block.some((i) => !inPlay.includes(i))) state.block = state.block.filter((i) => inPlay.includes(i));
        if (state.block.length === 0)
          state.block = shuffle(
            inPlay.flatMap((i) => Array<number>(BLOCK_REPEATS).fill(i)),
            state.random,
          );
        return state.block.shift()!;
      }
    }
  }

  /**
   * Carry on another assigner's per-device state (its blocks, rotations and random streams) when the
   * experiment is the same: same arms (labels and values, in order), mode and seed. Returns whether it did.
   */
  continueFrom(previous: Assigner): boolean {
    const same = previous.mode === this.mode && previous.seed === this.seed && sameArms(previous.arms, this.arms);
    if (same) this.devices.adopt(previous.devices);
    return same;
  }
}

// One route's experiment for one generation of the settings: its arms, the assigner (--assign,
// --assign-seed) and the guard (--guard). The control plane asks it for an association's arm when the
// A-ASSOCIATE-RQ is admitted, and tells it how the association ended.

import type { Arm } from './arms.js';
import type { AssignMode } from './assigner.js';
import { Assigner } from './assigner.js';
import { deviceOf } from './devices.js';
import { Guard } from './guard.js';
import type { Withdrawal } from './guard.js';
import type { GuardResult } from './outcome.js';

export interface ExperimentSettings {
  /** The arms (--max-pdu); empty = no experiment, no arm. */
  arms: readonly Arm[];
  assign: AssignMode;
  /** The seed in use (the one given, or one chosen at random and logged). */
  seed: number;
  /** --guard on. */
  guard: boolean;
}

export class Experiment {
  readonly settings: ExperimentSettings;
  private readonly assigner: Assigner | undefined;
  private readonly guard: Guard | undefined;

  constructor(settings: ExperimentSettings) {
    this.settings = settings;
    const { arms } = settings;
    this.assigner = arms.length > 0 ? new Assigner(arms, settings.assign, settings.seed) : undefined;
    // One arm has nothing to withdraw it in favour of.
    this.guard = settings.guard && arms.length > 1 ? new Guard(arms) : undefined;
  }

  /** The arm of a new association from `callingAe` (as in the RQ, padded or not); undefined without arms. */
  assign(callingAe: string): Arm | undefined {
    if (this.assigner === undefined) return undefined;
    const device = deviceOf(callingAe);
    return this.assigner.next(device, this.guard?.inPlay(device));
  }

  /** An association on `arm` ended; returns the withdrawals it caused (none with --guard off). */
  outcome(callingAe: string, arm: Arm, result: GuardResult): Withdrawal[] {
    if (this.guard === undefined) return [];
    return this.guard.outcome(deviceOf(callingAe), arm, result === 'failed');
  }

  /** The arms still in play for a device. */
  inPlay(callingAe: string): Arm[] {
    const arms = this.settings.arms;
    if (this.guard === undefined) return [...arms];
    return this.guard.inPlay(deviceOf(callingAe)).map((i) => arms[i]!);
  }

  /**
   * A reload: carry on `previous`'s blocks and guard records when the arms, the assignment and the seed did
   * not change (else this experiment starts afresh). Returns whether it carried on.
   */
  continueFrom(previous: Experiment): boolean {
    if (this.assigner === undefined || previous.assigner === undefined || !this.assigner.continueFrom(previous.assigner)) return false;
    if (this.guard !== undefined && previous.guard !== undefined) this.guard.continueFrom(previous.guard);
    return true;
  }
}

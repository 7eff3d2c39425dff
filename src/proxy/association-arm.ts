// An association's place in a --max-pdu experiment (docs/EXPERIMENT.md): the arm the admission gave it,
// the tags every record of it carries (arm label, AE titles, generation), and the requests whose final
// status was a failure, which the guard counts. Set once, when the association is admitted; no sockets.

import type { AssociatePdu } from '../pdu/associate.js';
import { calledAe, callingAe } from '../pdu/associate.js';
import { FIRST_GENERATION } from '../events/events.js';
import type { AssociationEvent, AssociationTags, MessageRecord, PduRecord } from '../events/events.js';
import type { Arm } from '../experiment/arms.js';
import { armCsvLabel } from '../experiment/arms.js';
import { guardResult, isFailureStatus } from '../experiment/outcome.js';
import type { GuardResult } from '../experiment/outcome.js';

export class AssociationArm {
  /** The arm (its Maximum Length is written into the AC); undefined = no arms, the AC unchanged. */
  arm: Arm | undefined;
  tags: AssociationTags = { arm: '', callingAet: '', calledAet: '', generation: FIRST_GENERATION };
  /** Requests whose final status was a failure (neither success nor warning), for the guard. */
  private failedStatuses = 0;

  /** The admission's decision for `rq`: the arm and generation hold for the whole association. Returns the tags. */
  assign(rq: AssociatePdu, arm: Arm | undefined, generation: number): AssociationTags {
    this.arm = arm;
    this.tags = { arm: armCsvLabel(arm), callingAet: callingAe(rq), calledAet: calledAe(rq), generation };
    return this.tags;
  }

  /** A PDU record carries the arm and the generation. */
  tag(record: PduRecord): void {
    record.arm = this.tags.arm;
    record.generation = this.tags.generation;
  }

  /** A message completed: a failed final status counts against the arm. */
  completed(message: MessageRecord): void {
    if (message.status !== undefined && isFailureStatus(message.status)) this.failedStatuses++;
  }

  /**
   * How the association ended (`ended`: its 'ended' event), for the experiment's guard: its arm, calling AE
   * title and result (ok, failed); undefined without an arm, or when the end says nothing about the arm
   * (src/experiment/outcome.ts).
   */
  outcome(ended: AssociationEvent): { arm: Arm; callingAe: string; result: GuardResult } | undefined {
    if (this.arm === undefined || ended.phase !== 'ended') return undefined;
    const result = guardResult({ ...ended, failedStatuses: this.failedStatuses });
    return result === undefined ? undefined : { arm: this.arm, callingAe: this.tags.callingAet, result };
  }
}

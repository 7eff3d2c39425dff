// The PDU records of one link between their arrival and their report: a record is reported (to the chunk
// CSV and message tracking) once its PDU has arrived whole and every byte the link forwarded of it has been
// handed to the writer, with the time those bytes were written. No sockets.

import type { PduRecord } from '../events/events.js';

/** A PDU record still being received or waiting for its bytes to be written. */
export interface InFlight extends PduRecord {
  /** Cumulative fragment bytes received on this link up to this PDU's end. */
  payloadEnd: number;
  /** Its last byte has been received. */
  complete: boolean;
  /** The session chose not to forward it. */
  dropped: boolean;
}

/** The records not reported yet, in arrival order. */
export class PendingRecords {
  private readonly awaiting: InFlight[] = [];

  add(record: InFlight): void {
    this.awaiting.push(record);
  }

  /** Records complete and fully emitted (none of their bytes beyond `emittedPayload`, the re-fragmenter's output), in order. */
  takeReady(emittedPayload: number): InFlight[] {
    let n = 0;
    while (n < this.awaiting.length) {
      const record = this.awaiting[n]!;
      if (!record.complete || record.payloadEnd > emittedPayload) break;
      n++;
    }
    return n === 0 ? [] : this.awaiting.splice(0, n);
  }

  /** Every record not reported yet (the association is over). */
  takeAll(): InFlight[] {
    return this.awaiting.splice(0);
  }
}

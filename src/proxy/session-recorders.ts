// What one association tells its recorders (CSV files, metrics, the capture) and the log lines that go
// with it: each PDU, each message, the association's phases, failed TLS handshakes, and the capture of
// its two connections.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { AssociationEvent, CertificateEvent, Direction, Leg, MessageRecord, PduRecord, Recorder, TlsFailureReason } from '../events/events.js';
import { messageLogFields } from '../record/messages-csv.js';
import { captureRecorder, tapSocket } from './capture-tap.js';

export class SessionRecorders {
  private readonly log: Logger;
  private readonly pduRecorders: readonly Recorder[];
  private readonly messageRecorders: readonly Recorder[];
  private readonly associationRecorders: readonly Recorder[];
  private readonly tlsRecorders: readonly Recorder[];
  /** --pcap: taps both sockets (src/proxy/capture-tap.ts); undefined = no capture. */
  private readonly capture: Recorder | undefined;

  constructor(recorders: readonly Recorder[], log: Logger) {
    this.log = log;
    this.pduRecorders = recorders.filter((r) => r.pdu);
    this.messageRecorders = recorders.filter((r) => r.message);
    this.associationRecorders = recorders.filter((r) => r.association);
    this.tlsRecorders = recorders.filter((r) => r.tlsFailure || r.certificate);
    this.capture = captureRecorder(recorders);
  }

  pdu(record: PduRecord): void {
    for (const recorder of this.pduRecorders) recorder.pdu!(record);
  }

  message(message: MessageRecord): void {
    if (this.log.isLevelEnabled('debug')) this.log.debug(messageLogFields(message), 'message completed');
    for (const recorder of this.messageRecorders) recorder.message!(message);
  }

  /** A DIMSE command set not decodable: warned for the first of an association (`count` 1), the rest at debug. */
  undecodable(direction: Direction, why: string, count: number): void {
    const fields = { from: direction === 'to_scp' ? 'SCU' : 'SCP', reason: why };
    if (count === 1) this.log.warn(fields, 'DIMSE command set not decodable: message not tracked');
    else this.log.debug(fields, 'DIMSE command set not decodable: message not tracked');
  }

  association(event: AssociationEvent): void {
    for (const recorder of this.associationRecorders) recorder.association!(event);
  }

  /** One warn line and a metric for a failed TLS handshake on one leg; `endpoint`: the SCU's address, or the upstream. */
  tlsFailure(leg: Leg, failure: { reason: TlsFailureReason; detail: string }, endpoint: string): void {
    const where = leg === 'scp' ? { upstream: endpoint } : { peer: endpoint };
    this.log.warn({ leg, ...where, reason: failure.reason, detail: failure.detail }, 'TLS handshake failed: connection closed');
    for (const r of this.tlsRecorders) r.tlsFailure?.({ leg, reason: failure.reason });
  }

  /** A certificate's expiry as seen (metrics): the SCP's, at each upstream handshake. */
  certificate(event: CertificateEvent): void {
    for (const r of this.tlsRecorders) r.certificate?.(event);
  }

  /** Start capturing `socket` (connected now) as `leg`: the link reading it gets the returned readTap. */
  tap(leg: Leg, socket: Socket): ((chunk: Buffer) => void) | undefined {
    return tapSocket(this.capture, leg, socket);
  }
}

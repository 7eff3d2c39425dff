// What one association tells its recorders (CSV files, metrics, the capture) and the log lines that go
// with it: each PDU, each message, the association's phases, failed TLS handshakes, and the capture of
// its two connections.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { AssociationEvent, Direction, Leg, MessageRecord, PduRecord, Recorder, TlsFailureReason } from '../events/events.js';
import type { Endpoint } from '../values/endpoint.js';
import { formatEndpoint } from '../values/endpoint.js';
import { messageLogFields } from '../record/messages-csv.js';
import { captureRecorder, tapSocket } from '../capture/tap.js';
import type { Link } from './link.js';
import { peerCertificateExpiry } from './tls.js';

export class SessionRecorders {
  private readonly log: Logger;
  private readonly pduRecorders: readonly Recorder[];
  private readonly messageRecorders: readonly Recorder[];
  private readonly associationRecorders: readonly Recorder[];
  private readonly tlsRecorders: readonly Recorder[];
  /** --pcap: taps both connections (src/capture/tap.ts); undefined = no capture. */
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

  /** One warn line and a metric for a failed TLS handshake on one leg: toward the SCU (`scu`), or the `upstream`. */
  tlsFailure(leg: Leg, failure: { reason: TlsFailureReason; detail: string }, scu: Socket, upstream: Endpoint): void {
    const where = leg === 'scp' ? { upstream: formatEndpoint(upstream) } : { peer: `${scu.remoteAddress}:${scu.remotePort}` };
    this.log.warn({ leg, ...where, reason: failure.reason, detail: failure.detail }, 'TLS handshake failed: connection closed');
    for (const r of this.tlsRecorders) r.tlsFailure?.({ leg, reason: failure.reason });
  }

  /** The SCP's certificate as last seen, at each upstream handshake (its expiry is a metric). */
  upstreamCertificate(scp: Socket): void {
    const notAfterMs = peerCertificateExpiry(scp);
    if (notAfterMs !== undefined) for (const r of this.tlsRecorders) r.certificate?.({ cert: 'upstream_server', notAfterMs });
  }

  /**
   * Start capturing `socket` (connected now) as `leg`: the link `reading` it tells the capture what it
   * reads, the link `writing` to it what it writes (set before the links attach the socket).
   */
  tap(leg: Leg, socket: Socket, reading: Link, writing: Link): void {
    const tap = tapSocket(this.capture, leg, socket);
    reading.readTap = tap?.read;
    writing.writeTap = tap;
  }
}

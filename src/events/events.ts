// What the proxy tells its recorders. Recorders (CSV, logs, metrics) receive these synchronously and must
// not block: they queue and write later.

/** The route of the --listen/--upstream pair (routes given with --route are named by id=NAME or their port). */
export const DEFAULT_ROUTE_ID = 'default';

/** Which way a PDU travels: to_scp is SCU → proxy → SCP, to_scu the reverse. */
export type Direction = 'to_scp' | 'to_scu';

export type PduKind = 'command' | 'dataset' | 'mixed' | '';

/** One PDU received by the proxy, reported once it has been forwarded (or once its association ended). */
export interface PduRecord {
  assoc: number;
  direction: Direction;
  /** 1-based, per association and direction, in arrival order. */
  seq: number;
  type: string;
  /** The PDU-length field as received (bytes on the wire are length + 6). */
  length: number;
  pdvs: number;
  /** The first PDV's presentation context id; undefined for non-data PDUs. */
  contextId: number | undefined;
  kind: PduKind;
  /** A PDV in it had the last-fragment bit set. */
  last: boolean;
  /** Microseconds since the association's TCP accept. */
  firstByteUs: number;
  lastByteUs: number;
  /** When the last byte of it was handed to the kernel toward the receiver; undefined if never forwarded. */
  forwardedUs: number | undefined;
  /** Output PDUs whose final byte came from this PDU (their sum is the number of PDUs sent onward). */
  outPdus: number;
  /** Largest PDU-length field among those output PDUs (0 if none). */
  outMaxLength: number;
  /** Its length was over the Maximum Length the proxy announced to its sender. */
  violation: boolean;
  /**
   * The association's arm (its label: "16KB", "16KB#2") and the generation of the settings it runs under,
   * set by the session on the records of an admitted association; absent: '' and FIRST_GENERATION.
   */
  arm?: string;
  generation?: number;
}

export interface Recorder {
  /** Per-PDU records (chunk CSV). */
  pdu?(record: PduRecord): void;
  /** Per-message records (messages CSV). */
  message?(record: MessageRecord): void;
  /** An association was requested (and admitted or refused), or a connection ended (metrics). */
  association?(event: AssociationEvent): void;
  /** A TLS handshake failed on one leg (metrics); the connection was closed, or the SCU got A-ASSOCIATE-RJ. */
  tlsFailure?(event: TlsFailureEvent): void;
  /**
   * When a certificate expires (metrics): the route's configured ones once its view exists, the SCP's each
   * time an upstream TLS handshake completes.
   */
  certificate?(event: CertificateEvent): void;
  /**
   * A recorder shared by several routes gives each route a view that tags what it records with the route's
   * id (a CSV column, a metric label: looked up once, not per event). The view's close() does nothing: the
   * shared recorder is closed once, by its owner.
   */
  forRoute?(route: string): Recorder;
  /**
   * A TCP connection of an association was opened (the SCU's accepted, or the upstream one connected):
   * the capture (--pcap) gets its bytes and its end from the returned handle. Undefined = not captured.
   */
  connection?(leg: Leg, ends: SocketEnds, time: number): ConnectionEvents | undefined;
  /** Write out what is queued and release the file; resolves when it is on disk. */
  close(): Promise<void>;
}

/**
 * Why an association was aborted, from a fixed vocabulary (metric labels must never carry a peer's text):
 * an A-ABORT from a peer, a protocol error the proxy detected, a connection lost mid-association, the
 * --idle-timeout, the proxy shutting down, or an exception inside the proxy (a bug: internal_error).
 */
export type AbortCause = 'scu_abort' | 'scp_abort' | 'protocol_error' | 'connection_lost' | 'idle_timeout' | 'shutdown' | 'internal_error' | 'peer_stalled';

export const ABORT_CAUSES: readonly AbortCause[] = ['scu_abort', 'scp_abort', 'protocol_error', 'connection_lost', 'idle_timeout', 'shutdown', 'internal_error', 'peer_stalled'];

/**
 * Why a TLS handshake failed, from a fixed vocabulary: no client certificate when one is required, a
 * certificate from a CA not trusted, an expired one, a name that does not match (upstream), another
 * certificate problem, plaintext sent to a TLS port (or by a "TLS" SCP), no common TLS version or suite,
 * an alert from the peer (it refused ours), no handshake in time, the peer closing mid-handshake.
 */
export type TlsFailureReason =
  | 'no_client_certificate'
  | 'unknown_ca'
  | 'expired'
  | 'name_mismatch'
  | 'bad_certificate'
  | 'plaintext'
  | 'protocol_mismatch'
  | 'peer_alert'
  | 'timeout'
  | 'connection_closed'
  | 'other';

export const TLS_FAILURE_REASONS: readonly TlsFailureReason[] = [
  'no_client_certificate',
  'unknown_ca',
  'expired',
  'name_mismatch',
  'bad_certificate',
  'plaintext',
  'protocol_mismatch',
  'peer_alert',
  'timeout',
  'connection_closed',
  'other',
];

/**
 * Which connection of an association: toward the SCU (the listener's, SCU ↔ proxy) or toward the SCP (the
 * upstream one, proxy ↔ SCP). Names a TLS failure's leg and a captured connection's interface.
 */
export type Leg = 'scu' | 'scp';

export interface TlsFailureEvent {
  leg: Leg;
  reason: TlsFailureReason;
}

/**
 * Which certificate: the listener's (--tls-cert), the client certificate presented to the SCP
 * (--upstream-tls-cert), or the SCP's as last seen in an upstream handshake.
 */
export type CertificateRole = 'listener' | 'upstream_client' | 'upstream_server';

/** A certificate chain's earliest notAfter (of the certificates presented, leaf and chain), ms since the epoch. */
export interface CertificateEvent {
  cert: CertificateRole;
  notAfterMs: number;
}

export type AssociationOutcome = 'released' | 'rejected' | 'aborted' | 'closed';

export const ASSOCIATION_OUTCOMES: readonly AssociationOutcome[] = ['released', 'rejected', 'aborted', 'closed'];

export type AssociationEvent =
  /** A well-formed A-ASSOCIATE-RQ arrived; `admitted` false when the proxy refused it (A-ASSOCIATE-RJ). */
  | { phase: 'requested'; assoc: number; admitted: boolean }
  /**
   * Both connections are closed. `requested`/`admitted` as above; `abort` when the outcome is aborted,
   * `rejectedBy` when it is rejected.
   */
  | { phase: 'ended'; assoc: number; requested: boolean; admitted: boolean; outcome: AssociationOutcome; abort: AbortCause | undefined; rejectedBy?: RejectionSource | undefined };

/**
 * Who rejected an association: the SCP (its A-ASSOCIATE-RJ), the proxy's admission rules, or the proxy
 * because the SCP could not be reached (no connection, or its TLS handshake failed).
 */
export type RejectionSource = 'scp' | 'proxy' | 'upstream_unavailable';

export const REJECTION_SOURCES: readonly RejectionSource[] = ['scp', 'proxy', 'upstream_unavailable'];

/**
 * One DIMSE request and its responses (--messages-csv), reported once the final response has arrived and
 * the request's last byte was forwarded, or when the association ended. Times are microseconds since the
 * association's TCP accept (the chunk CSV's clock); undefined where the event never happened.
 */
export interface MessageRecord {
  assoc: number;
  /** Which way the request travelled: to_scp (sent by the SCU) or to_scu (sent by the SCP: C-GET sub-operations). */
  direction: Direction;
  messageId: number;
  /** C-STORE-RQ, C-FIND-RQ, ... or 0xHHHH. */
  command: string;
  contextId: number;
  /** AffectedSOPInstanceUID of the request, '' when absent. */
  sopInstanceUid: string;
  /** Dataset bytes of the request (its dataset fragments summed). */
  bytes: number;
  /** The Maximum Length the SCU was told in the A-ASSOCIATE-AC (after any rewrite). */
  maxPdu: number;
  /** The SCP's own Maximum Length from its A-ASSOCIATE-AC. */
  scpMaxPdu: number;
  requestFirstByteUs: number;
  requestLastByteUs: number | undefined;
  /** When the request's last byte was handed to the kernel toward its receiver. */
  requestForwardedUs: number | undefined;
  responseFirstByteUs: number | undefined;
  responseLastByteUs: number | undefined;
  /** Within the request: the proxy waited for the request's sender while not pausing it. */
  senderIdleUs: number;
  /** From the request's first byte to its last byte forwarded: the proxy paused the sender because the receiver was not reading. */
  receiverBlockedUs: number;
  /**
   * The proxy's own time in the message (an upper bound, src/proxy/sender-time.ts busyUs): on the request's
   * leg from its first byte until its last byte is forwarded, on the response's leg from the first
   * response byte to the final response's last byte: processing the chunks, and the waits between them
   * during which the event loop was busy with other work.
   */
  proxyBusyUs: number;
  pendingResponses: number;
  /** The final (non-Pending) response's Status; undefined when none came. */
  status: number | undefined;
  /** Wall-clock time of requestFirstByteUs, ISO-8601 UTC. */
  startedAt: string;
  /** The association's arm (its label: "16KB", "16KB#2"); '' without arms. */
  arm: string;
  /** The A-ASSOCIATE-RQ's calling and called AE titles, without their padding. */
  callingAet: string;
  calledAet: string;
  /** AffectedSOPClassUID of the request, '' when absent. */
  sopClassUid: string;
  /** The transfer syntax accepted for the request's presentation context, '' when unknown. */
  transferSyntaxUid: string;
  /** The generation of the settings the association runs under (1 at start, +1 per reload). */
  generation: number;
}

/** What every message and PDU record of one association carries: decided when it was admitted. */
export interface AssociationTags {
  /** The arm's label; '' without arms. */
  arm: string;
  callingAet: string;
  calledAet: string;
  generation: number;
}

/** The first generation of the settings (a successful reload adds one). */
export const FIRST_GENERATION = 1;

/** Both ends of one connection as its socket reports them (textual addresses, as node gives them). */
export interface SocketEnds {
  peerAddress: string;
  peerPort: number;
  proxyAddress: string;
  proxyPort: number;
}

/**
 * What happens on one connection, as the proxy's socket sees it (--pcap). `time` is performance.now() at
 * the event (milliseconds). Byte buffers are only read, during the call: a read buffer is reused for the
 * next read once the call returns, so whatever is kept is copied.
 */
export interface ConnectionEvents {
  /** Bytes read from the peer. */
  fromPeer(bytes: Buffer, time: number): void;
  /** Bytes handed to the socket toward the peer: one write, or the writes of one corked batch, in order. */
  toPeer(bytes: Buffer | readonly Buffer[], time: number): void;
  /** The peer sent a FIN (the socket's 'end'). */
  peerFin(time: number): void;
  /** The proxy half-closed (end()). */
  proxyFin(time: number): void;
  /** The peer reset the connection. */
  peerReset(time: number): void;
  /** The proxy reset the connection (resetAndDestroy()). */
  proxyReset(time: number): void;
  /** The socket is closed: nothing more comes. */
  closed(time: number): void;
}

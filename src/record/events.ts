// What the proxy tells its recorders. Recorders (CSV, logs, metrics) receive these synchronously and must
// not block: they queue and write later.

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
}

export interface Recorder {
  pdu(record: PduRecord): void;
  /** Write out what is queued and release the file; resolves when it is on disk. */
  close(): Promise<void>;
}

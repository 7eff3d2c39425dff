// The per-message log (--messages-csv): one row per DIMSE request and its responses, with where the time
// went. Rows are queued by message() (never blocks the proxy) and written in batches off the hot path.
// An existing non-empty file is appended to (no second header), so runs with different settings
// accumulate in one file; its first line must be this header, or the proxy refuses to start.

import type fs from 'node:fs';
import type { TimeSplit } from '../dimse/tracker.js';
import { durationUs, responseUs } from '../dimse/tracker.js';
import { statusHex } from '../dimse/command.js';
import { BatchedLines } from './batched-lines.js';
import { RowFile } from './row-file.js';
import type { LineSink, LinesLog } from './batched-lines.js';
import { DEFAULT_ROUTE_ID } from '../events/events.js';
import type { Direction, MessageRecord, Recorder } from '../events/events.js';

/** The columns, in order: a contract with `stats` and `bench` (and users' scripts). Add at the end, never rename. */
export const MESSAGES_CSV_COLUMNS = [
  'assoc',
  'message_id',
  'command',
  'context_id',
  'sop_instance_uid',
  'bytes',
  'max_pdu',
  'scp_max_pdu',
  'request_first_byte_us',
  'request_last_byte_us',
  'response_first_byte_us',
  'response_last_byte_us',
  'duration_ms',
  'scu_idle_ms',
  'upstream_blocked_ms',
  'scp_response_ms',
  'pending_responses',
  'status',
  'started_at',
  'requested_by',
  'route',
  'arm',
  'calling_aet',
  'called_aet',
  'sop_class_uid',
  'transfer_syntax_uid',
  'generation',
  'proxy_busy_ms',
] as const;

export const MESSAGES_CSV_HEADER = MESSAGES_CSV_COLUMNS.join(',');

const us = (v: number | undefined): string | number => (v === undefined ? '' : Math.round(v));
const ms = (v: number | undefined): string => (v === undefined ? '' : (v / 1000).toFixed(3));

/** RFC 4180 quoting, only where needed: UIDs and AE titles come from a peer and could hold anything. */
function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function messageCsvRow(m: MessageRecord, route: string = DEFAULT_ROUTE_ID): Array<string | number> {
  return [
    m.assoc,
    m.messageId,
    m.command,
    m.contextId,
    csvField(m.sopInstanceUid),
    m.bytes,
    m.maxPdu,
    m.scpMaxPdu,
    us(m.requestFirstByteUs),
    us(m.requestLastByteUs),
    us(m.responseFirstByteUs),
    us(m.responseLastByteUs),
    ms(durationUs(m)),
    ms(m.senderIdleUs),
    ms(m.receiverBlockedUs),
    ms(responseUs(m)),
    m.pendingResponses,
    m.status === undefined ? '' : statusHex(m.status),
    m.startedAt,
    m.direction === 'to_scp' ? 'scu' : 'scp',
    route,
    m.arm,
    csvField(m.callingAet),
    csvField(m.calledAet),
    csvField(m.sopClassUid),
    csvField(m.transferSyntaxUid),
    m.generation,
    ms(m.proxyBusyUs),
  ];
}

/** The debug log line for a completed message: the CSV's values, as numbers, camel-cased. */
export function messageLogFields(m: MessageRecord): Record<string, unknown> {
  const round3 = (v: number | undefined): number | undefined => (v === undefined ? undefined : Math.round(v) / 1000);
  return {
    direction: m.direction,
    messageId: m.messageId,
    command: m.command,
    contextId: m.contextId,
    sopInstanceUid: m.sopInstanceUid || undefined,
    bytes: m.bytes,
    maxPdu: m.maxPdu,
    scpMaxPdu: m.scpMaxPdu,
    durationMs: round3(durationUs(m)),
    scuIdleMs: round3(m.senderIdleUs),
    upstreamBlockedMs: round3(m.receiverBlockedUs),
    scpResponseMs: round3(responseUs(m)),
    proxyBusyMs: round3(m.proxyBusyUs),
    pendingResponses: m.pendingResponses,
    status: m.status === undefined ? undefined : statusHex(m.status),
    startedAt: m.startedAt,
    arm: m.arm || undefined,
    sopClassUid: m.sopClassUid || undefined,
    transferSyntaxUid: m.transferSyntaxUid || undefined,
  };
}

/**
 * The association summary's time split. Top level: requests from the SCU (the contract's names). Requests
 * the SCP sent (C-GET's C-STORE sub-operations) have the roles swapped and are kept apart in scpRequests.
 */
export function timeSplitSummary(totals: Readonly<Record<Direction, TimeSplit>>, undecodable: number): Record<string, unknown> {
  const r = (v: number): number => Math.round(v) / 1000;
  const up = totals.to_scp;
  const down = totals.to_scu;
  const out: Record<string, unknown> = {
    messages: up.messages,
    scuIdleMs: r(up.idleUs),
    upstreamBlockedMs: r(up.blockedUs),
    scpResponseMs: r(up.responseUs),
    proxyBusyMs: r(up.busyUs),
  };
  if (down.messages > 0) {
    out.scpRequests = {
      messages: down.messages,
      scpIdleMs: r(down.idleUs),
      scuBlockedMs: r(down.blockedUs),
      scuResponseMs: r(down.responseUs),
      proxyBusyMs: r(down.busyUs),
    };
  }
  if (undecodable > 0) out.undecodableCommands = undecodable;
  return out;
}

/** Rows are written when this many are queued, or this long after the first one, whichever comes first. */
const CSV_BATCH_ROWS = 1024;
const CSV_BATCH_MS = 200;

export class MessagesCsvRecorder implements Recorder {
  private readonly lines: BatchedLines;

  private constructor(file: LineSink, prefix: string, log: LinesLog | undefined) {
    this.lines = new BatchedLines(file, CSV_BATCH_ROWS, CSV_BATCH_MS, { log });
    if (prefix) this.lines.queueNow(prefix);
  }

  /**
   * Open `path` for appending. A missing or empty file gets the header; an existing one must start with
   * it (else MessagesCsvFileError: appending rows to another file would spoil it). A last row without its
   * newline was never written whole (a write cut short by a full disk, then a stop): with `repairTail` (the
   * only process writing the file yet) it is cut off, with a warning. Rejects if the file cannot be opened;
   * write errors later are logged to `log` and cost rows (droppedRows), never the relaying.
   */
  static async open(path: string, log?: LinesLog, repairTail = true): Promise<MessagesCsvRecorder> {
    const file = await RowFile.open(path, 'append');
    let prefix: string;
    try {
      prefix = await headerPrefix(file.file, path, repairTail ? (log ?? silentLog) : undefined);
    } catch (err) {
      await file.close();
      throw err;
    }
    return new MessagesCsvRecorder(file, prefix, log);
  }

  /** Rows that never reached the file (see BatchedLines). */
  get droppedRows(): number {
    return this.lines.droppedRows;
  }

  message(record: MessageRecord, route: string = DEFAULT_ROUTE_ID): void {
    this.lines.push(messageCsvRow(record, route).join(','));
  }

  forRoute(route: string): Recorder {
    return { message: (record) => this.message(record, route), close: () => Promise.resolve() };
  }

  close(): Promise<void> {
    return this.lines.close();
  }
}

export class MessagesCsvFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MessagesCsvFileError';
  }
}

const silentLog: LinesLog = { error() {}, warn() {}, info() {} };

/** Bytes read from the end when looking for the last newline: far more than a row takes. */
const TAIL_SCAN_BYTES = 1024 * 1024;

/**
 * What to write before the first row: the header (new file), a newline (a file that is only the header), or
 * nothing. An existing file must start with the header (MessagesCsvFileError otherwise); given `repair`, a
 * last row that lacks its newline is cut off, and `repair` told how many bytes went.
 */
async function headerPrefix(handle: fs.promises.FileHandle, path: string, repair: LinesLog | undefined): Promise<string> {
  const { size } = await handle.stat();
  if (size === 0) return `${MESSAGES_CSV_HEADER}\n`;
  const head = Buffer.alloc(Math.min(size, MESSAGES_CSV_HEADER.length + 2));
  await handle.read(head, 0, head.length, 0);
  const firstLine = head.toString('latin1').split(/\r?\n/)[0]!;
  if (firstLine !== MESSAGES_CSV_HEADER && MESSAGES_CSV_HEADER.startsWith(`${firstLine},`)) {
    // An older version's header (fewer columns, same order): its rows cannot take the new columns.
    const missing = MESSAGES_CSV_COLUMNS.slice(firstLine.split(',').length);
    throw new MessagesCsvFileError(
      `${path} was written by an older version of the proxy (no ${missing.join(', ')} column${missing.length > 1 ? 's' : ''}); not appending to it: give a new file (stats still reads the old one)`,
    );
  }
  if (firstLine !== MESSAGES_CSV_HEADER) {
    throw new MessagesCsvFileError(`${path} exists and does not start with the messages CSV header; not appending to it`);
  }
  if (size === MESSAGES_CSV_HEADER.length) return '\n';
  if (!repair) return '';
  const tail = Buffer.alloc(Math.min(size, TAIL_SCAN_BYTES));
  await handle.read(tail, 0, tail.length, size - tail.length);
  if (tail[tail.length - 1] === 0x0a) return '';
  const lastNewline = tail.lastIndexOf(0x0a);
  if (lastNewline === -1) throw new MessagesCsvFileError(`${path} ends with a line of over ${TAIL_SCAN_BYTES} bytes; not appending to it`);
  const cutBytes = tail.length - lastNewline - 1;
  await handle.truncate(size - cutBytes);
  repair.warn({ cutBytes }, 'messages CSV: its last row had no newline (never written whole); cut off before appending');
  return '';
}

// npm run bench:messages — what message tracking costs on the hot path, without sockets: the framer and
// the re-fragmenter (pass-through) over a stream of C-STORE messages (a command PDU, then a 16 MiB data set
// in PDUs of 4 KB, 16 KB or 1 MB), cut into 64 KiB chunks; with and without the MessageTracker observer,
// including the per-chunk clock reads the link adds for the idle/blocked split. Reports ns per input PDU
// (best of several interleaved runs) and the difference.

import { performance } from 'node:perf_hooks';
import type { LegTimes } from '../src/dimse/tracker.js';
import { MessageTracker } from '../src/dimse/tracker.js';
import type { FrameHandler } from '../src/pdu/framer.js';
import { PduFramer } from '../src/pdu/framer.js';
import { encodePData } from '../src/pdu/pdata.js';
import type { PduRecord } from '../src/events/events.js';
import type { PDataSink } from '../src/transform/refragment.js';
import { Refragmenter } from '../src/transform/refragment.js';
import { commandSet } from '../test/fixtures/annotated-commands.js';
import { chunked, datasetPdus, refragmentingHandler } from './pdata-stream.js';

const MESSAGES = 4;
const DATASET = 16 * 1024 * 1024;
const CHUNK = 64 * 1024;
const RUNS = 7;

/** MESSAGES C-STORE-RQs with `fragment`-byte data set fragments, as 64 KiB chunks. */
function makeStream(fragment: number): { chunks: Buffer[]; pdus: number } {
  const parts: Buffer[] = [];
  let pdus = 0;
  for (let m = 1; m <= MESSAGES; m++) {
    const command = commandSet([
      [0x0002, '1.2.840.10008.5.1.4.1.1.7'],
      [0x0100, 0x0001],
      [0x0110, m],
      [0x0800, 0],
      [0x1000, `1.2.3.${m}`],
    ]);
    parts.push(encodePData([{ contextId: 1, command: true, last: true, fragment: command }]));
    pdus++;
    const n = Math.ceil(DATASET / fragment);
    parts.push(datasetPdus(n, fragment));
    pdus += n;
  }
  return { chunks: chunked(Buffer.concat(parts), CHUNK), pdus };
}

class CountingSink implements PDataSink {
  bytes = 0;
  pduStart(): void {}
  write(b: Buffer): void {
    this.bytes += b.length;
  }
  pduEnd(): void {}
}

/** Counters as the link keeps them: a clock read per chunk, arithmetic otherwise. */
class Leg implements LegTimes {
  idle = 0;
  chunkDone = -1;
  idleUs(): number {
    return this.idle;
  }
  blockedUs(): number {
    return 0;
  }
  busyUs(): number {
    return 0;
  }
}

function run(chunks: Buffer[], tracked: boolean): { ms: number; rows: number } {
  const sink = new CountingSink();
  const refragmenter = new Refragmenter(sink);
  refragmenter.configure(0, { mode: 'fit' });
  const framer = new PduFramer();
  const leg = new Leg();
  let rows = 0;
  const tracker = new MessageTracker(1, { to_scp: leg, to_scu: leg }, Date.now(), { message: () => rows++, undecodable: () => undefined });
  const record = {} as PduRecord;
  let chunkTime = 0;
  const handler: FrameHandler = tracked
    ? {
        onPdu() {},
        onDataStart: (length, header, first) => {
          refragmenter.dataStart(length, header);
          tracker.dataStart('to_scp', first, leg.idle, 0, 0);
        },
        onPdvStart: (itemLength, ctx, mch, header) => {
          refragmenter.pdvStart(itemLength, ctx, mch, header);
          tracker.pdvStart('to_scp', ctx, mch);
        },
        onPdvData: (bytes) => {
          refragmenter.pdvData(bytes);
          tracker.pdvData('to_scp', bytes);
        },
        onPdvEnd: () => tracker.pdvEnd('to_scp', chunkTime, record),
        onDataEnd: () => refragmenter.dataEnd(),
      }
    : refragmentingHandler(refragmenter);
  const start = performance.now();
  for (const chunk of chunks) {
    chunkTime = performance.now() * 1000;
    if (tracked && leg.chunkDone >= 0) {
      const idle = chunkTime - leg.chunkDone;
      if (idle > 0) leg.idle += idle;
    }
    framer.push(chunk, chunkTime, handler);
    if (tracked) leg.chunkDone = performance.now() * 1000;
  }
  const ms = performance.now() - start;
  if (tracked) {
    // Each request's last PDU is "forwarded" and answered, so every message becomes a row.
    tracker.forwarded(record);
    tracker.close();
  }
  return { ms, rows };
}

function main(): void {
  console.log(`bench:messages — ${MESSAGES} C-STORE messages of ${DATASET / 1048576} MiB, 64 KiB chunks; framer + re-fragmenter (fit), best of ${RUNS}`);
  console.log('  fragment      PDUs   plain ns/PDU   tracked ns/PDU   cost ns/PDU   cost %');
  for (const fragment of [4096 - 12, 16384 - 12, 1048576 - 12]) {
    const { chunks, pdus } = makeStream(fragment);
    let plain = Infinity;
    let tracked = Infinity;
    for (let i = 0; i < RUNS; i++) {
      plain = Math.min(plain, run(chunks, false).ms);
      const t = run(chunks, true);
      if (t.rows !== MESSAGES) throw new Error(`expected ${MESSAGES} rows, got ${t.rows}`);
      tracked = Math.min(tracked, t.ms);
    }
    const ns = (ms: number): number => (ms * 1e6) / pdus;
    console.log(
      `  ${String(fragment).padStart(8)} ${String(pdus).padStart(9)} ${ns(plain).toFixed(0).padStart(14)} ${ns(tracked).toFixed(0).padStart(16)} ${(ns(tracked) - ns(plain)).toFixed(0).padStart(13)} ${(((tracked - plain) / plain) * 100).toFixed(1).padStart(8)}`,
    );
  }
}

main();

// npm run bench:codec — the pure core without sockets: framer alone, and framer + re-fragmenter (pass
// through, split, repack), over a 64 MiB stream of P-DATA-TF cut into 64 KiB chunks as a socket delivers
// them. Reports MB/s and ns per input PDU (best of several runs).

import { PDU_HEADER_LENGTH, PDV_HEADER_LENGTH } from '../src/pdu/constants.js';
import type { FrameHandler } from '../src/pdu/framer.js';
import { PduFramer } from '../src/pdu/framer.js';
import type { FragmentPolicy } from '../src/transform/refragment.js';
import type { PDataSink } from '../src/transform/refragment.js';
import { Refragmenter } from '../src/transform/refragment.js';
import { chunked, datasetPdus, refragmentingHandler } from './pdata-stream.js';

const STREAM_BYTES = 64 * 1024 * 1024;
const CHUNK = 64 * 1024;
const RUNS = 5;

/** A stream of single-PDV P-DATA-TF PDUs with `fragment`-byte fragments, as 64 KiB chunks. */
function makeStream(fragment: number): { chunks: Buffer[]; pdus: number } {
  const pdus = Math.max(1, Math.floor(STREAM_BYTES / (PDU_HEADER_LENGTH + PDV_HEADER_LENGTH + fragment)));
  return { chunks: chunked(datasetPdus(pdus, fragment), CHUNK), pdus };
}

class CountingSink implements PDataSink {
  bytes = 0;
  pdus = 0;
  pduStart(): void {}
  write(b: Buffer): void {
    this.bytes += b.length;
  }
  pduEnd(): void {
    this.pdus++;
  }
}

function handlerFor(refragmenter: Refragmenter | undefined): FrameHandler {
  if (!refragmenter) {
    return { onPdu() {}, onDataStart() {}, onPdvStart() {}, onPdvData() {}, onPdvEnd() {}, onDataEnd() {} };
  }
  return refragmentingHandler(refragmenter);
}

function measure(label: string, stream: { chunks: Buffer[]; pdus: number }, setup?: { limit: number; policy: FragmentPolicy }): void {
  let best = Infinity;
  let outPdus = 0;
  for (let run = 0; run < RUNS; run++) {
    const sink = new CountingSink();
    let refragmenter: Refragmenter | undefined;
    if (setup) {
      refragmenter = new Refragmenter(sink);
      refragmenter.configure(setup.limit, setup.policy);
    }
    const framer = new PduFramer();
    const handler = handlerFor(refragmenter);
    const t0 = process.hrtime.bigint();
    for (const chunk of stream.chunks) framer.push(chunk, 0, handler);
    const ns = Number(process.hrtime.bigint() - t0);
    if (ns < best) best = ns;
    outPdus = sink.pdus;
  }
  const bytes = stream.chunks.reduce((n, c) => n + c.length, 0);
  console.log(
    `  ${label.padEnd(44)} ${((bytes / best) * 1e3).toFixed(0).padStart(8)} MB/s ${(best / stream.pdus).toFixed(0).padStart(9)} ns/PDU in ${String(stream.pdus).padStart(6)} PDUs in${setup ? `, ${outPdus} out` : ''}`,
  );
}

console.log(`bench:codec — ${STREAM_BYTES / 1048576} MiB of P-DATA-TF in ${CHUNK / 1024} KiB chunks, best of ${RUNS}, node ${process.version}`);
for (const fragment of [4084, 16372, 131060, 1048564, 20971508]) {
  const stream = makeStream(fragment);
  const size = fragment + 12;
  console.log(`input PDUs of ${size} bytes on the wire (PDU-length ${fragment + 6}):`);
  measure('framer only', stream);
  measure('fit, receiver limit 20 MiB (pass through)', stream, { limit: 20 * 1048576, policy: { mode: 'fit' } });
  measure('fit, receiver limit 16 KiB (split)', stream, { limit: 16384, policy: { mode: 'fit' } });
  measure('repack to 128 KiB (merge or split)', stream, { limit: 131072, policy: { mode: 'repack' } });
}

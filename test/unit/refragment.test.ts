// Re-fragmentation (PS3.8 Annex E) as properties: whatever the input fragmentation, the receiver's limit,
// the policy and the socket chunking, the receiver gets the same bytes per stream, within its limit, in
// even fragments, one PDV per PDU, with the last bit on the final piece only and context ids and command
// bits kept. Plus hand-checked examples of each policy.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MCH_COMMAND, MCH_LAST, PDU_HEADER_LENGTH } from '../../src/pdu/constants.js';
import type { FrameHandler } from '../../src/pdu/framer.js';
import { PduFramer } from '../../src/pdu/framer.js';
import { MIN_USABLE_MAX_LENGTH, encodePData, fragmentSizeFor } from '../../src/pdu/pdata.js';
import type { FragmentPolicy } from '../../src/transform/refragment.js';
import type { PDataSink } from '../../src/transform/refragment.js';
import { MAX_MERGED_FRAGMENT, Refragmenter } from '../../src/transform/refragment.js';

/** One DIMSE stream: a command or a dataset of one message, on one presentation context. */
interface Stream {
  contextId: number;
  command: boolean;
  payload: Buffer;
  /** How the sender cut it: fragment lengths, summing to payload.length. */
  cuts: number[];
}

/** Output of the refragmenter, as the receiver sees it. */
interface OutPdu {
  bytes: Buffer;
  length: number;
  pdvs: Array<{ contextId: number; mch: number; fragment: Buffer }>;
}

/** Collects sink output and checks the sink protocol (pduStart ... pduEnd, nothing in between PDUs). */
class CollectingSink implements PDataSink {
  out: Buffer[] = [];
  pduLengths: number[] = [];
  private open = false;
  private written = 0;
  writes = 0;
  pduStart(): void {
    assert.ok(!this.open, 'pduStart while a PDU is open');
    this.open = true;
    this.written = 0;
  }
  write(bytes: Buffer): void {
    assert.ok(this.open, 'write outside a PDU');
    this.out.push(bytes);
    this.written += bytes.length;
    this.writes++;
  }
  pduEnd(length: number): void {
    assert.ok(this.open, 'pduEnd without pduStart');
    assert.equal(this.written, length + PDU_HEADER_LENGTH, 'pduEnd length matches the bytes written');
    this.open = false;
    this.pduLengths.push(length);
  }
  get isOpen(): boolean {
    return this.open;
  }
}

/** Framer events straight into a refragmenter (what Link does, minus sockets and records). */
class Feeder implements FrameHandler {
  constructor(private readonly r: Refragmenter) {}
  onPdu(): void {
    throw new Error('only P-DATA-TF in these streams');
  }
  onDataStart(length: number, header: Buffer): void {
    this.r.dataStart(length, header);
  }
  onPdvStart(itemLength: number, contextId: number, mch: number, header: Buffer): void {
    this.r.pdvStart(itemLength, contextId, mch, header);
  }
  onPdvData(bytes: Buffer): void {
    this.r.pdvData(bytes);
  }
  onPdvEnd(): void {}
  onDataEnd(): void {
    this.r.dataEnd();
  }
}

/**
 * Encode streams as the sender would: each stream's fragments in order, packed `pdvsPerPdu` PDVs (of the
 * same stream) per PDU, as real senders keep one message per PDU.
 */
function encodeStreams(streams: Stream[], pdvsPerPdu: number): Buffer[] {
  const pdus: Buffer[] = [];
  for (const s of streams) {
    const frags: Array<{ contextId: number; command: boolean; last: boolean; fragment: Buffer }> = [];
    let pos = 0;
    s.cuts.forEach((n, i) => {
      frags.push({ contextId: s.contextId, command: s.command, last: i === s.cuts.length - 1, fragment: s.payload.subarray(pos, pos + n) });
      pos += n;
    });
    for (let i = 0; i < frags.length; i += pdvsPerPdu) pdus.push(encodePData(frags.slice(i, i + pdvsPerPdu)));
  }
  return pdus;
}

/** Parse a P-DATA-TF byte stream completely (the receiver's view). */
function parseOutput(bytes: Buffer): OutPdu[] {
  const pdus: OutPdu[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    assert.equal(bytes[pos], 0x04, `P-DATA-TF type at offset ${pos}`);
    const length = bytes.readUInt32BE(pos + 2);
    const end = pos + PDU_HEADER_LENGTH + length;
    assert.ok(end <= bytes.length, 'PDU within the output');
    const pdvs: OutPdu['pdvs'] = [];
    let p = pos + PDU_HEADER_LENGTH;
    while (p < end) {
      const itemLength = bytes.readUInt32BE(p);
      pdvs.push({ contextId: bytes[p + 4]!, mch: bytes[p + 5]!, fragment: bytes.subarray(p + 6, p + 4 + itemLength) });
      p += 4 + itemLength;
    }
    assert.equal(p, end, 'PDVs fill their PDU exactly');
    pdus.push({ bytes: bytes.subarray(pos, end), length, pdvs });
    pos = end;
  }
  return pdus;
}

/** Run input PDUs, cut into socket chunks at `chunkCuts` (sizes, cycled), through framer + refragmenter. */
function run(pdus: Buffer[], receiverMax: number, policy: FragmentPolicy, chunkSizes: number[] = []): { out: Buffer; sink: CollectingSink } {
  const sink = new CollectingSink();
  const r = new Refragmenter(sink);
  r.configure(receiverMax, policy);
  const framer = new PduFramer();
  const feeder = new Feeder(r);
  const input = Buffer.concat(pdus);
  if (chunkSizes.length === 0) {
    framer.push(input, 0, feeder);
  } else {
    let pos = 0;
    let i = 0;
    while (pos < input.length) {
      const n = chunkSizes[i++ % chunkSizes.length]!;
      framer.push(input.subarray(pos, pos + n), 0, feeder);
      pos += n;
    }
  }
  r.flush();
  assert.ok(!sink.isOpen, 'no PDU left open at the end');
  assert.equal(r.pendingBytes, 0);
  return { out: Buffer.concat(sink.out), sink };
}

/** Group output fragments back into streams: consecutive PDVs of the same context and command bit up to a last bit. */
function reassemble(pdus: OutPdu[]): Array<{ contextId: number; command: boolean; payload: Buffer; fragments: number[] }> {
  const streams: Array<{ contextId: number; command: boolean; payload: Buffer; fragments: number[] }> = [];
  let parts: Buffer[] = [];
  let fragments: number[] = [];
  let current: { contextId: number; command: boolean } | undefined;
  for (const pdu of pdus) {
    for (const pdv of pdu.pdvs) {
      const command = (pdv.mch & MCH_COMMAND) !== 0;
      if (current) {
        assert.equal(pdv.contextId, current.contextId, 'a stream keeps its context id until its last fragment');
        assert.equal(command, current.command, 'a stream keeps its command bit until its last fragment');
      }
      current = { contextId: pdv.contextId, command };
      parts.push(pdv.fragment);
      fragments.push(pdv.fragment.length);
      if (pdv.mch & MCH_LAST) {
        streams.push({ ...current, payload: Buffer.concat(parts), fragments });
        parts = [];
        fragments = [];
        current = undefined;
      }
    }
  }
  assert.equal(current, undefined, 'every stream ends with a last fragment');
  return streams;
}

// ---- Generators ------------------------------------------------------------------------------------

/** Cut `total` into fragments; even lengths except (optionally) the last one, as Annex E requires. */
function cutsArb(total: number, evenOnly: boolean): fc.Arbitrary<number[]> {
  return fc.array(fc.integer({ min: 1, max: Math.max(1, total) }), { minLength: 0, maxLength: 6 }).map((points) => {
    const marks = [...new Set(points.map((p) => (evenOnly ? p & ~1 : p)).filter((p) => p > 0 && p < total))].sort((a, b) => a - b);
    const cuts: number[] = [];
    let prev = 0;
    for (const m of marks) {
      cuts.push(m - prev);
      prev = m;
    }
    cuts.push(total - prev);
    return cuts; // a zero-length payload gives [0]: one empty final fragment
  });
}

const streamArb = (evenOnly: boolean): fc.Arbitrary<Stream> =>
  fc
    .record({
      contextId: fc.constantFrom(1, 3, 5, 255),
      command: fc.boolean(),
      length: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 40_000 })),
    })
    .chain(({ contextId, command, length }) => {
      const total = evenOnly ? length & ~1 : length;
      return cutsArb(total, evenOnly).map((cuts) => {
        const payload = Buffer.allocUnsafe(total);
        for (let i = 0; i < total; i++) payload[i] = (i * 31 + contextId + (command ? 7 : 0)) & 0xff;
        return { contextId, command, payload, cuts };
      });
    });

const policyArb: fc.Arbitrary<FragmentPolicy> = fc.oneof(
  fc.constant<FragmentPolicy>({ mode: 'fit' }),
  fc.constant<FragmentPolicy>({ mode: 'repack' }),
  fc.integer({ min: 8, max: 70_000 }).map<FragmentPolicy>((size) => ({ mode: 'size', size })),
  fc.constant<FragmentPolicy>({ mode: 'size', size: 0 }),
);

/** Receiver limits: 0 (none), tiny, DCMTK-like and odd values. */
const limitArb = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 64 }), fc.constantFrom(4096, 16384, 16385, 131072), fc.integer({ min: 1, max: 50_000 }));

/**
 * Limits 1..7 cannot carry an even non-empty fragment (a PDV header is 6 bytes): the session aborts such an
 * association (A-ABORT reason 6) before anything is configured, and configure() refuses them outright.
 */
const usableLimit = (limit: number, policy: FragmentPolicy): boolean => {
  const effective = policy.mode === 'size' && policy.size !== 0 ? (limit === 0 ? policy.size : Math.min(policy.size, limit)) : limit;
  return effective === 0 || effective >= MIN_USABLE_MAX_LENGTH;
};

/** The fragment size a policy aims at for a receiver limit (mirrors the documented rule). */
function target(limit: number, policy: FragmentPolicy): number {
  const merged = (size: number): number => (size === Infinity ? size : Math.min(size, MAX_MERGED_FRAGMENT));
  if (policy.mode === 'fit') return fragmentSizeFor(limit);
  if (policy.mode === 'repack') return merged(fragmentSizeFor(limit));
  if (limit === 0) return merged(fragmentSizeFor(policy.size));
  if (policy.size === 0) return merged(fragmentSizeFor(limit));
  return merged(fragmentSizeFor(Math.min(policy.size, limit)));
}

// ---- Properties --------------------------------------------------------------------------------------

describe('re-fragmentation properties (fast-check)', () => {
  test('payload per stream identical; within the limit; even fragments; one PDV per re-cut PDU; last bit on the final piece only', () => {
    fc.assert(
      fc.property(
        fc.array(streamArb(true), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 4 }),
        limitArb,
        policyArb,
        fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 0, maxLength: 5 }),
        (streams, pdvsPerPdu, limit, policy, chunkSizes) => {
          const input = encodeStreams(streams, pdvsPerPdu);
          if (!usableLimit(limit, policy)) {
            assert.throws(() => new Refragmenter(new CollectingSink()).configure(limit, policy), RangeError, `limit ${limit} refused`);
            return;
          }
          const { out } = run(input, limit, policy, chunkSizes);
          const pdus = parseOutput(out);
          const got = reassemble(pdus);
          // Same streams, same order, same bytes, same context ids and command bits.
          assert.equal(got.length, streams.length);
          streams.forEach((s, i) => {
            assert.equal(got[i]!.contextId, s.contextId);
            assert.equal(got[i]!.command, s.command);
            assert.ok(got[i]!.payload.equals(s.payload), `stream ${i} payload identical`);
          });
          const inputSet = new Set(input.map((b) => b.toString('hex')));
          for (const pdu of pdus) {
            if (limit !== 0) assert.ok(pdu.length <= limit, `PDU-length ${pdu.length} within the receiver's ${limit}`);
            const unchanged = inputSet.has(pdu.bytes.toString('hex'));
            if (!unchanged) assert.equal(pdu.pdvs.length, 1, 'a PDU the proxy built carries one PDV');
            for (const pdv of pdu.pdvs) assert.equal(pdv.fragment.length % 2, 0, 'fragments are even');
          }
          const t = target(limit, policy);
          if (policy.mode !== 'fit' && t !== Infinity) {
            // Merging: every fragment but a stream's last is exactly the target.
            for (const s of got) s.fragments.slice(0, -1).forEach((n) => assert.equal(n, t, `non-final fragment ${n} is the target ${t}`));
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  test('fit: a PDU within the limit passes byte for byte (one write, no copy), larger ones are split', () => {
    fc.assert(
      fc.property(fc.array(streamArb(true), { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 3 }), limitArb, (streams, pdvsPerPdu, limit) => {
        if (!usableLimit(limit, { mode: 'fit' })) return;
        const input = encodeStreams(streams, pdvsPerPdu);
        const { out, sink } = run(input, limit, { mode: 'fit' });
        const pdus = parseOutput(out);
        const size = fragmentSizeFor(limit);
        let o = 0;
        for (const pdu of input) {
          if (limit === 0 || pdu.readUInt32BE(2) <= limit) {
            assert.ok(pdus[o]!.bytes.equals(pdu), 'a PDU within the limit is forwarded unchanged');
            o++;
            continue;
          }
          // Split: each of its PDVs becomes ceil(n / size) single-PDV PDUs (one for an empty fragment).
          for (const pdv of parseOutput(pdu)[0]!.pdvs) {
            const pieces = Math.max(1, Math.ceil(pdv.fragment.length / size));
            for (let k = 0; k < pieces; k++) {
              const piece = pdus[o++]!;
              assert.equal(piece.pdvs.length, 1);
              assert.equal(piece.pdvs[0]!.fragment.length, k < pieces - 1 ? size : pdv.fragment.length - size * (pieces - 1));
              assert.equal(piece.pdvs[0]!.mch, k < pieces - 1 ? pdv.mch & ~MCH_LAST : pdv.mch);
            }
          }
        }
        assert.equal(o, pdus.length, 'nothing else was sent');
        assert.equal(sink.pduLengths.length, pdus.length);
      }),
      { numRuns: 200 },
    );
  });

  test('an odd final fragment (a sender with an odd total) stays last; everything before it is even', () => {
    fc.assert(
      fc.property(streamArb(false), limitArb, policyArb, (stream, limit, policy) => {
        if (!usableLimit(limit, policy)) return;
        const { out } = run(encodeStreams([stream], 1), limit, policy, [777]);
        const [got] = reassemble(parseOutput(out));
        assert.ok(got!.payload.equals(stream.payload));
        // Only the sender's own odd cuts can appear odd; re-cut pieces are even, so a re-cut stream has at most
        // as many odd fragments as the input had.
        const oddIn = stream.cuts.filter((n) => n % 2 === 1).length;
        const oddOut = got!.fragments.filter((n) => n % 2 === 1).length;
        assert.ok(oddOut <= oddIn, `${oddOut} odd output fragments for ${oddIn} odd input ones`);
      }),
      { numRuns: 300 },
    );
  });
});

// ---- Hand-checked examples ----------------------------------------------------------------------

describe('re-fragmentation examples', () => {
  const payload = Buffer.alloc(100, 0xab);
  const oneBig = encodePData([{ contextId: 1, command: false, last: true, fragment: payload }]);

  test('fit, limit 40: a 106-byte PDU becomes fragments of 34, 34, 32 (floor((40-6)/2)*2 = 34)', () => {
    const pdus = parseOutput(run([oneBig], 40, { mode: 'fit' }).out);
    assert.deepEqual(
      pdus.map((p) => [p.length, p.pdvs[0]!.fragment.length, p.pdvs[0]!.mch]),
      [
        [40, 34, 0x00],
        [40, 34, 0x00],
        [38, 32, 0x02],
      ],
    );
  });

  test('fit, limit 0 or >= 106: forwarded as the same bytes', () => {
    for (const limit of [0, 106, 16384]) {
      const { out, sink } = run([oneBig], limit, { mode: 'fit' });
      assert.ok(out.equals(oneBig));
      assert.deepEqual(sink.pduLengths, [106]);
    }
  });

  test('repack, limit 60: ten 10-byte fragments become 54 + 46 (merged and split)', () => {
    const ten = Array.from({ length: 10 }, (_, i) => encodePData([{ contextId: 3, command: false, last: i === 9, fragment: payload.subarray(i * 10, i * 10 + 10) }]));
    const pdus = parseOutput(run(ten, 60, { mode: 'repack' }).out);
    assert.deepEqual(
      pdus.map((p) => [p.length, p.pdvs.length, p.pdvs[0]!.contextId, p.pdvs[0]!.fragment.length, p.pdvs[0]!.mch]),
      [
        [60, 1, 3, 54, 0x00],
        [52, 1, 3, 46, 0x02],
      ],
    );
  });

  test('SIZE 30 under a limit of 60: fragments of 24 (min(30, 60) - 6)', () => {
    const pdus = parseOutput(run([oneBig], 60, { mode: 'size', size: 30 }).out);
    assert.deepEqual(
      pdus.map((p) => p.pdvs[0]!.fragment.length),
      [24, 24, 24, 24, 4],
    );
  });

  test('command and dataset bytes are never merged; the command keeps its bit', () => {
    const msg = [
      encodePData([{ contextId: 1, command: true, last: true, fragment: Buffer.alloc(8, 1) }]),
      encodePData([{ contextId: 1, command: false, last: false, fragment: Buffer.alloc(8, 2) }]),
      encodePData([{ contextId: 1, command: false, last: true, fragment: Buffer.alloc(8, 3) }]),
    ];
    const pdus = parseOutput(run(msg, 1000, { mode: 'repack' }).out);
    assert.deepEqual(
      pdus.map((p) => [p.pdvs[0]!.mch, p.pdvs[0]!.fragment.toString('hex')]),
      [
        [MCH_COMMAND | MCH_LAST, '0101010101010101'],
        [MCH_LAST, '02020202020202020303030303030303'],
      ],
    );
  });

  test('repack: an empty final fragment carries the last bit on the merged bytes', () => {
    const pdus = parseOutput(
      run(
        [
          encodePData([{ contextId: 1, command: false, last: false, fragment: Buffer.alloc(6, 9) }]),
          encodePData([{ contextId: 1, command: false, last: true, fragment: Buffer.alloc(0) }]),
        ],
        1000,
        { mode: 'repack' },
      ).out,
    );
    assert.deepEqual(
      pdus.map((p) => [p.pdvs[0]!.mch, p.pdvs[0]!.fragment.length]),
      [[MCH_LAST, 6]],
    );
  });
});

describe('re-fragmentation: what merging holds', () => {
  /** A sink that keeps copies of what it is given (so later writes into the input cannot change them). */
  class CopyingSink extends CollectingSink {
    override write(bytes: Buffer): void {
      super.write(Buffer.from(bytes));
    }
  }

  test('repack copies the bytes it holds: one data byte per socket chunk (and empty PDVs) pins no chunk', () => {
    const sink = new CopyingSink();
    const r = new Refragmenter(sink);
    r.configure(16384, { mode: 'repack' });
    const bytes = 3000;
    const expected = Buffer.alloc(bytes);
    r.dataStart(6 + 6 * 2 * bytes, Buffer.from('040000000000', 'hex'));
    for (let i = 0; i < bytes; i++) {
      // A fresh 64 KiB socket chunk per byte; the byte is a view of it, as the framer hands it on.
      const chunk = Buffer.alloc(65536, i & 0xff);
      expected[i] = i & 0xff;
      r.pdvStart(3, 1, i === bytes - 1 ? MCH_LAST : 0, Buffer.alloc(6));
      r.pdvData(chunk.subarray(100, 101));
      r.pdvStart(2, 1, 0, Buffer.alloc(6)); // an empty non-final PDV
      // The socket's buffer is reused by nobody else in the proxy, but a view would still pin all 64 KiB
      // of it: overwrite it to see whether the refragmenter kept one.
      chunk.fill(0xee);
      assert.ok(r.heldBytes <= fragmentSizeFor(16384), `held ${r.heldBytes}`);
    }
    r.dataEnd();
    const [stream] = reassemble(parseOutput(Buffer.concat(sink.out)));
    assert.ok(stream!.payload.equals(expected), 'the bytes merged are the bytes received, not what their chunks hold later');
  });

  test('a receiver announcing ~4 GiB: repack holds at most MAX_MERGED_FRAGMENT, not the whole message', () => {
    const sink = new CollectingSink();
    const r = new Refragmenter(sink);
    r.configure(0xfffffffe, { mode: 'repack' });
    const fragment = Buffer.alloc(16384, 0x5a);
    const count = 1024; // 16 MiB, sent as 16 KiB non-final fragments
    let maxPending = 0;
    for (let i = 0; i < count; i++) {
      r.dataStart(6 + fragment.length, Buffer.from('040000000000', 'hex'));
      r.pdvStart(fragment.length + 2, 1, i === count - 1 ? MCH_LAST : 0, Buffer.alloc(6));
      r.pdvData(fragment);
      r.dataEnd();
      maxPending = Math.max(maxPending, r.pendingBytes, r.heldBytes);
    }
    assert.ok(maxPending <= MAX_MERGED_FRAGMENT, `held ${maxPending} bytes`);
    assert.deepEqual(sink.pduLengths, [6 + MAX_MERGED_FRAGMENT, 6 + MAX_MERGED_FRAGMENT, 6 + MAX_MERGED_FRAGMENT, 6 + MAX_MERGED_FRAGMENT]);
  });
});

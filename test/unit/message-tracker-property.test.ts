// Properties of the MessageTracker (fast-check): however a sequence of messages is cut into PDVs, PDUs and
// pieces, the rows are the same; and no event sequence at all, however malformed, makes it throw (an
// exception inside the link's event handlers would abort a transfer the tracker only watches).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MessageTracker } from '../../src/dimse/tracker.js';
import type { Direction, MessageRecord, PduRecord } from '../../src/events/events.js';
import { C_ECHO_RQ, C_ECHO_RSP, C_FIND_RSP_PENDING, commandSet } from '../fixtures/annotated-commands.js';

const COMMAND = 0x01;
const LAST = 0x02;
const zero = { idleUs: () => 0, blockedUs: () => 0, busyUs: () => 0 };

function newTracker(rows: MessageRecord[]): MessageTracker {
  return new MessageTracker(1, { to_scp: zero, to_scu: zero }, 0, { message: (m) => rows.push(m), undecodable: () => undefined });
}

const record = (direction: Direction): PduRecord => ({
  assoc: 1,
  direction,
  seq: 0,
  type: 'P-DATA-TF',
  length: 0,
  pdvs: 0,
  contextId: undefined,
  kind: '',
  last: false,
  firstByteUs: 0,
  lastByteUs: 0,
  forwardedUs: 0,
  outPdus: 0,
  outMaxLength: 0,
  violation: false,
});

interface Msg {
  direction: Direction;
  command: Buffer;
  /** Data set bytes; undefined when the command announces none. 0 is an announced, empty data set. */
  dataset: number | undefined;
}

/** Send one message (command stream, then data set stream) cut at `cuts` (fractions) into PDVs of `perPdu` per PDU, each in `piece`-byte pieces. */
function send(t: MessageTracker, m: Msg, cuts: number[], perPdu: number, piece: number, clock: { us: number }): void {
  const streams: Array<{ bytes: Buffer; command: boolean }> = [{ bytes: m.command, command: true }];
  if (m.dataset !== undefined) streams.push({ bytes: Buffer.alloc(m.dataset, 7), command: false });
  const pdvs: Array<{ bytes: Buffer; mch: number }> = [];
  for (const s of streams) {
    const points = [...new Set(cuts.map((c) => Math.floor(c * s.bytes.length)))].filter((p) => p > 0 && p < s.bytes.length).sort((a, b) => a - b);
    const edges = [0, ...points, s.bytes.length];
    for (let i = 0; i + 1 < edges.length; i++) {
      pdvs.push({ bytes: s.bytes.subarray(edges[i], edges[i + 1]), mch: (s.command ? COMMAND : 0) | (i + 2 === edges.length ? LAST : 0) });
    }
  }
  for (let i = 0; i < pdvs.length; i += perPdu) {
    const rec = record(m.direction);
    t.dataStart(m.direction, clock.us++, 0, 0, 0);
    for (const pdv of pdvs.slice(i, i + perPdu)) {
      // PDVs in stream order; one P-DATA-TF may hold the end of the command and the start of the data set.
      t.pdvStart(m.direction, 1, pdv.mch);
      for (let at = 0; at < pdv.bytes.length; at += piece) t.pdvData(m.direction, pdv.bytes.subarray(at, at + piece));
      t.pdvEnd(m.direction, clock.us++, rec);
    }
    t.forwarded(rec);
  }
}

const storeRq = (id: number, uid: string): Buffer =>
  commandSet([
    [0x0002, '1.2.840.10008.5.1.4.1.1.7'],
    [0x0100, 0x0001],
    [0x0110, id],
    [0x0800, 0],
    [0x1000, uid],
  ]);
const storeRsp = (id: number): Buffer =>
  commandSet([
    [0x0100, 0x8001],
    [0x0120, id],
    [0x0800, 0x0101],
    [0x0900, 0],
  ]);

describe('MessageTracker properties', () => {
  test('rows do not depend on how messages are cut into PDVs, PDUs and pieces', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ dataset: fc.integer({ min: 0, max: 3000 }), echo: fc.boolean() }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 200 }),
        (specs, cuts, perPdu, piece) => {
          const rows: MessageRecord[] = [];
          const t = newTracker(rows);
          const clock = { us: 1 };
          specs.forEach((spec, i) => {
            const id = i + 1;
            if (spec.echo) {
              send(
                t,
                {
                  direction: 'to_scp',
                  command: commandSet([
                    [0x0100, 0x0030],
                    [0x0110, id],
                    [0x0800, 0x0101],
                  ]),
                  dataset: undefined,
                },
                cuts,
                perPdu,
                piece,
                clock,
              );
              send(
                t,
                {
                  direction: 'to_scu',
                  command: commandSet([
                    [0x0100, 0x8030],
                    [0x0120, id],
                    [0x0800, 0x0101],
                    [0x0900, 0],
                  ]),
                  dataset: undefined,
                },
                cuts,
                perPdu,
                piece,
                clock,
              );
            } else {
              send(t, { direction: 'to_scp', command: storeRq(id, `1.2.${id}`), dataset: spec.dataset }, cuts, perPdu, piece, clock);
              send(t, { direction: 'to_scu', command: storeRsp(id), dataset: undefined }, cuts, perPdu, piece, clock);
            }
          });
          t.close();
          assert.deepEqual(
            rows.map((r) => [r.messageId, r.command, r.bytes, r.sopInstanceUid, r.status]),
            specs.map((s, i) => (s.echo ? [i + 1, 'C-ECHO-RQ', 0, '', 0] : [i + 1, 'C-STORE-RQ', s.dataset, `1.2.${i + 1}`, 0])),
          );
          for (const r of rows) {
            assert.ok(r.requestFirstByteUs <= r.requestLastByteUs! && r.requestLastByteUs! < r.responseFirstByteUs! && r.responseFirstByteUs! <= r.responseLastByteUs!);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('no event sequence makes it throw', () => {
    const fragments = [C_ECHO_RQ, C_ECHO_RSP, C_FIND_RSP_PENDING, storeRq(1, '1.2'), storeRsp(1), Buffer.alloc(0)];
    const event = fc.oneof(
      fc.record({ kind: fc.constant('start' as const), dir: fc.constantFrom<Direction>('to_scp', 'to_scu') }),
      fc.record({ kind: fc.constant('pdv' as const), dir: fc.constantFrom<Direction>('to_scp', 'to_scu'), mch: fc.integer({ min: 0, max: 255 }) }),
      fc.record({
        kind: fc.constant('data' as const),
        dir: fc.constantFrom<Direction>('to_scp', 'to_scu'),
        bytes: fc.oneof(
          fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
          fc.constantFrom(...fragments),
          fc.constant(Buffer.alloc(70_000)),
        ),
        cut: fc.nat(),
      }),
      fc.record({ kind: fc.constant('end' as const), dir: fc.constantFrom<Direction>('to_scp', 'to_scu') }),
      fc.record({ kind: fc.constant('forward' as const), dir: fc.constantFrom<Direction>('to_scp', 'to_scu') }),
      fc.record({ kind: fc.constant('limits' as const) }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        const rows: MessageRecord[] = [];
        const t = newTracker(rows);
        const records = { to_scp: record('to_scp'), to_scu: record('to_scu') };
        let us = 0;
        for (const e of events) {
          switch (e.kind) {
            case 'start':
              t.dataStart(e.dir, us++, 0, 0, 0);
              break;
            case 'pdv':
              t.pdvStart(e.dir, 1, e.mch);
              break;
            case 'data': {
              const at = e.bytes.length ? e.cut % e.bytes.length : 0;
              if (at > 0) t.pdvData(e.dir, e.bytes.subarray(0, at));
              if (e.bytes.length > at) t.pdvData(e.dir, e.bytes.subarray(at));
              break;
            }
            case 'end':
              t.pdvEnd(e.dir, us++, records[e.dir]);
              break;
            case 'forward':
              t.forwarded(records[e.dir]);
              records[e.dir] = record(e.dir);
              break;
            case 'limits':
              t.setLimits(16384, 16384);
              break;
          }
        }
        t.close();
        for (const r of rows) assert.equal(typeof r.messageId, 'number');
      }),
      { numRuns: 1000 },
    );
  });
});

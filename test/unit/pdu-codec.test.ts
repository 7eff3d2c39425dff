// A-ASSOCIATE codec and fixed PDUs against annotated fixtures (test/fixtures/annotated-pdus.ts).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  applicationContext,
  calledAe,
  callingAe,
  decodeAssociate,
  encodeAssociate,
  implementationClassUid,
  implementationVersionName,
  maxLength,
  presentationContextsAc,
  presentationContextsRq,
  protocolVersion,
  rewriteMaxLength,
} from '../../src/pdu/associate.js';
import { decodeAbort, decodeReject, describeAbort, encodeAbort, encodeReleaseRp, encodeReleaseRq, encodeReject, encodeUpstreamUnavailableReject } from '../../src/pdu/control.js';
import { ProtocolError } from '../../src/pdu/errors.js';
import { encodePData, fragmentSizeFor, singlePdvHeader } from '../../src/pdu/pdata.js';
import * as F from '../fixtures/annotated-pdus.js';

const ASSOCIATION_FIXTURES = {
  ECHOSCU_RQ: F.ECHOSCU_RQ,
  STORESCP_AC: F.STORESCP_AC,
  AC_WITH_UNKNOWN_ITEMS: F.AC_WITH_UNKNOWN_ITEMS,
  RQ_WITHOUT_MAX_LENGTH: F.RQ_WITHOUT_MAX_LENGTH,
};

describe('A-ASSOCIATE-RQ/AC decode', () => {
  test('echoscu RQ fields', () => {
    const rq = decodeAssociate(F.ECHOSCU_RQ);
    assert.equal(protocolVersion(rq), 1);
    assert.equal(calledAe(rq), 'ANY-SCP');
    assert.equal(callingAe(rq), 'ECHOSCU');
    assert.equal(applicationContext(rq), '1.2.840.10008.3.1.1.1');
    assert.deepEqual(presentationContextsRq(rq), [{ id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] }]);
    assert.equal(maxLength(rq), 16384);
    assert.equal(implementationClassUid(rq), '1.2.276.0.7230010.3.0.3.6.7');
    assert.equal(implementationVersionName(rq), 'OFFIS_DCMTK_367');
  });

  test('storescp AC fields', () => {
    const ac = decodeAssociate(F.STORESCP_AC);
    assert.deepEqual(presentationContextsAc(ac), [{ id: 1, result: 0, transferSyntax: '1.2.840.10008.1.2' }]);
    assert.equal(maxLength(ac), 16384);
  });

  test('AC with a rejected context and unknown items', () => {
    const ac = decodeAssociate(F.AC_WITH_UNKNOWN_ITEMS);
    assert.deepEqual(presentationContextsAc(ac), [{ id: 3, result: 3, transferSyntax: '' }]);
    assert.equal(maxLength(ac), 65536);
    const unknown = ac.items.find((i) => i.type === 0x7f)!;
    assert.deepEqual(unknown.head, Buffer.from([0xab, 0xcd]));
    const sub = ac.items.find((i) => i.type === 0x50)!.children!.find((c) => c.type === 0x5f)!;
    assert.equal(sub.reserved, 0x33);
    assert.deepEqual(sub.head, Buffer.from([1, 2, 3]));
  });

  test('RQ without a Maximum Length sub-item', () => {
    const rq = decodeAssociate(F.RQ_WITHOUT_MAX_LENGTH);
    assert.equal(maxLength(rq), undefined);
    assert.equal(implementationClassUid(rq), '1.2.3');
  });

  for (const [name, bytes] of Object.entries(ASSOCIATION_FIXTURES)) {
    test(`decode -> encode is the identity: ${name}`, () => {
      assert.deepEqual(encodeAssociate(decodeAssociate(bytes)), bytes);
    });
  }
});

describe('Maximum Length rewrite', () => {
  test('in place: exactly the 4 value bytes change, the input is untouched', () => {
    const original = Buffer.from(F.ECHOSCU_RQ);
    const out = rewriteMaxLength(F.ECHOSCU_RQ, decodeAssociate(F.ECHOSCU_RQ), 1048576);
    assert.deepEqual(F.ECHOSCU_RQ, original, 'input not written');
    assert.equal(out.length, F.ECHOSCU_RQ.length);
    const changed = [...out].flatMap((b, i) => (b === F.ECHOSCU_RQ[i] ? [] : [i]));
    const at = F.ECHOSCU_RQ_MAX_LENGTH_AT;
    assert.ok(
      changed.every((i) => i >= at && i < at + 4),
      `changed bytes ${changed}`,
    );
    assert.equal(out.readUInt32BE(at), 1048576);
  });

  test('unknown items survive a rewrite byte for byte', () => {
    const out = rewriteMaxLength(F.AC_WITH_UNKNOWN_ITEMS, decodeAssociate(F.AC_WITH_UNKNOWN_ITEMS), 0);
    const expected = Buffer.from(F.AC_WITH_UNKNOWN_ITEMS);
    expected.writeUInt32BE(0, 117 + 4 + 4); // user information at 117, Maximum Length sub-item value after its header
    assert.deepEqual(out, expected);
  });

  test('absent: a sub-item is inserted first in user information, lengths re-derived, all else kept', () => {
    const out = rewriteMaxLength(F.RQ_WITHOUT_MAX_LENGTH, decodeAssociate(F.RQ_WITHOUT_MAX_LENGTH), 32768);
    assert.equal(out.length, F.RQ_WITHOUT_MAX_LENGTH.length + 8);
    assert.equal(out.readUInt32BE(2), out.length - 6);
    const decoded = decodeAssociate(out);
    assert.equal(maxLength(decoded), 32768);
    assert.equal(implementationClassUid(decoded), '1.2.3');
    assert.equal(callingAe(decoded), 'SCU');
  });

  test('a user information item is appended when there is none', () => {
    const rq = decodeAssociate(F.RQ_WITHOUT_MAX_LENGTH);
    const bare = encodeAssociate({ ...rq, items: rq.items.filter((i) => i.type !== 0x50) });
    const out = rewriteMaxLength(bare, decodeAssociate(bare), 4096);
    assert.equal(maxLength(decodeAssociate(out)), 4096);
  });
});

describe('A-ASSOCIATE errors', () => {
  const cases: Array<[string, Buffer, string]> = [
    ['an item overrunning its PDU', patch(F.ECHOSCU_RQ, 74 + 2, [0xff, 0xf0]), 'item-overrun'],
    ['a sub-item overrunning its parent item', patch(F.ECHOSCU_RQ, 153 + 2, [0x00, 0x40]), 'item-overrun'],
    ['1 stray byte after the last item', withTail(F.ECHOSCU_RQ, [0x00]), 'item-too-short'],
    ['3 stray bytes after the last item', withTail(F.ECHOSCU_RQ, [0x10, 0x00, 0x00]), 'item-too-short'],
    ['PDU-length not matching the bytes', patch(F.ECHOSCU_RQ, 2, [0, 0, 0, 0xcc]), 'item-overrun'],
    ['PDU-length below the fixed part', patch(F.ECHOSCU_RQ.subarray(0, 40), 2, [0, 0, 0, 34]), 'association-pdu-too-short'],
    ['a presentation context shorter than its 4 fixed bytes', presentationContextOfLength(2), 'item-too-short'],
  ];
  for (const [name, bytes, code] of cases) {
    test(name, () => {
      assert.throws(
        () => decodeAssociate(bytes),
        (err: unknown) => err instanceof ProtocolError && err.code === code && err.reason === 6,
      );
    });
  }

  test('a Maximum Length sub-item that is not 4 bytes', () => {
    const rq = decodeAssociate(F.ECHOSCU_RQ);
    const bad = encodeAssociate({
      ...rq,
      items: rq.items.map((i) => (i.type === 0x50 ? { ...i, children: [{ type: 0x51, reserved: 0, head: Buffer.from([0, 0x40]) }] } : i)),
    });
    assert.throws(
      () => maxLength(decodeAssociate(bad)),
      (err: unknown) => err instanceof ProtocolError && err.code === 'item-too-short',
    );
  });
});

describe('fixed PDUs and P-DATA headers', () => {
  test('encoders match the fixtures', () => {
    assert.deepEqual(encodeReject(1, 1, 3), F.RJ_CALLING_AE);
    assert.deepEqual(encodeUpstreamUnavailableReject(), F.RJ_UPSTREAM_UNAVAILABLE);
    assert.deepEqual(encodeReleaseRq(), F.RELEASE_RQ);
    assert.deepEqual(encodeReleaseRp(), F.RELEASE_RP);
    assert.deepEqual(encodeAbort(2, 2), F.ABORT_UNEXPECTED_PDU);
  });

  test('decoders', () => {
    assert.deepEqual(decodeReject(F.RJ_CALLING_AE), { result: 1, source: 1, reason: 3 });
    assert.deepEqual(decodeAbort(F.ABORT_UNEXPECTED_PDU), { source: 2, reason: 2 });
    assert.equal(describeAbort(decodeAbort(F.ABORT_UNEXPECTED_PDU)), 'service-provider: unexpected-PDU');
    assert.equal(describeAbort({ source: 0, reason: 0 }), 'service-user: reason-0');
  });

  test('encodePData reproduces the annotated P-DATA-TF fixtures', () => {
    assert.deepEqual(encodePData([{ contextId: 1, command: true, last: true, fragment: F.C_ECHO_RQ_COMMAND }]), F.PDATA_ECHO_COMMAND);
    assert.deepEqual(
      encodePData([
        { contextId: 3, command: false, last: false, fragment: Buffer.from('00112233445566778899', 'hex') },
        { contextId: 3, command: false, last: true, fragment: Buffer.from('aabbccdd', 'hex') },
      ]),
      F.PDATA_TWO_DATASET_PDVS,
    );
  });

  test('singlePdvHeader is the first 12 bytes of a one-PDV P-DATA-TF', () => {
    assert.deepEqual(singlePdvHeader(F.C_ECHO_RQ_COMMAND.length, 1, 3), F.PDATA_ECHO_COMMAND.subarray(0, 12));
  });

  test('fragmentSizeFor: floor((L - 6) / 2) * 2, 0 = no maximum, 1..7 refused (no even fragment fits)', () => {
    assert.equal(fragmentSizeFor(16384), 16378);
    assert.equal(fragmentSizeFor(16385), 16378);
    assert.equal(fragmentSizeFor(131072), 131066);
    assert.equal(fragmentSizeFor(0), Infinity);
    assert.equal(fragmentSizeFor(8), 2);
    assert.equal(fragmentSizeFor(9), 2);
    // A fragment of 2 would make an 8-byte PDU-length, over such a limit: the session aborts instead.
    for (const limit of [1, 6, 7]) assert.throws(() => fragmentSizeFor(limit), RangeError);
  });
});

function patch(source: Buffer, at: number, bytes: number[]): Buffer {
  const copy = Buffer.from(source);
  Buffer.from(bytes).copy(copy, at);
  return copy;
}

function withTail(source: Buffer, tail: number[]): Buffer {
  const out = Buffer.concat([source, Buffer.from(tail)]);
  out.writeUInt32BE(out.length - 6, 2);
  return out;
}

function presentationContextOfLength(length: number): Buffer {
  const rq = Buffer.concat([F.ECHOSCU_RQ.subarray(0, 74), Buffer.from([0x20, 0, 0, length]), Buffer.alloc(length)]);
  rq.writeUInt32BE(rq.length - 6, 2);
  return rq;
}

// rewriteMaxLength when the PDU has no Maximum Length sub-item and its user information item is too full
// to take one (found by the associate fuzz target): the 8-byte sub-item would push the item past its
// UInt16 length. That is the peer's PDU at fault (a conformant RQ/AC carries a Maximum Length), so it is a
// ProtocolError (A-ABORT reason 6, with the reason logged), not an internal error.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeAssociate, encodeAssociate, maxLength, rewriteMaxLength } from '../../src/pdu/associate.js';
import type { Item } from '../../src/pdu/associate.js';
import { AbortReason, ItemType } from '../../src/pdu/constants.js';
import { ProtocolError } from '../../src/pdu/errors.js';
import { buildRq } from '../helpers/raw.js';

/** An RQ without Maximum Length whose user information item is `free` bytes short of 65535. */
function fullRq(free: number): Buffer {
  // buildRq's user information holds an 18-byte implementation class UID sub-item; the identity fills the rest.
  const identity: Item = { type: ItemType.UserIdentityRq, reserved: 0, head: Buffer.alloc(0xffff - 18 - 4 - free, 0x41) };
  const rq = buildRq({ maxLength: undefined, extraUserItems: [identity] });
  const userInfo = decodeAssociate(rq).items.find((i) => i.type === ItemType.UserInformation)!;
  assert.equal(rq.readUInt16BE(userInfo.offset! + 2), 0xffff - free, 'the fixture fills the user information item');
  return rq;
}

test('no room for a Maximum Length sub-item: ProtocolError item-overrun, abort reason 6', () => {
  for (const free of [0, 1, 7]) {
    const rq = fullRq(free);
    assert.throws(
      () => rewriteMaxLength(rq, decodeAssociate(rq), 16384),
      (err: unknown) =>
        err instanceof ProtocolError && err.code === 'item-overrun' && err.reason === AbortReason.InvalidPduParameterValue && /no room for a Maximum Length/.test(err.message),
      `free ${free}`,
    );
  }
});

test('exactly room for it (8 bytes free): inserted, and the item is 65535 bytes', () => {
  const rq = fullRq(8);
  const out = rewriteMaxLength(rq, decodeAssociate(rq), 16384);
  const decoded = decodeAssociate(out);
  assert.equal(maxLength(decoded), 16384);
  const userInfo = decoded.items.find((i) => i.type === ItemType.UserInformation)!;
  assert.equal(out.readUInt16BE(userInfo.offset! + 2), 0xffff);
  assert.deepEqual(encodeAssociate(decoded), out);
});

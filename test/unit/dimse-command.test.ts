// The DIMSE command set decoder against annotated fixtures (test/fixtures/annotated-commands.ts), with
// dcmjs's own implicit VR LE reader as an independent oracle, and every malformed-input path.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import dcmjs from 'dcmjs';
import { CommandSetError, MAX_COMMAND_SET_LENGTH, NO_DATA_SET, commandName, decodeCommandSet, isPending, statusHex } from '../../src/dimse/command.js';
import {
  COMMAND_FIXTURES,
  C_ECHO_RQ,
  C_ECHO_RSP,
  C_FIND_RSP_PENDING,
  C_STORE_RQ,
  C_STORE_RSP,
  INSTANCE_UID,
  SECONDARY_CAPTURE_UID,
  STUDY_ROOT_FIND_UID,
  VERIFICATION_UID,
  commandSet,
} from '../fixtures/annotated-commands.js';

const { DicomMessage, ReadBufferStream } = dcmjs.data;

/** dcmjs's reading of a command set: tag (gggg eeee, upper case hex) -> first value. */
function dcmjsRead(bytes: Buffer): Map<string, unknown> {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
  const dict = DicomMessage._read(new ReadBufferStream(ab), '1.2.840.10008.1.2', {});
  return new Map(Object.entries(dict).map(([tag, el]) => [tag.toUpperCase(), el.Value?.[0]]));
}

describe('decodeCommandSet: annotated fixtures', () => {
  test('C-ECHO-RQ', () => {
    assert.deepEqual(decodeCommandSet(C_ECHO_RQ), {
      commandField: 0x0030,
      messageId: 1,
      messageIdBeingRespondedTo: undefined,
      dataSetType: NO_DATA_SET,
      status: undefined,
      affectedSopClassUid: VERIFICATION_UID,
      affectedSopInstanceUid: undefined,
    });
  });

  test('C-ECHO-RSP', () => {
    assert.deepEqual(decodeCommandSet(C_ECHO_RSP), {
      commandField: 0x8030,
      messageId: undefined,
      messageIdBeingRespondedTo: 1,
      dataSetType: NO_DATA_SET,
      status: 0x0000,
      affectedSopClassUid: VERIFICATION_UID,
      affectedSopInstanceUid: undefined,
    });
  });

  test('C-STORE-RQ: UIDs without their NUL padding, a data set follows', () => {
    assert.deepEqual(decodeCommandSet(C_STORE_RQ), {
      commandField: 0x0001,
      messageId: 7,
      messageIdBeingRespondedTo: undefined,
      dataSetType: 0x0002,
      status: undefined,
      affectedSopClassUid: SECONDARY_CAPTURE_UID,
      affectedSopInstanceUid: INSTANCE_UID,
    });
  });

  test('C-STORE-RSP', () => {
    assert.deepEqual(decodeCommandSet(C_STORE_RSP), {
      commandField: 0x8001,
      messageId: undefined,
      messageIdBeingRespondedTo: 7,
      dataSetType: NO_DATA_SET,
      status: 0x0000,
      affectedSopClassUid: SECONDARY_CAPTURE_UID,
      affectedSopInstanceUid: INSTANCE_UID,
    });
  });

  test('C-FIND-RSP pending (ff00) with an identifier', () => {
    const c = decodeCommandSet(C_FIND_RSP_PENDING);
    assert.equal(c.commandField, 0x8020);
    assert.equal(c.messageIdBeingRespondedTo, 3);
    assert.equal(c.status, 0xff00);
    assert.ok(isPending(c.status));
    assert.notEqual(c.dataSetType, NO_DATA_SET);
    assert.equal(c.affectedSopClassUid, STUDY_ROOT_FIND_UID);
  });

  for (const [name, bytes] of Object.entries(COMMAND_FIXTURES)) {
    test(`${name}: the fixture is consistent and dcmjs reads the same values`, () => {
      // CommandGroupLength counts every byte after its own 12-byte element.
      assert.equal(bytes.readUInt32LE(8), bytes.length - 12);
      const oracle = dcmjsRead(bytes);
      const c = decodeCommandSet(bytes);
      assert.equal(c.commandField, oracle.get('00000100'));
      assert.equal(c.messageId, oracle.get('00000110'));
      assert.equal(c.messageIdBeingRespondedTo, oracle.get('00000120'));
      assert.equal(c.dataSetType, oracle.get('00000800'));
      assert.equal(c.status, oracle.get('00000900'));
      assert.equal(c.affectedSopClassUid, oracle.get('00000002'));
      assert.equal(c.affectedSopInstanceUid, oracle.get('00001000'));
    });
  }
});

describe('decodeCommandSet: other inputs', () => {
  test('unknown group 0000 elements are skipped by their length; no group length is fine', () => {
    const bytes = commandSet([
      [0x0600, 'MOVEDEST'], // MoveDestination (AE)
      [0x0100, 0x0021],
      [0x0110, 9],
      [0x1020, 4], // NumberOfRemainingSuboperations
      [0x0800, NO_DATA_SET],
    ]).subarray(12);
    const c = decodeCommandSet(bytes);
    assert.equal(c.commandField, 0x0021);
    assert.equal(c.messageId, 9);
  });

  test('blank padding on a UID is dropped too', () => {
    assert.equal(decodeCommandSet(commandSet([[0x1000, '1.2.3 ']])).affectedSopInstanceUid, '1.2.3');
  });

  test('an empty command set decodes to nothing', () => {
    assert.equal(decodeCommandSet(Buffer.alloc(0)).commandField, undefined);
  });

  const broken: Array<[string, Buffer, RegExp]> = [
    ['a truncated element header', C_ECHO_RQ.subarray(0, C_ECHO_RQ.length - 6), /too few for an element header/],
    ['a value overrunning the bytes', C_ECHO_RQ.subarray(0, C_ECHO_RQ.length - 1), /\(0000,0800\) value length 2 overruns/],
    ['an element outside group 0000', Buffer.concat([C_ECHO_RQ, Buffer.from('0800 1800 02000000 4142'.replace(/ /g, ''), 'hex')]), /\(0008,0018\) .* outside group 0000/],
    ['a US of 4 bytes', Buffer.from('0000 0001 04000000 30000000'.replace(/ /g, ''), 'hex'), /CommandField has value length 4, expected 2/],
    ['a huge length', Buffer.from('0000 0001 ffffffff'.replace(/ /g, ''), 'hex'), /value length 4294967295 overruns/],
  ];
  for (const [what, bytes, message] of broken) {
    test(`${what}: CommandSetError`, () => {
      assert.throws(
        () => decodeCommandSet(bytes),
        (err: unknown) => err instanceof CommandSetError && message.test(err.message),
      );
    });
  }

  test('the cap is 64 KiB', () => {
    assert.equal(MAX_COMMAND_SET_LENGTH, 65536);
  });
});

describe('names and statuses', () => {
  test('command names from PS3.7, unknown as 0xHHHH', () => {
    assert.equal(commandName(0x0001), 'C-STORE-RQ');
    assert.equal(commandName(0x0010), 'C-GET-RQ');
    assert.equal(commandName(0x0020), 'C-FIND-RQ');
    assert.equal(commandName(0x0021), 'C-MOVE-RQ');
    assert.equal(commandName(0x0030), 'C-ECHO-RQ');
    assert.equal(commandName(0x0140), 'N-CREATE-RQ');
    assert.equal(commandName(0x8001), 'C-STORE-RSP');
    assert.equal(commandName(0x0fff), 'C-CANCEL-RQ');
    assert.equal(commandName(0x0abc), '0x0abc');
  });

  test('pending is ff00 and ff01 only; status as 4 lower-case hex digits', () => {
    assert.ok(isPending(0xff00));
    assert.ok(isPending(0xff01));
    assert.ok(!isPending(0x0000));
    assert.ok(!isPending(0xfe00)); // Cancel
    assert.equal(statusHex(0xa700), 'a700');
    assert.equal(statusHex(0), '0000');
  });
});

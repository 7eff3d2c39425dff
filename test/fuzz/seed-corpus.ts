// Writes the hand-picked seed inputs of the kept corpus (`node --import tsx test/fuzz/seed-corpus.ts`):
// the annotated byte fixtures and edge cases each target should start from. Inputs found by fuzzing
// runs are added next to them (named found-<hash>.bin) when they are worth keeping.

import { COMMAND_FIXTURES } from '../fixtures/annotated-commands.js';
import * as P from '../fixtures/annotated-pdus.js';
import { CORPUS_DIR, saveInput } from './corpus.js';
import type { TargetName } from './targets.js';

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};
const hx = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const cat = (...parts: Buffer[]): Buffer => Buffer.concat(parts);
/** A 1 MiB A-ASSOCIATE-RQ claim with nothing after its header. */
const BIG_CLAIM = hx('01 00 00100000');

const seeds: Record<TargetName, Buffer[]> = {
  framer: [
    cat(Buffer.from([0]), P.ECHOSCU_RQ, P.STORESCP_AC, P.PDATA_ECHO_COMMAND, P.PDATA_TWO_DATASET_PDVS, P.RELEASE_RQ, P.RELEASE_RP),
    cat(Buffer.from([7]), P.ECHOSCU_RQ, P.PDATA_TWO_DATASET_PDVS, P.ABORT_UNEXPECTED_PDU),
    cat(Buffer.from([1]), P.AC_WITH_UNKNOWN_ITEMS),
    cat(Buffer.from([3]), BIG_CLAIM),
    cat(Buffer.from([0]), P.RJ_CALLING_AE),
  ],
  associate: [cat(u32(4096), P.ECHOSCU_RQ), cat(u32(0), P.STORESCP_AC), cat(u32(16384), P.AC_WITH_UNKNOWN_ITEMS), cat(u32(0xffffffff), P.RQ_WITHOUT_MAX_LENGTH)],
  refragment: [
    // [limit selector][limit][policy selector][size][seed] then PDVs [pdv count][flags][length (2)]
    hx('03 00000000 00 00000000 00  01 03 0044  02 00 0100 02 0250'),
    hx('01 00000005 01 00000000 05  01 03 0044  03 00 0101 10 0033 02 0007'),
    hx('02 00000011 02 00000009 09  02 01 0010 11 0010  01 12 0020'),
    hx('00 00000000 00 00000000 00  01 c0 6000  01 c2 0003'),
  ],
  command: Object.values(COMMAND_FIXTURES),
  tracker: [
    // Ops: [op][field index][id][status index][data set selector][pieces]: C-ECHO-RQ to_scp, C-ECHO-RSP to_scu.
    hx('00 00 01 00 01 00  80 06 01 00 01 00'),
    // C-STORE-RQ with a data set in 3 pieces, its response; C-FIND-RQ with pending and final responses.
    hx('00 01 02 00 00 0400 02  80 07 02 00 01 00  00 02 03 00 01 00  80 08 03 01 01 00  80 08 03 00 01 00'),
  ],
};

for (const [target, inputs] of Object.entries(seeds) as Array<[TargetName, Buffer[]]>) {
  for (const data of inputs) process.stdout.write(`${saveInput(CORPUS_DIR, target, data, 'seed')}\n`);
}

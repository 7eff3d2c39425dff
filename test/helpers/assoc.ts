// Associations between raw peers through a proxy, for reliability tests.

import { encodeReleaseRp, encodeReleaseRq } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import type { ProxyProcess } from './proxy.js';
import { RawPeer, buildAc, buildRq } from './raw.js';
import type { FakeScp } from './raw.js';

export interface RawAssociation {
  scu: RawPeer;
  up: RawPeer;
}

/** SCU → proxy → fake SCP with the RQ/AC exchanged (context 1 accepted, Maximum Length 16384 both ways). */
export async function associate(proxy: ProxyProcess | number, scp: FakeScp, rq = buildRq({ maxLength: 16384 }), ac = buildAc({ maxLength: 16384 })): Promise<RawAssociation> {
  const scu = await RawPeer.connect(typeof proxy === 'number' ? proxy : proxy.port);
  scu.send(rq);
  const up = await scp.nextPeer();
  await up.waitForPdus(1);
  up.send(ac);
  await scu.waitForPdus(1);
  return { scu, up };
}

let marker = 0;

/** One message each way on a live association; throws if either does not arrive intact. */
export async function exchange(a: RawAssociation): Promise<void> {
  const tag = Buffer.alloc(64, ++marker & 0xff);
  const upBefore = a.up.pdus().length;
  const scuBefore = a.scu.pdus().length;
  const data = encodePData([{ contextId: 1, command: true, last: true, fragment: tag }]);
  a.scu.send(data);
  const up = await a.up.waitForPdus(upBefore + 1);
  if (!up[upBefore]!.equals(data)) throw new Error('P-DATA-TF to the SCP changed');
  a.up.send(data);
  const back = await a.scu.waitForPdus(scuBefore + 1);
  if (!back[scuBefore]!.equals(data)) throw new Error('P-DATA-TF to the SCU changed');
}

/** A-RELEASE-RQ/RP, then both close. */
export async function release(a: RawAssociation): Promise<void> {
  const upBefore = a.up.pdus().length;
  const scuBefore = a.scu.pdus().length;
  a.scu.send(encodeReleaseRq());
  await a.up.waitForPdus(upBefore + 1);
  a.up.send(encodeReleaseRp());
  await a.scu.waitForPdus(scuBefore + 1);
  a.scu.socket.end();
  await a.up.ended;
  a.up.socket.end();
  await a.scu.waitClosed();
}

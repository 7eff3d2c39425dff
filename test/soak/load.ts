// The soak's mixed load: what one association of it does, picked at random with fixed weights. Normal
// associations are DCMTK's SCUs (echoscu, storescu, findscu), some told to abort and some killed mid-
// transfer; hostile ones (20% by default) are raw sockets sending garbage, a PDU over the announced
// maximum, a 4 GiB length claim, an RQ dribbled slower than ARTIM, an A-ABORT or a reset mid-transfer.
// Every action is bounded in time and says whether it went as it should.

import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { PduType } from '../../src/pdu/constants.js';
import { encodeAbort, encodeReleaseRq } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { commandSet } from '../fixtures/annotated-commands.js';
import { dcmtkErrors, echoscu, findscu, parseFindResponses, storescu } from '../helpers/dcmtk.js';
import { spawnPeer } from '../helpers/procs.js';
import { EXPLICIT_LE, RawPeer, SECONDARY_CAPTURE, VERIFICATION, buildRq, pdvsOf, withTimeout } from '../helpers/raw.js';

export interface SoakTargets {
  /** Route in front of storescp (C-ECHO, C-STORE). */
  storePort: number;
  /** Route in front of dcmqrscp (C-FIND), called AE QRSCP. */
  qrPort: number;
  /** Files to store, by label ("1KB" ... "64MB"). */
  files: ReadonlyMap<string, string>;
  /** A data set (explicit VR LE, Secondary Capture) and its SOP instance UID, for the raw oversized store. */
  rawDataset: { bytes: Buffer; sopInstanceUid: string };
  /** ARTIM of the proxy, ms: a dribbled RQ is closed after it. */
  artimMs: number;
  /** A TLS route (in front of storescp) that TCP probes hit: open and close without a TLS record. */
  tlsPort: number;
}

export interface Outcome {
  kind: string;
  hostile: boolean;
  /** It went as it should (a normal association completed; a hostile one was ended by the proxy in time). */
  ok: boolean;
  detail: string;
}

type Action = (t: SoakTargets, rand: () => number) => Promise<Outcome>;

const MiB = 1024 * 1024;
const SCU_TIMEOUT_MS = 120_000;
/** How long the proxy may take to close a hostile connection (after ARTIM for the dribbled RQ). */
const CLOSE_WITHIN_MS = 10_000;

const ok = (kind: string, hostile: boolean, detail = ''): Outcome => ({ kind, hostile, ok: true, detail });
const bad = (kind: string, hostile: boolean, detail: string): Outcome => ({ kind, hostile, ok: false, detail });
const tail = (text: string): string => text.trim().split('\n').slice(-3).join(' | ').slice(0, 300);

// ---- normal ------------------------------------------------------------------------------------

const echo: Action = async (t) => {
  const r = await echoscu({ port: t.storePort, calledAet: 'STORESCP', debug: false, timeoutMs: SCU_TIMEOUT_MS });
  return r.code === 0 ? ok('echo', false) : bad('echo', false, `exit ${r.code}: ${tail(r.stderr)}`);
};

const store =
  (label: string): Action =>
  async (t) => {
    const r = await storescu({ port: t.storePort, calledAet: 'STORESCP', files: [t.files.get(label)!], debug: false, timeoutMs: SCU_TIMEOUT_MS });
    const errors = dcmtkErrors(r);
    return r.code === 0 && errors.length === 0 ? ok(`store-${label}`, false) : bad(`store-${label}`, false, `exit ${r.code}: ${tail(errors.join('\n') || r.stderr)}`);
  };

const find: Action = async (t) => {
  const r = await findscu({
    port: t.qrPort,
    calledAet: 'QRSCP',
    keys: ['QueryRetrieveLevel=STUDY', 'PatientName', 'PatientID', 'StudyInstanceUID'],
    debug: false,
    timeoutMs: SCU_TIMEOUT_MS,
  });
  const responses = parseFindResponses(r);
  return r.code === 0 && responses > 0 ? ok('find', false, `${responses} responses`) : bad('find', false, `exit ${r.code}, ${responses} responses: ${tail(r.stderr)}`);
};

/** An SCU that aborts instead of releasing, after its C-STORE. */
const abortingScu: Action = async (t) => {
  const r = await storescu({ port: t.storePort, calledAet: 'STORESCP', files: [t.files.get('1MB')!], debug: false, timeoutMs: SCU_TIMEOUT_MS, extraArgs: ['--abort'] });
  return r.code === 0 ? ok('scu-abort', false) : bad('scu-abort', false, `exit ${r.code}: ${tail(r.stderr)}`);
};

/** storescu of 64 MB, killed (SIGKILL) 0.1-1.5 s in: mid-transfer, or before. Meant to be lost. */
const killedScu: Action = async (t, rand) => {
  const peer = spawnPeer('storescu', ['-aec', 'STORESCP', '127.0.0.1', String(t.storePort), t.files.get('64MB')!], { name: 'storescu-killed' });
  await new Promise((r) => setTimeout(r, 100 + rand() * 1400));
  peer.child.kill('SIGKILL');
  await peer.waitForExit(10_000);
  return ok('scu-killed', false);
};

// ---- hostile -----------------------------------------------------------------------------------

/** Connect, run `fn`, then expect the proxy to close the connection within `withinMs`. */
async function expectClosed(kind: string, port: number, withinMs: number, fn: (peer: RawPeer) => Promise<void> | void): Promise<Outcome> {
  const peer = await RawPeer.connect(port);
  try {
    await fn(peer);
    await withTimeout(Promise.race([peer.ended, peer.closed]), withinMs, `the proxy to close (${kind})`);
    return ok(kind, true);
  } catch (err) {
    return bad(kind, true, (err as Error).message);
  } finally {
    peer.destroy();
  }
}

const garbage: Action = (t) => expectClosed('garbage', t.storePort, CLOSE_WITHIN_MS, (p) => p.send(randomBytes(1 + Math.floor(Math.random() * 4096))));

const hugeClaim: Action = (t) =>
  expectClosed('4GiB-claim', t.storePort, CLOSE_WITHIN_MS, (p) => {
    const header = Buffer.from([PduType.AssociateRq, 0, 0xff, 0xff, 0xff, 0xf0]);
    p.send(Buffer.concat([header, randomBytes(64)]));
  });

const slowloris: Action = (t) =>
  expectClosed('slowloris', t.storePort, t.artimMs + CLOSE_WITHIN_MS, async (p) => {
    const rq = buildRq({ called: 'STORESCP', maxLength: 16384 });
    // One byte every 250 ms: the whole RQ would take far longer than ARTIM.
    for (let i = 0; i < rq.length && !p.socket.destroyed && p.socket.readyState === 'open'; i++) {
      p.send(rq.subarray(i, i + 1));
      await new Promise((r) => setTimeout(r, 250));
      if (p.receivedLength > 0 || (i + 1) * 250 > t.artimMs + 2000) break;
    }
  });

const CONTEXTS = [
  { id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [EXPLICIT_LE] },
  { id: 3, abstractSyntax: SECONDARY_CAPTURE, transferSyntaxes: [EXPLICIT_LE] },
];

function storeCommand(messageId: number, sopInstanceUid: string): Buffer {
  return commandSet([
    [0x0002, SECONDARY_CAPTURE],
    [0x0100, 0x0001],
    [0x0110, messageId],
    [0x0700, 0],
    [0x0800, 0],
    [0x1000, sopInstanceUid],
  ]);
}

/** Open an association on the store route with the raw peer (RQ announcing 16384, AC back). */
async function associate(peer: RawPeer): Promise<void> {
  peer.send(buildRq({ called: 'STORESCP', calling: 'SOAKRAW', maxLength: 16384, contexts: CONTEXTS }));
  const [ac] = await peer.waitForPdus(1, 10_000);
  if (ac![0] !== PduType.AssociateAc) throw new Error(`no A-ASSOCIATE-AC: PDU type ${ac![0]}`);
}

/**
 * A C-STORE whose data set comes in one P-DATA-TF far over the 16384 the proxy announced: the proxy cuts it
 * for storescp, which must answer success; then a release. A hostile sender that is served, not refused.
 */
const oversized: Action = async (t) => {
  const peer = await RawPeer.connect(t.storePort);
  try {
    await associate(peer);
    peer.send(encodePData([{ contextId: 3, command: true, last: true, fragment: storeCommand(7, t.rawDataset.sopInstanceUid) }]));
    peer.send(encodePData([{ contextId: 3, command: false, last: true, fragment: t.rawDataset.bytes }]));
    const pdus = await peer.waitForPdus(2, 30_000);
    const rsp = pdus[1]!;
    const command = pdvsOf(rsp)[0]?.fragment;
    // Status (0000,0900) = 0000 in the C-STORE-RSP.
    const at = command ? command.indexOf(Buffer.from([0x00, 0x00, 0x00, 0x09, 0x02, 0x00, 0x00, 0x00])) : -1;
    if (rsp[0] !== PduType.PDataTf || at < 0 || command!.readUInt16LE(at + 8) !== 0) {
      return bad('oversized-pdu', true, `no C-STORE-RSP with status 0000 (PDU type ${rsp[0]})`);
    }
    peer.send(encodeReleaseRq());
    const [, , rp] = await peer.waitForPdus(3, 10_000);
    return rp![0] === PduType.ReleaseRp ? ok('oversized-pdu', true) : bad('oversized-pdu', true, `PDU type ${rp![0]} instead of A-RELEASE-RP`);
  } catch (err) {
    return bad('oversized-pdu', true, (err as Error).message);
  } finally {
    peer.destroy();
  }
};

/** An association that sends part of a C-STORE, then A-ABORT: the proxy passes it on and closes. */
const abortMidTransfer: Action = (t) =>
  expectClosed('abort-mid-transfer', t.storePort, CLOSE_WITHIN_MS, async (p) => {
    await associate(p);
    p.send(encodePData([{ contextId: 3, command: true, last: true, fragment: storeCommand(9, t.rawDataset.sopInstanceUid) }]));
    p.send(encodePData([{ contextId: 3, command: false, last: false, fragment: t.rawDataset.bytes.subarray(0, 8192) }]));
    p.send(encodeAbort(0, 0));
  });

/** An association reset (RST) in the middle of a P-DATA-TF: the proxy aborts toward storescp and forgets it. */
const resetMidPdu: Action = async (t) => {
  const peer = await RawPeer.connect(t.storePort);
  try {
    await associate(peer);
    peer.send(encodePData([{ contextId: 3, command: true, last: true, fragment: storeCommand(11, t.rawDataset.sopInstanceUid) }]));
    const data = encodePData([{ contextId: 3, command: false, last: true, fragment: t.rawDataset.bytes }]);
    peer.send(data.subarray(0, Math.floor(data.length / 2)));
    await new Promise((r) => setTimeout(r, 50));
    peer.socket.resetAndDestroy();
    return ok('reset-mid-pdu', true);
  } catch (err) {
    return bad('reset-mid-pdu', true, (err as Error).message);
  } finally {
    peer.destroy();
  }
};

/**
 * A load balancer's TCP check on the TLS route: connect, sometimes one stray byte (`echo >/dev/tcp/...`),
 * close at once. Nothing to see from this side: the descriptors the proxy holds at the end of the soak
 * (back to the start) tell whether it closed its side.
 */
const tcpProbe: Action = async (t, rand) => {
  const stray = rand() < 0.5;
  await new Promise<void>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: t.tlsPort }, () => {
      if (stray) s.write('\n', () => s.destroy());
      else s.destroy();
    });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
  return { kind: 'tcp_probe_tls', hostile: true, ok: true, detail: stray ? 'one stray byte' : 'open and close' };
};

// ---- the mix -----------------------------------------------------------------------------------

/** Sizes stored, with their weights: many small, few large. */
export const STORE_SIZES: ReadonlyArray<[string, number, number]> = [
  ['1KB', 1024, 30],
  ['64KB', 64 * 1024, 25],
  ['1MB', MiB, 20],
  ['16MB', 16 * MiB, 15],
  ['64MB', 64 * MiB, 10],
];

const NORMAL: ReadonlyArray<[Action, number]> = [
  [echo, 25],
  ...STORE_SIZES.map(([label, , w]): [Action, number] => [store(label), (45 * w) / 100]),
  [find, 20],
  [abortingScu, 5],
  [killedScu, 5],
];

const HOSTILE: ReadonlyArray<[Action, number]> = [
  [tcpProbe, 1],
  [garbage, 1],
  [hugeClaim, 1],
  [slowloris, 1],
  [oversized, 1],
  [abortMidTransfer, 1],
  [resetMidPdu, 1],
];

function pick(actions: ReadonlyArray<[Action, number]>, r: number): Action {
  const total = actions.reduce((a, [, w]) => a + w, 0);
  let x = r * total;
  for (const [action, w] of actions) {
    x -= w;
    if (x < 0) return action;
  }
  return actions[actions.length - 1]![0];
}

/** One association of the mix: hostile with probability `hostileShare`. */
export function nextAction(rand: () => number, hostileShare: number): Action {
  return rand() < hostileShare ? pick(HOSTILE, rand()) : pick(NORMAL, rand());
}

// The built-in peers (src/peers/) against real ones: the built-in SCU through the proxy to DCMTK storescp
// (the proxy cuts its 1MB PDUs to storescp's 128KB), DCMTK storescu and echoscu to the built-in SCP with a
// store directory, data sets compared bit for bit; and bad peers: an SCP that aborts, stalls or sends a
// PDU over the SCU's maximum, an SCU that does the same to the built-in SCP, and bench against a stalling
// SCP, which must count failures and end.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { readCsvFile } from '../../src/analysis/csv.js';
import { C_STORE_RQ, DATA_SET_PRESENT, encodeCommandSet } from '../../src/dimse/command.js';
import { decodeAbort } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { decodeAssociate } from '../../src/pdu/associate.js';
import { acceptAll, buildAssociateAc, buildAssociateRq } from '../../src/peers/negotiation.js';
import { BuiltinScp } from '../../src/peers/scp.js';
import { ScuAssociation, contextsFor, loadImage, renewInstanceUid } from '../../src/peers/scu.js';
import type { AssociationOptions, ScuImage } from '../../src/peers/scu.js';
import { echoscu, startStorescp, storescu } from '../helpers/dcmtk.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { killAll, runToExit } from '../helpers/procs.js';
import { BIN, ProxyProcess } from '../helpers/proxy.js';
import { mountSmallFs, skipWithReason } from '../helpers/small-fs.js';
import { startMisbehavingScp } from '../peers/misbehaving-scp.js';

const KB = 1024;
const MB = 1024 * KB;
let tmp = '';
let files: string[] = [];

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'builtin-peers-'));
  // 3 MB (many 1MB PDUs and a remainder), 100 KB, and the smallest pixel data.
  files = [];
  for (const [i, pixelBytes] of [3 * MB + 2, 100 * KB, 2].entries()) files.push((await writeTestDicom(path.join(tmp, `in-${i}.dcm`), { pixelBytes, seed: 40 + i })).path!);
});

after(async () => {
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function options(port: number, images: ScuImage[], extra: Partial<AssociationOptions> = {}): AssociationOptions {
  return { host: '127.0.0.1', port, calledAet: 'STORESCP', callingAet: 'BUILTIN', maxLength: 64 * MB, contexts: contextsFor(images), timeoutMs: 20_000, ...extra };
}

/** Each stored file's data set, keyed by the SOP Instance UID in its meta header / name. */
async function storedDatasets(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const f of await readdir(dir)) out.set(f.replace(/^SC\./, '').replace(/\.dcm$/, ''), datasetBytes(path.join(dir, f)));
  return out;
}

describe('built-in peers', () => {
  test('built-in SCU -> proxy (--max-pdu 1MB) -> DCMTK storescp (128KB): every data set stored bit for bit', async () => {
    const dir = path.join(tmp, 'storescp');
    await mkdir(dir);
    const storescp = await startStorescp({ outDir: dir, maxPdu: 131072, logLevel: 'quiet' });
    const csv = path.join(tmp, 'chunks-1MB.csv');
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${storescp.port}`, '--max-pdu', '1MB', '--csv', csv]);
    try {
      const images = files.map(loadImage);
      const sent = new Map<string, Buffer>();
      // Two associations: one carrying every image, then one image on its own.
      const a = await ScuAssociation.open(options(proxy.port, images));
      assert.equal(a.peerMaxLength, MB, 'the AC as the proxy rewrote it');
      for (const image of images) {
        sent.set(renewInstanceUid(image), Buffer.from(image.dataset));
        assert.equal(await a.store(image), 0);
      }
      await a.release();
      const b = await ScuAssociation.open(options(proxy.port, images));
      sent.set(renewInstanceUid(images[0]!), Buffer.from(images[0]!.dataset));
      assert.equal(await b.store(images[0]!), 0);
      await b.release();
      await proxy.stop();
      const stored = await storedDatasets(dir);
      assert.equal(stored.size, 4);
      for (const [uid, dataset] of sent) assert.ok(stored.get(uid)?.equals(dataset), `${uid} stored bit for bit`);
      // What the SCU sent (exactly the 1MB it was told) and what storescp got (its own 128KB).
      const { rows } = await readCsvFile(csv);
      const pdata = rows.filter((r) => r.direction === 'to_scp' && r.type === 'P-DATA-TF');
      assert.equal(Math.max(...pdata.map((r) => Number(r.length))), MB);
      assert.equal(Math.max(...pdata.map((r) => Number(r.out_max_length))), 131072);
    } finally {
      await proxy.stop();
      await storescp.stop();
    }
  });

  test('DCMTK storescu and echoscu -> built-in SCP --store-dir: Part 10 files with the data sets bit for bit', async () => {
    // The SCP announces 0 (no maximum); storescu sends its default 16KB, then its largest 128KB.
    for (const pdu of [16384, 131072]) {
      const dir = path.join(tmp, `builtin-store-${pdu}`);
      const scp = new BuiltinScp({ maxLength: 0, storeDir: dir, idleTimeoutMs: 20_000, log: () => undefined });
      const port = await scp.listen(0, '127.0.0.1');
      try {
        const e = await echoscu({ port, calledAet: 'ANY' });
        assert.equal(e.code, 0, e.stderr);
        const r = await storescu({ port, files, maxSendPdu: pdu });
        assert.equal(r.code, 0, r.stderr);
        // storescu fills each P-DATA-TF: one PDV of PDU length - 6 data bytes (PS3.8 9.3.5), so the data sets took these PDUs.
        const dataPdus = files.reduce((n, f) => n + Math.ceil(datasetBytes(f).length / (pdu - 6)), 0);
        assert.deepEqual(scp.counters, { associations: 2, stores: 3, echoes: 1, abortsSent: 0, abortsReceived: 0, dataPdus });
        const stored = [...(await storedDatasets(dir)).values()];
        assert.equal(stored.length, 3);
        for (const f of files)
          assert.ok(
            stored.some((d) => d.equals(datasetBytes(f))),
            `${path.basename(f)} at ${pdu}: bit for bit`,
          );
        // dcmdump reads the file meta the SCP wrote.
        const dump = await runToExit('dcmdump', [path.join(dir, (await readdir(dir))[0]!)], { timeoutMs: 10_000, name: 'dcmdump' });
        assert.equal(dump.code, 0, dump.stderr);
        assert.match(dump.stdout, /\(0002,0010\) UI =LittleEndianExplicit/);
        assert.match(dump.stdout, /\(0002,0002\) UI =SecondaryCaptureImageStorage/);
      } finally {
        scp.close();
      }
    }
  });

  test('the built-in SCP with a known cost per P-DATA-TF (pdataDelayMs): each store answered no sooner than its PDUs cost', async () => {
    const delay = 15;
    const scp = new BuiltinScp({ maxLength: 16 * KB, idleTimeoutMs: 20_000, log: () => undefined, pdataDelayMs: delay });
    const port = await scp.listen(0, '127.0.0.1');
    try {
      const image = loadImage(files[1]!);
      const a = await ScuAssociation.open(options(port, [image]));
      // The built-in SCU fills each P-DATA-TF to the SCP's 16KB: one PDV of 16 KB - 6 data bytes.
      const pdus = Math.ceil(image.dataset.length / (16 * KB - 6));
      for (let i = 0; i < 2; i++) {
        const t0 = performance.now();
        assert.equal(await a.store(image), 0);
        // A lower bound only: the answer may come later on a busy machine, never sooner.
        assert.ok(performance.now() - t0 >= pdus * delay, `answered after ${performance.now() - t0} ms, ${pdus} PDUs x ${delay} ms`);
      }
      await a.release();
      assert.equal(scp.counters.dataPdus, 2 * pdus);
    } finally {
      scp.close();
    }
  });

  test('bad SCPs: an abort, a stall and a PDU over the announced maximum end the store with a reason, and an A-ABORT where due', async () => {
    const behaviours = ['abort', 'stall', 'oversize'] as const;
    const bad = await startMisbehavingScp((n) => behaviours[n - 1] ?? 'answer');
    try {
      const images = [loadImage(files[1]!)];
      const expected = [
        /association aborted by the SCP \(service-user/,
        /no C-STORE-RSP within 800 ms; A-ABORT sent/,
        /pdu-over-maximum: P-DATA-TF PDU-length 16386 is over the announced Maximum Length 16384\); A-ABORT sent/,
      ];
      for (const re of expected) {
        const a = await ScuAssociation.open(options(bad.port, images, { timeoutMs: 800, maxLength: 16384 }));
        await assert.rejects(a.store(images[0]!), re);
        await a.release();
      }
      // The stall and the oversized PDU were answered with an A-ABORT.
      // (The SCU wrote them before store() rejected; the SCP reads them in its own time.)
      for (const deadline = Date.now() + 10_000; bad.abortsReceived < 2 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
      assert.equal(bad.abortsReceived, 2);
      // A fourth store is answered: the SCU itself was not broken by the others.
      const a = await ScuAssociation.open(options(bad.port, images));
      assert.equal(await a.store(images[0]!), 0);
      await a.release();
    } finally {
      bad.close();
    }
  });

  test("bad SCUs: a PDU over the built-in SCP's maximum and a stall end in an A-ABORT (source 2)", async () => {
    const scp = new BuiltinScp({ maxLength: 16384, idleTimeoutMs: 500, log: () => undefined });
    const port = await scp.listen(0, '127.0.0.1');
    const abortOf = async (after: Buffer[]): Promise<{ source: number; reason: number }> => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      const got: Buffer[] = [];
      socket.on('data', (c: Buffer) => got.push(c));
      socket.on('error', () => undefined);
      socket.write(
        buildAssociateRq({
          calledAet: 'SCP',
          callingAet: 'RAW',
          maxLength: 16384,
          contexts: [{ id: 1, abstractSyntax: '1.2.840.10008.5.1.4.1.1.7', transferSyntaxes: ['1.2.840.10008.1.2.1'] }],
        }),
      );
      for (const b of after) socket.write(b);
      await new Promise((r) => socket.once('close', r));
      const all = Buffer.concat(got);
      const at = all.indexOf(Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x04]));
      assert.ok(at >= 0, `an A-ABORT among ${all.length} bytes`);
      return decodeAbort(all.subarray(at, at + 10));
    };
    try {
      const command = encodeCommandSet({
        commandField: C_STORE_RQ,
        affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.7',
        messageId: 1,
        dataSetType: DATA_SET_PRESENT,
        affectedSopInstanceUid: '1.2.3',
      });
      const big = encodePData([{ contextId: 1, command: false, last: true, fragment: Buffer.alloc(16384 - 6 + 2) }]);
      assert.deepEqual(await abortOf([encodePData([{ contextId: 1, command: true, last: true, fragment: command }]), big]), { source: 2, reason: 6 });
      // Half a P-DATA-TF, then nothing: the idle timeout aborts.
      const half = encodePData([{ contextId: 1, command: true, last: true, fragment: command }]).subarray(0, 20);
      const t0 = performance.now();
      assert.deepEqual(await abortOf([half]), { source: 2, reason: 0 });
      assert.ok(performance.now() - t0 < 5000);
      assert.equal(scp.counters.abortsSent, 2);
    } finally {
      scp.close();
    }
  });

  test('bench against an SCP that stalls one store and aborts another: both counted as failures, bench ends (exit 1)', async () => {
    // Stores 1-2 are the warm-up (2 x 1 sender); 3..6 the setting: 4 stalls, 6 aborts.
    const bad = await startMisbehavingScp((n) => (n === 4 ? 'stall' : n === 6 ? 'abort' : 'answer'));
    try {
      const r = await runToExit(
        process.execPath,
        [
          BIN,
          'bench',
          '--upstream',
          `127.0.0.1:${bad.port}`,
          '--pdu',
          '16KB',
          '--count',
          '4',
          '--parallel',
          '1',
          '--image-size',
          '64KB',
          '--timeout',
          '2',
          '--out',
          path.join(tmp, 'stalled'),
        ],
        // A hang guard: about 6 s on a quiet machine, and its one setting alone took 35 s once at load 17 (2
        // shared cores, nice 10), the whole run past the 60 s this was.
        { timeoutMs: 180_000, cwd: tmp, name: 'bench' },
      );
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /2 of 4 images were NOT acknowledged with Success: 1 x no C-STORE-RSP within 2000 ms; A-ABORT sent; 1 x association aborted by the SCP/);
      assert.match(r.stdout, /^16KB\s+4\s+2\s/m);
      assert.equal(bad.abortsReceived, 1, 'the stalled association got an A-ABORT');
    } finally {
      bad.close();
    }
  });
});

describe('built-in peers: large data sets, aborts mid-send and a disk that fills', () => {
  test('a 24 MB image (the SCU waits for drain, the SCP pauses for its file) is stored bit for bit', async () => {
    const big = await writeTestDicom(path.join(tmp, 'big.dcm'), { pixelBytes: 24 * MB, seed: 47 });
    const dir = path.join(tmp, 'builtin-big');
    const scp = new BuiltinScp({ maxLength: 0, storeDir: dir, idleTimeoutMs: 20_000, log: () => undefined });
    const port = await scp.listen(0, '127.0.0.1');
    try {
      const image = loadImage(big.path!);
      const a = await ScuAssociation.open(options(port, [image]));
      const uid = renewInstanceUid(image);
      assert.equal(await a.store(image), 0);
      await a.release();
      assert.ok((await storedDatasets(dir)).get(uid)?.equals(image.dataset), 'stored bit for bit');
    } finally {
      scp.close();
    }
  });

  test('an A-ABORT from the SCP while the SCU waits for drain: store() rejects with the reason, at once, nothing unhandled', async () => {
    // An SCP that accepts, reads nothing more (the SCU's writes back up), and aborts 300 ms later.
    const server = net.createServer();
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown): void => void rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const image: ScuImage = {
        file: '',
        sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
        transferSyntax: '1.2.840.10008.1.2.1',
        dataset: Buffer.alloc(64 * MB, 1),
        slot: undefined,
        sopInstanceUid: '1.2.3.4',
        streams: new Map(),
      };
      server.on('connection', (socket) => {
        socket.once('data', (rq: Buffer) => {
          socket.pause();
          socket.write(acFor(rq));
          setTimeout(() => socket.write(Buffer.from('07000000000400000200', 'hex')), 300);
        });
      });
      const a = await ScuAssociation.open(options(port, [image], { timeoutMs: 30_000 }));
      const started = Date.now();
      await assert.rejects(a.store(image), /association aborted by the SCP/);
      assert.ok(Date.now() - started < 5000, `store() ended ${Date.now() - started} ms after it began (its own timeout is 30 s)`);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(rejections, [], 'no unhandled rejection');
    } finally {
      process.off('unhandledRejection', onRejection);
      server.close();
    }
  });

  test('the built-in SCP --store-dir on a disk that fills: A700 for the store that did not fit, no file left, the process alive; Success again once space returns', async (t) => {
    const fsys = mountSmallFs(1 * MB);
    if (typeof fsys === 'string') return skipWithReason(t, fsys);
    t.after(() => fsys.unmount());
    const logs: string[] = [];
    const scp = new BuiltinScp({ maxLength: 0, storeDir: fsys.dir, idleTimeoutMs: 20_000, log: (l) => logs.push(l) });
    const port = await scp.listen(0, '127.0.0.1');
    t.after(() => scp.close());
    const bigger = loadImage((await writeTestDicom(path.join(tmp, 'over-1mb.dcm'), { pixelBytes: 3 * MB, seed: 48 })).path!);
    const small = loadImage(files[1]!);
    const a = await ScuAssociation.open(options(port, [bigger, small]));
    assert.equal(await a.store(bigger), 0xa700, 'Refused: out of resources, not Success for a partial file');
    assert.deepEqual(await readdir(fsys.dir), [], 'no file and no part file left');
    assert.match(logs.join('\n'), /ENOSPC/);
    // The disk full at the start of the next data set, then freed: both answered right, on the same association.
    fsys.fill();
    assert.equal(await a.store(small), 0xa700);
    fsys.free();
    const uid = renewInstanceUid(small);
    assert.equal(await a.store(small), 0);
    await a.release();
    assert.ok((await storedDatasets(fsys.dir)).get(uid)?.equals(small.dataset), 'stored bit for bit once there was room');
    assert.equal(scp.counters.associations, 1);
  });
});

/** An A-ASSOCIATE-AC for `rq` accepting its contexts, as the built-in SCP sends it. */
function acFor(rq: Buffer): Buffer {
  const decoded = decodeAssociate(rq);
  return buildAssociateAc(decoded, acceptAll(decoded), 0);
}

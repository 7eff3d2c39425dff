// C-MOVE measured end to end with two routes of one proxy (the recipe in docs/ROUTES.md): DCMTK's dcmqrscp
// is the Q/R SCP behind route "qr"; its move destination MOVEDEST points at route "dest", which forwards to
// storescp. movescu sends the C-MOVE through route qr; dcmqrscp's C-STORE sub-operation goes through
// route dest. The messages CSV then holds both: the C-MOVE-RQ on qr and the C-STORE-RQ on dest.

import assert from 'node:assert/strict';
import { readCsvRows } from '../helpers/csv.js';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { dcmtkErrors, listFiles, startStorescp, storescu } from '../helpers/dcmtk.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { freePort } from '../helpers/ports.js';
import { killAll, runToExit, spawnPeer, waitForPort } from '../helpers/procs.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';

let tmp = '';
let image: TestDicomInfo;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'cmove-'));
  image = await writeTestDicom(path.join(tmp, 'image.dcm'), { pixelBytes: 4 * 1024 * 1024, seed: 91 });
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** dcmqrscp's configuration: one storage area (AE QRSCP) and the move destination MOVEDEST. */
function dcmqrscpConfig(port: number, db: string, moveDestPort: number): string {
  return [
    `NetworkTCPPort  = ${port}`,
    'MaxPDUSize      = 16384',
    'MaxAssociations = 16',
    '',
    'HostTable BEGIN',
    `movedest = (MOVEDEST, 127.0.0.1, ${moveDestPort})`,
    'HostTable END',
    '',
    'VendorTable BEGIN',
    'VendorTable END',
    '',
    'AETable BEGIN',
    `QRSCP  ${db}  RW  (100, 1024mb)  ANY`,
    'AETable END',
    '',
  ].join('\n');
}

test('C-MOVE through route qr, its C-STORE sub-operation through route dest: both in the messages CSV', { timeout: 60_000 }, async (t) => {
  const db = path.join(tmp, 'db');
  const outDir = path.join(tmp, 'out');
  await mkdir(db);
  await mkdir(outDir);
  const qrPort = await freePort();
  const destPort = await freePort(); // route dest listens here: dcmqrscp's config must name it
  const config = path.join(tmp, 'dcmqrscp.cfg');
  await writeFile(config, dcmqrscpConfig(qrPort, db, destPort));
  const qr = spawnPeer('dcmqrscp', ['-v', '-c', config], { name: 'dcmqrscp' });
  t.after(() => qr.kill());
  await waitForPort(qrPort, 10_000);
  const scp = await startStorescp({ outDir });
  t.after(() => scp.stop());

  // Load the archive directly (not through the proxy).
  const load = await storescu({ port: qrPort, calledAet: 'QRSCP', aet: 'LOADER', files: [image.path!], debug: false });
  assert.equal(load.code, 0, load.stderr.slice(-2000));

  const messages = path.join(tmp, 'messages.csv');
  const proxy = await ProxyProcess.startRoutes(
    ['--route', `127.0.0.1:0=127.0.0.1:${qrPort},id=qr`, '--route', `127.0.0.1:${destPort}=127.0.0.1:${scp.port},id=dest,max-pdu=1MB`, '--messages-csv', messages],
    ['qr', 'dest'],
  );
  t.after(() => proxy.stop());

  const move = await runToExit(
    'movescu',
    [
      '-v',
      '-aet',
      'MOVESCU',
      '-aec',
      'QRSCP',
      '-aem',
      'MOVEDEST',
      '-S',
      '-k',
      'QueryRetrieveLevel=STUDY',
      '-k',
      `StudyInstanceUID=${image.studyInstanceUid}`,
      '127.0.0.1',
      String(proxy.routePort('qr')),
    ],
    { timeoutMs: 30_000, name: 'movescu' },
  );
  assert.equal(move.code, 0, move.stderr.slice(-3000));
  assert.deepEqual(dcmtkErrors(move), []);
  assert.match(move.stdout + move.stderr, /Received Final Move Response \(Success\)/);

  const received = listFiles(outDir);
  assert.equal(received.length, 1, 'storescp received the moved image');
  assert.ok(datasetBytes(received[0]!).equals(datasetBytes(image.path!)), 'dataset bytes identical');

  await proxy.waitForLog((l) => l.msg === 'association closed' && l.route === 'qr');
  await proxy.waitForLog((l) => l.msg === 'association closed' && l.route === 'dest');
  assert.equal(await proxy.stop(), 0);

  const rows = await readCsvRows(messages);
  const moveRow = rows.find((r) => r.route === 'qr');
  const storeRow = rows.find((r) => r.route === 'dest');
  assert.equal(rows.length, 2);
  assert.ok(moveRow && storeRow);
  assert.equal(moveRow.command, 'C-MOVE-RQ');
  assert.equal(moveRow.status, '0000');
  assert.equal(moveRow.pending_responses, '1');
  assert.equal(storeRow.command, 'C-STORE-RQ');
  assert.equal(storeRow.status, '0000');
  assert.equal(storeRow.sop_instance_uid, image.sopInstanceUid);
  assert.equal(Number(storeRow.bytes), image.datasetLength);
  assert.equal(storeRow.max_pdu, String(1024 * 1024), 'dcmqrscp was told the route dest max-pdu');
  assert.notEqual(moveRow.assoc, storeRow.assoc);
  // The sub-operation happened inside the C-MOVE: it started after the C-MOVE-RQ and within its duration.
  const moveStart = Date.parse(moveRow.started_at!);
  const storeStart = Date.parse(storeRow.started_at!);
  assert.ok(
    storeStart >= moveStart && storeStart + Number(storeRow.duration_ms) <= moveStart + Number(moveRow.duration_ms) + 1,
    `C-STORE ${storeRow.started_at} +${storeRow.duration_ms} ms within C-MOVE ${moveRow.started_at} +${moveRow.duration_ms} ms`,
  );
  t.diagnostic(`C-MOVE ${moveRow.duration_ms} ms end to end, of which the C-STORE sub-operation ${storeRow.duration_ms} ms`);
});

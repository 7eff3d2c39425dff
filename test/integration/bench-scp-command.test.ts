// bench --scp-command end to end: the real CLI starts the SCP of a template per setting. DCMTK storescp
// natively and behind the proxy (--both, interleaved), Orthanc from a configuration written by the example
// script, templates that cannot run (one line, exit status 2, no image sent), and an SCP killed in the
// middle of a setting (its images counted as failures, the next setting's SCP started, no hang).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readCsvFile } from '../../src/analysis/csv.js';
import { killAll } from '../helpers/procs.js';
import type { RunResult } from '../helpers/procs.js';
import { REPO_ROOT } from '../helpers/proxy.js';
import { readResults, runBench } from '../helpers/bench.js';

let tmp = '';
const ORTHANC = ['/usr/sbin/Orthanc', '/usr/bin/Orthanc'].find((p) => existsSync(p));
const STORESCP = 'storescp --max-pdu {pdu} --ignore {port}';
/** Small and quick: 4 images of 256KB per setting, 2 senders. */
const QUICK = ['--count', '4', '--parallel', '2', '--image-size', '256KB', '--timeout', '30'];

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-scp-command-'));
});

after(async () => {
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function bench(args: string[], timeoutMs = 90_000): Promise<RunResult> {
  return runBench(args, tmp, timeoutMs);
}

/** One line on stderr, naming --scp-command; exit status 2; nothing measured. */
function assertOneLine(r: RunResult, re: RegExp, out?: string): void {
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, re);
  if (out) assert.equal(existsSync(path.join(out, 'results.csv')), false);
}

describe('bench --scp-command', () => {
  test('DCMTK storescp, --both: each size natively and through the proxy, interleaved; mode native|proxy; logs; the comparison table', async () => {
    const out = path.join(tmp, 'storescp');
    const r = await bench(['--scp-command', STORESCP, '--both', '--pdu', '16KB,32KB', ...QUICK, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const rows = await readResults(out);
    // Interleaved, alternating which goes first.
    assert.deepEqual(
      rows.map((x) => `${x.pdu_bytes} ${x.mode}`),
      ['16384 proxy', '16384 native', '32768 native', '32768 proxy'],
    );
    for (const row of rows) {
      assert.equal(row.failures, '0', JSON.stringify(row));
      assert.equal(row.images, '4');
      assert.equal(row.scp, 'command');
      assert.ok(Number(row.mean_s) > 0);
    }
    // Each setting's SCP output is kept; the SCP was started with {pdu} = the size natively, 131072 behind the proxy.
    const files = await readdir(out);
    for (const f of ['scp-16KB-256KB-native.log', 'scp-16KB-256KB.log', 'scp-32KB-256KB-native.log', 'scp-32KB-256KB.log']) assert.ok(files.includes(f), f);
    assert.match(await readFile(path.join(out, 'scp-16KB-256KB-native.log'), 'utf8'), /^# \["storescp","--max-pdu","16384","--ignore","\d+"\]/);
    assert.match(await readFile(path.join(out, 'scp-16KB-256KB.log'), 'utf8'), /^# \["storescp","--max-pdu","131072","--ignore","\d+"\]/);
    // Through the proxy the SCU was told the setting and sent PDUs of at most that; toward storescp at most 131072.
    const { rows: chunks } = await readCsvFile(path.join(out, 'chunks-16KB-256KB.csv'));
    const toScp = chunks.filter((c) => c.direction === 'to_scp' && c.type === 'P-DATA-TF');
    assert.ok(toScp.length > 0);
    assert.ok(Math.max(...toScp.map((c) => Number(c.length))) <= 16384);
    // The comparison: per size, native and proxy means with intervals, the ratio, and the ranking verdict.
    assert.match(r.stdout, /proxy versus native/);
    assert.match(r.stdout, /\n16KB\s+[\d.]+\s+\[-?[\d.]+, [\d.]+\]\s+[\d.]+\s+\[-?[\d.]+, [\d.]+\]\s+[\d.]+\s+\[[\d.]+, [\d.]+\]/);
    assert.match(r.stdout, /\nranking: /);
    // report.html has the same comparison.
    const report = await readFile(path.join(out, 'report.html'), 'utf8');
    assert.match(report, /<section id="fidelity">[\s\S]*<p id="ranking">ranking: [\s\S]*16KB/);
    const run = JSON.parse(await readFile(path.join(out, 'run.json'), 'utf8')) as { scp: { target: string } };
    assert.match(run.scp.target, /--scp-command storescp --max-pdu \{pdu\}/);
  });

  test('Orthanc from the example script (configuration written per setting), natively', { skip: ORTHANC ? false : 'Orthanc is not installed' }, async () => {
    const out = path.join(tmp, 'orthanc');
    const script = path.join(REPO_ROOT, 'examples', 'scp-command', 'orthanc.sh');
    const r = await bench(['--scp-command', `'${script}' {port} {pdu} {out}`, '--direct', '--pdu', '16KB', ...QUICK, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const rows = await readResults(out);
    assert.deepEqual(
      rows.map((x) => `${x.mode} ${x.failures}`),
      ['native 0'],
    );
    const log = await readFile(path.join(out, 'scp-16KB-256KB-native.log'), 'utf8');
    const port = /"(\d+)","16384"/.exec(log.split('\n')[0]!)![1];
    assert.match(log, new RegExp(`DICOM server listening with AET ORTHANC on port: ${port}`));
  });

  test('templates that cannot run: one line, exit status 2, before any image is sent', async () => {
    const out = path.join(tmp, 'bad');
    assertOneLine(await bench(['--scp-command', 'storescp --max-pdu {pdu} {prot}', '--out', out]), /^dicom-pdu-proxy: --scp-command: unknown placeholder \{prot\}/, out);
    assertOneLine(await bench(['--scp-command', 'storescp {port} > log', '--out', out]), /^dicom-pdu-proxy: --scp-command: ">" is shell syntax/, out);
    // storescp refuses a max PDU over 131072: it exits before listening.
    assertOneLine(
      await bench(['--scp-command', STORESCP, '--direct', '--pdu', '16KB,256KB', ...QUICK, '--out', out]),
      /^dicom-pdu-proxy bench: --scp-command with \{pdu\} = 262144: the SCP exited \(status \d+\) before listening on port \d+: .*; its output is in .*scp-start-256KB\.log$/,
      out,
    );
    assertOneLine(
      await bench(['--scp-command', 'no-such-scp-program {port}', '--direct', '--pdu', '16KB', ...QUICK, '--out', out]),
      /^dicom-pdu-proxy bench: --scp-command with \{pdu\} = 16384: no-such-scp-program could not be started: .*ENOENT/,
      out,
    );
    // Never listens (sleep takes the port number as seconds): bounded by --scp-start-timeout, and stopped.
    const t0 = Date.now();
    assertOneLine(
      await bench(['--scp-command', 'sleep {port}', '--scp-start-timeout', '1', '--direct', '--pdu', '16KB', ...QUICK, '--out', out]),
      /^dicom-pdu-proxy bench: --scp-command with \{pdu\} = 16384: the SCP did not listen on port \d+ within 1 s; its output is in /,
      out,
    );
    assert.ok(Date.now() - t0 < 20_000);
  });

  test('an SCP killed in the middle of a setting: its images are failures, the next setting starts its own SCP, no hang', async () => {
    const out = path.join(tmp, 'dying');
    const dying = path.join(REPO_ROOT, 'test', 'peers', 'dying-scp.mjs');
    const builtin = path.join(REPO_ROOT, 'dist', 'bench', 'scp-builtin-process.js');
    // 16KB gets the SCP that kills itself on the first byte; the others get the built-in SCP.
    const template =
      `sh -c 'if [ "$2" = 16384 ]; then exec "$0" "$3" "$1"; else exec "$0" "$4" --port "$1" --max-pdu "$2"; fi' ` + `'${process.execPath}' {port} {pdu} '${dying}' '${builtin}'`;
    const r = await bench(['--scp-command', template, '--direct', '--pdu', '32KB,16KB,64KB', ...QUICK, '--out', out]);
    assert.equal(r.code, 1, r.stderr);
    const rows = await readResults(out);
    assert.deepEqual(
      rows.map((x) => `${x.pdu_bytes} ${x.mode} ${x.images} ${x.failures}`),
      ['32768 native 4 0', '16384 native 4 4', '65536 native 4 0'],
    );
    assert.match(r.stderr, /16KB: 4 images, mean - s, - MB\/s per sender, 4 FAILED \(.*; the SCP exited during the setting \(see scp-16KB-256KB-native\.log\)\)/);
    assert.match(r.stderr, /4 of 12 images were NOT acknowledged with Success/);
    assert.match(await readFile(path.join(out, 'scp-16KB-256KB-native.log'), 'utf8'), /killing myself[\s\S]*# exited \(SIGKILL\)/);
  });
});

// The messages CSV: the contract header, row formatting (empty cells for what never happened, 3-decimal
// milliseconds, quoting of peer-supplied text), appending to an existing file, refusing a foreign one; and
// the --messages-csv setting in every layer, and on the command line.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { parseCsvRows } from '../helpers/csv.js';
import { loadSettings } from '../../src/config/config.js';
import { ConfigError } from '../../src/values/errors.js';
import type { MessageRecord } from '../../src/events/events.js';
import { MESSAGES_CSV_HEADER, MessagesCsvFileError, MessagesCsvRecorder, messageCsvRow, messageLogFields, timeSplitSummary } from '../../src/record/messages-csv.js';
import { BIN, REPO_ROOT } from '../helpers/proxy.js';
import { assertBuilt } from '../helpers/built.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-messages-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const tmpFile = (): string => path.join(dir, `m${++counter}.csv`);

const STORE: MessageRecord = {
  assoc: 4,
  direction: 'to_scp',
  messageId: 7,
  command: 'C-STORE-RQ',
  contextId: 1,
  sopInstanceUid: '1.2.3.4',
  bytes: 16777504,
  maxPdu: 1048576,
  scpMaxPdu: 16384,
  requestFirstByteUs: 1500.4,
  requestLastByteUs: 120000.6,
  requestForwardedUs: 125000,
  responseFirstByteUs: 127500,
  responseLastByteUs: 128000,
  senderIdleUs: 2000.4,
  receiverBlockedUs: 90000,
  proxyBusyUs: 4321.6,
  pendingResponses: 0,
  status: 0,
  startedAt: '2026-11-25T10:00:00.001Z',
  arm: '1MB',
  callingAet: 'CT01',
  calledAet: 'PACS',
  sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
  transferSyntaxUid: '1.2.840.10008.1.2.1',
  generation: 1,
};

const ABORTED: MessageRecord = {
  ...STORE,
  messageId: 8,
  sopInstanceUid: '',
  requestLastByteUs: undefined,
  requestForwardedUs: undefined,
  responseFirstByteUs: undefined,
  responseLastByteUs: undefined,
  status: undefined,
};

/** The contract, spelled out (prompts/contract.md): scripts and `stats` read these names. */
const CONTRACT =
  'assoc,message_id,command,context_id,sop_instance_uid,bytes,max_pdu,scp_max_pdu,request_first_byte_us,request_last_byte_us,response_first_byte_us,response_last_byte_us,duration_ms,scu_idle_ms,upstream_blocked_ms,scp_response_ms,pending_responses,status,started_at,requested_by,route,arm,calling_aet,called_aet,sop_class_uid,transfer_syntax_uid,generation,proxy_busy_ms';

const parse = parseCsvRows;

describe('messages CSV rows', () => {
  test('the header is the contract', () => {
    assert.equal(MESSAGES_CSV_HEADER, CONTRACT);
  });

  test('a complete message', () => {
    assert.equal(
      messageCsvRow(STORE).join(','),
      '4,7,C-STORE-RQ,1,1.2.3.4,16777504,1048576,16384,1500,120001,127500,128000,126.500,2.000,90.000,2.500,0,0000,2026-11-25T10:00:00.001Z,scu,default,1MB,CT01,PACS,1.2.840.10008.5.1.4.1.1.2,1.2.840.10008.1.2.1,1,4.322',
    );
  });

  test('what never happened is an empty cell', () => {
    assert.equal(
      messageCsvRow({ ...ABORTED, arm: '', sopClassUid: '', transferSyntaxUid: '' }).join(','),
      '4,8,C-STORE-RQ,1,,16777504,1048576,16384,1500,,,,,2.000,90.000,,0,,2026-11-25T10:00:00.001Z,scu,default,,CT01,PACS,,,1,4.322',
    );
    assert.match(messageCsvRow(STORE, 'ct').join(','), /,scu,ct,1MB,/);
  });

  test('a UID with a comma or quote from a peer is quoted, and reads back as sent', async () => {
    const odd = { ...STORE, sopInstanceUid: '1.2,"3"' };
    const [row] = await parse(`${MESSAGES_CSV_HEADER}\n${messageCsvRow(odd).join(',')}\n`);
    assert.equal(row!.sop_instance_uid, '1.2,"3"');
    assert.equal(row!.status, '0000');
  });

  test('AE titles and UIDs from a peer with commas or quotes are quoted too, and the columns stay in place', async () => {
    const odd = { ...STORE, callingAet: 'CT,"1"', calledAet: 'PA,CS', sopClassUid: '1,2', transferSyntaxUid: '"x"' };
    const [row] = await parse(`${MESSAGES_CSV_HEADER}\n${messageCsvRow(odd).join(',')}\n`);
    assert.equal(row!.calling_aet, 'CT,"1"');
    assert.equal(row!.called_aet, 'PA,CS');
    assert.equal(row!.sop_class_uid, '1,2');
    assert.equal(row!.transfer_syntax_uid, '"x"');
    assert.equal(row!.arm, '1MB');
    assert.equal(row!.generation, '1');
    assert.equal(row!.proxy_busy_ms, '4.322', 'proxy_busy_ms is last, after generation');
  });

  test('the debug log fields', () => {
    const f = messageLogFields(STORE);
    assert.equal(f.durationMs, 126.5);
    assert.equal(f.scuIdleMs, 2);
    assert.equal(f.upstreamBlockedMs, 90);
    assert.equal(f.scpResponseMs, 2.5);
    assert.equal(f.proxyBusyMs, 4.322);
    assert.equal(f.status, '0000');
    assert.equal(messageLogFields(ABORTED).status, undefined);
  });

  test('the summary split: SCU requests at the top, SCP requests apart, undecodable counted', () => {
    const none = { messages: 0, idleUs: 0, blockedUs: 0, responseUs: 0, busyUs: 0 };
    assert.deepEqual(timeSplitSummary({ to_scp: { messages: 2, idleUs: 1234.5, blockedUs: 10, responseUs: 99, busyUs: 55 }, to_scu: none }, 0), {
      messages: 2,
      scuIdleMs: 1.235,
      upstreamBlockedMs: 0.01,
      scpResponseMs: 0.099,
      proxyBusyMs: 0.055,
    });
    const both = timeSplitSummary({ to_scp: none, to_scu: { messages: 1, idleUs: 1000, blockedUs: 2000, responseUs: 3000, busyUs: 4000 } }, 2);
    assert.deepEqual(both.scpRequests, { messages: 1, scpIdleMs: 1, scuBlockedMs: 2, scuResponseMs: 3, proxyBusyMs: 4 });
    assert.equal(both.undecodableCommands, 2);
  });
});

describe('MessagesCsvRecorder', () => {
  test('a new file gets the header; a second run appends rows without a second header', async () => {
    const file = tmpFile();
    const first = await MessagesCsvRecorder.open(file);
    first.message(STORE);
    await first.close();
    const second = await MessagesCsvRecorder.open(file);
    second.message(ABORTED);
    second.message({ ...STORE, messageId: 9 });
    await second.close();
    const text = fs.readFileSync(file, 'utf8');
    assert.equal(text.split('\n').filter((l) => l === MESSAGES_CSV_HEADER).length, 1);
    const rows = await parse(text);
    assert.deepEqual(
      rows.map((r) => r.message_id),
      ['7', '8', '9'],
    );
  });

  test('an empty existing file gets the header', async () => {
    const file = tmpFile();
    fs.writeFileSync(file, '');
    const r = await MessagesCsvRecorder.open(file);
    await r.close();
    assert.equal(fs.readFileSync(file, 'utf8'), `${MESSAGES_CSV_HEADER}\n`);
  });

  test('a last row without its newline (a write cut short by a full disk, then a stop) is removed before new rows, with a warning', async () => {
    const file = tmpFile();
    const whole = messageCsvRow(STORE).join(',');
    // Rows are written with their newline in the same write: a row without one was never written whole,
    // whether it lost its last field, or only its newline.
    for (const half of [whole.slice(0, 25), whole.slice(0, -1), whole]) {
      fs.writeFileSync(file, `${MESSAGES_CSV_HEADER}\n${whole}\n${half}`);
      const warnings: Array<Record<string, unknown>> = [];
      const log = { error() {}, info() {}, warn: (fields: Record<string, unknown>) => void warnings.push(fields) };
      const r = await MessagesCsvRecorder.open(file, log);
      r.message(ABORTED);
      await r.close();
      assert.equal(fs.readFileSync(file, 'utf8'), `${MESSAGES_CSV_HEADER}\n${whole}\n${messageCsvRow(ABORTED).join(',')}\n`);
      assert.deepEqual(warnings, [{ cutBytes: half.length }]);
    }
  });

  test('a file that is not a messages CSV is refused and left alone', async () => {
    const file = tmpFile();
    const chunk = 'assoc,direction,seq,type,length\n1,to_scp,1,P-DATA-TF,100\n';
    fs.writeFileSync(file, chunk);
    await assert.rejects(MessagesCsvRecorder.open(file), (err: unknown) => err instanceof MessagesCsvFileError && /does not start with the messages CSV header/.test(err.message));
    assert.equal(fs.readFileSync(file, 'utf8'), chunk);
  });

  test('a file with an older header (no route column) is refused with a message saying so, and left alone', async () => {
    const file = tmpFile();
    const old = `${MESSAGES_CSV_HEADER.replace(/,route,.*$/, '')}\n${messageCsvRow(STORE).slice(0, -8).join(',')}\n`;
    fs.writeFileSync(file, old);
    await assert.rejects(
      MessagesCsvRecorder.open(file),
      (err: unknown) => err instanceof MessagesCsvFileError && /older version of the proxy \(no route, arm, calling_aet, .* columns\)/.test(err.message),
    );
    assert.equal(fs.readFileSync(file, 'utf8'), old);
  });

  test('a file written before the experiment columns (up to route) is refused the same way', async () => {
    const file = tmpFile();
    const old = `${MESSAGES_CSV_HEADER.replace(/,arm,.*$/, '')}\n${messageCsvRow(STORE).slice(0, -7).join(',')}\n`;
    fs.writeFileSync(file, old);
    await assert.rejects(
      MessagesCsvRecorder.open(file),
      (err: unknown) =>
        err instanceof MessagesCsvFileError &&
        /older version of the proxy \(no arm, calling_aet, called_aet, sop_class_uid, transfer_syntax_uid, generation, proxy_busy_ms columns\)/.test(err.message),
    );
  });

  test('a file written before proxy_busy_ms (up to generation) is refused, naming the one column, and left alone', async () => {
    const file = tmpFile();
    const old = `${MESSAGES_CSV_HEADER.replace(/,proxy_busy_ms$/, '')}\n${messageCsvRow(STORE).slice(0, -1).join(',')}\n`;
    fs.writeFileSync(file, old);
    await assert.rejects(
      MessagesCsvRecorder.open(file),
      (err: unknown) => err instanceof MessagesCsvFileError && /older version of the proxy \(no proxy_busy_ms column\)/.test(err.message),
    );
    assert.equal(fs.readFileSync(file, 'utf8'), old);
  });

  test("a route's view writes its id in the route column", async () => {
    const file = tmpFile();
    const r = await MessagesCsvRecorder.open(file);
    r.forRoute('ct').message!(STORE);
    r.forRoute('11113').message!({ ...STORE, messageId: 8 });
    r.message(STORE);
    await r.close();
    assert.deepEqual(
      (await parse(fs.readFileSync(file, 'utf8'))).map((row) => row.route),
      ['ct', '11113', 'default'],
    );
  });

  test('rows queued at close are written', async () => {
    const file = tmpFile();
    const r = await MessagesCsvRecorder.open(file);
    for (let i = 0; i < 2500; i++) r.message({ ...STORE, messageId: i });
    await r.close();
    r.message(STORE); // after close: dropped, no throw
    assert.equal((await parse(fs.readFileSync(file, 'utf8'))).length, 2500);
  });
});

describe('--messages-csv setting', () => {
  const base = { upstream: 'pacs:104' };
  test('off by default; from the flag, the environment and a config file', () => {
    assert.equal(loadSettings(base).options.messagesCsv, undefined);
    assert.equal(loadSettings({ ...base, messagesCsv: 'flag.csv' }).options.messagesCsv, 'flag.csv');
    assert.equal(loadSettings(base, undefined, { env: { PDU_PROXY_MESSAGES_CSV: 'env.csv' } }).options.messagesCsv, 'env.csv');
    const file = path.join(dir, 'c.json');
    fs.writeFileSync(file, JSON.stringify({ messagesCsv: 'file.csv' }));
    assert.equal(loadSettings(base, file).options.messagesCsv, 'file.csv');
    assert.equal(loadSettings({ ...base, messagesCsv: 'flag.csv' }, file, { env: { PDU_PROXY_MESSAGES_CSV: 'env.csv' } }).options.messagesCsv, 'flag.csv');
  });

  test('not a file name: one line naming the key', () => {
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, JSON.stringify({ messagesCsv: 5 }));
    assert.throws(
      () => loadSettings(base, file),
      (e: unknown) => e instanceof ConfigError && /: messagesCsv: 5 must be a string \(a file name\)$/.test(e.message),
    );
    fs.writeFileSync(file, JSON.stringify({ messagesCsv: '' }));
    assert.throws(
      () => loadSettings(base, file),
      (e: unknown) => e instanceof ConfigError && /: messagesCsv: "" is not a file name$/.test(e.message),
    );
  });

  test('the same file as the chunk CSV is refused', () => {
    assert.throws(
      () => loadSettings({ ...base, csv: 'logs/x.csv', messagesCsv: './logs/../logs/x.csv' }),
      (e: unknown) =>
        e instanceof ConfigError && /^--messages-csv: "\.\/logs\/\.\.\/logs\/x\.csv" is the chunk CSV file too \(--csv\); give each log its own file$/.test(e.message),
    );
    assert.equal(loadSettings({ ...base, csv: 'chunks.csv', messagesCsv: 'messages.csv' }).options.messagesCsv, 'messages.csv');
  });

  test('the CLI refuses a foreign file: exit 2, one line naming the flag', () => {
    assertBuilt();
    const file = tmpFile();
    fs.writeFileSync(file, 'something,else\n1,2\n');
    const r = spawnSync(process.execPath, [BIN, '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:104', '--messages-csv', file], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1);
    assert.match(r.stderr, /^dicom-pdu-proxy: --messages-csv .* does not start with the messages CSV header/);
    assert.equal(fs.readFileSync(file, 'utf8'), 'something,else\n1,2\n');
  });

  test('--help lists it', () => {
    assertBuilt();
    const r = spawnSync(process.execPath, [BIN, '--help'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 20_000 });
    assert.match(r.stdout, /--messages-csv <FILE>/);
  });
});

describe('duration_ms matches its own row', () => {
  test('(response_last_byte_us - request_first_byte_us) / 1000 exactly, whatever the sub-microsecond parts', () => {
    for (const [first, last] of [
      [1000.4, 117838.6],
      [0.5, 1.49],
      [999.5, 2000.5],
      [12.345, 116850.9],
    ]) {
      const row = messageCsvRow({ ...STORE, requestFirstByteUs: first!, responseLastByteUs: last! });
      const [rqFirst, rspLast, duration] = [row[8], row[11], row[12]].map(Number);
      assert.equal(duration!.toFixed(3), ((rspLast! - rqFirst!) / 1000).toFixed(3), `${first} ${last}`);
    }
  });
});

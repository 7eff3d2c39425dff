// The metrics recorder without a proxy: which events move which series, the fixed label vocabularies, the
// buckets, and the HTTP endpoint (GET /metrics only).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MessageRecord, PduRecord } from '../../src/events/events.js';
import { serveMetrics } from '../../src/control/metrics-endpoint.js';
import { MESSAGE_DURATION_BUCKETS, MetricsRecorder, PDU_SIZE_BUCKETS } from '../../src/record/metrics.js';

const PDU: PduRecord = {
  assoc: 1,
  direction: 'to_scp',
  seq: 2,
  type: 'P-DATA-TF',
  length: 16384,
  pdvs: 1,
  contextId: 1,
  kind: 'dataset',
  last: false,
  firstByteUs: 10,
  lastByteUs: 20,
  forwardedUs: 30,
  outPdus: 2,
  outMaxLength: 8192,
  violation: true,
};

const MESSAGE: MessageRecord = {
  assoc: 1,
  direction: 'to_scp',
  messageId: 1,
  command: 'C-STORE-RQ',
  contextId: 1,
  sopInstanceUid: '1.2.3',
  bytes: 100,
  maxPdu: 16384,
  scpMaxPdu: 16384,
  requestFirstByteUs: 1_000,
  requestLastByteUs: 2_000,
  requestForwardedUs: 2_100,
  responseFirstByteUs: 3_000,
  responseLastByteUs: 301_000,
  senderIdleUs: 0,
  receiverBlockedUs: 0,
  proxyBusyUs: 0,
  pendingResponses: 0,
  status: 0,
  startedAt: '2026-11-25T10:00:00.000Z',
  arm: '',
  callingAet: 'CT01',
  calledAet: 'PACS',
  sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
  transferSyntaxUid: '1.2.840.10008.1.2.1',
  generation: 1,
};

async function samples(m: MetricsRecorder): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await m.metrics()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe('MetricsRecorder', () => {
  test('buckets: PDU sizes 4 KiB to 32 MiB by powers of two; durations 1 ms to 5 min', () => {
    assert.equal(PDU_SIZE_BUCKETS[0], 4096);
    assert.equal(PDU_SIZE_BUCKETS.at(-1), 32 * 1024 * 1024);
    assert.ok(PDU_SIZE_BUCKETS.every((b, i) => i === 0 || b === 2 * PDU_SIZE_BUCKETS[i - 1]!));
    assert.equal(MESSAGE_DURATION_BUCKETS[0], 0.001);
    assert.equal(MESSAGE_DURATION_BUCKETS.at(-1), 300);
  });

  test('every series of a route exists at 0 before any event', async () => {
    const m = new MetricsRecorder();
    m.forRoute('ct');
    const s = await samples(m);
    assert.equal(s.get('dicom_pdu_proxy_bytes_total{route="ct",direction="to_scp",arm="none"}'), 0);
    assert.equal(s.get('dicom_pdu_proxy_pdus_total{route="ct",direction="to_scu"}'), 0);
    assert.equal(s.get('dicom_pdu_proxy_associations_open{route="ct"}'), 0);
    assert.equal(s.get('dicom_pdu_proxy_associations_total{route="ct"}'), 0);
    assert.equal(s.get('dicom_pdu_proxy_pdu_size_bytes_count{route="ct",direction="to_scu"}'), 0);
    assert.equal(s.get('dicom_pdu_proxy_message_duration_seconds_bucket{le="+Inf",route="ct",direction="to_scp",arm="none"}'), 0);
    for (const reason of ['scu_abort', 'scp_abort', 'protocol_error', 'connection_lost', 'idle_timeout', 'shutdown']) {
      assert.equal(s.get(`dicom_pdu_proxy_aborts_total{route="ct",reason="${reason}"}`), 0, reason);
    }
    for (const outcome of ['released', 'rejected', 'aborted', 'closed']) {
      assert.equal(s.get(`dicom_pdu_proxy_associations_ended_total{route="ct",outcome="${outcome}"}`), 0, outcome);
    }
  });

  test("the process's own: resident memory and descriptors as /proc reads them, heap, event-loop delay percentiles", async () => {
    const m = new MetricsRecorder();
    const s = await samples(m);
    const rss = s.get('process_resident_memory_bytes');
    assert.ok(rss !== undefined && rss > 10 * 1024 * 1024, `process_resident_memory_bytes ${rss}`);
    const fds = s.get('process_open_fds');
    assert.ok(fds !== undefined && fds >= 3, `process_open_fds ${fds}`);
    assert.ok((s.get('nodejs_heap_size_used_bytes') ?? 0) > 0, 'nodejs_heap_size_used_bytes');
    for (const name of ['nodejs_eventloop_lag_p50_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_max_seconds']) {
      assert.ok(s.has(name), name);
    }
  });

  test('PDUs: bytes (length + 6), PDUs in and out, violations, sizes; a PDU never forwarded counts only in sizes', async () => {
    const m = new MetricsRecorder();
    const ct = m.forRoute('ct');
    const mr = m.forRoute('mr');
    ct.pdu!(PDU);
    ct.pdu!({ ...PDU, length: 100, outPdus: 1, violation: false });
    ct.pdu!({ ...PDU, forwardedUs: undefined });
    mr.pdu!({ ...PDU, direction: 'to_scu', violation: false });
    const s = await samples(m);
    assert.equal(s.get('dicom_pdu_proxy_bytes_total{route="ct",direction="to_scp",arm="none"}'), 16390 + 106);
    assert.equal(s.get('dicom_pdu_proxy_pdus_total{route="ct",direction="to_scp"}'), 2);
    assert.equal(s.get('dicom_pdu_proxy_pdus_sent_total{route="ct",direction="to_scp"}'), 3);
    assert.equal(s.get('dicom_pdu_proxy_violations_repaired_total{route="ct",direction="to_scp"}'), 1);
    assert.equal(s.get('dicom_pdu_proxy_pdu_size_bytes_count{route="ct",direction="to_scp"}'), 3);
    assert.equal(s.get('dicom_pdu_proxy_pdu_size_bytes_bucket{le="4096",route="ct",direction="to_scp"}'), 1);
    assert.equal(s.get('dicom_pdu_proxy_pdu_size_bytes_bucket{le="16384",route="ct",direction="to_scp"}'), 3);
    assert.equal(s.get('dicom_pdu_proxy_bytes_total{route="mr",direction="to_scu",arm="none"}'), 16390);
    assert.equal(s.get('dicom_pdu_proxy_bytes_total{route="mr",direction="to_scp",arm="none"}'), 0);
    // Counts handed over at a scrape are not counted twice at the next one.
    ct.pdu!(PDU);
    assert.equal((await samples(m)).get('dicom_pdu_proxy_bytes_total{route="ct",direction="to_scp",arm="none"}'), 2 * 16390 + 106);
  });

  test('arms: bytes and message durations labelled with the association\'s arm; "none" without one', async () => {
    const m = new MetricsRecorder();
    const ct = m.forRoute('ct');
    ct.pdu!({ ...PDU, arm: '16KB' });
    ct.pdu!({ ...PDU, arm: '1MB' });
    ct.pdu!({ ...PDU, arm: '1MB', direction: 'to_scu' });
    ct.pdu!({ ...PDU, arm: '16KB#2' });
    ct.pdu!(PDU);
    ct.message!({ ...MESSAGE, arm: '1MB' });
    ct.message!({ ...MESSAGE, arm: '16KB', responseLastByteUs: 51_000 });
    const s = await samples(m);
    assert.equal(s.get('dicom_pdu_proxy_bytes_total{route="ct",direction="to_scp",arm="16KB"}'), 16390);
    assert.equal(s.get('dicom_pdu_proxy_bytes_total{route="ct",direction="to_scp",arm="1MB"}'), 16390);
    assert.equal(s.get('dicom_pdu_proxy_bytes_total{route="ct",direction="to_scu",arm="1MB"}'), 16390);
    assert.equal(s.get('dicom_pdu_proxy_bytes_total{route="ct",direction="to_scu",arm="16KB"}'), 0, "an arm's other direction exists at 0");
    assert.equal(s.get('dicom_pdu_proxy_bytes_total{route="ct",direction="to_scp",arm="16KB#2"}'), 16390);
    assert.equal(s.get('dicom_pdu_proxy_bytes_total{route="ct",direction="to_scp",arm="none"}'), 16390);
    // The PDU counters keep their labels (route, direction): every PDU counted once.
    assert.equal(s.get('dicom_pdu_proxy_pdus_total{route="ct",direction="to_scp"}'), 4);
    assert.equal(s.get('dicom_pdu_proxy_message_duration_seconds_sum{route="ct",direction="to_scp",arm="1MB"}'), 0.3);
    assert.equal(s.get('dicom_pdu_proxy_message_duration_seconds_sum{route="ct",direction="to_scp",arm="16KB"}'), 0.05);
    assert.equal(s.get('dicom_pdu_proxy_message_duration_seconds_count{route="ct",direction="to_scp",arm="none"}'), 0);
  });

  test('messages: the duration of answered ones, in seconds', async () => {
    const m = new MetricsRecorder();
    const ct = m.forRoute('ct');
    ct.message!(MESSAGE); // 300 ms
    ct.message!({ ...MESSAGE, status: undefined, responseLastByteUs: undefined }); // no final response
    const s = await samples(m);
    assert.equal(s.get('dicom_pdu_proxy_message_duration_seconds_count{route="ct",direction="to_scp",arm="none"}'), 1);
    assert.equal(s.get('dicom_pdu_proxy_message_duration_seconds_sum{route="ct",direction="to_scp",arm="none"}'), 0.3);
    assert.equal(s.get('dicom_pdu_proxy_message_duration_seconds_bucket{le="0.25",route="ct",direction="to_scp",arm="none"}'), 0);
    assert.equal(s.get('dicom_pdu_proxy_message_duration_seconds_bucket{le="0.5",route="ct",direction="to_scp",arm="none"}'), 1);
  });

  test('associations: open, total, ended by outcome, aborts by reason', async () => {
    const m = new MetricsRecorder();
    const ct = m.forRoute('ct');
    ct.association!({ phase: 'requested', assoc: 1, admitted: true });
    ct.association!({ phase: 'requested', assoc: 2, admitted: true });
    ct.association!({ phase: 'requested', assoc: 3, admitted: false });
    let s = await samples(m);
    assert.equal(s.get('dicom_pdu_proxy_associations_open{route="ct"}'), 2);
    assert.equal(s.get('dicom_pdu_proxy_associations_total{route="ct"}'), 3);
    ct.association!({ phase: 'ended', assoc: 1, requested: true, admitted: true, outcome: 'released', abort: undefined });
    ct.association!({ phase: 'ended', assoc: 2, requested: true, admitted: true, outcome: 'aborted', abort: 'scp_abort' });
    ct.association!({ phase: 'ended', assoc: 3, requested: true, admitted: false, outcome: 'rejected', abort: undefined });
    ct.association!({ phase: 'ended', assoc: 4, requested: false, admitted: false, outcome: 'aborted', abort: 'protocol_error' });
    s = await samples(m);
    assert.equal(s.get('dicom_pdu_proxy_associations_open{route="ct"}'), 0);
    assert.equal(s.get('dicom_pdu_proxy_associations_ended_total{route="ct",outcome="released"}'), 1);
    assert.equal(s.get('dicom_pdu_proxy_associations_ended_total{route="ct",outcome="aborted"}'), 1, 'only connections that sent an RQ');
    assert.equal(s.get('dicom_pdu_proxy_associations_ended_total{route="ct",outcome="rejected"}'), 1);
    assert.equal(s.get('dicom_pdu_proxy_aborts_total{route="ct",reason="scp_abort"}'), 1);
    assert.equal(s.get('dicom_pdu_proxy_aborts_total{route="ct",reason="protocol_error"}'), 1);
  });

  test('the endpoint: GET /metrics in the text format, anything else 404', async () => {
    const m = new MetricsRecorder();
    m.forRoute('ct').pdu!(PDU);
    const server = await serveMetrics({ host: '127.0.0.1', port: 0 }, m);
    try {
      const base = `http://127.0.0.1:${server.address.port}`;
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      assert.match(await res.text(), /^dicom_pdu_proxy_bytes_total\{route="ct",direction="to_scp",arm="none"\} 16390$/m);
      assert.equal((await fetch(`${base}/metrics?x=1`)).status, 200);
      for (const [path, method] of [
        ['/', 'GET'],
        ['/metrics/', 'GET'],
        ['/other', 'GET'],
        ['/metrics', 'POST'],
        ['/metrics', 'DELETE'],
      ] as const) {
        const r = await fetch(`${base}${path}`, { method });
        assert.equal(r.status, 404, `${method} ${path}`);
        await r.text();
      }
    } finally {
      await server.close();
    }
  });
});

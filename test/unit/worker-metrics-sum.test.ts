// The --workers primary's sum of its workers' metrics (WorkerMetricsSum), without node:cluster: snapshots
// of real MetricsRecorders in, the exposition out. A dead worker's counters stay in the sum, its gauges
// leave it; a worker that does not answer in time is served from its last snapshot; a worker that has not
// said hello is not waited for.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PduRecord } from '../../src/events/events.js';
import { MetricsRecorder, WorkerMetricsSum } from '../../src/record/metrics.js';
import { monotonicSamples, parseExposition, wentDown } from '../helpers/exposition.js';

const PREFIX = 'dicom_pdu_proxy_';
const BYTES = `${PREFIX}bytes_total{route="r",direction="to_scp",arm="none"}`;
const OPEN = `${PREFIX}associations_open{route="r"}`;
const BUCKET = `${PREFIX}pdu_size_bytes_bucket{le="+Inf",route="r",direction="to_scp"}`;

function pdu(length: number): PduRecord {
  return {
    assoc: 1,
    direction: 'to_scp',
    seq: 1,
    type: 'P-DATA-TF',
    length,
    pdvs: 1,
    contextId: 1,
    kind: 'dataset',
    last: true,
    firstByteUs: 1,
    lastByteUs: 2,
    forwardedUs: 3,
    outPdus: 1,
    outMaxLength: length,
    violation: false,
  };
}

/** A worker's recorder with one route; `relay(n)` forwards one PDU of n bytes on the wire. */
function worker(): { recorder: MetricsRecorder; relay(wireBytes: number): void; open(): void } {
  const recorder = new MetricsRecorder();
  const view = recorder.forRoute('r');
  return {
    recorder,
    relay: (wireBytes) => view.pdu!(pdu(wireBytes - 6)),
    open: () => view.association!({ phase: 'requested', assoc: 1, admitted: true }),
  };
}

test('a dead worker: its counters and histograms stay in the sum, its gauges leave it; the replacement adds to them', async () => {
  const sum = new WorkerMetricsSum();
  const w1 = worker();
  const w2 = worker();
  sum.hello(1);
  sum.hello(2);
  const answer = (id: number, w: ReturnType<typeof worker>, request: number): Promise<void> => w.recorder.registry.getMetricsAsJSON().then((m) => sum.answer(id, request, m));
  const ask = (workers: Map<number, ReturnType<typeof worker>>): Promise<Map<string, number>> =>
    sum
      .collect((id, request) => {
        const w = workers.get(id);
        if (!w) return false;
        void answer(id, w, request);
        return true;
      }, 60_000)
      .then(parseExposition);

  w1.relay(1000);
  w1.open();
  w2.relay(500);
  const first = await ask(
    new Map([
      [1, w1],
      [2, w2],
    ]),
  );
  assert.equal(first.get(BYTES), 1500);
  assert.equal(first.get(OPEN), 1);
  assert.equal(first.get(BUCKET), 2);

  // Worker 1 relays 10 more bytes after its last snapshot, then dies: those 10 are lost, the 1000 are kept.
  w1.relay(10);
  sum.exited(1);
  const w3 = worker();
  sum.hello(3);
  const second = await ask(
    new Map([
      [2, w2],
      [3, w3],
    ]),
  );
  assert.deepEqual(wentDown(monotonicSamples(first, PREFIX), monotonicSamples(second, PREFIX)), []);
  assert.equal(second.get(BYTES), 1500);
  assert.equal(second.get(OPEN), 0, 'the dead worker’s open associations are gone with it');
  assert.equal(second.get(BUCKET), 2);

  w3.relay(200);
  w2.relay(100);
  const third = await ask(
    new Map([
      [2, w2],
      [3, w3],
    ]),
  );
  assert.equal(third.get(BYTES), 1800);
  assert.equal(third.get(BUCKET), 4);
  // Two deaths fold into one base.
  sum.exited(2);
  sum.exited(3);
  const fourth = await ask(new Map());
  assert.equal(fourth.get(BYTES), 1800);
  assert.equal(fourth.get(`${PREFIX}pdus_total{route="r",direction="to_scp"}`), 4);
  assert.equal(fourth.get(OPEN), undefined, 'no worker alive: no gauge');
});

test('a worker that does not answer in time is served from its last snapshot; one not started yet is not waited for', async () => {
  const sum = new WorkerMetricsSum();
  const w1 = worker();
  const w2 = worker();
  sum.hello(1);
  sum.hello(2);
  w1.relay(100);
  w2.relay(50);
  // Both answer the first request.
  const first = parseExposition(
    await sum.collect((id, request) => {
      void (id === 1 ? w1 : w2).recorder.registry.getMetricsAsJSON().then((m) => sum.answer(id, request, m));
      return true;
    }, 60_000),
  );
  assert.equal(first.get(BYTES), 150);

  // Worker 2 hangs: the scrape ends at the timeout with worker 2's last snapshot and worker 1's new one.
  w1.relay(1);
  w2.relay(2);
  let hung = 0;
  const t0 = Date.now();
  const second = parseExposition(
    await sum.collect((id, request) => {
      if (id === 2) hung = request;
      else void w1.recorder.registry.getMetricsAsJSON().then((m) => sum.answer(id, request, m));
      return true;
    }, 50),
  );
  assert.ok(Date.now() - t0 >= 45, 'waited for the hung worker, until the timeout');
  assert.equal(second.get(BYTES), 151);
  // Its late answer counts from the next scrape on; an answer older than what it holds is ignored.
  sum.answer(2, hung, await w2.recorder.registry.getMetricsAsJSON());
  sum.answer(2, 1, await worker().recorder.registry.getMetricsAsJSON());
  assert.equal(parseExposition(await sum.exposition()).get(BYTES), 153);

  // A worker that has not said hello (still starting) is not asked, so nothing waits for it.
  const asked: number[] = [];
  const third = parseExposition(
    await sum.collect((id, request) => {
      asked.push(id);
      void (id === 1 ? w1 : w2).recorder.registry.getMetricsAsJSON().then((m) => sum.answer(id, request, m));
      return true;
    }, 60_000),
  );
  assert.deepEqual(asked.sort(), [1, 2]);
  assert.equal(third.get(BYTES), 153);

  // A worker that dies while a scrape waits for it ends the wait at once.
  const waiting = sum.collect((id, request) => {
    if (id === 1) void w1.recorder.registry.getMetricsAsJSON().then((m) => sum.answer(id, request, m));
    return true;
  }, 60_000);
  setImmediate(() => sum.exited(2));
  assert.equal(parseExposition(await waiting).get(BYTES), 153);
});

// One of bench's senders, run as its own process (bench starts --parallel of them per setting). It sends
// `count` images one after another and prints one JSON line per image on stdout:
//   {"ready":true}                                            files loaded, about to send
//   {"image":k,"file":i,"ms":123.4,"status":"0000"}          acknowledged (status: 4 hex digits, or text)
//   {"image":k,"file":i,"error":"..."}                        never acknowledged
// Every image gets exactly one line, so none is silently lost.
//
// ms = request sent -> response received, measured here, in the sender:
// - dcmjs (dcmjs-dimse Client): one association per image; from client.send() (connect, negotiate, encode
//   and send the dataset) to the C-STORE-RSP. Encoding the dataset is part of what the sender does.
// - dcmtk (storescu): one association for all of the worker's images; from storescu's log line "Sending
//   Store Request" to "Received Store Response" (-v log lines, timestamped as they arrive here).
// - builtin (src/peers/scu.ts): the data set is loaded and encoded before "ready"; one association per
//   image (ms from connect to the C-STORE-RSP, connectMs and associateMs its first two parts) or, with
//   association 'per-sender', one for all (ms from the first byte of the request to the response; the
//   association's connectMs and associateMs on the first image sent over it).

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import dcmjsDimse from 'dcmjs-dimse';
import { statusHex } from '../dimse/command.js';
import { Child } from './child.js';
import { ScuAssociation, SCU_MAX_LENGTH, contextsFor, loadImage, renewInstanceUid } from '../peers/scu.js';
import type { AssociationOptions } from '../peers/scu.js';

const { Client, Dataset, log } = dcmjsDimse;
const { CStoreRequest } = dcmjsDimse.requests;
type DatasetT = InstanceType<typeof Dataset>;
type ResponseT = InstanceType<typeof dcmjsDimse.responses.Response>;

export interface WorkerJob {
  scu: 'builtin' | 'dcmjs' | 'dcmtk';
  /** builtin only: a new association per image (default) or one per sender. */
  association?: 'per-image' | 'per-sender';
  host: string;
  port: number;
  callingAet: string;
  calledAet: string;
  /** Part 10 files; image k sends files[(first + k) % files.length]. */
  files: string[];
  first: number;
  count: number;
  /** dcmjs-dimse timeouts (connect, association, PDU) and storescu's -ta/-td. */
  timeoutMs: number;
  /** bench --tls (builtin and dcmtk): connect with TLS, trusting `ca`, presenting the client certificate. */
  tls?: { ca: string; cert: string; key: string };
}

export type WorkerLine =
  { ready: true } | { image: number; file: number; ms: number; status: string; connectMs?: number; associateMs?: number } | { image: number; file: number; error: string };

function emit(line: WorkerLine): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** A fresh SOP Instance UID (2.25 form: the UUID as a decimal integer, PS3.5 B.2). */
function newUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`)}`;
}

function storeOne(job: WorkerJob, dataset: DatasetT): Promise<{ ms: number; status: string } | { error: string }> {
  return new Promise((resolve) => {
    dataset.setElement('SOPInstanceUID', newUid());
    const request = new CStoreRequest(dataset);
    const client = new Client();
    let result: { ms: number; status: string } | undefined;
    let error: string | undefined;
    request.on('response', (response: ResponseT) => {
      result = { ms: performance.now() - started, status: statusHex(response.getStatus()) };
    });
    client.on('associationRejected', (r: { result: number; source: number; reason: number }) => {
      error = `association rejected (result ${r.result}, source ${r.source}, reason ${r.reason})`;
    });
    client.on('networkError', (e: Error) => {
      error ??= `network error: ${e.message}`;
    });
    client.on('closed', () => resolve(result ?? { error: error ?? 'association closed without a C-STORE response' }));
    client.addRequest(request);
    const started = performance.now();
    client.send(job.host, job.port, job.callingAet, job.calledAet, {
      connectTimeout: job.timeoutMs,
      associationTimeout: job.timeoutMs,
      pduTimeout: job.timeoutMs,
    });
  });
}

async function runDcmjs(job: WorkerJob): Promise<void> {
  log.setLevel('error');
  // Loaded once per file, before any timing; the UID is changed per image (one image in flight at a time).
  const datasets = job.files.map((f) => {
    const d = Dataset.fromFile(f);
    if (!d) throw new Error(`${f}: not readable as DICOM`);
    return d;
  });
  emit({ ready: true });
  for (let k = 0; k < job.count; k++) {
    const file = (job.first + k) % job.files.length;
    const r = await storeOne(job, datasets[file]!);
    emit('error' in r ? { image: k, file, error: r.error } : { image: k, file, ...r });
  }
}

async function runDcmtk(job: WorkerJob): Promise<void> {
  const files = Array.from({ length: job.count }, (_, k) => job.files[(job.first + k) % job.files.length]!);
  const seconds = String(Math.ceil(job.timeoutMs / 1000));
  // +II: a new SOP Instance UID per image; -nh: go on after a failed store (each is reported).
  const args = ['-v', '+II', '-nh', '-aet', job.callingAet, '-aec', job.calledAet, '-ta', seconds, '-td', seconds, '-to', seconds];
  // +tls KEY CERT (-pw: the key is not encrypted) +cf CA: TLS, the server's certificate checked against the CA.
  if (job.tls) args.push('+tls', job.tls.key, job.tls.cert, '-pw', '+cf', job.tls.ca);
  const storescu = new Child('storescu', 'storescu', [...args, job.host, String(job.port), ...files]);
  emit({ ready: true });
  let k = 0;
  let started: number | undefined;
  storescu.onLine((line) => {
    if (/Sending Store Request/.test(line)) started = performance.now();
    const m = /Received Store Response \(([^)]*)\)/.exec(line);
    if (m && started !== undefined && k < job.count) {
      const ms = performance.now() - started;
      const hex = /0x([0-9a-f]{4})/i.exec(m[1]!);
      const status = m[1] === 'Success' ? '0000' : hex ? hex[1]!.toLowerCase() : m[1]!;
      emit({ image: k, file: (job.first + k) % job.files.length, ms, status });
      k++;
      started = undefined;
    }
  });
  const { code, signal } = await storescu.exited;
  const why = `storescu ended (${signal ?? `exit ${code}`}) before its response${storescu.stderr ? `: ${storescu.stderr.split('\n').slice(-2).join(' ')}` : ''}`;
  for (; k < job.count; k++) emit({ image: k, file: (job.first + k) % job.files.length, error: why });
}

async function runBuiltin(job: WorkerJob): Promise<void> {
  // Loaded and encoded once per file, before any timing.
  const images = job.files.map(loadImage);
  const options: AssociationOptions = {
    host: job.host,
    port: job.port,
    calledAet: job.calledAet,
    callingAet: job.callingAet,
    maxLength: SCU_MAX_LENGTH,
    contexts: contextsFor(images),
    timeoutMs: job.timeoutMs,
    tls: job.tls ? { ca: readFileSync(job.tls.ca), cert: readFileSync(job.tls.cert), key: readFileSync(job.tls.key) } : undefined,
  };
  const perSender = job.association === 'per-sender';
  let open: ScuAssociation | undefined;
  emit({ ready: true });
  for (let k = 0; k < job.count; k++) {
    const file = (job.first + k) % job.files.length;
    const image = images[file]!;
    renewInstanceUid(image);
    const t0 = performance.now();
    let fresh = false;
    try {
      if (!open) {
        open = await ScuAssociation.open(options);
        fresh = true;
      }
      const t1 = performance.now();
      const status = await open.store(image);
      const t2 = performance.now();
      const timing = fresh ? { connectMs: open.connectMs, associateMs: open.associateMs } : {};
      emit({ image: k, file, ms: perSender ? t2 - t1 : t2 - t0, status: status < 0 ? 'no status' : status.toString(16).padStart(4, '0'), ...timing });
    } catch (err) {
      emit({ image: k, file, error: (err as Error).message });
      open?.abort(0, 'given up');
      open = undefined;
      continue;
    }
    if (!perSender) {
      await open.release();
      open = undefined;
    }
  }
  await open?.release();
}

const job = JSON.parse(process.argv[2] ?? '{}') as WorkerJob;
(job.scu === 'dcmtk' ? runDcmtk(job) : job.scu === 'dcmjs' ? runDcmjs(job) : runBuiltin(job)).then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`scu-worker: ${err.message}\n`);
    process.exit(1);
  },
);

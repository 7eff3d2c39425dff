// Standalone dcmjs-dimse SCP for real-peer tests. Listens on 127.0.0.1 only.
//
//   node --import tsx test/peers/dimse-scp.ts --port N [--max-pdu BYTES] [--files f1,f2,...]
//        [--find-results K] [--store-dir DIR] [--respect-rq-max] [--verbose]
//
// Accepts every presentation context (explicit VR LE preferred, implicit VR LE otherwise), answers C-ECHO,
// C-FIND (K pending results, then success), C-GET (each --files entry as a C-STORE sub-operation on the
// same association, then a final response with the sub-operation counts) and C-STORE (success; written
// to --store-dir if given). Prints `listening <port>` once ready; exits 0 on SIGTERM/SIGINT.
//
// --max-pdu calls the process-global Implementation.setMaxPduLength (dcmjs-dimse default 262144). By
// default associationRequested also calls association.setMaxPduLength(maxPdu), as the dcmjs-dimse README
// example does: the AC then announces maxPdu and the Scp sends P-DATA-TF PDUs of that size whatever the
// SCU announced (the behaviour the proxy must repair). With --respect-rq-max that call is skipped and
// dcmjs-dimse uses min(RQ value, maxPdu) for both the AC and its own sends.

import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import dcmjsDimse from 'dcmjs-dimse';
import { EchoingScp, hostScp, storeThenRespond } from '../../src/bench/scp-host.js';

const { Dataset, Implementation, log } = dcmjsDimse;
const { CFindResponse, CGetResponse, CStoreResponse } = dcmjsDimse.responses;
const { CStoreRequest } = dcmjsDimse.requests;
const { PresentationContextResult, Status, TransferSyntax } = dcmjsDimse.constants;

type Association = InstanceType<typeof dcmjsDimse.association.Association>;
type CFindRequestT = InstanceType<typeof dcmjsDimse.requests.CFindRequest>;
type CGetRequestT = InstanceType<typeof dcmjsDimse.requests.CGetRequest>;
type CStoreRequestT = InstanceType<typeof dcmjsDimse.requests.CStoreRequest>;
type CFindResponseT = InstanceType<typeof CFindResponse>;
type CGetResponseT = InstanceType<typeof CGetResponse>;
type CStoreResponseT = InstanceType<typeof CStoreResponse>;
type ResponseT = InstanceType<typeof dcmjsDimse.responses.Response>;

const WARNING = 0xb000; // C-GET: sub-operations complete, one or more failures or warnings

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    'max-pdu': { type: 'string' },
    files: { type: 'string' },
    'find-results': { type: 'string' },
    'store-dir': { type: 'string' },
    'respect-rq-max': { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
  },
  strict: true,
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('usage: dimse-scp.ts --port N [--max-pdu BYTES] [--files a,b] [--find-results K] [--store-dir DIR]\n');
  process.exit(2);
}
const maxPdu = values['max-pdu'] !== undefined ? Number(values['max-pdu']) : undefined;
const files = values.files
  ? values.files
      .split(',')
      .filter((f) => f.length > 0)
      .map((f) => path.resolve(f))
  : [];
const findResults = values['find-results'] !== undefined ? Number(values['find-results']) : 3;
if (maxPdu !== undefined && !(Number.isInteger(maxPdu) && maxPdu >= 0)) {
  process.stderr.write(`bad --max-pdu ${values['max-pdu']}\n`);
  process.exit(2);
}
if (!(Number.isInteger(findResults) && findResults >= 0)) {
  process.stderr.write(`bad --find-results ${values['find-results']}\n`);
  process.exit(2);
}
const storeDir = values['store-dir'] ? path.resolve(values['store-dir']) : undefined;
const respectRqMax = values['respect-rq-max'] === true;

log.setLevel(values.verbose ? 'info' : 'error');
if (maxPdu !== undefined) Implementation.setMaxPduLength(maxPdu);
if (storeDir) mkdirSync(storeDir, { recursive: true });

/** Responses built by fromRequest carry a fixed Study Root SOP class; use the request's instead. */
function sameSopClass<T extends ResponseT>(response: T, request: { getAffectedSopClassUid(): string }): T {
  response.setAffectedSopClassUid(request.getAffectedSopClassUid());
  return response;
}

class DimseScp extends EchoingScp {
  // Not named `association`: a subclass field would shadow the base class's own property.
  private negotiated: Association | undefined;

  override associationRequested(association: Association): void {
    this.negotiated = association;
    if (!respectRqMax) association.setMaxPduLength(Implementation.getMaxPduLength());
    for (const { id } of association.getPresentationContexts()) {
      const context = association.getPresentationContext(id);
      const proposed = context.getTransferSyntaxUids();
      if (proposed.includes(TransferSyntax.ExplicitVRLittleEndian)) {
        context.setResult(PresentationContextResult.Accept, TransferSyntax.ExplicitVRLittleEndian);
      } else if (proposed.includes(TransferSyntax.ImplicitVRLittleEndian)) {
        context.setResult(PresentationContextResult.Accept, TransferSyntax.ImplicitVRLittleEndian);
      } else {
        context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
      }
    }
    this.sendAssociationAccept();
  }

  override cFindRequest(request: CFindRequestT, callback: (responses: CFindResponseT[]) => void): void {
    const level = request.getDataset()?.getElement('QueryRetrieveLevel') ?? 'STUDY';
    const responses: CFindResponseT[] = [];
    for (let i = 1; i <= findResults; i++) {
      const pending = sameSopClass(CFindResponse.fromRequest(request), request);
      pending.setDataset(
        new Dataset({
          QueryRetrieveLevel: level,
          PatientName: `FIND^PATIENT${i}`,
          PatientID: `FINDPID${i}`,
          StudyInstanceUID: `1.2.826.0.1.3680043.9.7433.2.${i}`,
          StudyDate: '20240101',
        }),
      );
      pending.setStatus(Status.Pending);
      responses.push(pending);
    }
    const final = sameSopClass(CFindResponse.fromRequest(request), request);
    final.setStatus(Status.Success);
    responses.push(final);
    callback(responses);
  }

  override cGetRequest(request: CGetRequestT, callback: (responses: CGetResponseT[]) => void): void {
    let completed = 0;
    let failed = 0;
    const total = files.length;
    const build = (status: number, remaining: number | undefined): CGetResponseT => {
      const response = sameSopClass(CGetResponse.fromRequest(request), request);
      response.setStatus(status);
      if (remaining !== undefined) response.setRemaining(remaining);
      response.setCompleted(completed);
      response.setFailures(failed);
      response.setWarnings(0);
      return response;
    };
    // The handler callback may be called only once (async-event-emitter2): it carries the final response;
    // pending responses go out through sendResponse.
    const respond = (status: number, remaining: number | undefined): void => {
      if (status === Status.Pending) this.sendResponse(request, build(status, remaining));
      else callback([build(status, remaining)]);
    };
    // Sub-operations one at a time; each C-STORE-RSP triggers the next.
    const next = (i: number): void => {
      if (i >= total) {
        respond(failed > 0 ? WARNING : Status.Success, undefined);
        return;
      }
      const file = files[i]!;
      const store = new CStoreRequest(file);
      if (!this.negotiated?.getAcceptedPresentationContextFromRequest(store)) {
        // dcmjs-dimse would skip it silently; count it as a failed sub-operation.
        failed++;
        process.stderr.write(`C-GET sub-operation skipped, no accepted context for ${file}\n`);
        next(i + 1);
        return;
      }
      store.on('response', (response: ResponseT) => {
        if (response.getStatus() === Status.Success) completed++;
        else failed++;
        if (i + 1 < total) respond(Status.Pending, total - i - 1);
        next(i + 1);
      });
      this.sendRequests(store);
    };
    next(0);
  }

  override cStoreRequest(request: CStoreRequestT, callback: (response: CStoreResponseT) => void): void {
    const respond = (status: number): void => {
      const response = CStoreResponse.fromRequest(request);
      response.setStatus(status);
      callback(response);
    };
    // Answer only once the file is on disk, so a test may read it as soon as the SCU is done.
    storeThenRespond(request, storeDir, respond);
  }
}

hostScp((socket) => new DimseScp(socket), port, '127.0.0.1', 'dimse-scp');

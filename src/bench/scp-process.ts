// bench's embedded SCP, run as its own process so that its CPU work (dcmjs-dimse decoding each dataset)
// does not share an event loop with the proxy or the senders. A dcmjs-dimse Scp that accepts every
// presentation context, answers C-ECHO and acknowledges every C-STORE.
//
//   node scp-process.js --port N --max-pdu BYTES [--host H] [--store-dir DIR] [--fail-every N]
//
// --max-pdu is what it announces in the A-ASSOCIATE-AC, whatever the SCU proposed (dcmjs-dimse's
// association.setMaxPduLength): bench uses a large value behind the proxy, so each swept --max-pdu reaches
// it unchanged, and the swept value itself in --direct mode. --fail-every N answers every Nth C-STORE with
// 0xA700 (Refused: out of resources) instead of Success: it makes bench's failure accounting testable.
// Prints `listening <port>` when ready; exits 0 on SIGTERM/SIGINT.

import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import dcmjsDimse from 'dcmjs-dimse';
import { EchoingScp, hostScp, storeThenRespond } from './scp-host.js';
import { intArg } from './process-args.js';

const { Implementation, log } = dcmjsDimse;
const { CStoreResponse } = dcmjsDimse.responses;
const { PresentationContextResult, TransferSyntax } = dcmjsDimse.constants;

type Association = InstanceType<typeof dcmjsDimse.association.Association>;
type CStoreRequestT = InstanceType<typeof dcmjsDimse.requests.CStoreRequest>;
type CStoreResponseT = InstanceType<typeof CStoreResponse>;

/** PS3.7 C.4.2.1.4: Refused, out of resources. */
export const STATUS_OUT_OF_RESOURCES = 0xa700;

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    'max-pdu': { type: 'string' },
    'store-dir': { type: 'string' },
    'fail-every': { type: 'string' },
  },
  strict: true,
});

const port = intArg('scp-process', 'port', values.port, 0)!;
const maxPdu = intArg('scp-process', 'max-pdu', values['max-pdu'], 0);
const failEvery = intArg('scp-process', 'fail-every', values['fail-every'], 1);
const storeDir = values['store-dir'] ? path.resolve(values['store-dir']) : undefined;

log.setLevel('error');
if (maxPdu !== undefined) Implementation.setMaxPduLength(maxPdu);
if (storeDir) mkdirSync(storeDir, { recursive: true });
let stores = 0;

class BenchScp extends EchoingScp {
  override associationRequested(association: Association): void {
    association.setMaxPduLength(Implementation.getMaxPduLength());
    for (const { id } of association.getPresentationContexts()) {
      const context = association.getPresentationContext(id);
      const proposed = context.getTransferSyntaxUids();
      // The first proposed transfer syntax: what the sender has, so nothing is transcoded.
      const chosen = proposed.find((ts) => ts === TransferSyntax.ExplicitVRLittleEndian) ?? proposed[0];
      if (chosen) context.setResult(PresentationContextResult.Accept, chosen);
      else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
    }
    this.sendAssociationAccept();
  }

  override cStoreRequest(request: CStoreRequestT, callback: (response: CStoreResponseT) => void): void {
    stores++;
    const respond = (status: number): void => {
      const response = CStoreResponse.fromRequest(request);
      response.setStatus(status);
      callback(response);
    };
    if (failEvery !== undefined && stores % failEvery === 0) {
      respond(STATUS_OUT_OF_RESOURCES);
      return;
    }
    storeThenRespond(request, storeDir, respond);
  }
}

hostScp((socket) => new BenchScp(socket), port, values.host!, 'scp-process');

// What bench's embedded SCP (scp-process.ts) and the tests' dcmjs-dimse peer (test/peers/dimse-scp.ts)
// share: hosting a dcmjs-dimse Scp class on our own TCP server (dcmjs-dimse's Server.listen binds every
// interface; these listen where they are told), answering release and C-ECHO, and storing a received
// C-STORE before acknowledging it.

import net from 'node:net';
import path from 'node:path';
import dcmjsDimse from 'dcmjs-dimse';

const { Status } = dcmjsDimse.constants;

type CStoreRequestT = InstanceType<typeof dcmjsDimse.requests.CStoreRequest>;
type ScpT = InstanceType<typeof dcmjsDimse.Scp>;

type CEchoRequestT = InstanceType<typeof dcmjsDimse.requests.CEchoRequest>;
type CEchoResponseT = InstanceType<typeof dcmjsDimse.responses.CEchoResponse>;

/** A dcmjs-dimse Scp that answers A-RELEASE-RQ and C-ECHO; subclasses add association and storage handling. */
export class EchoingScp extends dcmjsDimse.Scp {
  override associationReleaseRequested(): void {
    this.sendAssociationReleaseResponse();
  }

  override cEchoRequest(request: CEchoRequestT, callback: (response: CEchoResponseT) => void): void {
    const response = dcmjsDimse.responses.CEchoResponse.fromRequest(request);
    response.setStatus(Status.Success);
    callback(response);
  }
}

/**
 * Answer a C-STORE: Success at once when there is nowhere to store (or no data set); otherwise write
 * `<storeDir>/<SOP Instance UID>.dcm` first and answer Success, or ProcessingFailure if writing failed, so
 * that whoever reads the directory after the response finds the file complete.
 */
export function storeThenRespond(request: CStoreRequestT, storeDir: string | undefined, respond: (status: number) => void): void {
  const dataset = request.getDataset();
  if (!storeDir || !dataset) {
    respond(Status.Success);
    return;
  }
  const file = path.join(storeDir, `${request.getAffectedSopInstanceUid()}.dcm`);
  dataset.toFile(file, (err) => {
    if (err) process.stderr.write(`writing ${file} failed: ${err.message}\n`);
    respond(err ? Status.ProcessingFailure : Status.Success);
  });
}

/**
 * Serve `createScp(socket)` per connection on host:port; print `listening <port>` once ready (the parent
 * process waits for that line); exit 0 on SIGTERM/SIGINT, closing every connection; exit 1 if the port
 * cannot be bound.
 */
export function hostScp(createScp: (socket: net.Socket) => ScpT, port: number, host: string, name: string): void {
  const clients = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    clients.add(socket);
    socket.once('close', () => clients.delete(socket));
    createScp(socket).on('networkError', (err: Error) => {
      process.stderr.write(`networkError: ${err.message}\n`);
      socket.destroy();
    });
  });
  server.on('error', (err) => {
    process.stderr.write(`${name}: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(port, host, () => {
    process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`);
  });
  const shutdown = (): void => {
    server.close();
    for (const s of clients) s.destroy();
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

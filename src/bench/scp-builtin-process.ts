// bench's built-in SCP (src/peers/scp.ts), run as its own process so that its CPU is apart from bench's,
// the proxy's and the senders'. Same command line as scp-process.ts (the dcmjs-dimse SCP):
//
//   node scp-builtin-process.js --port N --max-pdu BYTES [--host H] [--store-dir DIR] [--fail-every N] [--idle-timeout MS]
//                               [--pdata-delay MS] [--tls-cert PEM --tls-key PEM [--tls-ca PEM]]
//
// --max-pdu is what it announces in every A-ASSOCIATE-AC (0 = no maximum). Prints `listening <port>` when
// ready; exits 0 on SIGTERM/SIGINT, printing its counters on stderr. --tls-cert/--tls-key: it listens with TLS;
// --tls-ca: every client must present a certificate signed by that CA. --pdata-delay MS: each C-STORE is
// answered no earlier than MS per P-DATA-TF that carried its data set after its command (a known cost per
// PDU: scripts/experiment-check.ts computes the effect of the max PDU from it).

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BuiltinScp } from '../peers/scp.js';
import { intArg } from './process-args.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    'max-pdu': { type: 'string', default: '0' },
    'store-dir': { type: 'string' },
    'fail-every': { type: 'string' },
    'idle-timeout': { type: 'string', default: '120000' },
    'pdata-delay': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' },
  },
  strict: true,
});

/** --pdata-delay: milliseconds, fractions allowed, 0 to 60000. */
function delayArg(text: string): number {
  const n = Number(text);
  if (!(text.trim() !== '' && n >= 0 && n <= 60_000)) {
    process.stderr.write(`scp-builtin-process: --pdata-delay ${text} is not a number of milliseconds from 0 to 60000\n`);
    process.exit(2);
  }
  return n;
}

const tlsCa = values['tls-ca'] ? readFileSync(values['tls-ca']) : undefined;
const tls = values['tls-cert']
  ? {
      cert: readFileSync(values['tls-cert']),
      key: readFileSync(values['tls-key'] ?? values['tls-cert']),
      ca: tlsCa,
      requestCert: tlsCa !== undefined,
      rejectUnauthorized: tlsCa !== undefined,
    }
  : undefined;

const scp = new BuiltinScp({
  tls,
  maxLength: intArg('scp-builtin-process', 'max-pdu', values['max-pdu'], 0, 0xffffffff)!,
  storeDir: values['store-dir'] ? path.resolve(values['store-dir']) : undefined,
  failEvery: intArg('scp-builtin-process', 'fail-every', values['fail-every'], 1, 0xffffffff),
  idleTimeoutMs: intArg('scp-builtin-process', 'idle-timeout', values['idle-timeout'], 1, 0xffffffff)!,
  pdataDelayMs: values['pdata-delay'] === undefined ? undefined : delayArg(values['pdata-delay']),
  log: (line) => process.stderr.write(`${line}\n`),
});

scp.listen(intArg('scp-builtin-process', 'port', values.port, 0, 0xffffffff)!, values.host!).then(
  (port) => process.stdout.write(`listening ${port}\n`),
  (err: Error) => {
    process.stderr.write(`scp-builtin-process: ${err.message}\n`);
    process.exit(1);
  },
);

const shutdown = (): void => {
  scp.close();
  process.stderr.write(`scp-builtin-process: ${JSON.stringify(scp.counters)}\n`);
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

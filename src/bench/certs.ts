// bench --tls: throwaway certificates for one run, made with openssl's CLI in bench's temporary directory and
// removed with it (never written to --out): a CA, a server certificate (the proxy's listener and the embedded
// SCP; subject alternative names 127.0.0.1 and localhost) and a client certificate (the senders, and the
// proxy toward the SCP). RSA 2048, valid two days.

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface CertPair {
  cert: string;
  key: string;
}

export interface BenchPki {
  /** The CA every side trusts (and nothing else). */
  ca: string;
  server: CertPair;
  client: CertPair;
}

export function opensslOnPath(): boolean {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8', timeout: 15_000 });
  return r.error === undefined && r.status === 0;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
}

/** Make the CA and the two leaf certificates in `dir` (about a second). */
export function makeBenchPki(dir: string): BenchPki {
  mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=dicom-pdu-proxy bench CA'], dir);
  const leaf = (name: string, cn: string): CertPair => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    writeFileSync(path.join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
    chmodSync(path.join(dir, `${name}.key`), 0o600);
    return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  };
  return { ca: path.join(dir, 'ca.crt'), server: leaf('server', 'bench-server'), client: leaf('client', 'bench-client') };
}

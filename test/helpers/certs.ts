// Throwaway certificates for TLS tests, made with openssl in a temporary directory (never committed): two CAs
// ("site", the one everybody trusts, and "other"), leaf certificates signed by them with the subject
// alternative names 127.0.0.1 and localhost, and an expired one.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Pair {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** The site CA: trusted by the proxy, the peers and the tests. */
  ca: string;
  /** Another CA nobody here trusts. */
  otherCa: string;
  /** CN=proxy.test: the proxy's listener certificate and its client certificate toward the SCP. */
  proxy: Pair;
  /** CN=storescp.test: the SCP's. */
  scp: Pair;
  /** CN=modality: the SCU's client certificate. */
  modality: Pair;
  /** CN=stranger, signed by the other CA. */
  stranger: Pair;
  /** CN=expired, signed by the site CA, no longer valid. */
  expired: Pair;
  /** Another leaf signed by the site CA, valid for `days` from now (negative: expired), SANs as above. */
  issue(name: string, cn: string, days: number): Pair;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Make the whole set (RSA 2048, about a second). */
export function makeTestPki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-pki-'));
  const ca = (name: string): void => {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name} test CA`], dir);
  };
  const leaf = (name: string, cn: string, issuer: string, days = 2): Pair => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    fs.writeFileSync(path.join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${issuer}.crt`,
        '-CAkey',
        `${issuer}.key`,
        '-CAcreateserial',
        '-out',
        `${name}.crt`,
        '-days',
        String(days),
        '-extfile',
        `${name}.ext`,
      ],
      dir,
    );
    // The proxy runs as the test's user; storescp reads keys the same way.
    fs.chmodSync(path.join(dir, `${name}.key`), 0o600);
    return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  };
  ca('site-ca');
  ca('other-ca');
  return {
    dir,
    ca: path.join(dir, 'site-ca.crt'),
    otherCa: path.join(dir, 'other-ca.crt'),
    proxy: leaf('proxy', 'proxy.test', 'site-ca'),
    scp: leaf('scp', 'storescp.test', 'site-ca'),
    modality: leaf('modality', 'modality', 'site-ca'),
    stranger: leaf('stranger', 'stranger', 'other-ca'),
    // -days -1: notAfter is a day before now.
    expired: leaf('expired', 'expired', 'site-ca', -1),
    issue: (name, cn, days) => leaf(name, cn, 'site-ca', days),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** storescu/storescp/echoscu arguments for TLS with a certificate (DCMTK 3.6.7: -pw for unencrypted keys). */
export function dcmtkTls(pair: Pair, ca: string): string[] {
  return ['+tls', pair.key, pair.cert, '-pw', '+cf', ca];
}

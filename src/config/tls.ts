// TLS settings: certificate and key files are read and checked when the settings are resolved, so a file
// that is missing, unreadable or not what it should be is one line naming the setting (exit status 2), never
// a failure at the first connection.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import type { ClientAuth } from './options.js';
import { ConfigError } from '../values/errors.js';

export const CLIENT_AUTH_MODES: readonly ClientAuth[] = ['none', 'optional', 'required'];

/** `none`, `optional` (a certificate, when given, must verify) or `required` (IHE ATNA mutual authentication). */
export function parseClientAuth(text: string): ClientAuth {
  const t = text.trim().toLowerCase();
  if ((CLIENT_AUTH_MODES as readonly string[]).includes(t)) return t as ClientAuth;
  throw new ConfigError(`${JSON.stringify(text)} is not ${CLIENT_AUTH_MODES.join(', ')}`);
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/** true/false, also 1/0, yes/no, on/off (the environment and --route values are text). */
export function parseBoolean(text: string): boolean {
  const t = text.trim().toLowerCase();
  if (TRUE.has(t)) return true;
  if (FALSE.has(t)) return false;
  throw new ConfigError(`${JSON.stringify(text)} is not true or false`);
}

/** A file's bytes; `name` is the setting it came from (`--tls-cert`, `config file x.json: tlsCert`). */
function readFile(file: string, name: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${JSON.stringify(file)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** One or more PEM certificates (a certificate, its chain, or CA certificates), each parsed. */
export function readCertificates(file: string, name: string): Buffer {
  const pem = readFile(file, name);
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${name}: ${JSON.stringify(file)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new ConfigError(`${name}: ${JSON.stringify(file)}: certificate ${i + 1} is not valid (${firstLine(err)})`);
    }
  }
  return pem;
}

/** The earliest notAfter of the PEM certificates in `pem` (a certificate and its chain), ms since the epoch. */
export function earliestExpiry(pem: Buffer): number | undefined {
  const all = (pem.toString('latin1').match(PEM_CERTIFICATE) ?? []).map((block) => Date.parse(new X509Certificate(block).validTo));
  return all.length > 0 ? Math.min(...all) : undefined;
}

/** An unencrypted PEM private key. */
export function readPrivateKey(file: string, name: string): Buffer {
  const pem = readFile(file, name);
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem.toString('latin1'))) {
    throw new ConfigError(`${name}: ${JSON.stringify(file)} is encrypted; give the key unencrypted (openssl pkey -in KEY -out PLAIN), readable only by the proxy's user`);
  }
  try {
    createPrivateKey(pem);
  } catch (err) {
    throw new ConfigError(`${name}: ${JSON.stringify(file)} is not a PEM private key (${firstLine(err)})`);
  }
  return pem;
}

/** The certificate and its key belong together (OpenSSL checks it when they are loaded into one context). */
export function checkKeyPair(cert: Buffer, key: Buffer, certName: string, keyName: string): void {
  try {
    tls.createSecureContext({ cert, key });
  } catch (err) {
    throw new ConfigError(`${keyName}: does not belong to the certificate of ${certName} (${firstLine(err)})`);
  }
}

function firstLine(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return (e.message ?? String(err)).split('\n')[0]!.replace(/^error:[0-9A-F]+:/, '');
}

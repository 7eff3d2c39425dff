// TLS on either leg (PS3.15 Annex B): node:tls options for the listener and the upstream connection, what
// the log lines say about a TLS connection, and handshake failures sorted into a fixed vocabulary (metric
// labels must never carry a peer's text).
//
// The defaults follow the profile DCMTK 3.6.7 uses by default, the Non-downgrading BCP 195 TLS Profile
// (dcmtls/libsrc/tlsciphr.cc): TLS 1.2 at least; TLS 1.3 with OpenSSL's suites; for TLS 1.2 only the four
// AEAD suites with forward secrecy the DICOM profile requires. As a server the proxy picks the strongest suite
// the client offers (BCP 195), as DCMTK does.

import net from 'node:net';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import type { CertificateEvent, TlsFailureReason } from '../events/events.js';
import type { ListenerTls, ProxyOptions, UpstreamTls } from '../config/options.js';
import { earliestExpiry } from '../config/tls.js';
import type { Endpoint } from '../values/endpoint.js';

export const MIN_TLS_VERSION = 'TLSv1.2';

/** TLS 1.3 suites, then the BCP 195 TLS 1.2 suites (OpenSSL names), strongest first. */
export const TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES128-GCM-SHA256',
].join(':');

/** tls.createServer options of a TLS listener. Client certificates are checked after the handshake (checkClient). */
export function listenerTlsOptions(o: ListenerTls, handshakeTimeoutMs: number): tls.TlsOptions {
  return {
    cert: o.cert,
    key: o.key,
    ca: o.ca,
    minVersion: MIN_TLS_VERSION,
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
    dhparam: 'auto',
    requestCert: o.clientAuth !== 'none',
    // Verification errors are read after the handshake so that the log line can say why (Node would only
    // reset the connection).
    rejectUnauthorized: false,
    handshakeTimeout: handshakeTimeoutMs,
    // Not half-open during the handshake: a peer that closes before it is over (a TCP probe) gets the
    // connection closed at once instead of a socket left in CLOSE-WAIT. The server turns half-open on for the
    // secure socket, where a FIN is passed on to the SCP.
    allowHalfOpen: false,
  };
}

/** A client certificate refused by --tls-client-auth, or undefined when the SCU may go on. */
export function checkClient(socket: tls.TLSSocket, o: ListenerTls): { reason: TlsFailureReason; detail: string } | undefined {
  if (o.clientAuth === 'none') return undefined;
  const cert = socket.getPeerCertificate();
  const presented = cert !== null && Object.keys(cert).length > 0;
  if (!presented) {
    return o.clientAuth === 'required' ? { reason: 'no_client_certificate', detail: 'the SCU sent no certificate (--tls-client-auth required)' } : undefined;
  }
  if (socket.authorized) return undefined;
  const code = String(socket.authorizationError ?? 'UNKNOWN');
  return { reason: reasonOfCode(code), detail: `${code}: certificate ${subjectOf(socket.getPeerCertificate())}` };
}

/** Connect to the SCP: plain TCP, or TLS. `ready` is the event after which the connection carries PDUs. */
export function connectUpstream(upstream: Endpoint, o: UpstreamTls | undefined): { socket: Socket; ready: 'connect' | 'secureConnect' } {
  const { host, port } = upstream;
  if (!o) return { socket: net.connect({ host, port, allowHalfOpen: true, noDelay: true }), ready: 'connect' };
  // allowHalfOpen and noDelay reach the socket at run time (node's typings leave them out of ConnectionOptions).
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean; noDelay: boolean } = {
    host,
    port,
    allowHalfOpen: true,
    noDelay: true,
    ca: o.ca,
    cert: o.cert,
    key: o.key,
    // SNI carries names only; an IP upstream without --upstream-tls-servername is checked against the IP SANs.
    servername: o.servername ?? (net.isIP(host) ? undefined : host),
    minVersion: MIN_TLS_VERSION,
    ciphers: TLS_CIPHERS,
    rejectUnauthorized: !o.insecure,
  };
  return { socket: tls.connect(options), ready: 'secureConnect' };
}

/** The TLS facts of a leg for the association log lines; undefined for plain TCP. */
export function tlsFields(socket: Socket | undefined): { version: string | null; cipher: string; peerSubject: string | undefined } | undefined {
  if (!(socket instanceof tls.TLSSocket)) return undefined;
  const cert = socket.getPeerCertificate();
  const presented = cert !== null && Object.keys(cert).length > 0;
  return {
    version: socket.getProtocol(),
    cipher: socket.getCipher()?.standardName ?? 'unknown',
    peerSubject: presented ? subjectOf(cert) : undefined,
  };
}

/** `CN=modality,O=Hospital` (RFC 4514 order of the fields as they come). */
function subjectOf(cert: tls.PeerCertificate): string {
  const subject = cert.subject as unknown as Record<string, string | string[]> | undefined;
  if (!subject) return '(none)';
  return Object.entries(subject)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(',');
}

/** Send what a half-written PDU cannot be followed by: a TCP reset for plain TCP (true), a close for TLS (Node cannot reset under TLS). */
export function resetOrDestroy(socket: Socket): boolean {
  if (socket instanceof tls.TLSSocket) {
    socket.destroy();
    return false;
  }
  socket.resetAndDestroy();
  return true;
}

const REASONS: ReadonlyArray<[RegExp, TlsFailureReason]> = [
  [/^ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE$|CERTIFICATE_REQUIRED$/, 'no_client_certificate'],
  [/^(CERT_HAS_EXPIRED|ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED)$/, 'expired'],
  [
    /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|ERR_SSL_TLSV1_ALERT_UNKNOWN_CA)$/,
    'unknown_ca',
  ],
  [/^ERR_TLS_CERT_ALTNAME_INVALID$/, 'name_mismatch'],
  [/^(ERR_SSL_WRONG_VERSION_NUMBER|ERR_SSL_HTTP_REQUEST|ERR_SSL_PACKET_LENGTH_TOO_LONG|ERR_SSL_RECORD_LENGTH_MISMATCH)$/, 'plaintext'],
  [
    /^(ERR_SSL_UNSUPPORTED_PROTOCOL|ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION|ERR_SSL_NO_SHARED_CIPHER|ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE|ERR_SSL_NO_PROTOCOLS_AVAILABLE)$/,
    'protocol_mismatch',
  ],
  [/^ERR_TLS_HANDSHAKE_TIMEOUT$/, 'timeout'],
  [/^(ECONNRESET|EPIPE|ERR_SSL_UNEXPECTED_EOF_WHILE_READING)$/, 'connection_closed'],
  [/^ERR_SSL_.*ALERT/, 'peer_alert'],
  [/^(CERT_|ERR_SSL_.*CERTIFICATE|INVALID_CA|PATH_LENGTH_EXCEEDED|CERT_REJECTED|CERT_UNTRUSTED)/, 'bad_certificate'],
];

/** The vocabulary entry of an OpenSSL / Node error code. */
export function reasonOfCode(code: string): TlsFailureReason {
  for (const [pattern, reason] of REASONS) if (pattern.test(code)) return reason;
  return 'other';
}

/** A handshake error: its vocabulary entry and one line of detail. */
export function describeTlsError(err: Error): { reason: TlsFailureReason; detail: string } {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  // OpenSSL messages are "<hex>:error:<hex>:SSL routines:<function>:<text>:<file>:<line>:": keep the text.
  const openssl = /SSL routines:[^:]*:([^:]+):/.exec(err.message);
  const text = openssl ? openssl[1]! : err.message.split('\n')[0]!;
  return { reason: reasonOfCode(code), detail: code ? `${code}: ${text}` : text };
}

/** The certificates a route presents: its listener's and its client certificate toward the SCP. */
export function configuredCertificates(o: Pick<ProxyOptions, 'tls' | 'upstreamTls'>): CertificateEvent[] {
  const out: CertificateEvent[] = [];
  const listener = o.tls && earliestExpiry(o.tls.cert);
  if (listener !== undefined) out.push({ cert: 'listener', notAfterMs: listener });
  const client = o.upstreamTls?.cert && earliestExpiry(o.upstreamTls.cert);
  if (client !== undefined) out.push({ cert: 'upstream_client', notAfterMs: client });
  return out;
}

/**
 * The earliest notAfter of the peer's chain as the handshake saw it (its certificate, the intermediates, and
 * the CA it was verified against: when the first of them expires, the link stops verifying); undefined for
 * plain TCP or no certificate.
 */
export function peerCertificateExpiry(socket: Socket): number | undefined {
  if (!(socket instanceof tls.TLSSocket)) return undefined;
  let earliest: number | undefined;
  const seen = new Set<tls.PeerCertificate>();
  for (
    let cert: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
    cert && Object.keys(cert).length > 0 && !seen.has(cert);
    cert = cert.issuerCertificate
  ) {
    seen.add(cert);
    const notAfter = Date.parse(cert.valid_to);
    if (!Number.isNaN(notAfter)) earliest = earliest === undefined ? notAfter : Math.min(earliest, notAfter);
  }
  return earliest;
}

// Connecting to the upstream (the SCP): plain TCP, or TLS with --upstream-tls, within --connect-timeout
// (which covers the TLS handshake too). A connection that cannot be made is told once, with why (the words
// of the log line and of the summary) and, when it was the TLS handshake that failed, its reason.

import type { Socket } from 'node:net';
import type { TlsFailureReason } from '../events/events.js';
import type { ProxyOptions } from '../config/options.js';
import { formatEndpoint } from '../values/endpoint.js';
import { connectUpstream, describeTlsError } from './tls.js';

export interface TlsFailure {
  reason: TlsFailureReason;
  detail: string;
}

export interface UpstreamEvents {
  /** Whether the session still waits for the connection (else a late connection is closed, errors are the leg's). */
  waiting(): boolean;
  /** Connected (and the TLS handshake done) while waited for. */
  ready(socket: Socket): void;
  /** Not connected while waited for: why, and the TLS handshake's failure if that was it. */
  failed(why: string, tls: TlsFailure | undefined): void;
  /** An error on the connection when nobody waits for it any more. */
  error(err: Error): void;
  end(): void;
  close(): void;
}

/** Connect; returns the socket and a function that cancels the connect timeout. */
export function dialUpstream(options: ProxyOptions, on: UpstreamEvents): { socket: Socket; cancelTimeout: () => void } {
  const { host, port } = options.upstream;
  const { socket, ready } = connectUpstream(options.upstream, options.upstreamTls);
  const tlsFailed = (failure: TlsFailure): void => {
    on.failed(`${formatEndpoint(options.upstream)}: TLS handshake failed (${failure.reason}: ${failure.detail})`, failure);
  };
  let tcpConnected = false;
  socket.once('connect', () => (tcpConnected = true));
  const timer = setTimeout(() => {
    if (on.waiting()) {
      if (tcpConnected) tlsFailed({ reason: 'timeout', detail: `no TLS handshake within ${options.connectTimeoutMs} ms (--connect-timeout)` });
      else on.failed(`no connection to ${host}:${port} within ${options.connectTimeoutMs} ms`, undefined);
    }
    socket.destroy();
  }, options.connectTimeoutMs);
  socket.once(ready, () => {
    clearTimeout(timer);
    if (!on.waiting()) socket.destroy();
    else on.ready(socket);
  });
  socket.on('end', () => on.end());
  socket.on('error', (err) => {
    if (!on.waiting()) return on.error(err);
    clearTimeout(timer);
    if (ready === 'secureConnect' && tcpConnected) tlsFailed(describeTlsError(err));
    else on.failed(`${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, undefined);
  });
  socket.on('close', () => on.close());
  return { socket, cancelTimeout: () => clearTimeout(timer) };
}

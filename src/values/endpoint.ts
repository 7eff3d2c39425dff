// Network endpoints: `[HOST:]PORT` to listen on, `HOST:PORT` of the upstream SCP. IPv6 hosts in brackets.

import net from 'node:net';
import { ConfigError } from './errors.js';

/** A host and a TCP port. */
export interface Endpoint {
  host: string;
  port: number;
}

export const DEFAULT_LISTEN_HOST = '0.0.0.0';

/** `[v6]:port` or `host:port`; a bare host may not contain ':', brackets or spaces. */
const WITH_HOST = /^(?:\[([^\]]*)\]|([^:[\]\s]+)):(\d+)$/;
const PORT_ONLY = /^\d+$/;

function parsePort(digits: string, text: string, min: 0 | 1): number {
  const n = Number(digits);
  if (n < min || n > 65535) throw new ConfigError(`${JSON.stringify(text)}: port ${digits} is not in ${min}..65535`);
  return n;
}

function parseWithHost(text: string, min: 0 | 1, expected: string): Endpoint {
  const m = WITH_HOST.exec(text.trim());
  if (!m) throw new ConfigError(`${JSON.stringify(text)} is not ${expected}`);
  const [, v6, host, digits] = m;
  if (v6 !== undefined && !net.isIPv6(v6)) {
    throw new ConfigError(`${JSON.stringify(text)}: [${v6}] is not an IPv6 address`);
  }
  return { host: v6 ?? host!, port: parsePort(digits!, text, min) };
}

/**
 * `[HOST:]PORT` to listen on: "11112", "127.0.0.1:11112", "[::1]:11112". The host defaults to 0.0.0.0;
 * port 0 picks a free port.
 */
export function parseListen(text: string, defaultHost = DEFAULT_LISTEN_HOST): Endpoint {
  const t = text.trim();
  if (PORT_ONLY.test(t)) return { host: defaultHost, port: parsePort(t, text, 0) };
  return parseWithHost(text, 0, '[HOST:]PORT');
}

/** `HOST:PORT` of the upstream SCP: "pacs:104", "10.0.0.5:11112", "[fe80::1]:104". Host required, port 1..65535. */
export function parseUpstream(text: string): Endpoint {
  return parseWithHost(text, 1, 'HOST:PORT');
}

/** "host:port", with brackets around an IPv6 host. */
export function formatEndpoint(endpoint: Endpoint): string {
  return net.isIPv6(endpoint.host) ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

// Access lists (--allow-calling-aet, --allow-peer): parsing and matching. Pure: no sockets, no logging.
//
// AE titles are compared as DICOM compares them (PS3.5 6.2, VR AE): leading and trailing spaces are not
// significant, case is. Peer rules are IPv4/IPv6 addresses or CIDR blocks, matched with node's
// net.BlockList (an IPv4 rule also matches the IPv4-mapped IPv6 form, ::ffff:a.b.c.d, of its addresses).

import net from 'node:net';
import { ConfigError } from '../values/errors.js';

/** The longest AE title (PS3.5 6.2: 16 bytes). */
export const AE_TITLE_MAX = 16;

/** One AE title from an allow list: 1-16 printable ASCII characters, no backslash (PS3.5 6.2). */
export function parseAeTitle(text: string): string {
  const ae = text.trim();
  if (ae.length === 0 || ae.length > AE_TITLE_MAX || !/^[\x20-\x7e]+$/.test(ae) || ae.includes('\\')) {
    throw new ConfigError(`${JSON.stringify(text)} is not an AE title (1 to ${AE_TITLE_MAX} printable ASCII characters, no backslash)`);
  }
  return ae;
}

export interface PeerRule {
  address: string;
  family: 'ipv4' | 'ipv6';
  /** undefined: this one address. */
  prefix: number | undefined;
}

/** `10.1.2.3`, `10.1.0.0/16`, `::1`, `fd00::/8`. Host names are refused: a list that resolves names can lie. */
export function parsePeerRule(text: string): PeerRule {
  const rule = text.trim();
  const slash = rule.indexOf('/');
  const address = slash < 0 ? rule : rule.slice(0, slash);
  const version = net.isIP(address);
  if (version === 0) throw new ConfigError(`${JSON.stringify(text)} is not an IP address or CIDR block (like 10.0.0.0/8 or fd00::/8)`);
  const family = version === 4 ? 'ipv4' : 'ipv6';
  if (slash < 0) return { address, family, prefix: undefined };
  const bits = rule.slice(slash + 1);
  const max = version === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) {
    throw new ConfigError(`${JSON.stringify(text)}: the prefix length must be 0..${max}`);
  }
  return { address, family, prefix: Number(bits) };
}

/** Does the list hold `callingAe` (as decoded from the A-ASSOCIATE-RQ, padding already trimmed)? */
export function aeAllowed(list: readonly string[], callingAe: string): boolean {
  const ae = callingAe.trim();
  return list.includes(ae);
}

/** A matcher for a peer list; `undefined` address (socket already gone) never matches. */
export function peerMatcher(rules: readonly PeerRule[]): (address: string | undefined) => boolean {
  const list = new net.BlockList();
  for (const r of rules) {
    if (r.prefix === undefined) list.addAddress(r.address, r.family);
    else list.addSubnet(r.address, r.prefix, r.family);
  }
  // BlockList matches an IPv4 rule against the IPv4-mapped IPv6 form too (a dual-stack listener's view).
  return (address) => address !== undefined && list.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');
}

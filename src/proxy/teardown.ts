// How the proxy ends an association it aborts: one shape for protocol errors, internal errors, lost
// connections, stalled peers, idle and shutdown (a Teardown, built here), and how each leg is told: an
// A-ABORT then a half-close, or a reset when the A-ABORT cannot be framed. The session (session.ts) applies
// a Teardown once.

import type { Socket } from 'node:net';
import { ABORT_REASON_NAMES, AbortReason } from '../pdu/constants.js';
import type { AbortCause, Direction, Leg } from '../events/events.js';
import type { Link } from './link.js';

export interface Teardown {
  cause: AbortCause;
  /** The summary's reason. */
  reason: string;
  /** The A-ABORT reason sent to the peers still there. */
  abortReason: AbortReason;
  /** The leg that was lost: closed, not sent an A-ABORT. */
  lost?: Leg;
  /** Close the lost leg with a reset (it stalled: it would take neither an A-ABORT nor the rest of its data). */
  resetLost?: boolean;
  /** The log line (warn unless said): its fields and message. */
  logLevel?: 'warn' | 'error';
  logFields: Record<string, unknown>;
  logMessage: string;
}

/** A protocol error: A-ABORT (source 2, `reason`) to both peers. */
export function protocolErrorTeardown(message: string, code: string, reason: AbortReason): Teardown {
  return {
    cause: 'protocol_error',
    reason: `protocol error: ${message}`,
    abortReason: reason,
    logFields: { code, abortReason: ABORT_REASON_NAMES[reason], reason: message },
    logMessage: 'protocol error: association aborted',
  };
}

/** A bug, not the peers' fault: abort (reason 0, not specified), one error line with the stack, counted apart. */
export function internalErrorTeardown(err: Error, direction: Direction, state: string): Teardown {
  return {
    cause: 'internal_error',
    reason: `internal error: ${err.message}`,
    abortReason: AbortReason.NotSpecified,
    logLevel: 'error',
    logFields: { err, direction, state },
    logMessage: 'internal error: association aborted',
  };
}

/** `leg` took no bytes for --stall-timeout: it cannot take an A-ABORT either, so it is reset. */
export function stalledTeardown(leg: Leg, stallTimeoutMs: number): Teardown {
  const reason = `${leg.toUpperCase()} took no bytes for ${stallTimeoutMs} ms (--stall-timeout)`;
  return {
    cause: 'peer_stalled',
    reason,
    abortReason: AbortReason.NotSpecified,
    lost: leg,
    resetLost: true,
    logFields: { leg, reason },
    logMessage: 'peer stalled: association aborted',
  };
}

/** One leg went away while the association was live (`what` it did): A-ABORT to the other. */
export function lostLegTeardown(leg: Leg, what: string): Teardown {
  const reason = `${leg.toUpperCase()} ${what} during the association`;
  return {
    cause: 'connection_lost',
    reason,
    abortReason: AbortReason.NotSpecified,
    lost: leg,
    logFields: { leg, reason },
    logMessage: 'connection lost: association aborted',
  };
}

/** The proxy ends the association itself (shutdown, idle). */
export function proxyAbortTeardown(why: string, cause: AbortCause): Teardown {
  return {
    cause,
    reason: why,
    abortReason: AbortReason.NotSpecified,
    logFields: { reason: why },
    logMessage: 'association aborted by the proxy',
  };
}

/** Close a lost leg: reset through `link` (the link toward it) when it stalled, else destroy. */
export function closeLostLeg(link: Link, socket: Socket | undefined, reset: boolean | undefined): void {
  if (socket && reset && link.resetOutput()) return;
  socket?.destroy();
}

/** Send A-ABORT toward one peer and half-close; if a PDU is half written, the abort cannot be framed: reset (RST). */
export function abortLeg(link: Link, socket: Socket, abort: Buffer): void {
  if (socket.destroyed) return;
  // Half-close once the A-ABORT is written (after what a shaped link still holds).
  if (link.sendGenerated(abort)) link.closeOutput();
  else link.resetOutput();
}

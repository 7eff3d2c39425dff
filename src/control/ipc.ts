// The messages between the control plane (the primary process) and a relay in a worker process (--workers),
// over node:cluster's IPC channel. Every message is one of these types; `type` starts with `dpp:` to stay
// apart from prom-client's own cluster messages on the same channel. Routes travel as JSON (the channel's
// serialization), with the PEM Buffers of TLS settings revived on arrival (reviveBuffers).

import type { RouteConfig } from '../config/options.js';
import type { Arm } from '../experiment/arms.js';
import type { AdmissionRequest, Decision, OutcomeWire, RefusalCode } from '../proxy/admission.js';

/** A refusal as it crosses the channel: the A-ASSOCIATE-RJ as plain bytes. */
export interface RefusalWire {
  code: RefusalCode;
  reason: string;
  reject: number[];
}

/** An admission decision as it crosses the channel. */
export type DecisionWire = { refusal: RefusalWire } | { arm: Arm | undefined; generation: number };

/** The settings of one generation (1 at start, +1 per reload that validated). */
export interface GenerationWire {
  generation: number;
  routes: RouteConfig[];
}

export type ToWorker =
  /** Who the worker is, and the settings it starts with (always the primary's: a restarted worker gets the current ones). */
  | { type: 'dpp:start'; index: number; ids: string[]; settings: GenerationWire }
  /** New settings: connections handed over from now on may name this generation. */
  | { type: 'dpp:settings'; ids: string[]; settings: GenerationWire }
  /** A connection (the socket travels as the message's handle): `route` indexes the generation's routes. */
  | { type: 'dpp:conn'; generation: number; route: number; assoc: number }
  | { type: 'dpp:admitted'; assoc: number; decision: DecisionWire }
  | { type: 'dpp:close-pending'; assoc: number; why: string }
  | { type: 'dpp:drain' }
  | { type: 'dpp:abort'; why: string }
  /** For the metrics: the generation in force and the reloads that failed so far. */
  | { type: 'dpp:config-state'; generation: number; reloadFailures: number };

export type ToPrimary =
  | { type: 'dpp:hello' }
  | { type: 'dpp:ready' }
  | { type: 'dpp:failed'; message: string }
  | { type: 'dpp:admit'; assoc: number; request: AdmissionRequest }
  /** A connection is gone; `outcome`: how its association ended on its arm (the guard's input). */
  | { type: 'dpp:done'; assoc: number; outcome?: OutcomeWire | undefined }
  | { type: 'dpp:stopped'; aborted: number };

const KNOWN_TO_WORKER: ReadonlySet<string> = new Set(['dpp:start', 'dpp:settings', 'dpp:conn', 'dpp:admitted', 'dpp:close-pending', 'dpp:drain', 'dpp:abort', 'dpp:config-state']);
const KNOWN_TO_PRIMARY: ReadonlySet<string> = new Set(['dpp:hello', 'dpp:ready', 'dpp:failed', 'dpp:admit', 'dpp:done', 'dpp:stopped']);

function typeOf(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const type = (message as { type?: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}

/** One of ours for a worker (other messages on the channel, prom-client's, are not). */
export function isToWorker(message: unknown): message is ToWorker {
  return KNOWN_TO_WORKER.has(typeOf(message) ?? '');
}

/** One of ours for the primary. */
export function isToPrimary(message: unknown): message is ToPrimary {
  return KNOWN_TO_PRIMARY.has(typeOf(message) ?? '');
}

/**
 * Buffers cross the channel as `{ type: 'Buffer', data: [...] }` (Buffer.toJSON): make them Buffers again,
 * anywhere in `value`. Returns `value` (changed in place).
 */
export function reviveBuffers<T>(value: T): T {
  const revive = (v: unknown): unknown => {
    if (typeof v !== 'object' || v === null) return v;
    const o = v as Record<string, unknown>;
    if (o.type === 'Buffer' && Array.isArray(o.data) && Object.keys(o).length === 2) return Buffer.from(o.data as number[]);
    for (const key of Object.keys(o)) o[key] = revive(o[key]);
    return o;
  };
  return revive(value) as T;
}

/** The decision as it crosses the channel, and back. */
export function decisionToWire(d: Decision): DecisionWire {
  if (d.refusal) return { refusal: { code: d.refusal.code, reason: d.refusal.reason, reject: [...d.refusal.reject] } };
  return { arm: d.arm, generation: d.generation };
}

export function decisionFromWire(d: DecisionWire): Decision {
  if ('refusal' in d) return { refusal: { code: d.refusal.code, reason: d.refusal.reason, reject: Buffer.from(d.refusal.reject) } };
  return { arm: d.arm, generation: d.generation };
}

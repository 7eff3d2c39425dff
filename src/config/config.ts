// Settings come in layers, later layers win: config/default.json, then the --config file, then the
// environment (PDU_PROXY_*), then the flags. null, absent or (in the environment) empty means "not set in
// this layer". Each value is validated with the name of the layer it came from, so an error names the flag
// (`--max-pdu`), the file and key (`config file x.json: maxPdu`) or the variable
// (`environment PDU_PROXY_MAX_PDU`). A new layer is one more entry in the list built by loadSettings().

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseListen, parseUpstream } from '../values/endpoint.js';
import { parseSize } from '../values/size.js';
import { MIN_USABLE_MAX_LENGTH } from '../pdu/pdata.js';
import type { CaptureSettings, ListenerTls, ProxyOptions, RouteConfig, UpstreamTls } from './options.js';
import { CAPTURE_PAYLOADS } from '../capture/encoding/connection.js';
import type { CapturePayload } from '../capture/encoding/connection.js';
import type { Endpoint } from '../values/endpoint.js';
import type { FragmentPolicy } from '../transform/refragment.js';
import { parseAeTitle, parsePeerRule } from './access.js';
import { ConfigError } from '../values/errors.js';
import { parseLatency, parseRate } from '../values/shaping.js';
import type { Latency } from '../values/shaping.js';
import { checkKeyPair, parseBoolean, parseClientAuth, readCertificates, readPrivateKey } from './tls.js';
import { DEFAULT_ROUTE_ID, parseRoute, routeFromJson, splitRouteList } from './routes.js';
import type { RouteSpec } from './routes.js';
import { SETTINGS } from './settings.js';
import type { RawSettings, SettingKey } from './settings.js';
import { makeArms, splitArmList } from '../experiment/arms.js';
import type { Arm } from '../experiment/arms.js';
import { ASSIGN_MODES } from '../experiment/assigner.js';
import type { AssignMode } from '../experiment/assigner.js';
import { MAX_SEED } from '../experiment/random.js';

export { SETTINGS } from './settings.js';
export type { RawSettings, SettingKey } from './settings.js';

export interface Layer {
  values: RawSettings;
  /** How to name a key of this layer in a message: `--max-pdu`, `config file x.json: maxPdu`. */
  name(key: SettingKey): string;
  /** config/default.json: values here were not chosen by the user. */
  defaults?: boolean;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Settings {
  /** The first route's options (the --listen/--upstream route when there is one): the process-wide values are the same in every route. */
  options: ProxyOptions;
  /** Every route: --listen/--upstream (id "default") when --upstream is set, then each --route in order. */
  routes: RouteConfig[];
  /** --metrics: where the Prometheus endpoint listens; undefined = off. */
  metrics: Endpoint | undefined;
  /** --health: where GET /healthz and /readyz are served when metrics are off; undefined = off (or on the metrics port). */
  health: Endpoint | undefined;
  logLevel: LogLevel;
  /** --workers: relay processes (node:cluster); 1 = one process, no cluster. `auto` is resolved to the cores available. */
  workers: number;
  /** One-line warnings (the run goes on), each naming the flag or file key: odd or tiny Maximum Lengths. */
  warnings: string[];
}

/** config/default.json at the package top: ../../config from src/config/ (tsx) and from dist/config/ (tsc). */
export const DEFAULT_CONFIG_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'config', 'default.json');

/** The smallest Maximum Length DCMTK's tools let you configure (their --max-pdu range starts there). */
const SMALL_PDU = 4096;

/** --pcap-max-size: a file must hold its header and a few full-size segments. */
const MIN_PCAP_FILE_SIZE = 1024 * 1024;
const MAX_PCAP_FILES = 1000;
const MAX_TIMEOUT_MS = 2 ** 31 - 1; // setTimeout's limit
const MAX_ASSOCIATIONS = 1_000_000;
/** --max-pending: each pending connection holds a file descriptor, and the process has a limited number. */
const MAX_PENDING_CONNECTIONS = 100_000;

function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(SETTINGS, key);
}

/**
 * Read a JSON config file as a layer; unreadable files, bad JSON and unknown keys are ConfigErrors.
 * `from` names where the file name came from when that was not --config (`PDU_PROXY_CONFIG`).
 */
export function fileLayer(file: string, from?: string): Layer {
  const label = from === undefined ? `config file ${file}` : `config file ${file} (from ${from})`;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${label}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${label}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`${label}: must hold a JSON object`);
  }
  for (const key of Object.keys(parsed)) {
    if (!isSettingKey(key)) {
      throw new ConfigError(`${label}: unknown key ${JSON.stringify(key)} (known: ${Object.keys(SETTINGS).join(', ')})`);
    }
  }
  return { values: parsed as RawSettings, name: (key) => `${label}: ${key}` };
}

/** Command-line flags as a layer (values as commander gives them: strings, or undefined when absent). */
export function flagLayer(values: RawSettings): Layer {
  return { values, name: (key) => SETTINGS[key] };
}

/** Environment variables are PDU_PROXY_ + the flag's name in upper snake case: --max-pdu → PDU_PROXY_MAX_PDU. */
export const ENV_PREFIX = 'PDU_PROXY_';

/** The flag that names a config file (not a setting itself: it adds a layer). */
export const CONFIG_FLAG = '--config';

/** The environment variable for a flag: `--max-pdu` → `PDU_PROXY_MAX_PDU`. */
export function envName(flag: string): string {
  return ENV_PREFIX + flag.replace(/^-+/, '').replace(/-/g, '_').toUpperCase();
}

/** PDU_PROXY_CONFIG: the config file, when --config is not given. */
export const ENV_CONFIG = envName(CONFIG_FLAG);

/** Every variable the proxy reads, in SETTINGS order, then PDU_PROXY_CONFIG; each with its key (or 'config'). */
export const ENV_VARIABLES: ReadonlyMap<string, SettingKey | 'config'> = new Map<string, SettingKey | 'config'>([
  ...(Object.keys(SETTINGS) as SettingKey[]).map((key): [string, SettingKey] => [envName(SETTINGS[key]), key]),
  [ENV_CONFIG, 'config'],
]);

export type Environment = Readonly<Record<string, string | undefined>>;

export interface EnvironmentSettings {
  /** The settings from PDU_PROXY_* variables, named `environment PDU_PROXY_MAX_PDU` in messages. */
  layer: Layer;
  /** PDU_PROXY_CONFIG, when set (and not empty). */
  configFile: string | undefined;
}

/** An empty value (or only blanks) is "not set": compose's `VAR: ${X:-}` should not count as a value. */
function envValue(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

function levenshtein(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length]!;
}

/** The known variables closest to a misspelt one (case, underscores and up to 2 letters apart), if any. */
function suggestEnv(name: string): string[] {
  const squash = (n: string) =>
    n
      .toUpperCase()
      .slice(ENV_PREFIX.length)
      .replace(/[^A-Z0-9]/g, '');
  const wrong = squash(name);
  let best: string[] = [];
  let bestDistance = 3;
  for (const known of ENV_VARIABLES.keys()) {
    const d = levenshtein(wrong, squash(known));
    if (d < bestDistance) [best, bestDistance] = [[known], d];
    else if (d === bestDistance) best.push(known);
  }
  return best;
}

/**
 * The PDU_PROXY_* variables as a layer. A variable that starts with PDU_PROXY_ (in any case) but is not one
 * the proxy reads is a ConfigError: a typo like PDU_PROXY_MAXPDU must not be silently ignored.
 */
export function environmentSettings(env: Environment): EnvironmentSettings {
  const values: RawSettings = {};
  let configFile: string | undefined;
  for (const name of Object.keys(env).sort()) {
    if (!name.toUpperCase().startsWith(ENV_PREFIX)) continue;
    const key = ENV_VARIABLES.get(name);
    if (key === undefined) {
      const close = suggestEnv(name);
      const hint = close.length > 0 ? `; did you mean ${close.join(' or ')}?` : '';
      throw new ConfigError(`environment ${name}: unknown variable${hint} (known: ${[...ENV_VARIABLES.keys()].join(', ')})`);
    }
    const value = envValue(env[name]);
    if (value === undefined) continue;
    if (key === 'config') configFile = value;
    else values[key] = value;
  }
  return { layer: { values, name: (key) => `environment ${envName(SETTINGS[key])}` }, configFile };
}

interface Picked {
  value: unknown;
  /** The flag or file key it came from, for messages. */
  name: string;
}

/** The value of `key` from the last layer that sets it. */
function pick(layers: readonly Layer[], key: SettingKey): Picked | undefined {
  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i]!;
    const value = layer.values[key];
    if (value !== undefined && value !== null) return { value, name: layer.name(key) };
  }
  return undefined;
}

/** Run a parser on a setting; its ConfigError (which starts with the quoted value) gets the setting's name. */
function named<T>(got: Picked, parse: (text: string) => T, text: string): T {
  try {
    return parse(text);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${got.name}: ${err.message}`);
    throw err;
  }
}

function requireString(got: Picked, what: string): string {
  if (typeof got.value !== 'string') throw new ConfigError(`${got.name}: ${JSON.stringify(got.value)} must be a string (${what})`);
  return got.value;
}

/** Strings, or numbers where a bare number makes sense (a size in bytes, a port). */
function stringOrNumber(got: Picked, what: string): string {
  if (typeof got.value === 'number') return String(got.value);
  if (typeof got.value === 'string') return got.value;
  throw new ConfigError(`${got.name}: ${JSON.stringify(got.value)} must be ${what}`);
}

function sizeSetting(layers: readonly Layer[], key: 'maxPduRq', warnings: string[]): number | undefined {
  const got = pick(layers, key);
  if (!got) return undefined;
  return maxLengthValue(got, stringOrNumber(got, 'a size (a number of bytes, or a string like "1MB")'), warnings);
}

/** A Maximum Length to write: a SIZE, with a warning for odd or tiny values. */
function maxLengthValue(got: Picked, text: string, warnings: string[]): number {
  const size = named(got, parseSize, text);
  if (size % 2 === 1) {
    warnings.push(`${got.name}: ${size} is odd: senders that cut PDUs at the limit then send odd-length fragments, which DCMTK rejects`);
  } else if (size !== 0 && size < SMALL_PDU) {
    warnings.push(`${got.name}: ${size} is below ${SMALL_PDU}, the smallest Maximum Length DCMTK's tools accept as a setting`);
  }
  return size;
}

/** Arms in one experiment at most (each is a label value of the metrics and a row of the stats table). */
export const MAX_ARMS = 16;

/**
 * --max-pdu SIZE[,SIZE...]: the experiment's arms. A flag or variable separates sizes with commas, a --route
 * value with '/' (commas work there too); a config file gives a size or an array of sizes. Not set = no arm.
 */
function armsSetting(layers: readonly Layer[], warnings: string[]): Arm[] {
  const got = pick(layers, 'maxPdu');
  if (!got) return [];
  let written: string[];
  if (Array.isArray(got.value)) {
    if (got.value.length === 0) throw new ConfigError(`${got.name}: [] holds no size (leave it out, or null, for no --max-pdu)`);
    written = got.value.map((item, i) => stringOrNumber({ name: `${got.name}[${i}]`, value: item }, 'a size (a number of bytes, or a string like "1MB")'));
  } else {
    const text = stringOrNumber(got, 'a size or a list of sizes ("16KB,64KB", or an array in a config file)');
    written = splitArmList(text);
    if (written.some((item) => item === '')) throw new ConfigError(`${got.name}: ${JSON.stringify(text)} has an empty item (sizes separated by commas)`);
  }
  if (written.length > MAX_ARMS) throw new ConfigError(`${got.name}: ${written.length} sizes; an experiment has at most ${MAX_ARMS} arms`);
  return makeArms(
    written,
    written.map((text) => maxLengthValue(got, text, warnings)),
  );
}

/** --assign block|rotate|random. */
export function parseAssignMode(text: string): AssignMode {
  const t = text.trim().toLowerCase();
  if ((ASSIGN_MODES as readonly string[]).includes(t)) return t as AssignMode;
  throw new ConfigError(`${JSON.stringify(text)} is not ${ASSIGN_MODES.join(', ').replace(/, (?=[^,]*$)/, ' or ')}`);
}

/** --assign-seed N: a whole number 0..MAX_SEED; not set = undefined (a seed is chosen and logged at start). */
function seedSetting(layers: readonly Layer[]): number | undefined {
  const got = pick(layers, 'assignSeed');
  if (!got) return undefined;
  const value = got.value;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > MAX_SEED) throw new ConfigError(`${got.name}: ${JSON.stringify(value)} is not a seed (a whole number 0..${MAX_SEED})`);
  return n;
}

/** --guard on|off (true/false in a config file too). */
export function parseOnOff(text: string): boolean {
  const t = text.trim().toLowerCase();
  if (t === 'on') return true;
  if (t === 'off') return false;
  throw new ConfigError(`${JSON.stringify(text)} is not on or off`);
}

function guardSetting(layers: readonly Layer[]): boolean {
  const got = pick(layers, 'guard');
  if (!got) return true;
  if (typeof got.value === 'boolean') return got.value;
  return named(got, parseOnOff, requireString(got, 'on or off'));
}

type MsKey = 'connectTimeoutMs' | 'closeTimeoutMs' | 'artimTimeoutMs' | 'idleTimeoutMs' | 'stallTimeoutMs' | 'drainTimeoutMs';

/** A whole number of milliseconds; `min` 0 where 0 means "off". */
function msSetting(layers: readonly Layer[], key: MsKey, min = 1): number {
  return wholeSetting(layers, key, min, MAX_TIMEOUT_MS, 'milliseconds');
}

function wholeSetting(layers: readonly Layer[], key: MsKey | 'maxAssociations' | 'maxPendingConnections' | 'pcapMaxFiles', min: number, max: number, unit: string): number {
  const got = pick(layers, key);
  if (!got) throw new ConfigError(`${SETTINGS[key]}: no value (config/default.json should hold "${key}")`);
  const value = got.value;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${got.name}: ${JSON.stringify(value)} is not a whole number of ${unit} (${min}..${max})`);
  }
  return n;
}

/** The most relay processes --workers accepts (more than any machine this runs on has cores to give them). */
export const MAX_WORKERS = 256;

/** --workers N|auto: a whole number 1..MAX_WORKERS, or `auto` (the cores available to this process). */
function workersSetting(layers: readonly Layer[]): number {
  const got = pick(layers, 'workers');
  if (!got) return 1;
  const value = got.value;
  if (typeof value === 'string' && value.trim().toLowerCase() === 'auto') return Math.min(MAX_WORKERS, os.availableParallelism());
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new ConfigError(`${got.name}: ${JSON.stringify(value)} is not a number of workers (1..${MAX_WORKERS}) or "auto"`);
  }
  return n;
}

/** A comma-separated list (or, in a config file, a JSON array of strings); not set or empty = no list. */
function listSetting<T>(layers: readonly Layer[], key: 'allowCallingAet' | 'allowPeer', parse: (item: string) => T): T[] | undefined {
  const got = pick(layers, key);
  if (!got) return undefined;
  let items: string[];
  if (typeof got.value === 'string') items = got.value.split(',');
  else if (Array.isArray(got.value) && got.value.every((v) => typeof v === 'string')) items = got.value as string[];
  else throw new ConfigError(`${got.name}: ${JSON.stringify(got.value)} must be a comma-separated string or an array of strings`);
  const out = items.map((i) => i.trim()).filter((i) => i.length > 0);
  if (out.length === 0) return undefined;
  return out.map((item) => named(got, parse, item));
}

/** --latency MS[:JITTER] (a number in a config file is MS); not set = undefined. */
function latencySetting(layers: readonly Layer[], key: 'latency' | 'latencyToScp' | 'latencyToScu'): Latency | undefined {
  const got = pick(layers, key);
  if (!got) return undefined;
  return named(got, parseLatency, stringOrNumber(got, 'a latency "MS" or "MS:JITTER" (milliseconds), or a number of milliseconds'));
}

/** --bandwidth RATE in bytes per second (0 = not limited); a config file needs a string with a unit (or 0). */
function rateSetting(layers: readonly Layer[], key: 'bandwidth' | 'bandwidthToScp' | 'bandwidthToScu'): number | undefined {
  const got = pick(layers, key);
  if (!got) return undefined;
  return named(got, parseRate, stringOrNumber(got, 'a rate like "100Mbit" or "10MB/s"'));
}

/** `fit`, `repack` or a SIZE (regroup into PDUs of that size, within each receiver's limit; 0 = the limit). */
export function parseFragment(text: string): FragmentPolicy {
  const t = text.trim().toLowerCase();
  if (t === 'fit' || t === 'repack') return { mode: t };
  // Something that starts like a number is meant as a size: report what is wrong with it as a size.
  if (/^\d/.test(t)) {
    const size = parseSize(text);
    if (size !== 0 && size < MIN_USABLE_MAX_LENGTH) {
      throw new ConfigError(`${size} is below ${MIN_USABLE_MAX_LENGTH}, the smallest P-DATA-TF that carries an even fragment (6-byte PDV header + 2 bytes)`);
    }
    return { mode: 'size', size };
  }
  throw new ConfigError(`${JSON.stringify(text)} is not fit, repack or a size`);
}

export function parseLogLevel(text: string): LogLevel {
  const level = text.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new ConfigError(`${JSON.stringify(text)} is not a log level (${LOG_LEVELS.join(', ')})`);
}

/** --pcap-payload: full or headers. */
export function parseCapturePayload(text: string): CapturePayload {
  const t = text.trim().toLowerCase();
  if ((CAPTURE_PAYLOADS as readonly string[]).includes(t)) return t as CapturePayload;
  throw new ConfigError(`${JSON.stringify(text)} is not ${CAPTURE_PAYLOADS.join(' or ')}`);
}

/**
 * --pcap and its companions. The companions are checked even without --pcap (a bad value is an error
 * wherever it is); the capture is set only when --pcap is, so the options of a run without it read as before.
 */
function captureSetting(layers: readonly Layer[], others: ReadonlyArray<[Picked | undefined, string | undefined]>): CaptureSettings | undefined {
  const file = pick(layers, 'pcap');
  const size = pick(layers, 'pcapMaxSize');
  const payload = pick(layers, 'pcapPayload');
  const maxSize = size ? named(size, parseSize, stringOrNumber(size, 'a size (a number of bytes, or a string like "100MB")')) : 0;
  if (size && maxSize !== 0 && maxSize < MIN_PCAP_FILE_SIZE) {
    throw new ConfigError(`${size.name}: ${JSON.stringify(size.value)} is below ${MIN_PCAP_FILE_SIZE} bytes (1MB); 0 = no rotation`);
  }
  const maxFiles = wholeSetting(layers, 'pcapMaxFiles', 1, MAX_PCAP_FILES, 'files');
  const mode = payload ? named(payload, parseCapturePayload, requireString(payload, CAPTURE_PAYLOADS.join(' or '))) : 'full';
  if (!file) return undefined;
  const name = requireString(file, 'a file name');
  if (name === '') throw new ConfigError(`${file.name}: "" is not a file name`);
  for (const [other, otherFile] of others) {
    // The CSV files are text logs: a capture written into one would spoil both.
    if (other && otherFile !== undefined && path.resolve(otherFile) === path.resolve(name)) {
      throw new ConfigError(`${file.name}: ${JSON.stringify(name)} is the file of ${other.name} too; give the capture its own file`);
    }
  }
  return { file: name, maxSize, maxFiles, payload: mode };
}

/** The engine's options from the layers (later wins): the global ones, or those plus a route's layer on top. */
function resolveOptions(layers: readonly Layer[], warnings: string[]): ProxyOptions {
  const upstream = pick(layers, 'upstream');
  if (!upstream) {
    throw new ConfigError(`--upstream HOST:PORT is required (the SCP to forward to; or set ${envName(SETTINGS.upstream)}, or "upstream" in a --config file)`);
  }
  const listen = pick(layers, 'listen');
  const fragment = pick(layers, 'fragment');
  const csv = pick(layers, 'csv');
  const messagesCsv = pick(layers, 'messagesCsv');
  const arms = armsSetting(layers, warnings);
  const assign = pick(layers, 'assign');

  const options: ProxyOptions = {
    listen: listen ? named(listen, (t) => parseListen(t), stringOrNumber(listen, 'a string "[HOST:]PORT" or a port number')) : { host: '0.0.0.0', port: 11112 },
    upstream: named(upstream, parseUpstream, requireString(upstream, '"HOST:PORT"')),
    arms,
    maxPdu: arms.length === 1 ? arms[0]!.maxPdu : undefined,
    maxPduRq: sizeSetting(layers, 'maxPduRq', warnings),
    assign: assign ? named(assign, parseAssignMode, requireString(assign, ASSIGN_MODES.join(', '))) : 'block',
    assignSeed: seedSetting(layers),
    guard: guardSetting(layers),
    fragment: fragment ? named(fragment, parseFragment, stringOrNumber(fragment, '"fit", "repack" or a size')) : { mode: 'fit' },
    csv: csv ? requireString(csv, 'a file name') : undefined,
    connectTimeoutMs: msSetting(layers, 'connectTimeoutMs'),
    closeTimeoutMs: msSetting(layers, 'closeTimeoutMs'),
    artimTimeoutMs: msSetting(layers, 'artimTimeoutMs'),
    idleTimeoutMs: msSetting(layers, 'idleTimeoutMs', 0),
    stallTimeoutMs: msSetting(layers, 'stallTimeoutMs', 0),
    drainTimeoutMs: msSetting(layers, 'drainTimeoutMs', 0),
    maxAssociations: wholeSetting(layers, 'maxAssociations', 0, MAX_ASSOCIATIONS, 'associations'),
    maxPendingConnections: wholeSetting(layers, 'maxPendingConnections', 1, MAX_PENDING_CONNECTIONS, 'connections'),
    allowCallingAet: listSetting(layers, 'allowCallingAet', parseAeTitle),
    allowPeer: listSetting(layers, 'allowPeer', parsePeerRule),
  };
  // Link shaping: set only when given, so the options of a run without it read as before.
  for (const key of ['latency', 'latencyToScp', 'latencyToScu'] as const) {
    const latency = latencySetting(layers, key);
    if (latency !== undefined) options[key] = latency;
  }
  for (const key of ['bandwidth', 'bandwidthToScp', 'bandwidthToScu'] as const) {
    const rate = rateSetting(layers, key);
    if (rate !== undefined) options[key] = rate;
  }
  const listenerTls = listenerTlsSetting(layers);
  if (listenerTls) options.tls = listenerTls;
  const upstreamTls = upstreamTlsSetting(layers);
  if (upstreamTls) options.upstreamTls = upstreamTls;
  if (options.csv === '') throw new ConfigError(`${csv!.name}: "" is not a file name`);
  if (messagesCsv) {
    // Set only when given, so the options of a run without it read as before.
    options.messagesCsv = requireString(messagesCsv, 'a file name');
    if (options.messagesCsv === '') throw new ConfigError(`${messagesCsv.name}: "" is not a file name`);
    if (options.csv !== undefined && path.resolve(options.csv) === path.resolve(options.messagesCsv)) {
      // The chunk CSV truncates its file: both logs in one file would spoil each other.
      throw new ConfigError(`${messagesCsv.name}: ${JSON.stringify(options.messagesCsv)} is the chunk CSV file too (${csv!.name}); give each log its own file`);
    }
  }
  const capture = captureSetting(layers, [
    [csv, options.csv],
    [messagesCsv, options.messagesCsv],
  ]);
  if (capture) options.pcap = capture;
  return options;
}

/** Routes may share one capture file; then they must agree on how it rotates. */
function checkSharedCaptures(routes: readonly RouteConfig[]): void {
  const byFile = new Map<string, RouteConfig>();
  for (const route of routes) {
    const capture = route.options.pcap;
    if (!capture) continue;
    const where = path.resolve(capture.file);
    const other = byFile.get(where);
    if (!other) {
      byFile.set(where, route);
      continue;
    }
    const first = other.options.pcap!;
    if (first.maxSize !== capture.maxSize || first.maxFiles !== capture.maxFiles) {
      throw new ConfigError(
        `${route.label}: captures into ${JSON.stringify(capture.file)} like ${other.label}, with other --pcap-max-size/--pcap-max-files; one file rotates one way`,
      );
    }
  }
}

/** true/false (JSON) or its text; not set = false. */
function booleanSetting(layers: readonly Layer[], key: 'upstreamTls' | 'upstreamTlsInsecure'): { value: boolean; name: string | undefined } {
  const got = pick(layers, key);
  if (!got) return { value: false, name: undefined };
  const value = typeof got.value === 'boolean' ? got.value : named(got, parseBoolean, stringOrNumber(got, 'true or false'));
  return { value, name: got.name };
}

/** A file name setting (not set, or empty in a config file = undefined). */
function fileSetting(layers: readonly Layer[], key: SettingKey): Picked | undefined {
  const got = pick(layers, key);
  if (!got) return undefined;
  const file = requireString(got, 'a file name');
  if (file.trim() === '') throw new ConfigError(`${got.name}: "" is not a file name`);
  return got;
}

/** --tls-cert/--tls-key (both or neither), --tls-ca, --tls-client-auth: the listener's TLS, or undefined. */
function listenerTlsSetting(layers: readonly Layer[]): ListenerTls | undefined {
  const cert = fileSetting(layers, 'tlsCert');
  const key = fileSetting(layers, 'tlsKey');
  const ca = fileSetting(layers, 'tlsCa');
  const auth = pick(layers, 'tlsClientAuth');
  const clientAuth = auth ? named(auth, parseClientAuth, requireString(auth, 'none, optional or required')) : 'none';
  if (!cert || !key) {
    if (cert || key) {
      const [given, missing] = cert ? [cert.name, SETTINGS.tlsKey] : [key!.name, SETTINGS.tlsCert];
      throw new ConfigError(`${given}: needs ${missing} too (a TLS listener has a certificate and its private key)`);
    }
    if (ca) throw new ConfigError(`${ca.name}: needs ${SETTINGS.tlsCert} and ${SETTINGS.tlsKey} (the listener is not TLS without them)`);
    if (clientAuth !== 'none') throw new ConfigError(`${auth!.name}: ${clientAuth} needs ${SETTINGS.tlsCert} and ${SETTINGS.tlsKey} (the listener is not TLS without them)`);
    return undefined;
  }
  if (clientAuth !== 'none' && !ca) {
    throw new ConfigError(`${auth!.name}: ${clientAuth} needs ${SETTINGS.tlsCa} (the CA that signs the SCUs' certificates)`);
  }
  const tls: ListenerTls = {
    cert: readCertificates(cert.value as string, cert.name),
    key: readPrivateKey(key.value as string, key.name),
    clientAuth,
  };
  checkKeyPair(tls.cert, tls.key, cert.name, key.name);
  if (ca) tls.ca = readCertificates(ca.value as string, ca.name);
  return tls;
}

/** --upstream-tls and its companions: TLS toward the SCP, or undefined. */
function upstreamTlsSetting(layers: readonly Layer[]): UpstreamTls | undefined {
  const enabled = booleanSetting(layers, 'upstreamTls');
  const insecure = booleanSetting(layers, 'upstreamTlsInsecure');
  const ca = fileSetting(layers, 'upstreamTlsCa');
  const cert = fileSetting(layers, 'upstreamTlsCert');
  const key = fileSetting(layers, 'upstreamTlsKey');
  const servernameGot = pick(layers, 'upstreamTlsServername');
  const servername = servernameGot ? requireString(servernameGot, 'a host name').trim() : undefined;
  if (!enabled.value) {
    const stray = [ca?.name, cert?.name, key?.name, servernameGot?.name, insecure.value ? insecure.name : undefined].find((n) => n !== undefined);
    if (stray) throw new ConfigError(`${stray}: needs ${SETTINGS.upstreamTls} (the connection to the SCP is plain TCP without it)`);
    return undefined;
  }
  if (servername === '') throw new ConfigError(`${servernameGot!.name}: "" is not a host name`);
  if (cert && !key) throw new ConfigError(`${cert.name}: needs ${SETTINGS.upstreamTlsKey} too`);
  if (key && !cert) throw new ConfigError(`${key.name}: needs ${SETTINGS.upstreamTlsCert} too`);
  const tls: UpstreamTls = { insecure: insecure.value };
  if (ca) tls.ca = readCertificates(ca.value as string, ca.name);
  if (cert && key) {
    tls.cert = readCertificates(cert.value as string, cert.name);
    tls.key = readPrivateKey(key.value as string, key.name);
    checkKeyPair(tls.cert, tls.key, cert.name, key.name);
  }
  if (servername !== undefined) tls.servername = servername;
  return tls;
}

/** The routes as written: --route (repeatable), PDU_PROXY_ROUTE (';'-separated), "routes" in a config file. */
function routeSpecs(layers: readonly Layer[]): RouteSpec[] {
  const got = pick(layers, 'routes');
  if (!got) return [];
  if (typeof got.value === 'string') return splitRouteList(got.value).map((text) => parseRoute(text, `${got.name}: ${JSON.stringify(text)}`));
  if (!Array.isArray(got.value)) throw new ConfigError(`${got.name}: ${JSON.stringify(got.value)} must be an array of routes`);
  const flag = got.name === SETTINGS.routes;
  return got.value.map((item, i) => (flag && typeof item === 'string' ? parseRoute(item) : routeFromJson(item, `${got.name}[${i}]`)));
}

/** A route's settings: its own values over the global layers; messages name the route and its key. */
function routeLayer(spec: RouteSpec): Layer {
  return { values: spec.values, name: (key) => `${spec.label}: ${spec.keyName(key)}` };
}

/** Merge the layers (later wins) and validate everything into the engine's options, one set per route. */
export function resolveSettings(layers: readonly Layer[]): Settings {
  const warnings: string[] = [];
  const specs = routeSpecs(layers);
  const routes: RouteConfig[] = [];
  // --listen/--upstream are one route, "default", whenever --upstream is set; without --route it is required.
  if (specs.length === 0 || pick(layers, 'upstream')) {
    routes.push({ id: DEFAULT_ROUTE_ID, label: SETTINGS.listen, options: resolveOptions(layers, warnings) });
  } else {
    const listen = [...layers].reverse().find((l) => l.values.listen !== undefined && l.values.listen !== null);
    if (listen && !listen.defaults) {
      throw new ConfigError(`${listen.name('listen')}: needs --upstream (it is the listen address of the --listen/--upstream route); a --route carries its own listen address`);
    }
  }
  for (const spec of specs) {
    const options = resolveOptions([...layers, routeLayer(spec)], warnings);
    routes.push({ id: spec.id ?? (options.listen.port === 0 ? undefined : String(options.listen.port)), label: spec.label, options });
  }
  checkSharedCaptures(routes);
  const ids = new Map<string, RouteConfig>();
  const listens = new Map<string, RouteConfig>();
  for (const route of routes) {
    const { host, port } = route.options.listen;
    if (port !== 0) {
      const where = `${host}:${port}`;
      const other = listens.get(where);
      if (other) throw new ConfigError(`${route.label}: listens on ${where} like ${other.label}`);
      listens.set(where, route);
    }
    if (route.id !== undefined) {
      const other = ids.get(route.id);
      if (other) throw new ConfigError(`${route.label}: route id ${JSON.stringify(route.id)} is also the id of ${other.label} (give one id=NAME)`);
      ids.set(route.id, route);
    }
  }

  const metrics = pick(layers, 'metrics');
  const health = pick(layers, 'health');
  const logLevel = pick(layers, 'logLevel');
  const level = logLevel ? named(logLevel, parseLogLevel, requireString(logLevel, LOG_LEVELS.join(', '))) : 'info';
  return {
    options: routes[0]!.options,
    routes,
    metrics: metrics ? named(metrics, (t) => parseListen(t), stringOrNumber(metrics, 'a string "[HOST:]PORT" or a port number')) : undefined,
    health: health ? named(health, (t) => parseListen(t), stringOrNumber(health, 'a string "[HOST:]PORT" or a port number')) : undefined,
    logLevel: level,
    workers: workersSetting(layers),
    // A global value is checked once per route: say it once.
    warnings: [...new Set(warnings)],
  };
}

export interface LoadOptions {
  /** Where PDU_PROXY_* variables are read: the CLI passes process.env; none by default. */
  env?: Environment;
  defaultsFile?: string;
}

/**
 * The standard layering, lowest first: the defaults file, the config file (--config, else PDU_PROXY_CONFIG),
 * the environment, the flags.
 */
export function loadSettings(flags: RawSettings, configFile?: string, { env = {}, defaultsFile = DEFAULT_CONFIG_PATH }: LoadOptions = {}): Settings {
  // The environment is checked first: an unknown PDU_PROXY_* variable is reported even when flags are fine.
  const environment = environmentSettings(env);
  const layers: Layer[] = [{ ...fileLayer(defaultsFile), defaults: true }];
  if (configFile !== undefined) layers.push(fileLayer(configFile));
  else if (environment.configFile !== undefined) layers.push(fileLayer(environment.configFile, ENV_CONFIG));
  layers.push(environment.layer);
  layers.push(flagLayer(flags));
  return resolveSettings(layers);
}

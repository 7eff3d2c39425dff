// Settings come in layers, later layers win: config/default.json, then the --config file, then the flags.
// null or absent means "not set in this layer". Each value is validated with the name of the layer it came
// from, so an error names the flag (`--max-pdu`) or the file and key (`config file x.json: maxPdu`).
// A new layer (environment variables, say) is one more entry in the list built by loadSettings().

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseListen, parseUpstream } from '../cli/endpoint.js';
import { parseSize } from '../cli/size.js';
import type { FragmentPolicy, ProxyOptions } from '../proxy/options.js';
import { ConfigError } from './errors.js';

/** Setting keys (as written in config files), with the flag that sets each one. */
export const SETTINGS = {
  listen: '--listen',
  upstream: '--upstream',
  maxPdu: '--max-pdu',
  maxPduRq: '--max-pdu-rq',
  fragment: '--fragment',
  csv: '--csv',
  logLevel: '--log-level',
  connectTimeoutMs: '--connect-timeout',
  closeTimeoutMs: '--close-timeout',
} as const;

export type SettingKey = keyof typeof SETTINGS;
export type RawSettings = Partial<Record<SettingKey, unknown>>;

export interface Layer {
  values: RawSettings;
  /** How to name a key of this layer in a message: `--max-pdu`, `config file x.json: maxPdu`. */
  name(key: SettingKey): string;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Settings {
  options: ProxyOptions;
  logLevel: LogLevel;
  /** One-line warnings (the run goes on), each naming the flag or file key: odd or tiny Maximum Lengths. */
  warnings: string[];
}

/** config/default.json at the package top: ../../config from src/config/ (tsx) and from dist/config/ (tsc). */
export const DEFAULT_CONFIG_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'config', 'default.json');

/** The smallest Maximum Length DCMTK's tools let you configure (their --max-pdu range starts there). */
const SMALL_PDU = 4096;

const MAX_TIMEOUT_MS = 2 ** 31 - 1; // setTimeout's limit

function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(SETTINGS, key);
}

/** Read a JSON config file as a layer; unreadable files, bad JSON and unknown keys are ConfigErrors. */
export function fileLayer(file: string): Layer {
  const label = `config file ${file}`;
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

function sizeSetting(layers: readonly Layer[], key: 'maxPdu' | 'maxPduRq', warnings: string[]): number | undefined {
  const got = pick(layers, key);
  if (!got) return undefined;
  const size = named(got, parseSize, stringOrNumber(got, 'a size (a number of bytes, or a string like "1MB")'));
  if (size % 2 === 1) {
    warnings.push(`${got.name}: ${size} is odd: senders that cut PDUs at the limit then send odd-length fragments, which DCMTK rejects`);
  } else if (size !== 0 && size < SMALL_PDU) {
    warnings.push(`${got.name}: ${size} is below ${SMALL_PDU}, the smallest Maximum Length DCMTK's tools accept as a setting`);
  }
  return size;
}

function msSetting(layers: readonly Layer[], key: 'connectTimeoutMs' | 'closeTimeoutMs'): number {
  const got = pick(layers, key);
  if (!got) throw new ConfigError(`${SETTINGS[key]}: no value (config/default.json should hold "${key}")`);
  const value = got.value;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_TIMEOUT_MS) {
    throw new ConfigError(`${got.name}: ${JSON.stringify(value)} is not a whole number of milliseconds (1..${MAX_TIMEOUT_MS})`);
  }
  return n;
}

/** `fit`, `repack` or a SIZE (regroup into PDUs of that size, within each receiver's limit; 0 = the limit). */
export function parseFragment(text: string): FragmentPolicy {
  const t = text.trim().toLowerCase();
  if (t === 'fit' || t === 'repack') return { mode: t };
  // Something that starts like a number is meant as a size: report what is wrong with it as a size.
  if (/^\d/.test(t)) return { mode: 'size', size: parseSize(text) };
  throw new ConfigError(`${JSON.stringify(text)} is not fit, repack or a size`);
}

export function parseLogLevel(text: string): LogLevel {
  const level = text.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new ConfigError(`${JSON.stringify(text)} is not a log level (${LOG_LEVELS.join(', ')})`);
}

/** Merge the layers (later wins) and validate everything into the engine's options. */
export function resolveSettings(layers: readonly Layer[]): Settings {
  const warnings: string[] = [];

  const upstream = pick(layers, 'upstream');
  if (!upstream) throw new ConfigError(`--upstream HOST:PORT is required (the SCP to forward to)`);
  const listen = pick(layers, 'listen');
  const fragment = pick(layers, 'fragment');
  const csv = pick(layers, 'csv');
  const logLevel = pick(layers, 'logLevel');

  const options: ProxyOptions = {
    listen: listen ? named(listen, (t) => parseListen(t), stringOrNumber(listen, 'a string "[HOST:]PORT" or a port number')) : { host: '0.0.0.0', port: 11112 },
    upstream: named(upstream, parseUpstream, requireString(upstream, '"HOST:PORT"')),
    maxPdu: sizeSetting(layers, 'maxPdu', warnings),
    maxPduRq: sizeSetting(layers, 'maxPduRq', warnings),
    fragment: fragment ? named(fragment, parseFragment, stringOrNumber(fragment, '"fit", "repack" or a size')) : { mode: 'fit' },
    csv: csv ? requireString(csv, 'a file name') : undefined,
    connectTimeoutMs: msSetting(layers, 'connectTimeoutMs'),
    closeTimeoutMs: msSetting(layers, 'closeTimeoutMs'),
  };
  if (options.csv === '') throw new ConfigError(`${csv!.name}: "" is not a file name`);
  const level = logLevel ? named(logLevel, parseLogLevel, requireString(logLevel, LOG_LEVELS.join(', '))) : 'info';
  return { options, logLevel: level, warnings };
}

/** The standard layering, lowest first: the defaults file, the optional --config file, the flags. */
export function loadSettings(flags: RawSettings, configFile?: string, defaultsFile = DEFAULT_CONFIG_PATH): Settings {
  const layers: Layer[] = [fileLayer(defaultsFile)];
  if (configFile !== undefined) layers.push(fileLayer(configFile));
  // (environment variables go here)
  layers.push(flagLayer(flags));
  return resolveSettings(layers);
}

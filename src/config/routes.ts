// Routes: several listen → upstream pairs in one process (`--route`, PDU_PROXY_ROUTE, "routes" in a config
// file). A route is parsed here into a layer of raw settings (listen, upstream and its own per-route keys);
// config.ts resolves it on top of the global layers, so a route inherits every value it does not set and
// is validated by the same code, with messages naming the route.
//
// The per-route keys are the SETTINGS keys minus those that belong to the whole process (GLOBAL_ONLY): a new
// setting becomes a route key without code here.

import type { RawSettings, SettingKey } from './settings.js';
import { SETTINGS } from './settings.js';
import { ConfigError } from '../values/errors.js';

/** Settings that apply to the whole process (shared files, the logger, shutdown, the routes themselves). */
export const GLOBAL_ONLY: ReadonlySet<SettingKey> = new Set<SettingKey>([
  'listen',
  'upstream',
  'csv',
  'messagesCsv',
  'logLevel',
  'drainTimeoutMs',
  'routes',
  'metrics',
  'health',
  'workers',
]);

/** The route key that names it; not a setting. */
export const ROUTE_ID_KEY = 'id';

/** Route ids appear in logs, CSV cells and metric labels: kept to a plain, quoting-free vocabulary. */
const ROUTE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export { DEFAULT_ROUTE_ID } from '../events/events.js';

/** A route as written, before it is resolved against the global settings. */
export interface RouteSpec {
  /** `id=NAME` when given; else the listen port (decided once the listen address is resolved). */
  id: string | undefined;
  /** listen, upstream and the route's own settings, as written (strings, or JSON values from a file). */
  values: RawSettings;
  /** How messages name it: `--route "11113=pacs:104"`, `config file x.json: routes[0]`. */
  label: string;
  /** How messages name one of its keys (`max-pdu` in a --route string, `maxPdu` in a config file). */
  keyName(key: SettingKey): string;
}

/** Per-route setting keys, in SETTINGS order. */
export function routeKeys(): SettingKey[] {
  return (Object.keys(SETTINGS) as SettingKey[]).filter((k) => !GLOBAL_ONLY.has(k));
}

/** `max-pdu` for maxPdu: the flag without its dashes. */
export function routeKeyName(key: SettingKey): string {
  return SETTINGS[key].replace(/^-+/, '');
}

/** Per-route keys by the names a route may use: the flag name (`max-pdu`) and the config key (`maxPdu`). */
function keysByName(): Map<string, SettingKey> {
  const names = new Map<string, SettingKey>();
  for (const key of routeKeys()) {
    names.set(routeKeyName(key), key);
    names.set(key, key);
  }
  return names;
}

function knownKeys(): string {
  return [ROUTE_ID_KEY, ...routeKeys().map(routeKeyName)].join(', ');
}

function checkId(id: unknown, label: string): string {
  if (typeof id !== 'string' || !ROUTE_ID.test(id)) {
    throw new ConfigError(`${label}: id ${JSON.stringify(id)} is not a route id (1-64 letters, digits, '_', '.', '-'; starting with a letter or digit)`);
  }
  return id;
}

/** A key a route may not set: say why. */
function notPerRoute(name: string, label: string): ConfigError {
  const key = [...(Object.keys(SETTINGS) as SettingKey[])].find((k) => k === name || routeKeyName(k) === name);
  if (key === 'listen' || key === 'upstream') {
    return new ConfigError(`${label}: ${name} is set by the route itself ([HOST:]PORT=UPSTREAM_HOST:PORT), not as a key`);
  }
  if (key !== undefined && GLOBAL_ONLY.has(key)) return new ConfigError(`${label}: ${name} applies to the whole process, not to one route (set it as ${SETTINGS[key]})`);
  return new ConfigError(`${label}: unknown key ${JSON.stringify(name)} (route keys: ${knownKeys()})`);
}

/**
 * `[HOST:]PORT=UPSTREAM_HOST:PORT[,KEY=VALUE...]`, e.g. `11113=pacs:104,max-pdu=1MB,id=ct`. Keys are the
 * flags' names without dashes. A list value keeps its commas: a part without `=` continues the value before
 * it (`allow-calling-aet=CT01,MR01,max-pdu=1MB`). Values are checked later, by the setting's own parser.
 */
export function parseRoute(text: string, label = `--route ${JSON.stringify(text)}`): RouteSpec {
  const t = text.trim();
  const eq = t.indexOf('=');
  if (eq <= 0) throw new ConfigError(`${label}: not [HOST:]PORT=UPSTREAM_HOST:PORT[,KEY=VALUE...]`);
  const listen = t.slice(0, eq).trim();
  const parts = t.slice(eq + 1).split(',');
  const upstream = parts.shift()!.trim();
  if (upstream === '' || upstream.includes('=')) throw new ConfigError(`${label}: no UPSTREAM_HOST:PORT after "${listen}="`);
  const names = keysByName();
  const pairs: Array<[string, string]> = [];
  for (const part of parts) {
    const i = part.indexOf('=');
    if (i < 0) {
      const prev = pairs[pairs.length - 1];
      if (!prev) throw new ConfigError(`${label}: ${JSON.stringify(part.trim())} is not KEY=VALUE`);
      prev[1] += `,${part}`;
      continue;
    }
    pairs.push([part.slice(0, i).trim(), part.slice(i + 1)]);
  }
  const values: RawSettings = { listen, upstream };
  let id: string | undefined;
  const seen = new Set<string>();
  for (const [name, raw] of pairs) {
    const value = raw.trim();
    if (name === ROUTE_ID_KEY) {
      if (id !== undefined) throw new ConfigError(`${label}: id given twice`);
      id = checkId(value, label);
      continue;
    }
    const key = names.get(name);
    if (key === undefined || name !== routeKeyName(key)) throw notPerRoute(name, label);
    if (seen.has(key)) throw new ConfigError(`${label}: ${name} given twice`);
    seen.add(key);
    if (value === '') throw new ConfigError(`${label}: ${name} has no value`);
    values[key] = value;
  }
  return { id, values, label, keyName: (key) => (key === 'listen' || key === 'upstream' ? key : routeKeyName(key)) };
}

/**
 * A route from a config file: a string in --route syntax, or an object with listen, upstream, an optional
 * id and per-route keys (the config file's names, `maxPdu`, or the flags', `max-pdu`).
 */
export function routeFromJson(value: unknown, label: string): RouteSpec {
  if (typeof value === 'string') return parseRoute(value, label);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${label}: ${JSON.stringify(value)} must be an object {"listen": ..., "upstream": ...} or a string "[HOST:]PORT=HOST:PORT,..."`);
  }
  const names = keysByName();
  const values: RawSettings = {};
  let id: string | undefined;
  const used = new Map<SettingKey, string>();
  for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
    if (name === 'listen' || name === 'upstream') {
      values[name] = v;
      continue;
    }
    if (name === ROUTE_ID_KEY) {
      id = checkId(v, label);
      continue;
    }
    const key = names.get(name);
    if (key === undefined) throw notPerRoute(name, label);
    const other = used.get(key);
    if (other !== undefined) throw new ConfigError(`${label}: ${other} and ${name} are the same setting`);
    used.set(key, name);
    values[key] = v;
  }
  for (const required of ['listen', 'upstream'] as const) {
    if (values[required] === undefined || values[required] === null) throw new ConfigError(`${label}: no "${required}"`);
  }
  return { id, values, label, keyName: (key) => used.get(key) ?? key };
}

/** PDU_PROXY_ROUTE and the like: routes separated by ';' or new lines. */
export function splitRouteList(text: string): string[] {
  return text
    .split(/[;\n]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

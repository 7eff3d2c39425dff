// Prometheus text exposition, read back: every sample as `name{labels}` -> value, labels as written.

/** Samples of a /metrics text: key `name{a="x",b="y"}` (or `name` without labels), value a number. */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** Samples that only ever go up: counters (`_total`) and histogram parts (`_bucket`, `_sum`, `_count`), by prefix. */
export function monotonicSamples(samples: Map<string, number>, prefix: string): Map<string, number> {
  return new Map([...samples].filter(([key]) => key.startsWith(prefix) && /_(total|bucket|sum|count)(\{|$)/.test(key)));
}

/** Every sample of `before` present in `after` with a value at least as large: the keys that went down or vanished. */
export function wentDown(before: Map<string, number>, after: Map<string, number>): string[] {
  const down: string[] = [];
  for (const [key, value] of before) {
    const now = after.get(key);
    if (now === undefined || now < value) down.push(`${key}: ${value} -> ${now}`);
  }
  return down;
}

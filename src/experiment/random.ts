// A seeded pseudo-random generator for the assignment (--assign-seed): the same seed gives the same arms in
// the same order, on every machine and Node version. xoshiro128** (Blackman and Vigna, 2018), 32-bit
// arithmetic only; its 128-bit state is filled by splitmix32 from the seed and a stream name, so each
// calling AE title draws from its own stream and one device's sequence does not depend on the others'
// traffic.

/** The largest --assign-seed: seeds are 32-bit. */
export const MAX_SEED = 0xffffffff;

/** Draws uniform numbers; `int(n)` is 0..n-1 without modulo bias. */
export interface Random {
  /** A uniform 32-bit unsigned integer. */
  next(): number;
  /** A uniform integer in 0..n-1 (n from 1 to 2^32). */
  int(n: number): number;
}

/** FNV-1a (32-bit) of the UTF-16 code units of `text`: a stream name to 32 bits. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** splitmix32 (the 32-bit variant of Steele, Lea and Flood's SplitMix): turns a seed into well-mixed state words. */
function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

/** The generator for `seed` (0..MAX_SEED) and a stream (a calling AE title, ''). */
export function seededRandom(seed: number, stream = ''): Random {
  const mix = splitmix32((seed ^ Math.imul(fnv1a(stream), 0x9e3779b1)) >>> 0);
  return xoshiro128ss([mix(), mix(), mix(), mix()]);
}

/** xoshiro128** from its four state words (exported for its reference test vector). */
export function xoshiro128ss(state: readonly [number, number, number, number]): Random {
  let [a, b, c, d] = state.map((w) => w >>> 0) as [number, number, number, number];
  // The state must not be all zero (splitmix32 practically never gives that; make it certain).
  if ((a | b | c | d) === 0) a = 1;
  const next = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
    const t = (b << 9) >>> 0;
    c = (c ^ a) >>> 0;
    d = (d ^ b) >>> 0;
    b = (b ^ c) >>> 0;
    a = (a ^ d) >>> 0;
    c = (c ^ t) >>> 0;
    d = rotl(d, 11);
    return result;
  };
  const int = (n: number): number => {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`int(${n}): n must be a whole number from 1 to 2^32`);
    // Rejection sampling: draws in the incomplete last interval are thrown away (no modulo bias).
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = next();
      if (x < limit) return x % n;
    }
  };
  return { next, int };
}

/** Fisher-Yates shuffle in place (Durstenfeld's version). */
export function shuffle<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

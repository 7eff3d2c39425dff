// A small seeded pseudo-random generator: the same seed gives the same sequence on every machine, so a
// bootstrap (stats) or a shuffle can be reproduced from the seed it logs. Not for anything secret.

/** splitmix32: spreads a seed's bits (a seed of 0 or 1 still gives a well-mixed state). */
function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * Uniform numbers in [0, 1) from xoshiro128** (Blackman and Vigna), its state filled by splitmix32 from
 * `seed` (an integer; only its low 32 bits count).
 */
export function seededRandom(seed: number): () => number {
  const mix = splitmix32(seed);
  let a = mix();
  let b = mix();
  let c = mix();
  let d = mix();
  return () => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result / 4294967296;
  };
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

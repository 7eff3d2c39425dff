// Shared pieces of the fuzz targets: a reader that turns an input's leading bytes into parameters (as
// libFuzzer's FuzzedDataProvider does, so every input, corpus file or generated, is just bytes), a
// reproducible chunking, and an allocation meter for the "decode never allocates more than the input
// justifies" properties.

/** Reads parameters from the front of an input; past the end every read is 0. */
export class InputReader {
  private pos = 0;
  constructor(private readonly data: Buffer) {}
  u8(): number {
    return this.pos < this.data.length ? this.data[this.pos++]! : 0;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  u32(): number {
    return ((this.u16() << 16) | this.u16()) >>> 0;
  }
  bytes(n: number): Buffer {
    const out = this.data.subarray(this.pos, Math.min(this.data.length, this.pos + n));
    this.pos += out.length;
    return out;
  }
  rest(): Buffer {
    return this.bytes(this.data.length - this.pos);
  }
  get remaining(): number {
    return this.data.length - this.pos;
  }
}

const CHUNK_SIZES = [1, 2, 3, 5, 6, 7, 12, 64, 1000, 16384];

/**
 * Cut `stream` into chunks as a socket might deliver them, reproducibly from `seed` (0: one chunk). Each
 * chunk is a private copy, so views handed out by the code under test are views of distinct buffers.
 */
export function chunksOf(stream: Buffer, seed: number): Buffer[] {
  if (seed === 0) return [Buffer.from(stream)];
  let x = (seed * 0x9e3779b1) >>> 0 || 1;
  const next = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const chunks: Buffer[] = [];
  for (let at = 0; at < stream.length;) {
    const n = Math.min(stream.length - at, CHUNK_SIZES[next() % CHUNK_SIZES.length]!);
    chunks.push(Buffer.from(stream.subarray(at, at + n)));
    at += n;
  }
  return chunks;
}

/** A property of a fuzz target does not hold. Anything else thrown is a crash. */
export class PropertyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PropertyViolation';
  }
}

export function check(ok: boolean, what: string | (() => string)): asserts ok {
  if (!ok) throw new PropertyViolation(typeof what === 'string' ? what : what());
}

type AllocFn = (size: number, ...rest: never[]) => Buffer;

/**
 * Records the size of every Buffer allocated through Buffer.alloc / allocUnsafe / allocUnsafeSlow while
 * `fn` runs (the code under test allocates through these; Buffer.concat goes through allocUnsafe).
 * Not re-entrant; restores on return.
 */
export function meterAllocations<T>(fn: (sizes: number[]) => T): T {
  const sizes: number[] = [];
  const B = Buffer as unknown as Record<'alloc' | 'allocUnsafe' | 'allocUnsafeSlow', AllocFn>;
  const saved = { alloc: B.alloc, allocUnsafe: B.allocUnsafe, allocUnsafeSlow: B.allocUnsafeSlow };
  for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const) {
    const original = saved[name];
    B[name] = function metered(this: unknown, size: number, ...rest: never[]): Buffer {
      sizes.push(size);
      return original.call(Buffer, size, ...rest);
    } as AllocFn;
  }
  try {
    return fn(sizes);
  } finally {
    Object.assign(B, saved);
  }
}

// Per-device state (per calling AE title) kept by the assigner and the guard. A device is its calling AE
// title with the padding trimmed. The number of devices remembered is bounded: SCUs choose their AE titles,
// and a sender that makes up a new one per association must not grow the proxy's memory without end.

/** Devices remembered at most per assigner or guard; past it the one seen least recently is forgotten. */
export const MAX_DEVICES = 10_000;

/** The device key of a calling AE title: trimmed of the spaces that pad it to 16 characters. */
export function deviceOf(callingAe: string): string {
  return callingAe.trim();
}

/** A map from device to its state, forgetting the least recently used device past `max`. */
export class DeviceTable<T> {
  private readonly entries = new Map<string, T>();
  private readonly create: (device: string) => T;
  private readonly max: number;

  constructor(create: (device: string) => T, max = MAX_DEVICES) {
    this.create = create;
    this.max = max;
  }

  /** The device's state, created on first sight; marks it used most recently. */
  get(device: string): T {
    let entry = this.entries.get(device);
    if (entry !== undefined) {
      // Map keeps insertion order: re-inserting moves the device to the end (most recently used).
      this.entries.delete(device);
    } else {
      entry = this.create(device);
      if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(device, entry);
    return entry;
  }

  /** The device's state if it has one, without creating it or marking it used. */
  peek(device: string): T | undefined {
    return this.entries.get(device);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every device and its state, least recently used first. */
  [Symbol.iterator](): IterableIterator<[string, T]> {
    return this.entries.entries();
  }

  /** Take over another table's devices (a reload whose arms did not change). */
  adopt(other: DeviceTable<T>): void {
    for (const [device, entry] of other.entries) this.entries.set(device, entry);
  }
}

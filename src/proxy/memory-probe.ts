// A diagnostic for soaks: with DICOM_PDU_PROXY_MEMORY_PROBE=on, SIGUSR2 makes the process run a full garbage
// collection and log one 'memory probe' line with process.memoryUsage() before and after it and
// process.resourceUsage(). Off by default (no handler, no flag changed).
//
// Why: between two garbage collections the JS heap and the Buffer backing stores hold garbage whose size
// depends on when the collector last ran, so the memory in use at an idle moment can only be compared with
// another idle moment after a full collection. The soak (scripts/soak.ts) quiesces its load, sends SIGUSR2,
// and reads what glibc's malloc holds free at that moment (malloc_info, through gdb), to tell memory that
// malloc keeps for reuse from memory that is still in use.

import v8 from 'node:v8';
import vm from 'node:vm';

export const MEMORY_PROBE_SIGNAL = 'SIGUSR2';
export const MEMORY_PROBE_MESSAGE = 'memory probe';

export interface MemoryProbeReport {
  before: NodeJS.MemoryUsage;
  after: NodeJS.MemoryUsage;
  resourceUsage: NodeJS.ResourceUsage;
}

interface ProbeLogger {
  info(object: object, message: string): void;
}

/** A full collection now; throws if the collector cannot be reached. */
function fullGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/**
 * Collect fully and report memory before and after; what the signal handler runs. Twice: V8 frees the
 * backing stores of collected ArrayBuffers (Buffers) on a background thread after a full collection, and
 * the next collection first waits for that to finish. After one collection a dropped 32 MiB Buffer was
 * still counted in arrayBuffers in 25 of 300 tries; after two, in none.
 */
export function probeMemory(gc: () => void = fullGc()): MemoryProbeReport {
  const before = process.memoryUsage();
  gc();
  gc();
  return { before, after: process.memoryUsage(), resourceUsage: process.resourceUsage() };
}

/** Install the SIGUSR2 handler when DICOM_PDU_PROXY_MEMORY_PROBE=on; returns a remover, or undefined when off. */
export function installMemoryProbe(log: ProbeLogger, env: NodeJS.ProcessEnv = process.env): (() => void) | undefined {
  if (env.DICOM_PDU_PROXY_MEMORY_PROBE !== 'on') return undefined;
  const gc = fullGc();
  const handler = (): void => log.info({ probe: probeMemory(gc) }, MEMORY_PROBE_MESSAGE);
  process.on(MEMORY_PROBE_SIGNAL, handler);
  return () => void process.off(MEMORY_PROBE_SIGNAL, handler);
}

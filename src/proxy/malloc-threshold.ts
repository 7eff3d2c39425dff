// Optional (DICOM_PDU_PROXY_MALLOC_TUNING=on): keep glibc's malloc from handing freed socket buffers back to
// the kernel after every burst. Off by default since the links read into their own reused buffers (link.ts):
// with those, bench:relay counts 131 minor page faults per run tuned against 516 untuned at 4 KB PDUs, 45-290
// against 100-395 at 16 KB and 128 KB, at the same speed and CPU, while the tuning kept 15-20 MiB more of
// free chunks resident in a soak and made RSS creep in steps of up to its 16 MiB trim threshold.
//
// What it was for:
// Node reads each socket into a fresh 64 KiB block from malloc and frees it when the garbage collector finds
// its last view gone, in batches. glibc's default trim threshold (128 KiB) then shrinks the heap top after
// almost every batch, and the next reads fault the same pages in again: at 4 KB PDUs, 20 x 16 MiB through
// the proxy cost 15,000-45,000 minor page faults and up to half of the proxy's CPU time was the kernel's
// (measured with bench:relay, which prints faults per run). MALLOC_TRIM_THRESHOLD_ would fix it, but only
// when set before the process starts.
//
// glibc raises both thresholds by itself (its "dynamic mmap threshold") when a block it served with mmap is
// freed: the mmap threshold becomes that block's size and the trim threshold twice that. So the proxy
// allocates one such block at start-up and lets it go; the collector frees it at its next run, which the
// first traffic brings about. Effect: heap top kept up to 2 x TUNING_BLOCK_BYTES; page faults per run fell
// about threefold in bench:relay when each read had a fresh buffer. Elsewhere (musl, macOS) it is one 8 MiB
// allocation and nothing more. bench:relay's proxy-tuned target compares the two.

/** Under glibc's DEFAULT_MMAP_THRESHOLD_MAX (32 MiB on 64-bit), above which no dynamic adjustment happens. */
export const TUNING_BLOCK_BYTES = 8 * 1024 * 1024;

/** With DICOM_PDU_PROXY_MALLOC_TUNING=on: allocate and drop one block outside V8's heap (served by mmap), so that freeing it raises glibc's thresholds. */
export function raiseMallocThresholds(env: NodeJS.ProcessEnv = process.env): void {
  if (env.DICOM_PDU_PROXY_MALLOC_TUNING !== 'on') return;
  let block: Buffer | undefined = Buffer.allocUnsafeSlow(TUNING_BLOCK_BYTES);
  block[0] = 1;
  block = undefined;
  void block;
}

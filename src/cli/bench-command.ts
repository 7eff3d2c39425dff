// The `bench` command: argument parsing only; the work is in src/bench/.

import type { Command } from 'commander';
import {
  DEFAULT_CALLED_AET,
  DEFAULT_CALLING_AET,
  DEFAULT_COUNT,
  DEFAULT_IMAGE_SIZE,
  DEFAULT_PARALLEL,
  DEFAULT_PDUS,
  DEFAULT_SCP_PDU,
  DEFAULT_SCP_START_TIMEOUT_S,
  DEFAULT_TIMEOUT_S,
  QUICK_COUNT,
  QUICK_IMAGE_SIZE,
  benchOptions,
} from '../bench/options.js';
import type { BenchFlags } from '../bench/options.js';

const BENCH_HELP_AFTER = `
Each setting (max PDU x image) runs SCU processes -> the proxy (its own process, --max-pdu set to the
setting) -> the SCP. The senders are the built-in SCU (default: it sends P-DATA-TF of exactly the size the
AC gives, from memory), dcmjs-dimse (--scu dcmjs, at most 4 MiB) or DCMTK storescu (--scu dcmtk, at most
128KB). Without --upstream the SCP is embedded (its own process): the built-in SCP (default; streams,
announces 0 = no maximum) or dcmjs-dimse (--scp dcmjs, announces 64MB), so each swept size reaches it
unchanged. Every image must be acknowledged with Success: failures are
counted, reported, and make the exit status 1. Seconds per image are measured by the senders; MB = 2^20.
Output in --out: results.csv, chunks-<pdu>-<image>.csv (the proxy's --csv), messages-<pdu>-<image>.csv
(--messages-csv, when the proxy has it), chart.svg, run.json (the run's settings) and report.html (one
self-contained page: settings, table, charts, time split, PDU sizes sent, a summary; opens offline).
With --latency/--bandwidth the proxy shapes each direction (see docs/SHAPING.md); every (latency,
bandwidth) pair is swept with every max PDU, and results.csv gets latency_ms, jitter_ms and bandwidth_bps
(bits per second; 0 = none).

Examples:
  $ dicom-pdu-proxy bench                      # the experiment: 1-2 min on 2 cores
  $ dicom-pdu-proxy bench --quick              # same six sizes, 8 images of 2MB: under a minute
  $ dicom-pdu-proxy bench --upstream pacs:104 --called-aet PACS --pdu 16KB,1MB --count 20
  $ dicom-pdu-proxy bench --both --pdu 16KB,1MB   # through the proxy and direct, side by side
  $ dicom-pdu-proxy bench --pdu 16KB,64KB,1MB --latency 20 --bandwidth 100Mbit   # best max PDU on a 20 ms, 100 Mbit link
  $ dicom-pdu-proxy bench --quick --latency 0,20 --bandwidth 100Mbit,1Gbit       # every combination with every size
  $ dicom-pdu-proxy bench --quick --tls --both   # over TLS: the re-encrypting proxy against TLS end to end
  $ dicom-pdu-proxy bench --scp-command 'storescp --max-pdu {pdu} --ignore {port}' --both --scu dcmtk --pdu 16KB,32KB,64KB,128KB
                                               # the original method (SCP restarted per size) against the proxy

--tls runs the same experiment over DICOM TLS: bench makes throwaway certificates (openssl: a CA, a server
and a client certificate, removed afterwards); the built-in SCU (or storescu +tls) connects with TLS and a
client certificate, the proxy gets --tls-cert/--tls-key/--tls-ca --tls-client-auth required and
--upstream-tls --upstream-tls-ca/-cert/-key, and the embedded built-in SCP listens with TLS. run.json and
report.html say so, with the version and cipher of each leg. To compare a TLS -> TLS proxy with stunnel doing
the same on the same loop: npm run bench:relay -- --tls (from a clone; see docs/TLS.md).

--scp-command TEMPLATE is split into words like a shell would (quotes, backslash) but run WITHOUT a
shell; {port}, {pdu} and {out} are substituted inside the words, so a value is never read as shell code.
Shell syntax (| ; & > $ …) is refused: write sh -c '… "$1" …' sh {port} to use a shell. See docs/FIDELITY.md.`;

export function addBenchCommand(program: Command, setRun: (run: () => Promise<number>) => void): void {
  program
    .command('bench')
    .description('sweep max PDU sizes: parallel SCUs -> proxy -> SCP (embedded or --upstream); table, results.csv, chart')
    .usage('[options]')
    .helpOption('-h, --help', 'print this help and exit')
    .option('--pdu <LIST>', `max PDU sizes to sweep, comma-separated (default ${DEFAULT_PDUS})`)
    .option('--image-size <LIST>', `synthetic image sizes (pixel data) to sweep (default ${DEFAULT_IMAGE_SIZE}; --quick ${QUICK_IMAGE_SIZE})`)
    .option('--image <FILE...>', 'send these DICOM files instead (round-robin)')
    .option('--parallel <N>', `SCU processes sending at once (default ${DEFAULT_PARALLEL})`)
    .option('--count <N>', `images per setting (default ${DEFAULT_COUNT}; --quick ${QUICK_COUNT})`)
    .option('--quick', 'the same sizes with fewer, smaller images (under 60 s)')
    .option('--upstream <HOST:PORT>', 'a real SCP instead of the embedded one (the proxy rewrites; the SCP stays as configured)')
    .option('--called-aet <AET>', `called AE title (default ${DEFAULT_CALLED_AET})`)
    .option('--calling-aet <AET>', `calling AE title (default ${DEFAULT_CALLING_AET})`)
    .option('--scu <builtin|dcmjs|dcmtk>', 'the sender: the built-in SCU (default), the dcmjs-dimse Client or DCMTK storescu')
    .option('--scp <builtin|dcmjs>', 'the embedded SCP: built-in (default, streams) or dcmjs-dimse')
    .option('--timeout <SECONDS>', `each sender's bound on connecting, negotiating and each C-STORE (default ${DEFAULT_TIMEOUT_S})`)
    .option('--association <per-image|per-sender>', 'built-in SCU: a new association per image (default) or one per sender')
    .option('--direct', 'no proxy: the embedded SCP itself announces each size (the native baseline)')
    .option('--both', 'each setting through the proxy and direct, side by side')
    .option('--latency <LIST>', 'one-way latencies to sweep, MS or MS:JITTER each, comma-separated: the proxy adds each in both directions (default none)')
    .option('--bandwidth <LIST>', 'bandwidths to sweep, each direction capped: 100Mbit,1Gbit or 10MB/s; 0 = not limited (default none)')
    .option(
      '--scp-command <TEMPLATE>',
      'start this SCP per setting: {port} (free port), {pdu} (bytes), {out} (scratch dir); --direct = native, --both = native and proxy interleaved',
    )
    .option('--scp-start-timeout <SECONDS>', `--scp-command: seconds to wait until the SCP accepts connections (default ${DEFAULT_SCP_START_TIMEOUT_S})`)
    .option('--scp-pdu <SIZE>', `--scp-command: {pdu} of the SCP behind the proxy (default ${DEFAULT_SCP_PDU}; 0 for SCPs without a limit)`)
    .option('--out <DIR>', 'output directory (default results/<UTC timestamp>)')
    .option('--store-dir <DIR>', 'the embedded SCP writes every received image here')
    .option('--tls', 'TLS on every leg: the proxy re-encrypts (TLS -> TLS), --direct is TLS end to end; throwaway certificates (openssl)')
    .addHelpText('after', BENCH_HELP_AFTER)
    .action((flags: BenchFlags) => {
      // A bad value throws a ConfigError: main() prints it as one line, exit status 2.
      const options = benchOptions(flags);
      setRun(async () => {
        // Loaded on use: bench pulls in dcmjs-dimse and vega, which the proxy command does not need.
        const { runBench } = await import('../bench/run.js');
        return runBench(options, { stdout: process.stdout, stderr: process.stderr });
      });
    });
}

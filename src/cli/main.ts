// The command line: a thin layer over config/ and proxy/. The proxy is the default command, so
// `dicom-pdu-proxy --upstream pacs:104 ...` runs it; other commands (stats, bench) go next to it.
// Every usage error, commander's own included, is ONE line on stderr and exit status 2.

import cluster from 'node:cluster';
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import type { Environment, RawSettings } from '../config/config.js';
import { ENV_CONFIG, ENV_PREFIX, SETTINGS, envName, loadSettings } from '../config/config.js';
import { ConfigError } from '../values/errors.js';
import { routeKeyName, routeKeys } from '../config/routes.js';
import { runSupervisor } from '../control/supervisor.js';
import { runWorker } from '../control/worker.js';
import { addStatsCommand } from './stats-command.js';
import { addBenchCommand } from './bench-command.js';

export const PROGRAM = 'dicom-pdu-proxy';
export const EXIT_USAGE = 2;

const require = createRequire(import.meta.url);
// ../../package.json from src/cli/ (tsx) and from dist/cli/ (tsc) alike.
const { version } = require('../../package.json') as { version: string };

const PROXY_HELP_AFTER = `
SIZE is bytes, or a number with KB, MB or GB, 1024-based as DICOM tools count (16KB = 16384,
1MB = 1048576; KiB/MiB/GiB accepted too). 0 means "no maximum".
--config FILE is JSON with the keys ${Object.keys(SETTINGS).join(', ')};
it overrides config/default.json.
Each option can be set in the environment too: ${ENV_PREFIX}<FLAG IN UPPER SNAKE CASE>, e.g.
${envName(SETTINGS.maxPdu)} for ${SETTINGS.maxPdu}, ${ENV_CONFIG} for --config (empty = not set; an unknown
${ENV_PREFIX}* variable is an error). Flags win over the environment, which wins over the --config file.
${envName(SETTINGS.routes)} holds routes separated by ';'.

--route [HOST:]PORT=UPSTREAM_HOST:PORT[,KEY=VALUE...] adds a listener with its own upstream (repeatable);
KEY is id (the route's name in logs, CSV files and metrics; default: its port) or a per-route setting:
${routeKeys().map(routeKeyName).join(', ')}.
A route inherits every setting it does not set. --listen/--upstream are one more route, "default",
when --upstream is given; with --route alone, --upstream is not needed.

Examples:
  # Let the modality send 1 MB PDUs to a PACS that accepts 16 KB (the proxy cuts them back); log every PDU
  $ ${PROGRAM} --listen 11112 --upstream pacs:104 --max-pdu 1MB --csv chunks.csv

  # Ask the PACS for 64 KB PDUs on C-FIND / C-GET responses, whatever the workstation announced
  $ ${PROGRAM} --upstream pacs:104 --max-pdu-rq 64KB

  # One row per DIMSE message with where its time went; runs with other settings append to the same file
  $ ${PROGRAM} --upstream pacs:104 --max-pdu 1MB --messages-csv messages.csv

  # An experiment on live traffic: each association told 16KB, 64KB or 1MB, balanced per calling AE title
  $ ${PROGRAM} --upstream pacs:104 --max-pdu 16KB,64KB,1MB --messages-csv messages.csv

  # Emulate a WAN: 20 ms each way (40 ms per round trip) and 100 Mbit/s each way
  $ ${PROGRAM} --upstream pacs:104 --latency 20 --bandwidth 100Mbit

  # Regroup every message into 100 KB PDUs where the receivers allow it
  $ ${PROGRAM} --upstream pacs:104 --fragment 100KB

  # Two routes in one process, each with its own settings; Prometheus metrics on port 9464
  $ ${PROGRAM} --route 11112=pacs:104,max-pdu=1MB --route 11113=archive:11112,id=archive --metrics 9464

  # A Wireshark capture of both legs, without pixel data; rotated at 100 MB, 5 files kept
  $ ${PROGRAM} --upstream pacs:104 --pcap /logs/dicom.pcapng --pcap-payload headers --pcap-max-size 100MB

  # In Docker: settings from the environment, flags after the image name; CSV logs on a volume
  $ docker run -p 11112:11112 -v dpp-logs:/logs -e ${envName(SETTINGS.upstream)}=pacs:104 -e ${envName(SETTINGS.csv)}=/logs/chunks.csv \\
      ${PROGRAM} --max-pdu 1MB`;

/** What commander gives the proxy action: strings, undefined when the flag is absent (no commander defaults). */
interface ProxyFlags {
  listen?: string;
  upstream?: string;
  maxPdu?: string;
  maxPduRq?: string;
  assign?: string;
  assignSeed?: string;
  guard?: string;
  fragment?: string;
  csv?: string;
  messagesCsv?: string;
  logLevel?: string;
  config?: string;
  connectTimeout?: string;
  closeTimeout?: string;
  artimTimeout?: string;
  idleTimeout?: string;
  stallTimeout?: string;
  drainTimeout?: string;
  maxAssociations?: string;
  maxPending?: string;
  allowCallingAet?: string;
  allowPeer?: string;
  latency?: string;
  bandwidth?: string;
  latencyToScp?: string;
  latencyToScu?: string;
  bandwidthToScp?: string;
  bandwidthToScu?: string;
  route?: string[];
  metrics?: string;
  pcap?: string;
  pcapMaxSize?: string;
  pcapMaxFiles?: string;
  pcapPayload?: string;
  health?: string;
  workers?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsClientAuth?: string;
  upstreamTls?: boolean;
  upstreamTlsCa?: string;
  upstreamTlsCert?: string;
  upstreamTlsKey?: string;
  upstreamTlsServername?: string;
  upstreamTlsInsecure?: boolean;
}

function usageError(message: string): number {
  process.stderr.write(`${PROGRAM}: ${message}\n`);
  return EXIT_USAGE;
}

/** Commander's messages, made one line: "error: unknown option '--nope'\n(Did you mean --nop?)". */
function oneLine(message: string): string {
  return message
    .replace(/^error: /, '')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}

/** Build the command tree. The chosen command's work is handed back through `setRun`, run after parsing. */
function buildProgram(env: Environment, setRun: (run: () => Promise<number>) => void): Command {
  const program = new Command(PROGRAM)
    .description(
      "Transparent DICOM upper-layer proxy: rewrites the negotiated Maximum Length, re-fragments P-DATA-TF within each receiver's real limit, and logs the timing of every PDU to CSV.",
    )
    .version(version, '-V, --version', 'print the version and exit')
    // Inherited by the commands created below: no process.exit, no usage dump; errors are printed by main().
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .showHelpAfterError(false);

  program
    .command('proxy', { isDefault: true })
    .description('run the proxy (the default command: "proxy" may be left out)')
    .usage('--upstream HOST:PORT [options]')
    .configureHelp({ commandUsage: (cmd) => `${PROGRAM} ${cmd.usage()}` })
    .helpOption('-h, --help', 'print this help and exit')
    .option('--listen <[HOST:]PORT>', 'where SCUs connect (default 0.0.0.0:11112; port 0 = any free port)')
    .option('--upstream <HOST:PORT>', 'the SCP (required); IPv6 as [::1]:104')
    .option(
      '--max-pdu <SIZE[,SIZE...]>',
      'Maximum Length written into the A-ASSOCIATE-AC: what the SCU may send (default: as the SCP announced); several sizes make an experiment, one arm each',
    )
    .option('--max-pdu-rq <SIZE>', 'Maximum Length written into the A-ASSOCIATE-RQ: what the SCP may send back (default: unchanged)')
    .option('--assign <block|rotate|random>', 'how associations get their arm, per calling AE title: permuted blocks, round robin or at random (default block)')
    .option('--assign-seed <N>', 'seed of the assignment, 0..4294967295, for a reproducible run (default: chosen at random and logged)')
    .option('--guard <on|off>', 'withdraw an arm for a calling AE whose associations fail on it (default on)')
    .option('--fragment <fit|repack|SIZE>', 'how P-DATA-TF is re-fragmented toward each receiver (default fit)')
    .option('--csv <FILE>', 'per-PDU chunk log (created, or truncated)')
    .option('--messages-csv <FILE>', 'per-message log: one row per DIMSE request, with where the time went (appended to)')
    .option('--log-level <LEVEL>', 'fatal, error, warn, info, debug, trace or silent (default info)')
    .option('--config <FILE>', 'JSON file with the same settings; the environment and flags override it')
    .option('--connect-timeout <MS>', 'upstream connect timeout; then the SCU gets A-ASSOCIATE-RJ (default 3000)')
    .option('--close-timeout <MS>', 'how long to wait for peers to close after release/abort (default 30000)')
    .option('--artim-timeout <MS>', 'close a connection that sends no A-ASSOCIATE-RQ within MS of connecting (default 30000)')
    .option('--idle-timeout <MS>', 'A-ABORT an association silent in both directions for MS; 0 = never (default 600000)')
    .option('--stall-timeout <MS>', 'A-ABORT an association when a peer takes no bytes for MS while the proxy has some for it; 0 = never (default 60000)')
    .option('--drain-timeout <MS>', 'on SIGTERM/SIGINT, let associations finish for up to MS, then abort them (default 30000)')
    .option('--max-associations <N>', 'associations at once; more get A-ASSOCIATE-RJ (transient, local limit); 0 = no limit (default 0)')
    .option('--max-pending <N>', 'connections without an A-ASSOCIATE-RQ yet, at most; past it the oldest is closed (default 256)')
    .option('--allow-calling-aet <LIST>', 'comma-separated calling AE titles allowed; others get A-ASSOCIATE-RJ (default: any)')
    .option('--allow-peer <LIST>', 'comma-separated peer IPs or CIDR blocks allowed; others get A-ASSOCIATE-RJ (default: any)')
    .option('--latency <MS[:JITTER]>', 'add MS milliseconds of one-way delay (± JITTER, never reordering) in EACH direction (default none)')
    .option('--bandwidth <RATE>', 'cap EACH direction at RATE: 100Mbit, 1Gbit (decimal bits/s) or 10MB/s (MB = 2^20 bytes) (default none)')
    .option('--latency-to-scp <MS[:JITTER]>', 'latency toward the SCP only (overrides --latency that way)')
    .option('--latency-to-scu <MS[:JITTER]>', 'latency toward the SCU only (overrides --latency that way)')
    .option('--bandwidth-to-scp <RATE>', 'bandwidth toward the SCP only (overrides --bandwidth that way)')
    .option('--bandwidth-to-scu <RATE>', 'bandwidth toward the SCU only (overrides --bandwidth that way)')
    .option(
      '--route <ROUTE>',
      'one more listener: [HOST:]PORT=UPSTREAM_HOST:PORT[,KEY=VALUE...] with per-route settings (max-pdu=1MB, id=NAME, ...); repeatable',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option('--metrics <[HOST:]PORT>', 'serve Prometheus metrics at http://HOST:PORT/metrics (host default 0.0.0.0)')
    .option('--pcap <FILE>', 'write both legs of every association as a pcapng capture for Wireshark (mode 0600: it holds patient data)')
    .option('--pcap-max-size <SIZE>', 'rotate the capture to FILE.1, FILE.2 ... when it would grow past SIZE (default: never)')
    .option('--pcap-max-files <N>', 'capture files kept in all, FILE included (default 5)')
    .option('--pcap-payload <full|headers>', 'headers: keep PDU headers, association PDUs and commands, zero data-set bytes (default full)')
    .option('--health <[HOST:]PORT>', 'serve GET /healthz and /readyz there (they are on the --metrics port too)')
    .option('--workers <N|auto>', 'relay in N processes (node:cluster) to use N cores; auto = the cores available; 1 = one process (default 1)')
    .option('--tls-cert <FILE>', 'PEM certificate (and chain): the listener speaks TLS (with --tls-key)')
    .option('--tls-key <FILE>', 'PEM private key (unencrypted) of --tls-cert')
    .option('--tls-ca <FILE>', 'PEM CA certificates that client certificates are verified against')
    .option('--tls-client-auth <none|optional|required>', 'ask SCUs for a certificate; required = mutual authentication (default none)')
    .option('--upstream-tls', 'connect to the SCP with TLS, verifying its certificate')
    .option('--upstream-tls-ca <FILE>', 'PEM CA certificates the SCP is verified against (default: the system store)')
    .option('--upstream-tls-cert <FILE>', 'PEM client certificate to present to the SCP (with --upstream-tls-key)')
    .option('--upstream-tls-key <FILE>', 'PEM private key (unencrypted) of --upstream-tls-cert')
    .option('--upstream-tls-servername <NAME>', 'SNI, and the name the SCP certificate must carry (default: the upstream host)')
    .option('--upstream-tls-insecure', 'do not verify the SCP certificate (logged as a warning at start-up)')
    .addHelpText('after', PROXY_HELP_AFTER)
    .action((flags: ProxyFlags) => {
      // Every setting has its flag: a key missing here would be a flag parsed and then ignored (tsc says so).
      const raw: Required<RawSettings> = {
        listen: flags.listen,
        upstream: flags.upstream,
        maxPdu: flags.maxPdu,
        maxPduRq: flags.maxPduRq,
        assign: flags.assign,
        assignSeed: flags.assignSeed,
        guard: flags.guard,
        fragment: flags.fragment,
        csv: flags.csv,
        messagesCsv: flags.messagesCsv,
        logLevel: flags.logLevel,
        connectTimeoutMs: flags.connectTimeout,
        closeTimeoutMs: flags.closeTimeout,
        artimTimeoutMs: flags.artimTimeout,
        idleTimeoutMs: flags.idleTimeout,
        stallTimeoutMs: flags.stallTimeout,
        drainTimeoutMs: flags.drainTimeout,
        maxAssociations: flags.maxAssociations,
        maxPendingConnections: flags.maxPending,
        allowCallingAet: flags.allowCallingAet,
        allowPeer: flags.allowPeer,
        latency: flags.latency,
        bandwidth: flags.bandwidth,
        latencyToScp: flags.latencyToScp,
        latencyToScu: flags.latencyToScu,
        bandwidthToScp: flags.bandwidthToScp,
        bandwidthToScu: flags.bandwidthToScu,
        routes: flags.route,
        metrics: flags.metrics,
        pcap: flags.pcap,
        pcapMaxSize: flags.pcapMaxSize,
        pcapMaxFiles: flags.pcapMaxFiles,
        pcapPayload: flags.pcapPayload,
        health: flags.health,
        workers: flags.workers,
        tlsCert: flags.tlsCert,
        tlsKey: flags.tlsKey,
        tlsCa: flags.tlsCa,
        tlsClientAuth: flags.tlsClientAuth,
        upstreamTls: flags.upstreamTls,
        upstreamTlsCa: flags.upstreamTlsCa,
        upstreamTlsCert: flags.upstreamTlsCert,
        upstreamTlsKey: flags.upstreamTlsKey,
        upstreamTlsServername: flags.upstreamTlsServername,
        upstreamTlsInsecure: flags.upstreamTlsInsecure,
      };
      const settings = loadSettings(raw, flags.config, { env });
      // A --workers child parses the same command line again: the primary has said the warnings already.
      if (!cluster.isWorker) for (const warning of settings.warnings) process.stderr.write(`${PROGRAM}: warning: ${warning}\n`);
      // A worker runs what the primary hands it, with the primary's settings (a restarted worker gets the current ones).
      if (cluster.isWorker) return setRun(() => runWorker(settings.logLevel, settings.metrics !== undefined));
      const configFile = flags.config ?? env[ENV_CONFIG];
      setRun(() =>
        runSupervisor(settings.routes, {
          logLevel: settings.logLevel,
          metrics: settings.metrics,
          health: settings.health,
          workers: settings.workers,
          configFile,
          // SIGHUP: the same layers again, the config file read anew (flags and the environment still win).
          reload: configFile === undefined ? undefined : () => loadSettings(raw, flags.config, { env }).routes,
        }),
      );
    });

  addStatsCommand(program, setRun, usageError);
  addBenchCommand(program, setRun);

  // `--help` without a command shows the proxy's help (the default command); `help` lists the commands.
  program.helpOption(false);
  return program;
}

/**
 * Parse `argv` (process.argv: node, script, args...) and the PDU_PROXY_* variables of `env`, validate, and
 * run. Resolves with the exit status.
 */
export async function main(argv: string[], env: Environment = process.env): Promise<number> {
  let run: (() => Promise<number>) | undefined;
  const program = buildProgram(env, (r) => (run = r));
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help, --version and `help` are "errors" under exitOverride, with exit code 0.
      if (err.exitCode === 0) return 0;
      return usageError(oneLine(err.message));
    }
    if (err instanceof ConfigError) return usageError(err.message);
    throw err;
  }
  return run ? run() : 0;
}

// The `stats` command: argument parsing only; the work is in stats.ts beside it (reading and summing in src/analysis/).

import type { Command } from 'commander';
import { DEFAULT_GROUP_BY, StatsUsageError, stats } from './stats.js';
import type { StatsOptions } from './stats.js';

const STATS_HELP_AFTER = `
A messages CSV (--messages-csv) gives the experiment's table: one row per ${DEFAULT_GROUP_BY} (16KB, 100KB,
1MB...) with n, failed (status not 0000), mean/min/max/p50/p95 seconds per message (p = nearest rank),
MB/s (MB = 1048576 bytes: dataset bytes / summed durations) and the time split (mean ms per message).
A chunk CSV (--csv) gives, per association and direction: PDUs, bytes, P-DATA-TF lengths, violations repaired.
When the rows carry more than one arm (--max-pdu A,B,...), the experiment's table comes first: per arm
(per device with --by calling_aet) associations, messages, data, median MB/s, share, and the effect against
the reference arm (--baseline, default the smallest): throughput at equal data-set size, with a 95% bootstrap
interval over associations (--seed) and a verdict (docs/EXPERIMENT.md).
bench's results.csv gives its table again. The kind of each file is told by its header; several files are
read as one. --html OUT writes the report bench writes (report.html): settings, table, charts, time split,
PDU sizes sent and a summary, all in one file that opens without network access (run.json next to a
results.csv supplies the run's settings).
FILE may be a pattern ('logs/*.csv', quoted: expanded here) and a Parquet file with the same columns.
The computing is done by DuckDB (@duckdb/node-api, an optional dependency), straight from the files:
memory follows the result, not the logs. --sql QUERY runs a query over the views chunks, messages and
results (each with a \`file\` column) and prints its result (--format table, csv or json); --to-parquet DIR
writes each CSV as Parquet (typed columns, zstd). Ready queries: docs/STATS.md; beyond one machine:
docs/SCALE.md.

Examples:
  $ dicom-pdu-proxy stats messages.csv
  $ dicom-pdu-proxy stats messages.csv --by command --svg chart.svg
  $ dicom-pdu-proxy stats messages.csv --by calling_aet --baseline 64KB
  $ dicom-pdu-proxy stats chunks.csv --timeline 3 --svg assoc3.svg
  $ dicom-pdu-proxy stats results/run/*.csv --html report.html
  $ dicom-pdu-proxy stats 'logs/chunks-*.csv' --sql "SELECT route, count(*) FROM chunks GROUP BY route" --format csv
  $ dicom-pdu-proxy stats logs/*.csv --to-parquet archive/`;

/** Register `stats`; `fail` turns a usage error into the one-line message + exit status 2. */
export function addStatsCommand(program: Command, setRun: (run: () => Promise<number>) => void, fail: (message: string) => number): void {
  program
    .command('stats')
    .description('print the experiment table from messages CSVs, or per-association PDU summaries from chunk CSVs')
    .usage('FILE... [--by COLUMN] [--baseline ARM] [--seed N] [--svg FILE] [--timeline ASSOC] [--html OUT] | --sql QUERY [--format table|csv|json] | --to-parquet DIR')
    .helpOption('-h, --help', 'print this help and exit')
    .argument('<FILE...>', "messages CSV (--messages-csv), chunk CSV (--csv) and/or bench's results.csv files, patterns, or Parquet files")
    .option('--by <COLUMN>', `messages CSV column to group by: max_pdu (default), command, assoc, scp_max_pdu...`)
    .option('--svg <FILE>', 'write an SVG chart: mean with min-max bars per group (or the --timeline)')
    .option('--timeline <ASSOC>', "with --svg: draw this association's PDUs over time from a chunk CSV")
    .option('--html <OUT>', 'write a self-contained HTML report (settings, table, charts, time split, PDU sizes)')
    .option('--sql <QUERY>', 'run this SQL over the views chunks, messages, results and print the result instead of the tables')
    .option('--format <FORMAT>', 'with --sql: table (default), csv or json')
    .option('--baseline <ARM>', "with arms: the experiment's reference arm (default: the first arm, the smallest max PDU)")
    .option('--seed <N>', "with arms: the seed of the experiment's bootstrap (default 1: the same files give the same intervals)")
    .option('--to-parquet <DIR>', 'write each CSV given as a Parquet file in DIR (typed columns, zstd) instead of the tables')
    .addHelpText('after', STATS_HELP_AFTER)
    .action((files: string[], flags: StatsOptions) => {
      setRun(async () => {
        try {
          const out = await stats(files, flags);
          process.stdout.write(out.text);
          if (out.svgWritten) process.stderr.write(`chart written to ${out.svgWritten}\n`);
          if (out.htmlWritten) process.stderr.write(`report written to ${out.htmlWritten}\n`);
          return 0;
        } catch (err) {
          if (err instanceof StatsUsageError) return fail(err.message);
          throw err;
        }
      });
    });
}

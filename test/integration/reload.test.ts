// SIGHUP reloads the --config file without dropping anything: four DCMTK storescu senders keep sending
// through the proxy while the file changes ten times; no association fails or is refused, the listener never
// closes, every association runs under the settings of the generation it was accepted in (the generation is
// on every log line of the route, and its Maximum Length is the one written into the AC), and a file that
// does not validate changes nothing. The experiment's arms change between reloads (one size, two, three,
// an A/A pair): every association and every messages-CSV row carries an arm of its own generation's list,
// and the Maximum Length written into its AC is that arm's. Routes added to the file open their listener;
// routes removed stop listening. The same with --workers 2.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import type { Storescp } from '../helpers/dcmtk.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { readCsvRows } from '../helpers/csv.js';
import { eventually } from '../helpers/proc-stats.js';
import { killAll } from '../helpers/procs.js';
import type { RunResult } from '../helpers/procs.js';
import { ProxyProcess, freePort, stopAllProxies } from '../helpers/proxy.js';
import type { LogLine } from '../helpers/proxy.js';

let dir: string;
const images: string[] = [];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-reload-'));
  for (let i = 0; i < 3; i++) {
    images.push(path.join(dir, `image-${i}.dcm`));
    await writeTestDicom(images[i]!, { pixelBytes: 300_000 + i * 100_000, seed: 700 + i });
  }
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Write the config file as an editor would (a new file renamed over the old one). */
function writeConfig(file: string, settings: Record<string, unknown>): void {
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(settings));
  fs.renameSync(`${file}.tmp`, file);
}

/** The --max-pdu of each turn: one size (no experiment), then arm lists, an A/A pair among them. */
const MAX_PDU_BY_TURN: string[][] = [['16KB'], ['16KB', '64KB'], ['32KB', '16KB', '64KB'], ['64KB', '64KB']];
const BYTES: Record<string, number> = { '16KB': 16384, '32KB': 32768, '64KB': 65536 };
/** The arm labels of a list: the size as written, `#2` for a repeated value. */
function armLabels(sizes: string[]): string[] {
  return sizes.map((s, i) => {
    const n = sizes.slice(0, i + 1).filter((x) => x === s).length;
    return n === 1 ? s : `${s}#${n}`;
  });
}
const armBytes = (label: string): number => BYTES[label.replace(/#\d+$/, '')]!;
/** The config file's maxPdu: a string for one size, a JSON array for an experiment. */
const maxPduSetting = (sizes: string[]): string | string[] => (sizes.length === 1 ? sizes[0]! : sizes);

for (const workers of [1, 2]) {
  describe(`SIGHUP reloads --config under load (--workers ${workers})`, () => {
    test('10 reloads during 4 senders: nothing fails or is refused, every association has its generation’s settings, a bad file changes nothing', async () => {
      const out = path.join(dir, `in-${workers}`);
      fs.mkdirSync(out, { recursive: true });
      const scp: Storescp = await startStorescp({ outDir: out, logLevel: 'quiet', extraArgs: ['--fork'] });
      const config = path.join(dir, `config-${workers}.json`);
      const port = await freePort();
      const base = { listen: `127.0.0.1:${port}`, upstream: `127.0.0.1:${scp.port}` };
      const messagesCsv = path.join(dir, `messages-${workers}.csv`);
      writeConfig(config, { ...base, maxPdu: maxPduSetting(MAX_PDU_BY_TURN[0]!), messagesCsv });
      const proxy = await ProxyProcess.startRoutes(['--config', config, '--metrics', '127.0.0.1:0', ...(workers > 1 ? ['--workers', String(workers)] : [])], ['default']);
      try {
        let sending = true;
        const results: RunResult[] = [];
        const sender = async (): Promise<void> => {
          while (sending) results.push(await storescu({ port, files: images, timeoutMs: 60_000 }));
        };
        const senders = [sender(), sender(), sender(), sender()];
        const generations: Array<{ generation: number; arms: string[] }> = [{ generation: 1, arms: armLabels(MAX_PDU_BY_TURN[0]!) }];
        const reloaded = (g: number): Promise<LogLine> => proxy.waitForLog((l) => l.msg === 'settings reloaded' && l.generation === g, 10_000);
        for (let turn = 1; turn <= 10; turn++) {
          // Let some associations run under the current settings.
          const current = generations.length;
          await eventually(
            () => proxy.logs.filter((l) => l.msg === 'association negotiated' && l.generation === current).length >= 2,
            30_000,
            () => `two associations of generation ${current}`,
          );
          if (turn === 5) {
            // Not valid: nothing changes, one error line, the generation stays.
            writeConfig(config, { ...base, maxPdu: ['16KB', 'twelve'], messagesCsv });
            proxy.child.kill('SIGHUP');
            const failed = await proxy.waitForLog((l) => l.msg === 'reload failed: the settings stay as they were', 10_000);
            assert.match(String(failed.reason), /maxPdu|max-pdu/i, 'the error names the key');
            assert.equal(failed.generation, generations.length);
            continue;
          }
          const sizes = MAX_PDU_BY_TURN[turn % MAX_PDU_BY_TURN.length]!;
          writeConfig(config, { ...base, maxPdu: maxPduSetting(sizes), messagesCsv });
          proxy.child.kill('SIGHUP');
          generations.push({ generation: generations.length + 1, arms: armLabels(sizes) });
          await reloaded(generations.length);
        }
        // The last generation gets its associations too before the senders stop.
        const last = generations.length;
        await eventually(
          () => proxy.logs.filter((l) => l.msg === 'association negotiated' && l.generation === last).length >= 2,
          30_000,
          () => `two associations of generation ${last}`,
        );
        sending = false;
        await Promise.all(senders);

        const failedRuns = results.filter((r) => r.code !== 0);
        assert.equal(failedRuns.length, 0, `every storescu run succeeded: ${failedRuns.map((r) => r.stderr).join('\n')}`);
        assert.ok(results.length >= 20, `${results.length} runs`);
        assert.ok(!proxy.logs.some((l) => l.msg === 'association rejected by the proxy'), 'no association refused');
        const negotiated = proxy.logs.filter((l) => l.msg === 'association negotiated');
        const byGeneration = new Map<number, number>();
        const armOf = new Map<string, string>();
        const generationOf = new Map<string, number>();
        for (const line of negotiated) {
          const g = line.generation as number;
          byGeneration.set(g, (byGeneration.get(g) ?? 0) + 1);
          const arm = String(line.arm);
          assert.ok(
            generations[g - 1]!.arms.includes(arm),
            `association ${String(line.assoc)} of generation ${g} got arm ${arm}, not one of ${generations[g - 1]!.arms.join(',')}`,
          );
          armOf.set(String(line.assoc), arm);
          generationOf.set(String(line.assoc), g);
          const written = (line.maxPdu as { toScp: { writtenToScu: number } }).toScp.writtenToScu;
          assert.equal(written, armBytes(arm), `association ${String(line.assoc)} of generation ${g}, arm ${arm}, told the SCU ${written}`);
        }
        assert.equal(byGeneration.size, generations.length, `associations in every generation: ${JSON.stringify([...byGeneration])}`);
        // Every arm of an experiment's generation got associations of its own when the generation had enough
        // of them (block assignment: every 2 x arms associations of a device hold each arm twice).
        for (const { generation, arms } of generations) {
          if (arms.length === 1 || (byGeneration.get(generation) ?? 0) < 2 * arms.length) continue;
          const seen = new Set(negotiated.filter((l) => l.generation === generation).map((l) => String(l.arm)));
          assert.deepEqual([...seen].sort(), [...arms].sort(), `generation ${generation}'s associations used every arm`);
        }
        // Every stored data set is one of ours, bit for bit (storescp names a file by its SOP instance: the
        // same three images sent again and again are three files, the last copy of each).
        const sent = images.map((f) => datasetBytes(f));
        const stored = scp.receivedFiles();
        assert.equal(stored.length, images.length);
        for (const f of stored)
          assert.ok(
            sent.some((b) => b.equals(datasetBytes(f))),
            `${f} is bit-identical to an image sent`,
          );
        // The metrics: the generation in force, the one failed reload.
        const text = await (await fetch(proxy.metricsUrl)).text();
        assert.match(text, new RegExp(`^dicom_pdu_proxy_config_generation ${generations.length}$`, 'm'));
        assert.match(text, /^dicom_pdu_proxy_config_reload_failures_total 1$/m);
        assert.equal(await proxy.stop(20_000, 15_000), 0);
        // The messages CSV: one row per C-STORE, each with its association's generation and arm, and the
        // arm's Maximum Length in max_pdu.
        const rows = await readCsvRows(messagesCsv);
        assert.equal(rows.length, results.length * images.length, 'one row per image stored');
        for (const row of rows) {
          const g = Number(row.generation);
          assert.equal(g, generationOf.get(row.assoc!), `association ${row.assoc}'s row has its generation`);
          assert.equal(row.arm, armOf.get(row.assoc!), `association ${row.assoc}'s row has its arm`);
          assert.ok(generations[g - 1]!.arms.includes(row.arm!), `row of generation ${g} has arm ${row.arm}`);
          assert.equal(Number(row.max_pdu), armBytes(row.arm!), `row of association ${row.assoc}: max_pdu ${row.max_pdu}, arm ${row.arm}`);
          assert.equal(row.status, '0000');
        }
      } finally {
        await proxy.stop();
        await scp.stop();
      }
    });
  });
}

describe('SIGHUP: routes added and removed', () => {
  test('a route added to the file listens, a removed one stops listening while its association goes on', async () => {
    const out = path.join(dir, 'in-routes');
    fs.mkdirSync(out, { recursive: true });
    const scp = await startStorescp({ outDir: out, logLevel: 'quiet', extraArgs: ['--fork'] });
    const config = path.join(dir, 'config-routes.json');
    const [a, b] = [await freePort(), await freePort()];
    const route = (p: number, id: string): string => `127.0.0.1:${p}=127.0.0.1:${scp.port},id=${id}`;
    writeConfig(config, { routes: [route(a, 'a')] });
    const proxy = await ProxyProcess.startRoutes(['--config', config], ['a']);
    try {
      assert.equal((await storescu({ port: a, files: [images[0]!] })).code, 0);
      writeConfig(config, { routes: [route(b, 'b')] });
      proxy.child.kill('SIGHUP');
      await proxy.waitForLog((l) => l.msg === 'settings reloaded' && l.generation === 2);
      await proxy.waitForLog((l) => l.msg === 'listening' && l.route === 'b');
      assert.equal((await storescu({ port: b, files: [images[1]!] })).code, 0, 'the added route serves');
      const gone = await storescu({ port: a, files: [images[2]!] });
      assert.notEqual(gone.code, 0, 'the removed route no longer listens');
      assert.equal(await proxy.stop(), 0);
    } finally {
      await proxy.stop();
      await scp.stop();
    }
  });
});

// Start test/peers/dimse-scp.ts (dcmjs-dimse SCP) as a child process and wait for `listening <port>`.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { spawnPeer } from './procs.js';
import type { PeerProcess } from './procs.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DIMSE_SCP_SCRIPT = path.join(REPO_ROOT, 'test', 'peers', 'dimse-scp.ts');

export interface DimseScpOptions {
  port?: number; // default: a free port
  maxPdu?: number; // --max-pdu (dcmjs-dimse default 262144)
  files?: string[]; // --files: sent as C-GET sub-operations
  findResults?: number; // --find-results (default 3)
  storeDir?: string; // --store-dir
  /** --respect-rq-max: no README-style association.setMaxPduLength override (see dimse-scp.ts). */
  respectRqMax?: boolean;
  verbose?: boolean; // --verbose: dcmjs-dimse log level info (loglevel, to the console)
  readyTimeoutMs?: number; // default 15 s (tsx start-up is ~0.5 s)
}

export interface DimseScp {
  peer: PeerProcess;
  port: number;
  stop(): Promise<void>;
}

export function dimseScpArgs(o: DimseScpOptions & { port: number }): string[] {
  const a = ['--import', 'tsx', DIMSE_SCP_SCRIPT, '--port', String(o.port)];
  if (o.maxPdu !== undefined) a.push('--max-pdu', String(o.maxPdu));
  if (o.files && o.files.length > 0) a.push('--files', o.files.join(','));
  if (o.findResults !== undefined) a.push('--find-results', String(o.findResults));
  if (o.storeDir !== undefined) a.push('--store-dir', o.storeDir);
  if (o.respectRqMax) a.push('--respect-rq-max');
  if (o.verbose) a.push('--verbose');
  return a;
}

export async function startDimseScp(o: DimseScpOptions = {}): Promise<DimseScp> {
  const port = o.port ?? (await freePort());
  const peer = spawnPeer(process.execPath, dimseScpArgs({ ...o, port }), { name: `dimse-scp:${port}`, cwd: REPO_ROOT });
  try {
    await peer.waitForOutput(/^listening (\d+)$/m, o.readyTimeoutMs ?? 15_000);
  } catch (err) {
    await peer.kill();
    throw err;
  }
  return {
    peer,
    port,
    stop: async () => {
      await peer.kill();
    },
  };
}

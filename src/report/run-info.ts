// run.json: what a bench run was (peers, AE titles, images, senders, proxy options, machine, date), written
// by bench next to results.csv so that report.html (from bench or `stats --html` later) can say it. The CSV
// files hold the measurements; this holds the settings that are in none of their columns.

import os from 'node:os';

export const RUN_JSON = 'run.json';

export interface MachineInfo {
  hostname: string;
  /** e.g. "linux 6.1.0 x64". */
  os: string;
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  node: string;
}

export interface RunSettingInfo {
  /** The table's label of the setting (e.g. "16KB", "16KB 2MB direct"). */
  label: string;
  /** Max PDU of the setting, bytes. */
  pdu: number;
  image: string;
  imageBytes: number;
  mode: string;
  /** The proxy's link shaping of the setting (bench --latency/--bandwidth); absent when unshaped. */
  link?: { latencyMs: number; jitterMs: number; bandwidthBps: number };
  /** File names in the output directory (absent in direct mode). */
  chunksCsv?: string;
  messagesCsv?: string;
  /** bench --scp-command: the SCP's output (stdout and stderr) during this setting. */
  scpLog?: string;
}

export interface RunInfo {
  tool: string;
  startedAt: string;
  finishedAt: string;
  machine: MachineInfo;
  /** `label` names the sender; `withSize` says what it does with a swept size (both absent in older files). */
  scu: { kind: string; parallel: number; callingAet: string; count: number; label?: string; withSize?: string };
  scp: { calledAet: string; target: string; withSize?: string };
  images: Array<{ label: string; bytes: number }>;
  pdus: number[];
  modes: string[];
  /** The proxy's command line per setting, with <placeholders> for what changes. */
  proxyOptions: string;
  settings: RunSettingInfo[];
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    os: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryBytes: os.totalmem(),
    node: process.version,
  };
}

/** A run.json read back: the fields the report uses, checked loosely (an unknown file is ignored, never fatal). */
export function parseRunInfo(text: string): RunInfo | undefined {
  try {
    const v = JSON.parse(text) as Partial<RunInfo>;
    if (typeof v !== 'object' || v === null || !Array.isArray(v.settings) || typeof v.machine !== 'object' || typeof v.scu !== 'object') return undefined;
    return v as RunInfo;
  } catch {
    return undefined;
  }
}

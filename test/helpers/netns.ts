// A peer host the test can make unreachable: a network namespace of the test's own behind a veth pair
// (root or CAP_NET_ADMIN needed). dropIncoming() drops every packet into the namespace (iptables inside it,
// or, without iptables, the link taken down); restore() undoes it. Where a namespace cannot be made,
// makeNamespace() resolves with the reason, and the test says it skipped (skipWithReason).

import { spawnSync } from 'node:child_process';

export interface TestNamespace {
  name: string;
  /** The address of the host end (the proxy's side) and of the namespace's end (the peer's). */
  hostIp: string;
  peerIp: string;
  /** Argument list prefix to run a command inside the namespace. */
  exec: string[];
  /** Drop every packet into the namespace from now on; returns how. */
  dropIncoming(): string;
  restore(): void;
  /** Kill what runs inside, delete the namespace and the veth pair. */
  remove(): void;
}

function sh(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error?.message ?? ''}`.trim() };
}

/** A namespace and veth pair named after `tag` (unique per test process), or why there is none. */
export function makeNamespace(tag: string): TestNamespace | string {
  const name = `${tag}-ns`;
  const [hostIf, nsIf] = [`${tag}a`, `${tag}b`];
  const net24 = `10.251.${process.pid % 250}`;
  const [hostIp, peerIp] = [`${net24}.1`, `${net24}.2`];
  const remove = (): void => {
    // The processes the test started inside (a forking SCP's children too), by their ids.
    for (const pid of sh(['ip', 'netns', 'pids', name])
      .out.split(/\s+/)
      .filter((p) => /^\d+$/.test(p))) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    sh(['ip', 'netns', 'del', name]); // deletes the veth pair with it
    sh(['ip', 'link', 'del', hostIf]);
  };
  remove();
  const setup = [
    ['ip', 'netns', 'add', name],
    ['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf],
    ['ip', 'link', 'set', nsIf, 'netns', name],
    ['ip', 'addr', 'add', `${hostIp}/30`, 'dev', hostIf],
    ['ip', 'link', 'set', hostIf, 'up'],
    ['ip', 'netns', 'exec', name, 'ip', 'addr', 'add', `${peerIp}/30`, 'dev', nsIf],
    ['ip', 'netns', 'exec', name, 'ip', 'link', 'set', nsIf, 'up'],
    ['ip', 'netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up'],
  ];
  for (const step of setup) {
    const r = sh(step);
    if (!r.ok) {
      remove();
      return `network namespaces cannot be made here (${step.join(' ')}: ${r.out}; root or CAP_NET_ADMIN needed)`;
    }
  }
  let how: 'iptables' | 'link' | undefined;
  return {
    name,
    hostIp,
    peerIp,
    exec: ['ip', 'netns', 'exec', name],
    dropIncoming() {
      if (sh(['ip', 'netns', 'exec', name, 'iptables', '-A', 'INPUT', '-j', 'DROP']).ok) {
        how = 'iptables';
        return 'iptables DROP in the namespace';
      }
      const r = sh(['ip', 'link', 'set', hostIf, 'down']);
      if (!r.ok) throw new Error(`cannot drop packets into ${name}: ${r.out}`);
      how = 'link';
      return 'the veth link down';
    },
    restore() {
      if (how === 'iptables') sh(['ip', 'netns', 'exec', name, 'iptables', '-D', 'INPUT', '-j', 'DROP']);
      if (how === 'link') sh(['ip', 'link', 'set', hostIf, 'up']);
      how = undefined;
    },
    remove,
  };
}

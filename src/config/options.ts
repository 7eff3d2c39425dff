import type { PeerRule } from './access.js';
import type { LinkShaping } from '../transform/shaper.js';
import type { FragmentPolicy } from '../transform/refragment.js';
import type { Endpoint } from '../values/endpoint.js';
import type { Latency } from '../values/shaping.js';
import type { Direction } from '../events/events.js';
import type { CapturePayload } from '../capture/encoding/connection.js';
import type { Arm } from '../experiment/arms.js';
import type { AssignMode } from '../experiment/assigner.js';

/** Everything the proxy engine needs; the CLI builds it from flags, the config file and defaults. */
export interface ProxyOptions {
  listen: Endpoint;
  upstream: Endpoint;
  /**
   * The experiment's arms (--max-pdu A,B,...), one Maximum Length each for the A-ASSOCIATE-AC (what the SCU
   * may send); one value is one arm; empty = unchanged (no arm).
   */
  arms: Arm[];
  /** The single --max-pdu value (arms[0].maxPdu when there is exactly one arm); undefined with none or several. */
  maxPdu?: number | undefined;
  /** How associations are assigned to the arms (--assign). */
  assign: AssignMode;
  /** --assign-seed; undefined = a seed chosen at random when the experiment starts (and logged). */
  assignSeed?: number | undefined;
  /** --guard on: withdraw an arm for a device that fails on it (src/experiment/guard.ts). */
  guard: boolean;
  /** Written into the A-ASSOCIATE-RQ Maximum Length (what the SCP may send); undefined = unchanged. */
  maxPduRq?: number | undefined;
  fragment: FragmentPolicy;
  /** Per-PDU chunk log; undefined = off. */
  csv?: string | undefined;
  /** Per-message log (appended to when it exists); undefined = off. */
  messagesCsv?: string | undefined;
  /** Upstream TCP connect timeout in milliseconds; on expiry the SCU gets A-ASSOCIATE-RJ (transient). */
  connectTimeoutMs: number;
  /**
   * After an A-ABORT or A-ASSOCIATE-RJ has been forwarded, or after a protocol error, how long the proxy
   * waits for the peers to close before it closes both connections (PS3.8 9.1.4 ARTIM).
   */
  closeTimeoutMs: number;
  /** No A-ASSOCIATE-RQ within this many ms of the TCP accept: the connection is closed (PS3.8 9.1.4 ARTIM). */
  artimTimeoutMs: number;
  /** Nothing sent or received on the SCU connection for this long once the RQ arrived: A-ABORT both. 0 = off. */
  idleTimeoutMs: number;
  /**
   * A peer that takes no bytes for this long while the proxy has bytes for it (its TCP window stays at zero,
   * or its host stopped answering): A-ABORT to the other peer, the stalled connection reset. 0 = off.
   */
  stallTimeoutMs: number;
  /** After SIGTERM/SIGINT, how long associations in flight may take to finish before they are aborted. */
  drainTimeoutMs: number;
  /** Associations (connections that have sent an A-ASSOCIATE-RQ and been admitted) at once; 0 = no limit. */
  maxAssociations: number;
  /**
   * Connections that have not sent a whole A-ASSOCIATE-RQ yet, at most; past it the oldest such connection is
   * closed to make room, so idle or dribbling connections can never keep a real association out.
   */
  maxPendingConnections: number;
  /** The capture of both legs (--pcap); undefined = off. */
  pcap?: CaptureSettings | undefined;
  /** Calling AE titles allowed (trimmed, case-sensitive); undefined = any. */
  allowCallingAet?: string[] | undefined;
  /** Peer addresses allowed (IP or CIDR); undefined = any. */
  allowPeer?: PeerRule[] | undefined;
  /** One-way delay added in EACH direction (--latency MS[:JITTER]); undefined = none. */
  latency?: Latency | undefined;
  /** Bytes per second, EACH direction capped separately (--bandwidth RATE); undefined or 0 = not limited. */
  bandwidth?: number | undefined;
  /** Per-direction overrides of latency / bandwidth (--latency-to-scp …); undefined = the value above. */
  latencyToScp?: Latency | undefined;
  latencyToScu?: Latency | undefined;
  bandwidthToScp?: number | undefined;
  bandwidthToScu?: number | undefined;
  /** TLS on the listener (--tls-cert/--tls-key); undefined = plain TCP. */
  tls?: ListenerTls | undefined;
  /** TLS toward the SCP (--upstream-tls); undefined = plain TCP. */
  upstreamTls?: UpstreamTls | undefined;
}

/** --tls-client-auth: ask SCUs for a certificate? `optional`: one that is given must verify; `required`: one must be given. */
export type ClientAuth = 'none' | 'optional' | 'required';

/** The listener's TLS: PEM contents, read and checked when the settings were resolved. */
export interface ListenerTls {
  cert: Buffer;
  key: Buffer;
  /** CA certificates client certificates are verified against; undefined = the system store. */
  ca?: Buffer | undefined;
  clientAuth: ClientAuth;
}

/** TLS toward the SCP. */
export interface UpstreamTls {
  /** CA certificates the SCP's certificate is verified against; undefined = the system store. */
  ca?: Buffer | undefined;
  /** A client certificate (and its key) to present to the SCP. */
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  /** SNI and the name the certificate must carry; undefined = the upstream host (an IP is checked against the IP SANs). */
  servername?: string | undefined;
  /** Do not verify the SCP's certificate (a warning is logged at start-up). */
  insecure: boolean;
}

/** The shaping of one direction (the per-direction value, else the common one); undefined = none (fast path). */
export function shapingFor(
  o: Pick<ProxyOptions, 'latency' | 'bandwidth' | 'latencyToScp' | 'latencyToScu' | 'bandwidthToScp' | 'bandwidthToScu'>,
  direction: Direction,
): LinkShaping | undefined {
  const latency = (direction === 'to_scp' ? o.latencyToScp : o.latencyToScu) ?? o.latency;
  const bytesPerSecond = (direction === 'to_scp' ? o.bandwidthToScp : o.bandwidthToScu) ?? o.bandwidth;
  const hasLatency = latency !== undefined && (latency.ms > 0 || latency.jitterMs > 0);
  const hasRate = bytesPerSecond !== undefined && bytesPerSecond > 0;
  if (!hasLatency && !hasRate) return undefined;
  return { latency: hasLatency ? latency : undefined, bytesPerSecond: hasRate ? bytesPerSecond : undefined };
}

/** One route: a listener and its upstream, with its own settings (several routes may share one process). */
export interface RouteConfig {
  /** In logs (`route`), CSV rows and metric labels. undefined: the bound listen port (a route on port 0). */
  id: string | undefined;
  /** How messages name it: `--listen`, `--route "11113=pacs:104"`, `config file x.json: routes[0]`. */
  label: string;
  options: ProxyOptions;
}

/** --pcap FILE and its companions. */
export interface CaptureSettings {
  file: string;
  /** Rotate when the file would grow past this many bytes (--pcap-max-size); 0 = never. */
  maxSize: number;
  /** Files kept in all, FILE and FILE.1 ... FILE.(N-1) (--pcap-max-files). */
  maxFiles: number;
  /** full, or headers: data-set bytes zeroed (--pcap-payload). */
  payload: CapturePayload;
}

// The table of settings: every key a config file, a route or the environment may set, with its flag. The
// root of the config folder: config.ts (layers, resolution) and routes.ts (per-route keys) both read it.

/** Setting keys (as written in config files), with the flag that sets each one. */
export const SETTINGS = {
  listen: '--listen',
  upstream: '--upstream',
  maxPdu: '--max-pdu',
  maxPduRq: '--max-pdu-rq',
  fragment: '--fragment',
  csv: '--csv',
  messagesCsv: '--messages-csv',
  logLevel: '--log-level',
  connectTimeoutMs: '--connect-timeout',
  closeTimeoutMs: '--close-timeout',
  artimTimeoutMs: '--artim-timeout',
  idleTimeoutMs: '--idle-timeout',
  drainTimeoutMs: '--drain-timeout',
  maxAssociations: '--max-associations',
  maxPendingConnections: '--max-pending',
  allowCallingAet: '--allow-calling-aet',
  allowPeer: '--allow-peer',
  latency: '--latency',
  bandwidth: '--bandwidth',
  latencyToScp: '--latency-to-scp',
  latencyToScu: '--latency-to-scu',
  bandwidthToScp: '--bandwidth-to-scp',
  bandwidthToScu: '--bandwidth-to-scu',
  routes: '--route',
  metrics: '--metrics',
  pcap: '--pcap',
  pcapMaxSize: '--pcap-max-size',
  pcapMaxFiles: '--pcap-max-files',
  pcapPayload: '--pcap-payload',
  health: '--health',
  tlsCert: '--tls-cert',
  tlsKey: '--tls-key',
  tlsCa: '--tls-ca',
  tlsClientAuth: '--tls-client-auth',
  upstreamTls: '--upstream-tls',
  upstreamTlsCa: '--upstream-tls-ca',
  upstreamTlsCert: '--upstream-tls-cert',
  upstreamTlsKey: '--upstream-tls-key',
  upstreamTlsServername: '--upstream-tls-servername',
  upstreamTlsInsecure: '--upstream-tls-insecure',
} as const;

export type SettingKey = keyof typeof SETTINGS;
export type RawSettings = Partial<Record<SettingKey, unknown>>;

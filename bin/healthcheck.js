#!/usr/bin/env node
// Container health probe (the image's HEALTHCHECK, compose's healthcheck): GET /readyz of the proxy in this
// container, at PDU_PROXY_HEALTH (else PDU_PROXY_METRICS); exit 0 when it answers 200, 1 otherwise.
// A wildcard listen host (0.0.0.0, ::, none) is probed on the loopback address.

const value = process.env.PDU_PROXY_HEALTH || process.env.PDU_PROXY_METRICS;
if (!value) {
  console.error('healthcheck: neither PDU_PROXY_HEALTH nor PDU_PROXY_METRICS is set: no endpoint to probe');
  process.exit(1);
}
const text = value.trim();
const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
if (!match) {
  console.error(`healthcheck: ${JSON.stringify(value)} is not [HOST:]PORT`);
  process.exit(1);
}
let host = match[1] || match[2] || '';
if (host === '' || host === '0.0.0.0') host = '127.0.0.1';
else if (host === '::') host = '::1';
const url = `http://${host.includes(':') ? `[${host}]` : host}:${match[3]}/readyz`;
fetch(url, { signal: AbortSignal.timeout(2500) }).then(
  async (res) => {
    const body = (await res.text()).trim();
    console.log(`healthcheck: ${url}: ${res.status} ${body}`);
    process.exit(res.status === 200 ? 0 : 1);
  },
  (err) => {
    console.error(`healthcheck: ${url}: ${err.cause?.code ?? err.message}`);
    process.exit(1);
  },
);

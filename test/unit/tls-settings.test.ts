// TLS and health settings: each one is a flag, a PDU_PROXY_* variable, a config-file key and (except
// --health) a route key; certificate files are read and checked when the settings are resolved, and every
// mistake is one line naming the setting.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadSettings } from '../../src/config/config.js';
import type { RawSettings } from '../../src/config/config.js';
import { parseBoolean, parseClientAuth } from '../../src/config/tls.js';
import { describeTlsError, reasonOfCode } from '../../src/proxy/tls.js';
import { makeTestPki } from '../helpers/certs.js';
import type { TestPki } from '../helpers/certs.js';
import { rejects } from '../helpers/settings.js';

let pki: TestPki;
before(() => (pki = makeTestPki()));
after(() => pki.remove());

const UP = { upstream: 'pacs:104' };
const load = (flags: RawSettings, env: Record<string, string> = {}) => loadSettings({ ...UP, ...flags }, undefined, { env });

describe('listener TLS', () => {
  test('--tls-cert and --tls-key: the PEM contents, client auth none by default', () => {
    const { options } = load({ tlsCert: pki.proxy.cert, tlsKey: pki.proxy.key });
    assert.ok(options.tls);
    assert.ok(options.tls.cert.equals(fs.readFileSync(pki.proxy.cert)));
    assert.ok(options.tls.key.equals(fs.readFileSync(pki.proxy.key)));
    assert.equal(options.tls.ca, undefined);
    assert.equal(options.tls.clientAuth, 'none');
    assert.equal(options.upstreamTls, undefined);
  });

  test('not set: no tls key in the options at all', () => {
    const { options } = load({});
    assert.equal('tls' in options, false);
    assert.equal('upstreamTls' in options, false);
  });

  test('from the environment, with mutual authentication', () => {
    const { options } = load({}, { PDU_PROXY_TLS_CERT: pki.proxy.cert, PDU_PROXY_TLS_KEY: pki.proxy.key, PDU_PROXY_TLS_CA: pki.ca, PDU_PROXY_TLS_CLIENT_AUTH: 'Required' });
    assert.equal(options.tls?.clientAuth, 'required');
    assert.ok(options.tls?.ca?.equals(fs.readFileSync(pki.ca)));
  });

  test('per route: one TLS route next to a plain one', () => {
    const { routes } = load({ routes: [`11113=pacs:2762,tls-cert=${pki.proxy.cert},tls-key=${pki.proxy.key},id=secure`] });
    assert.equal(routes.length, 2);
    assert.equal(routes[0]!.options.tls, undefined);
    assert.ok(routes[1]!.options.tls);
  });

  const mistakes: Array<[string, () => RawSettings, RegExp]> = [
    ['a certificate without its key', () => ({ tlsCert: pki.proxy.cert }), /^--tls-cert: needs --tls-key too/],
    ['a key without its certificate', () => ({ tlsKey: pki.proxy.key }), /^--tls-key: needs --tls-cert too/],
    ['a CA without a TLS listener', () => ({ tlsCa: pki.ca }), /^--tls-ca: needs --tls-cert and --tls-key/],
    ['client auth without a TLS listener', () => ({ tlsClientAuth: 'required' }), /^--tls-client-auth: required needs --tls-cert and --tls-key/],
    ['client auth without a CA', () => ({ tlsCert: pki.proxy.cert, tlsKey: pki.proxy.key, tlsClientAuth: 'optional' }), /^--tls-client-auth: optional needs --tls-ca/],
    [
      'an unknown client auth mode',
      () => ({ tlsCert: pki.proxy.cert, tlsKey: pki.proxy.key, tlsClientAuth: 'always' }),
      /^--tls-client-auth: "always" is not none, optional, required$/,
    ],
    ['a missing certificate file', () => ({ tlsCert: '/nonexistent/proxy.crt', tlsKey: pki.proxy.key }), /^--tls-cert: cannot read "\/nonexistent\/proxy.crt" \(ENOENT\)$/],
    ['a key given as the certificate', () => ({ tlsCert: pki.proxy.key, tlsKey: pki.proxy.key }), /^--tls-cert: ".*proxy.key" holds no PEM certificate/],
    ['a certificate given as the key', () => ({ tlsCert: pki.proxy.cert, tlsKey: pki.proxy.cert }), /^--tls-key: ".*proxy.crt" is not a PEM private key/],
    [
      'a key of another certificate',
      () => ({ tlsCert: pki.proxy.cert, tlsKey: pki.modality.key }),
      /^--tls-key: does not belong to the certificate of --tls-cert \(.*key values mismatch\)$/,
    ],
    [
      'a CA file that is not PEM',
      () => ({ tlsCert: pki.proxy.cert, tlsKey: pki.proxy.key, tlsCa: pki.proxy.key, tlsClientAuth: 'required' }),
      /^--tls-ca: ".*proxy.key" holds no PEM certificate/,
    ],
  ];
  for (const [name, flags, message] of mistakes) test(name, () => rejects(() => load(flags()), message));

  test('an encrypted key: say so, and how to give it', () => {
    const encrypted = path.join(pki.dir, 'encrypted.key');
    fs.writeFileSync(encrypted, '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n');
    rejects(() => load({ tlsCert: pki.proxy.cert, tlsKey: encrypted }), /^--tls-key: ".*encrypted.key" is encrypted; give the key unencrypted/);
  });

  test('a corrupt certificate block names the setting and the block', () => {
    const corrupt = path.join(pki.dir, 'corrupt.crt');
    fs.writeFileSync(corrupt, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    rejects(() => load({ tlsCert: corrupt, tlsKey: pki.proxy.key }), /^--tls-cert: ".*corrupt.crt": certificate 1 is not valid/);
  });

  test('a route names itself and its key', () => {
    rejects(
      () => load({ routes: ['11113=pacs:2762,tls-cert=/nonexistent.crt,tls-key=/nonexistent.key'] }),
      /^--route "11113=pacs:2762,tls-cert=\/nonexistent.crt,tls-key=\/nonexistent.key": tls-cert: cannot read/,
    );
  });
});

describe('upstream TLS', () => {
  test('--upstream-tls alone: the system store, verification on, SNI from the host', () => {
    const { options } = load({ upstreamTls: true });
    assert.deepEqual(options.upstreamTls, { insecure: false });
  });

  test('every companion setting, from a config file', () => {
    const file = path.join(pki.dir, 'config.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        upstream: 'pacs:2762',
        upstreamTls: true,
        upstreamTlsCa: pki.ca,
        upstreamTlsCert: pki.proxy.cert,
        upstreamTlsKey: pki.proxy.key,
        upstreamTlsServername: 'pacs.example',
        upstreamTlsInsecure: false,
      }),
    );
    const { options } = loadSettings({}, file);
    assert.ok(options.upstreamTls?.ca?.equals(fs.readFileSync(pki.ca)));
    assert.ok(options.upstreamTls?.cert?.equals(fs.readFileSync(pki.proxy.cert)));
    assert.ok(options.upstreamTls?.key?.equals(fs.readFileSync(pki.proxy.key)));
    assert.equal(options.upstreamTls?.servername, 'pacs.example');
    assert.equal(options.upstreamTls?.insecure, false);
  });

  test('booleans from the environment and from a route', () => {
    assert.equal(load({}, { PDU_PROXY_UPSTREAM_TLS: 'yes', PDU_PROXY_UPSTREAM_TLS_INSECURE: '1' }).options.upstreamTls?.insecure, true);
    const { routes } = load({ routes: ['11113=pacs:2762,upstream-tls=true,id=secure'] });
    assert.equal(routes[0]!.options.upstreamTls, undefined);
    assert.deepEqual(routes[1]!.options.upstreamTls, { insecure: false });
  });

  const mistakes: Array<[string, RawSettings, Record<string, string>, RegExp]> = [
    ['a CA without --upstream-tls', { upstreamTlsCa: '/x.crt' }, {}, /^--upstream-tls-ca: needs --upstream-tls \(the connection to the SCP is plain TCP without it\)$/],
    ['insecure without --upstream-tls', {}, { PDU_PROXY_UPSTREAM_TLS_INSECURE: 'true' }, /^environment PDU_PROXY_UPSTREAM_TLS_INSECURE: needs --upstream-tls/],
    ['a client certificate without its key', { upstreamTls: true, upstreamTlsCert: '/x.crt' }, {}, /^--upstream-tls-cert: needs --upstream-tls-key too$/],
    ['not a boolean', {}, { PDU_PROXY_UPSTREAM_TLS: 'maybe' }, /^environment PDU_PROXY_UPSTREAM_TLS: "maybe" is not true or false$/],
    ['an unreadable CA', { upstreamTls: true, upstreamTlsCa: '/nonexistent/ca.crt' }, {}, /^--upstream-tls-ca: cannot read "\/nonexistent\/ca.crt" \(ENOENT\)$/],
  ];
  for (const [name, flags, env, message] of mistakes) test(name, () => rejects(() => load(flags, env), message));
});

describe('--health', () => {
  test('[HOST:]PORT, global only', () => {
    assert.deepEqual(load({ health: '8080' }).health, { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(load({}, { PDU_PROXY_HEALTH: '127.0.0.1:9000' }).health, { host: '127.0.0.1', port: 9000 });
    assert.equal(load({}).health, undefined);
    rejects(() => load({ routes: ['11113=pacs:104,health=9000'] }), /health applies to the whole process, not to one route \(set it as --health\)/);
  });
});

describe('values', () => {
  test('parseClientAuth and parseBoolean', () => {
    assert.equal(parseClientAuth(' OPTIONAL '), 'optional');
    for (const t of ['true', 'TRUE', '1', 'yes', 'on']) assert.equal(parseBoolean(t), true);
    for (const t of ['false', '0', 'no', 'off']) assert.equal(parseBoolean(t), false);
  });

  test('handshake errors map to the fixed vocabulary', () => {
    const cases: Array<[string, string]> = [
      ['ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', 'no_client_certificate'],
      ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'no_client_certificate'],
      ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unknown_ca'],
      ['SELF_SIGNED_CERT_IN_CHAIN', 'unknown_ca'],
      ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'unknown_ca'],
      ['CERT_HAS_EXPIRED', 'expired'],
      ['ERR_TLS_CERT_ALTNAME_INVALID', 'name_mismatch'],
      ['CERT_NOT_YET_VALID', 'bad_certificate'],
      ['ERR_SSL_WRONG_VERSION_NUMBER', 'plaintext'],
      ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'protocol_mismatch'],
      ['ERR_SSL_NO_SHARED_CIPHER', 'protocol_mismatch'],
      ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'peer_alert'],
      ['ERR_TLS_HANDSHAKE_TIMEOUT', 'timeout'],
      ['ECONNRESET', 'connection_closed'],
      ['EWHATEVER', 'other'],
    ];
    for (const [code, reason] of cases) assert.equal(reasonOfCode(code), reason, code);
  });

  test('an OpenSSL message is cut down to its text', () => {
    const err = Object.assign(
      new Error('80CC7F670D7F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n'),
      { code: 'ERR_SSL_WRONG_VERSION_NUMBER' },
    );
    assert.deepEqual(describeTlsError(err), { reason: 'plaintext', detail: 'ERR_SSL_WRONG_VERSION_NUMBER: wrong version number' });
  });
});

// tests/api/tls.test.mjs: `careweave serve --tls-cert F --tls-key F`.
//
// A self-signed certificate made with openssl for 127.0.0.1; requests go
// through node's https module trusting exactly that certificate. Checks
// that the API answers over TLS with Strict-Transport-Security, that the
// session cookie is Secure there, that plain HTTP and TLS below 1.2 get no
// answer, and that a bad or missing certificate stops the server with a
// clear message and exit 3 (a lone --tls-cert: 2).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import path from 'node:path';
import { startServer, tempDir, runCli } from '../support/server.mjs';

let dir;
let cert;
let srv;
let port;

function request(method, p, { body, headers = {}, extra = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, path: p, method, ca: cert, headers, ...extra,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

before(async () => {
  dir = tempDir('careweave-tls-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  cert = readFileSync(path.join(dir, 'cert.pem'));
  srv = await startServer({
    signIn: false,
    args: ['--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')],
  });
  assert.match(srv.base, /^https:\/\//, 'the server announces an https base');
  port = Number(new URL(srv.base).port);
});

after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('the API answers over TLS with Strict-Transport-Security', async () => {
  const r = await request('GET', '/fhir/metadata');
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.text).resourceType, 'CapabilityStatement');
  assert.match(r.headers['strict-transport-security'] ?? '', /max-age=\d+/);
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
});

test('sign-in over TLS sets a Secure session cookie, and the token works', async () => {
  const r = await request('POST', '/auth/login', {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: srv.user.username, password: srv.user.password }),
  });
  assert.equal(r.status, 200, r.text);
  const cookies = [].concat(r.headers['set-cookie'] ?? []);
  const session = cookies.find((c) => c.startsWith('cw_session='));
  assert.ok(session, 'a cw_session cookie');
  assert.match(session, /;\s*Secure/i);
  assert.match(session, /;\s*HttpOnly/i);
  const { token } = JSON.parse(r.text);
  const p = await request('POST', '/fhir/Patient', {
    headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Overtls' }] }),
  });
  assert.equal(p.status, 201, p.text);
  const s = await request('GET', '/fhir/Patient?name=overtls', { headers: { authorization: `Bearer ${token}` } });
  assert.equal(JSON.parse(s.text).total, 1);
});

test('plain HTTP to the TLS port gets no answer', async () => {
  const outcome = await new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/fhir/metadata' }, (res) => {
      res.resume();
      resolve(`status ${res.statusCode}`);
    });
    req.on('error', (e) => resolve(`error ${e.code ?? e.message}`));
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  });
  assert.match(outcome, /^error /, `plain HTTP was answered: ${outcome}`);
});

test('TLS 1.1 is refused', async () => {
  await assert.rejects(request('GET', '/fhir/metadata', {
    extra: { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' },
  }));
});

test('a missing or unusable certificate stops the server with a reason', async () => {
  const db = path.join(dir, 'other.db');
  const lone = await runCli(['serve', '--db', db, '--port', '0', '--tls-cert', path.join(dir, 'cert.pem')]);
  assert.equal(lone.code, 2);
  assert.match(lone.stderr, /--tls-cert and --tls-key go together/);
  const missing = await runCli(['serve', '--db', db, '--port', '0',
    '--tls-cert', path.join(dir, 'nope.pem'), '--tls-key', path.join(dir, 'key.pem')]);
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /cannot read the certificate/);
  writeFileSync(path.join(dir, 'junk.pem'), 'not a key\n');
  const junk = await runCli(['serve', '--db', db, '--port', '0',
    '--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'junk.pem')]);
  assert.equal(junk.code, 3);
  assert.match(junk.stderr, /with TLS/);
});

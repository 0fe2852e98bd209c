// limits.test.mjs: the server's explicit limits as a client meets them.
//
// One server, started with --idle-timeout 2 --request-timeout 2
// --max-body 1000 on a database that already holds 1,005 Patients:
// - a connection with no bytes moving (fresh, half a request line, or idle
//   between keep-alive requests) is closed after about 2 s, unanswered;
// - a body that trickles in (Content-Length 1000, 10 bytes a second) is
//   answered 408 with an OperationOutcome, and the connection closed, at the
//   first chunk that arrives 2 s or more after the request line (so after
//   2-3 s: the deadline is checked as bytes arrive);
// - _count=5000 is served as _count=1000: 1,000 entries, links that say
//   _count=1000, and a next link;
// - a body over --max-body gets 413 with an OperationOutcome, one at the
//   limit or under it is created (201).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { rmSync, writeFileSync } from 'node:fs';
import { startServer, runCli, tempDir, raw, assertOutcome, linkOf } from '../support/server.mjs';

const IDLE_S = 2;
const REQUEST_S = 2;
const MAX_BODY = 1000;
const NPATIENTS = 1005;

let srv;
let dir;

before(async () => {
  dir = tempDir('careweave-limits-');
  const db = path.join(dir, 'careweave.db');
  const nd = path.join(dir, 'Patient.ndjson');
  const lines = [];
  for (let i = 0; i < NPATIENTS; i++) {
    lines.push(JSON.stringify({ resourceType: 'Patient', id: `limit-${i}`, active: true }));
  }
  writeFileSync(nd, lines.join('\n') + '\n');
  const r = await runCli(['import', '--db', db, '--quiet', nd]);
  assert.equal(r.code, 0, `import failed: ${r.stderr}`);
  srv = await startServer({
    db,
    args: ['--idle-timeout', String(IDLE_S), '--request-timeout', String(REQUEST_S),
      '--max-body', String(MAX_BODY)],
  });
});

after(async () => {
  if (srv) await srv.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A raw TCP connection to the server: what it received, and when it closed. */
function dial() {
  const { hostname, port } = new URL(srv.base);
  const sock = net.connect({ host: hostname, port: Number(port) });
  const t0 = Date.now();
  let data = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => { data += d; });
  sock.on('error', () => {}); // writing after the server closed: EPIPE, expected
  const closed = new Promise((resolve) => sock.on('close', () => resolve(Date.now())));
  const connected = new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  return { sock, t0, closed, connected, data: () => data };
}

/** Resolves with p's value, or fails the test after ms. */
function within(p, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** A valid Patient whose JSON is exactly n bytes. */
function patientOfSize(n) {
  const make = (k) => JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Limit', given: ['x'.repeat(k)] }] });
  const k = n - make(0).length;
  assert.ok(k >= 0, `a Patient cannot be as small as ${n} bytes`);
  const s = make(k);
  assert.equal(Buffer.byteLength(s), n);
  return s;
}

test(`idle connections are closed after --idle-timeout ${IDLE_S}, unanswered`, async () => {
  const silent = dial();
  const half = dial();
  const kept = dial();
  await Promise.all([silent.connected, half.connected, kept.connected]);
  half.sock.write('GET /fhir/metad');
  // keep-alive: one full request and response, then nothing
  kept.sock.write('GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nAccept: application/fhir+json\r\n\r\n');
  const answered = await within(new Promise((resolve) => {
    const check = () => (/^HTTP\/1\.1 200 /.test(kept.data()) && /\r\n\r\n\{/.test(kept.data()) ? resolve(Date.now()) : null);
    kept.sock.on('data', check);
    check();
  }), 5000, 'metadata response');

  const limit = (IDLE_S + 3) * 1000;
  const [s, h, k] = await within(Promise.all([silent.closed, half.closed, kept.closed]), limit + 1000,
    'idle connections closed');
  for (const [what, ms] of [['silent', s - silent.t0], ['half a request line', h - half.t0],
    ['idle keep-alive', k - answered]]) {
    assert.ok(ms >= IDLE_S * 1000 - 500 && ms <= limit,
      `${what}: closed after ${ms} ms, want about ${IDLE_S} s`);
  }
  assert.equal(silent.data(), '', 'nothing is sent on a silent connection');
  assert.equal(half.data(), '', 'a half request line is not answered');
});

test(`a body still arriving after --request-timeout ${REQUEST_S} gets 408 and the connection is closed`, async () => {
  const c = dial();
  await c.connected;
  c.sock.write('POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n' +
    'Content-Length: 1000\r\n\r\n');
  let sent = 0;
  const drip = () => {
    if (!c.sock.destroyed && sent < 1000) {
      c.sock.write('x'.repeat(10));
      sent += 10;
    }
  };
  drip();
  const timer = setInterval(drip, 1000);
  let closedAt;
  try {
    closedAt = await within(c.closed, (REQUEST_S + IDLE_S + 3) * 1000, 'slow body answered');
  } finally {
    clearInterval(timer);
  }
  const ms = closedAt - c.t0;
  assert.ok(ms >= REQUEST_S * 1000 - 500 && ms <= (REQUEST_S + 2) * 1000,
    `closed after ${ms} ms, want about ${REQUEST_S} s`);
  assert.ok(sent < 1000, 'the body was cut short, not completed');
  const text = c.data();
  const sep = text.indexOf('\r\n\r\n');
  assert.ok(sep > 0, `no response before the close: ${JSON.stringify(text)}`);
  const head = text.slice(0, sep);
  assert.match(head, /^HTTP\/1\.1 408 /);
  assert.match(head, /\r\nConnection: close\r\n/i);
  assert.match(head, /\r\nContent-Type: application\/fhir\+json/i);
  assert.match(head, /\r\nX-Content-Type-Options: nosniff\r\n/i);
  const len = Number(/\r\nContent-Length: (\d+)/i.exec(head)?.[1]);
  const body = text.slice(sep + 4);
  assert.equal(Buffer.byteLength(body), len);
  assertOutcome(JSON.parse(body), '408');

  // and the server goes on serving
  const r = await raw(srv.base, 'GET', 'metadata');
  assert.equal(r.status, 200);
});

test('_count=5000 is capped at 1000: 1,000 entries and a next link to the rest', async () => {
  const r = await raw(srv.base, 'GET', 'Patient?_count=5000', { timeoutMs: 10000 });
  assert.equal(r.status, 200);
  assert.equal(r.json.resourceType, 'Bundle');
  assert.equal(r.json.entry.length, 1000);
  // The links say the page size used, and the next page holds the rest.
  assert.match(linkOf(r.json, 'self'), /[?&]_count=1000(&|$)/);
  const next = linkOf(r.json, 'next');
  assert.ok(next, 'a next link');
  const r2 = await raw(srv.base, 'GET', next, { timeoutMs: 10000 });
  assert.equal(r2.status, 200);
  assert.equal(r2.json.entry.length, NPATIENTS - 1000);
  assert.equal(linkOf(r2.json, 'next'), null);
  const ids = new Set([...r.json.entry, ...r2.json.entry].map((e) => e.resource.id));
  assert.equal(ids.size, NPATIENTS, 'every Patient once');
});

test(`--max-body ${MAX_BODY}: a larger body gets 413 with an OperationOutcome, a smaller one is created`, async () => {
  const big = await raw(srv.base, 'POST', 'Patient', { body: patientOfSize(2000) });
  assert.equal(big.status, 413);
  assertOutcome(big.json, '413');

  const over = await raw(srv.base, 'POST', 'Patient', { body: patientOfSize(MAX_BODY + 1) });
  assert.equal(over.status, 413);

  for (const n of [900, MAX_BODY]) {
    const ok = await raw(srv.base, 'POST', 'Patient', { body: patientOfSize(n) });
    assert.equal(ok.status, 201, `${n} bytes: ${ok.text.slice(0, 300)}`);
    assert.equal(ok.json.resourceType, 'Patient');
  }
});

// The request line and headers each may be up to 32 KiB (src/http/server.c):
// both near their limit in one request must still be served, whatever the
// per-connection memory is set to.
test('a 31 KiB query string with 31 KiB of headers is served', async () => {
  const name = 'a'.repeat(31 * 1024);
  const headers = {};
  for (let i = 0; i < 31; i++) headers[`x-pad-${i}`] = 'b'.repeat(1000);
  const r = await raw(srv.base, 'GET', `Patient?name=${name}`, { headers, timeoutMs: 10000 });
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.equal(r.json.resourceType, 'Bundle');
  assert.equal(r.json.total ?? r.json.entry?.length ?? 0, 0);
});

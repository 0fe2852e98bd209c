// tests/support/server.mjs: start and stop a real careweave server for the
// black-box tests, run its CLI, and the small HTTP/FHIR helpers the test
// files share.
//
// startServer() adds a user to the database with `careweave user add
// --password-stdin` (a service user, or opts.role, with a fresh name and a random password),
// runs `$CAREWEAVE_BIN serve --db PATH --port 0 --bind 127.0.0.1` on a
// database in a fresh temporary directory (or the given one), waits for
// "careweave listening on http://...:PORT/fhir" on stdout, signs in with
// POST /auth/login and returns { base, client, token, user, stop(), kill(),
// db, dir, proc, stderr() } (user.totp: the TOTP secret when it has one). client and raw() send the session as a Bearer
// token (raw: unless told auth: false or given an Authorization header).
//
// Admins sign in with a one-time code as well: `user add --admin` prints
// the TOTP secret (totpSecretOf reads it from the output), totpCode
// computes a code with node's own HMAC-SHA1, and login() sends it.
//
// Every server it starts has its requests recorded (audit-check.mjs), and
// stop() compares them with the audit records the server wrote: a request
// without its records, or a record no request explains, fails the test.
// opts.auditCheck: a reason to skip that, for the rare server whose
// requests cannot all be seen (raw sockets).
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { randomBytes, createHmac } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';
import { recordRequests, stopRecording, compare } from './audit-check.mjs';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sharedData = path.resolve(repoRoot, '../shared/data');

/** The careweave binary under test: $CAREWEAVE_BIN, else build/test, else build/rel. */
export function binPath() {
  if (process.env.CAREWEAVE_BIN) return process.env.CAREWEAVE_BIN;
  for (const p of ['build/test/careweave', 'build/rel/careweave']) {
    const abs = path.join(repoRoot, p);
    if (existsSync(abs)) return abs;
  }
  return path.join(repoRoot, 'build/test/careweave');
}

/** A fresh temporary directory (removed by stop() when the server made it). */
export function tempDir(prefix = 'careweave-test-') {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

const READY_RE = /careweave listening on (https?:\/\/\S+\/fhir)\b/;
const SANITIZER_RE = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer)/;

/**
 * Starts a server. opts.db: database path (default: a new temp dir's
 * careweave.db); opts.timeoutMs (15 s); opts.args: extra serve arguments;
 * opts.env: extra environment; opts.signIn (default true): false skips the
 * sign-in (a server whose certificate fetch cannot check, say): token and
 * client are then undefined and user is what to sign in with; opts.role:
 * the `user add` arguments of that user (default: --role service
 * --system-client); opts.auditCheck: a reason (string) not to compare the
 * requests with the audit trail at stop() (raw sockets; keep it rare).
 */
export async function startServer(opts = {}) {
  const bin = opts.bin ?? binPath();
  let dir = null;
  let ownDir = false;
  let db = opts.db;
  if (!db) {
    dir = tempDir();
    ownDir = true;
    db = path.join(dir, 'careweave.db');
  } else {
    dir = path.dirname(db);
  }
  const timeoutMs = opts.timeoutMs ?? 15000;
  // every start signs in as its own user, so a database reused across
  // starts (the crash test) gets one more user, never a clash
  const user = { username: `test-${process.pid}-${++userSeq}-${randomBytes(3).toString('hex')}`,
    password: randomBytes(18).toString('base64url') };
  // The API suites sign in as a system-to-system client (role service):
  // admins do not see clinical data, and these tests create patients
  // freely. The authorization tests sign in as the real roles instead.
  const role = opts.role ?? ['--role', 'service', '--system-client'];
  const added = await addUser(db, user.username, user.password, role, { bin });
  user.totp = totpSecretOf(added.stdout) ?? undefined;
  const args = ['serve', '--db', db, '--port', '0', '--bind', '127.0.0.1', ...(opts.args ?? [])];
  const startedAt = Date.now();
  const proc = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      // leak reports make exit codes non-zero; keep them, but never hang on a TTY
      ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'abort_on_error=0:detect_leaks=1',
      ...(opts.env ?? {}),
    },
  });
  let out = '';
  let err = '';
  const MAX_LOG = 1 << 20;
  proc.stderr.setEncoding('utf8');
  proc.stdout.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    err += d;
    if (err.length > MAX_LOG) err = err.slice(-MAX_LOG);
  });
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    proc.on('error', (e) => {
      exited = { code: null, signal: null, error: e };
      resolve(exited);
    });
  });

  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`careweave did not say it was listening within ${timeoutMs} ms\n` +
        `command: ${bin} ${args.join(' ')}\nstdout:\n${out}\nstderr:\n${err}`));
    }, timeoutMs);
    proc.stdout.on('data', (d) => {
      if (out.length < MAX_LOG) out += d;
      const m = READY_RE.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    exitPromise.then((e) => {
      clearTimeout(timer);
      reject(new Error(`careweave exited before listening (${e.error ? e.error.message : `code ${e.code}, signal ${e.signal}`})\n` +
        `command: ${bin} ${args.join(' ')}\nstdout:\n${out}\nstderr:\n${err}`));
    });
  });
  // keep draining stdout
  proc.stdout.on('data', () => {});

  const origin = new URL(base).origin;
  const rec = typeof opts.auditCheck === 'string' ? null : recordRequests(origin);
  if (rec) rec.startedAt = startedAt;
  let token;
  let client;
  if (opts.signIn ?? true) {
    try {
      token = (await login(origin, user.username, user.password,
        user.totp ? totpCode(user.totp) : undefined)).token;
    } catch (e) {
      proc.kill('SIGKILL');
      throw new Error(`signing in to the new server failed: ${e.message}\nstderr:\n${err}`);
    }
    tokens.set(base, token);
    client = new Client({ baseUrl: base, bearerToken: token });
  }

  /**
   * SIGTERM, then wait (10 s, then SIGKILL). Returns {code, signal, stderr}.
   * With check (default true) throws if the server did not exit cleanly
   * (non-zero status, killed, or a sanitizer report in its stderr).
   */
  async function stop({ check = true, keep = false } = {}) {
    tokens.delete(base);
    const stopping = !exited;
    if (!exited) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => { if (!exited) proc.kill('SIGKILL'); }, 10000);
      await exitPromise;
      clearTimeout(t);
    }
    if (rec) stopRecording(rec);
    const res = { ...exited, stderr: err };
    // the read records are flushed by the orderly exit: now compare
    let audit = [];
    if (rec && check && stopping && res.code === 0) audit = await auditProblems(rec);
    if (ownDir && !keep) rmSync(dir, { recursive: true, force: true });
    if (check) {
      const san = SANITIZER_RE.exec(err);
      if (res.code !== 0 || san) {
        throw new Error(`careweave did not stop cleanly: code ${res.code}, signal ${res.signal}` +
          `${san ? `, sanitizer: ${san[1]}` : ''}\nstderr (tail):\n${err.slice(-8000)}`);
      }
      if (audit.length) {
        throw new Error(`the audit trail does not match the ${rec.requests.length} requests made to ${base} ` +
          `(${audit.length} problem${audit.length === 1 ? '' : 's'}):\n  ${audit.slice(0, 40).join('\n  ')}` +
          `${audit.length > 40 ? `\n  ... and ${audit.length - 40} more` : ''}`);
      }
    }
    return res;
  }

  /** The requests of rec against `careweave audit dump` of the database. */
  async function auditProblems(r) {
    const keyAt = (opts.args ?? []).indexOf('--key-file');
    const keyFile = keyAt >= 0 ? opts.args[keyAt + 1] : opts.env?.CAREWEAVE_KEY_FILE;
    const d = await runCli(['audit', 'dump', '--db', db, ...(keyFile ? ['--key-file', keyFile] : [])], { bin });
    if (d.code !== 0) return [`careweave audit dump failed (code ${d.code}): ${d.stderr}`];
    const records = d.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const problems = await compare(r, records);
    if (process.env.CAREWEAVE_AUDIT_CHECK_VERBOSE) {
      process.stderr.write(`audit check ${base}: ${r.requests.length} requests, ${records.length} records, ` +
        `${problems.length} problems\n${problems.map((x) => `  ${x}\n`).join('')}`);
    }
    return problems;
  }

  /** SIGKILL (no clean shutdown), wait for exit; keeps the directory. The
   * read records still queued are lost, so the trail is not compared. */
  async function kill() {
    if (rec) stopRecording(rec);
    if (!exited) {
      proc.kill('SIGKILL');
      await exitPromise;
    }
    return { ...exited, stderr: err };
  }

  return {
    base, origin, client, token, user, db, dir, proc, stop, kill,
    stderr: () => err,
    stdout: () => out,
    alive: () => !exited,
  };
}

/**
 * Runs `careweave ARGS...`; resolves {code, stdout, stderr} (never rejects on
 * exit status). input: text written to its standard input (then closed).
 */
export function runCli(args, { timeoutMs = 120000, bin = binPath(), input } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number' && error.code !== null && !error.killed) {
        if (error.code === 'ENOENT') return reject(error);
      }
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr, signal: error?.signal ?? null });
    });
    child.stdin.on('error', () => {}); // it may exit before reading
    child.stdin.end(input ?? '');
  });
}

let userSeq = 0;
/** base URL -> the Bearer token its startServer() signed in with. */
const tokens = new Map();

/**
 * `careweave user add --db DB --username NAME --password-stdin ...extra`;
 * throws unless it exits 0. extra: ['--admin'] or ['--role', R, '--link', L].
 */
export async function addUser(db, username, password, extra = ['--admin'], { bin } = {}) {
  const r = await runCli(['user', 'add', '--db', db, '--username', username, '--password-stdin', ...extra],
    { input: `${password}\n`, ...(bin ? { bin } : {}) });
  if (r.code !== 0) throw new Error(`careweave user add ${username} failed (code ${r.code}): ${r.stderr}`);
  return r;
}

/**
 * POST /auth/login at origin, with the one-time code totp when given;
 * resolves the JSON answer, throws unless 200.
 */
export async function login(origin, username, password, totp) {
  const res = await fetch(`${origin}/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password, ...(totp !== undefined ? { totp } : {}) }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST /auth/login: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** The base32 TOTP secret in the output of `user add --admin` or `user totp` (null if none). */
export function totpSecretOf(text) {
  const m = /\bsecret +([A-Z2-7]{32})\b/.exec(text ?? '');
  return m ? m[1] : null;
}

/** RFC 4648 base32 (no padding) to bytes. */
function base32Decode(s) {
  const alpha = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let acc = 0;
  const out = [];
  for (const ch of s.replace(/=+$/, '')) {
    const v = alpha.indexOf(ch);
    if (v < 0) throw new Error(`not base32: ${ch}`);
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/**
 * The TOTP code (RFC 6238: HMAC-SHA1, 6 digits, 30 s) of a base32 secret
 * at atMs (default now; a server on a test clock file is offsetMs ahead).
 */
export function totpCode(secret, atMs = Date.now()) {
  const step = Math.floor(atMs / 1000 / 30);
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(msg).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(off) & 0x7fffffff;
  return String(bin % 1000000).padStart(6, '0');
}

/** The Authorization header startServer() signed in with at base ({} if none). */
export function authHeader(base) {
  const t = tokens.get(String(base).replace(/\/$/, ''));
  return t ? { authorization: `Bearer ${t}` } : {};
}

/** `careweave check --db PATH`: asserts exit 0 and an "ok" in the output. */
export async function assertCheckOk(db) {
  const r = await runCli(['check', '--db', db]);
  assert.equal(r.code, 0, `careweave check --db ${db} failed (code ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stdout + r.stderr, /\bok\b/i, `careweave check did not say ok: ${r.stdout} ${r.stderr}`);
  return r;
}

/** sqlite3 PRAGMA integrity_check on the file (read-only), if the CLI exists. */
export function sqliteIntegrity(db) {
  return new Promise((resolve) => {
    execFile('sqlite3', ['-readonly', db, 'PRAGMA integrity_check;'], (error, stdout, stderr) => {
      if (error && error.code === 'ENOENT') return resolve(null);
      resolve((stdout + stderr).trim());
    });
  });
}

// ---- HTTP helpers ----------------------------------------------------------

/**
 * A plain fetch for what the FHIR client cannot express. url is relative to
 * base ("Patient/1", "/metadata" or "?x") or absolute. body: object (sent as
 * JSON), string or Buffer; timeoutMs: fail if no response by then.
 * Returns {status, headers, text, json}.
 */
export async function raw(base, method, url, { headers = {}, body, timeoutMs, auth = true } = {}) {
  const full = /^https?:/i.test(url) ? url : base.replace(/\/$/, '') + '/' + url.replace(/^\//, '');
  const given = Object.keys(headers).some((k) => k.toLowerCase() === 'authorization');
  const h = { accept: 'application/fhir+json', ...(auth && !given ? authHeader(base) : {}), ...headers };
  let b = body;
  if (b !== undefined && typeof b === 'object' && !Buffer.isBuffer(b) && !(b instanceof Uint8Array)) {
    b = JSON.stringify(b);
  }
  if (b !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
    h['content-type'] = 'application/fhir+json';
  }
  let res;
  try {
    res = await fetch(full, { method, headers: h, body: b, signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined });
  } catch (e) {
    const why = e.name === 'TimeoutError' ? `no response within ${timeoutMs} ms` : `${e.message}${e.cause ? ` (${e.cause.code ?? ''} ${e.cause.message ?? ''})` : ''}`;
    throw new Error(`${method} ${full.length > 200 ? `${full.slice(0, 200)}...` : full}: ${why}`);
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: res.status, headers: res.headers, text, json };
}

/** Status and headers of a fhir-kit-client result. */
export function httpOf(result) {
  const { response } = Client.httpFor(result);
  return { status: response?.status, headers: response?.headers };
}

/**
 * Awaits a fhir-kit-client call that must fail; returns {status, data}.
 * If it succeeds, fails the test with what came back.
 */
export async function fhirError(promise, what = 'request') {
  try {
    const r = await promise;
    const st = Client.httpFor(r).response?.status;
    assert.fail(`${what}: expected an error status, got ${st}: ${JSON.stringify(r).slice(0, 500)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    if (!e.response) throw e;
    return { status: e.response.status, data: e.response.data, headers: e.config?.headers };
  }
}

/** Asserts body is an OperationOutcome with at least one error/fatal issue. */
export function assertOutcome(body, msg = '') {
  assert.ok(body && typeof body === 'object', `${msg} expected an OperationOutcome body, got ${JSON.stringify(body)}`);
  assert.equal(body.resourceType, 'OperationOutcome', `${msg} body: ${JSON.stringify(body).slice(0, 500)}`);
  assert.ok(Array.isArray(body.issue) && body.issue.length > 0, `${msg} OperationOutcome without issues`);
  assert.ok(body.issue.some((i) => i.severity === 'error' || i.severity === 'fatal'),
    `${msg} OperationOutcome without an error issue: ${JSON.stringify(body.issue)}`);
}

/** Ids of the entries of a Bundle that are matches (search.mode absent or "match"). */
export function matchIds(bundle) {
  return (bundle.entry ?? [])
    .filter((e) => !e.search || !e.search.mode || e.search.mode === 'match')
    .map((e) => e.resource.id);
}

/** Resource ids of all entries of a Bundle with a given search.mode. */
export function entriesByMode(bundle, mode) {
  return (bundle.entry ?? []).filter((e) => (e.search?.mode ?? 'match') === mode).map((e) => e.resource);
}

/** The url of a Bundle link (next, previous/prev, self). */
export function linkOf(bundle, rel) {
  const l = (bundle.link ?? []).find((x) => x.relation === rel || (rel === 'previous' && x.relation === 'prev'));
  return l ? l.url : null;
}

/** Number of current resources of type matching params (via _summary=count). */
export async function countOf(client, resourceType, searchParams = {}) {
  const b = await client.search({ resourceType, searchParams: { ...searchParams, _summary: 'count' } });
  assert.equal(b.resourceType, 'Bundle');
  assert.equal(typeof b.total, 'number', `_summary=count on ${resourceType} gave no total: ${JSON.stringify(b).slice(0, 300)}`);
  return b.total;
}

/** The newest version in a history (system, type or instance): "Type/id/_history/v" or null. */
export async function newestVersion(client, { resourceType, id } = {}) {
  let b;
  if (resourceType && id) b = await client.request(`${resourceType}/${id}/_history?_count=1`);
  else if (resourceType) b = await client.request(`${resourceType}/_history?_count=1`);
  else b = await client.request(`_history?_count=10`);
  const e = (b.entry ?? []).find((x) => !x.resource || x.resource.resourceType !== 'AuditEvent');
  if (!e) return null;
  if (e.resource) return `${e.resource.resourceType}/${e.resource.id}/_history/${e.resource.meta?.versionId}`;
  return `${e.fullUrl ?? ''}|${e.request?.method ?? ''}|${e.request?.url ?? ''}|${e.response?.etag ?? ''}|${e.response?.lastModified ?? ''}`;
}

/**
 * What the database holds, as far as the API shows it: the number of current
 * resources of each type and the newest version in the system history. Two
 * equal snapshots mean nothing was written in between.
 */
export async function snapshot(client, types) {
  const counts = {};
  for (const t of types) counts[t] = await countOf(client, t);
  const newest = await newestVersion(client);
  const typeNewest = {};
  for (const t of types) typeNewest[t] = await newestVersion(client, { resourceType: t });
  return { counts, newest, typeNewest };
}

/** A tag unique to this test run, for meta.tag and _tag searches. */
export function runTag(name) {
  const code = `${name}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  return { system: 'urn:careweave:test', code, param: `urn:careweave:test|${code}` };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export { Client };

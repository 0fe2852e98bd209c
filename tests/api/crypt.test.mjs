// crypt.test.mjs: the database encrypted at rest, through the real server.
//
// A patient with a name nobody else has is written through the API to a
// server started with a key (CAREWEAVE_KEY_FILE); the raw database file,
// its -wal and a backup taken while the server runs are searched for the
// name and for "SQLite format 3": nothing. The same on a server without a
// key (the control) finds the name. Then the ways in that must fail: a
// wrong key, no key for an encrypted file, a key for a plain one, a key
// file others may read: a clear message, exit 3, the file unchanged.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { startServer, runCli, tempDir } from '../support/server.mjs';

const SANITIZER_RE = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;
const MAGIC = 'SQLite format 3';

let dir;
before(() => { dir = tempDir('careweave-crypt-'); });
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

async function cli(args, code, env) {
  const saved = process.env.CAREWEAVE_KEY_FILE;
  if (env === null) delete process.env.CAREWEAVE_KEY_FILE;
  else if (env !== undefined) process.env.CAREWEAVE_KEY_FILE = env;
  try {
    const r = await runCli(args, { timeoutMs: 60000 });
    const ctx = `careweave ${args.join(' ')}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-3000)}`;
    assert.doesNotMatch(r.stderr, SANITIZER_RE, ctx);
    if (code !== undefined) assert.equal(r.code, code, ctx);
    return r;
  } finally {
    if (saved === undefined) delete process.env.CAREWEAVE_KEY_FILE;
    else process.env.CAREWEAVE_KEY_FILE = saved;
  }
}

/** Whether any of the files (those that exist) holds text. */
function found(files, text) {
  return files.filter((f) => existsSync(f) && readFileSync(f).includes(Buffer.from(text)));
}

function digest(file) {
  return existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : null;
}

/** Starts a server on db (with the key file, if any), writes a patient
 * named name, backs the database up while it runs, and returns what the
 * files hold while it runs and after it stopped. */
async function writeAndLook(db, keyFile, name) {
  const saved = process.env.CAREWEAVE_KEY_FILE;
  if (keyFile) process.env.CAREWEAVE_KEY_FILE = keyFile;
  else delete process.env.CAREWEAVE_KEY_FILE;
  let srv;
  try {
    srv = await startServer({ db });
    const p = await srv.client.create({ resourceType: 'Patient',
      body: { resourceType: 'Patient', name: [{ family: name, given: ['Ada'] }] } });
    const back = await srv.client.read({ resourceType: 'Patient', id: p.id });
    assert.equal(back.name[0].family, name);
    const hits = await srv.client.search({ resourceType: 'Patient', searchParams: { family: name } });
    assert.equal(hits.entry?.length, 1);
    const backup = `${db}.backup`;
    const b = await runCli(['backup', '--db', db, '--out', backup]);
    assert.equal(b.code, 0, b.stderr);
    assert.ok(!existsSync(`${backup}.tmp`));
    const files = [db, `${db}-wal`];
    const running = { name: found(files, name), magic: found(files, MAGIC) };
    const res = await srv.stop({ keep: true });
    srv = null;
    const stopped = { name: found(files, name), magic: found(files, MAGIC) };
    const inBackup = { name: found([backup], name), magic: found([backup], MAGIC) };
    // the backup is a database of its own, opened with the same key
    const ex = await runCli(['export', '--db', backup, '--patient', p.id]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.ok(ex.stdout.includes(name));
    return { running, stopped, inBackup, stderr: res.stderr };
  } finally {
    if (srv) await srv.kill();
    if (saved === undefined) delete process.env.CAREWEAVE_KEY_FILE;
    else process.env.CAREWEAVE_KEY_FILE = saved;
  }
}

describe('encrypted at rest', () => {
  let key, key2, encDb, plainDb;

  before(async () => {
    key = path.join(dir, 'db.key');
    key2 = path.join(dir, 'other.key');
    encDb = path.join(dir, 'enc.db');
    plainDb = path.join(dir, 'plain.db');
    await cli(['key', 'new', key], 0);
    await cli(['key', 'new', key2], 0);
  });

  test('key new writes 64 hex digits and a newline, mode 0600, never over a file', async () => {
    assert.match(readFileSync(key, 'utf8'), /^[0-9a-f]{64}\n$/);
    assert.equal(statSync(key).mode & 0o777, 0o600);
    assert.notEqual(readFileSync(key, 'utf8'), readFileSync(key2, 'utf8'));
    const r = await cli(['key', 'new', key], 3);
    assert.match(r.stderr, /cannot create/);
  });

  test('a patient written with a key is nowhere in the files in the clear', async () => {
    const name = `Qzxkelmwrth${randomBytes(4).toString('hex')}`;
    const r = await writeAndLook(encDb, key, name);
    assert.deepEqual(r.running, { name: [], magic: [] });
    assert.deepEqual(r.stopped, { name: [], magic: [] });
    assert.deepEqual(r.inBackup, { name: [], magic: [] });
    assert.match(r.stderr, /is encrypted at rest/);
    assert.doesNotMatch(r.stderr, /stored unencrypted/);
  });

  test('the control: without a key the name is in the files', async () => {
    const name = `Qzxkelmwrth${randomBytes(4).toString('hex')}`;
    const r = await writeAndLook(plainDb, null, name);
    assert.ok(r.running.name.length > 0, 'the name in the db or its WAL');
    assert.ok(r.stopped.name.length > 0);
    assert.deepEqual(r.inBackup.name.length, 1);
    assert.deepEqual(r.stopped.magic, [plainDb]);
    assert.match(r.stderr, /stored unencrypted/);
  });

  test('a wrong key, no key, a key for a plain file: a clear message, exit 3, nothing written', async () => {
    const before = digest(encDb);
    const beforePlain = digest(plainDb);
    for (const args of [['check'], ['user', 'list'], ['export', '--patient', 'x'], ['backup', '--out', path.join(dir, 'never.db')],
      ['demo'], ['user', 'disable', '--username', 'nobody']]) {
      const wrong = await cli([...args, '--db', encDb, '--key-file', key2], 3);
      assert.match(wrong.stderr, /this key does not open the database/, args.join(' '));
      const none = await cli([...args, '--db', encDb], 3, null);
      assert.match(none.stderr, /the database is encrypted.*--key-file/, args.join(' '));
      const plain = await cli([...args, '--db', plainDb, '--key-file', key], 3);
      assert.match(plain.stderr, /not encrypted, but a key was given/, args.join(' '));
    }
    const empty = await cli(['check', '--db', encDb], 3, '');
    assert.match(empty.stderr, /key file name is empty/);
    const serve = await cli(['serve', '--db', encDb, '--port', '0', '--key-file', key2], 3);
    assert.match(serve.stderr, /this key does not open the database/);
    assert.equal(digest(encDb), before);
    assert.equal(digest(plainDb), beforePlain);
    assert.ok(!existsSync(path.join(dir, 'never.db')));
    const ok = await cli(['check', '--db', encDb, '--key-file', key], 0);
    assert.match(ok.stdout, /ok/);
  });

  test('a key file others may read, or not a key, is refused', async () => {
    const loose = path.join(dir, 'loose.key');
    await cli(['key', 'new', loose], 0);
    chmodSync(loose, 0o640);
    const r = await cli(['check', '--db', encDb, '--key-file', loose], 3);
    assert.match(r.stderr, /may be read by others \(mode 0640\).*chmod 600/);
    const bad = await cli(['check', '--db', encDb, '--key-file', path.join(dir, 'enc.db.backup')], 3);
    assert.match(bad.stderr, /(may be read by others|not 64 hex digits)/);
    const missing = await cli(['check', '--db', encDb, '--key-file', path.join(dir, 'nope.key')], 3);
    assert.match(missing.stderr, /cannot read the key file/);
  });
});

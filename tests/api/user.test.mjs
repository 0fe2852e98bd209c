// user.test.mjs: `careweave user add|list|disable|reset-password` as an
// operator runs it: help, usage errors (2), bad data (1: a short password,
// a link to nothing or of the wrong type, a taken or malformed username),
// a missing database (3), and the users `careweave demo` makes: one per
// role of the demo care teams, listed without hashes or TOTP secrets, kept
// on a second run.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { rmSync } from 'node:fs';
import { runCli, tempDir } from '../support/server.mjs';

const SANITIZER_RE = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;
const PW = 'a long enough password 1';

let dir;
before(() => { dir = tempDir('careweave-user-'); });
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

describe('careweave user', () => {
  let db;
  before(async () => {
    db = path.join(dir, 'users', 'careweave.db');
    const r = await runCli(['demo', '--db', db]);
    assert.equal(r.code, 0, r.stderr);
  });

  async function cli(args, code, input) {
    const r = await runCli(args, { input });
    const ctx = `careweave ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    assert.doesNotMatch(r.stderr, SANITIZER_RE, ctx);
    if (code !== undefined) assert.equal(r.code, code, ctx);
    return r;
  }

  test('user --help and each subcommand --help exit 0', async () => {
    const r = await cli(['user', '--help'], 0);
    for (const sub of ['add', 'list', 'disable', 'reset-password', 'totp']) {
      assert.match(r.stdout, new RegExp(`^ +${sub} `, 'm'));
      const h = await cli(['user', sub, '--help'], 0);
      assert.match(h.stdout, new RegExp(`usage: careweave user ${sub}`));
    }
    await cli(['user'], 2);
    await cli(['user', 'frob'], 2);
  });

  test('usage errors exit 2; bad data exits 1; a missing database 3', async () => {
    await cli(['user', 'add', '--db', db, '--role', 'admin'], 2, `${PW}\n`);
    await cli(['user', 'add', '--db', db, '--username', 'x'], 2, `${PW}\n`);
    await cli(['user', 'add', '--db', db, '--username', 'x', '--role', 'surgeon'], 2, `${PW}\n`);
    await cli(['user', 'add', '--db', db, '--username', 'x', '--admin', '--role', 'nurse'], 2, `${PW}\n`);
    await cli(['user', 'disable', '--db', db], 2);
    // a service account sees every record: it takes --system-client, and only it does
    const svc = await cli(['user', 'add', '--db', db, '--username', 'x', '--role', 'service'], 2, `${PW}\n`);
    assert.match(svc.stderr, /--system-client/);
    await cli(['user', 'add', '--db', db, '--username', 'x', '--admin', '--system-client'], 2, `${PW}\n`);
    const short = await cli(['user', 'add', '--db', db, '--username', 'x', '--admin'], 1, 'short\n');
    assert.match(short.stderr, /at least 12 characters/);
    const nolink = await cli(['user', 'add', '--db', db, '--username', 'x', '--role', 'nurse'], 1, `${PW}\n`);
    assert.match(nolink.stderr, /linked to a Practitioner/);
    const missing = await cli(['user', 'add', '--db', db, '--username', 'x', '--role', 'nurse', '--link', 'Practitioner/nobody'], 1, `${PW}\n`);
    assert.match(missing.stderr, /does not exist/);
    const wrongType = await cli(['user', 'add', '--db', db, '--username', 'x', '--role', 'caregiver', '--link', 'Patient/moss-patient'], 1, `${PW}\n`);
    assert.match(wrongType.stderr, /links to RelatedPerson/);
    const bad = await cli(['user', 'add', '--db', db, '--username', 'no spaces', '--admin'], 1, `${PW}\n`);
    assert.match(bad.stderr, /username/);
    const taken = await cli(['user', 'add', '--db', db, '--username', 'Admin', '--admin'], 1, `${PW}\n`);
    assert.match(taken.stderr, /taken/);
    await cli(['user', 'disable', '--db', db, '--username', 'nobody'], 1);
    await cli(['user', 'list', '--db', path.join(dir, 'none', 'x.db')], 3);
  });

  test('demo made one user per role of the care teams; list shows no hash; demo again keeps them', async () => {
    const r = await cli(['user', 'list', '--db', db], 0);
    const rows = Object.fromEntries(r.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)).map((c) => [c[0], c.slice(1)]));
    assert.deepEqual(rows.admin, ['admin', '-', 'on', 'active'], 'the demo admin has one-time codes');
    assert.deepEqual(rows.grace, ['coordinator', 'Practitioner/grace-lindqvist', 'off', 'active']);
    assert.deepEqual(rows.anita, ['physician', 'Practitioner/anita-okafor', 'off', 'active']);
    assert.deepEqual(rows.priya, ['pharmacist', 'Practitioner/priya-natarajan', 'off', 'active']);
    assert.deepEqual(rows.tom, ['social-worker', 'Practitioner/tom-becker', 'off', 'active']);
    assert.deepEqual(rows.walter, ['patient', 'Patient/moss-patient', 'off', 'active']);
    assert.deepEqual(rows.ellen, ['caregiver', 'RelatedPerson/moss-daughter', 'off', 'active']);
    const roles = new Set(Object.values(rows).map((c) => c[0]));
    for (const role of ['admin', 'coordinator', 'physician', 'nurse', 'pharmacist', 'therapist', 'social-worker', 'patient', 'caregiver']) {
      assert.ok(roles.has(role), `a demo user with role ${role}`);
    }
    assert.doesNotMatch(r.stdout, /argon2|\$|secret|otpauth/);
    const again = await cli(['demo', '--db', db], 0);
    assert.match(again.stdout, /^ {2}grace +coordinator .*\(exists/m);
  });
});

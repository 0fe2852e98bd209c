// audit.test.mjs: the audit trail (issue 3) seen from outside.
//
// Each test makes its own Patient, so AuditEvent?patient= lists only what
// that test did: a create, a read, a search and a delete each leave exactly
// the record they should (reads are flushed in the background: the test
// polls with a short deadline); failed writes (422, 412) are recorded with
// their outcome and write nothing; a search record names its parameters and
// none of their values; AuditEvent cannot be written through the API;
// sign-in, failed sign-in and sign-out are recorded, the failed one of
// nobody without the name tried; `careweave audit verify` passes on the
// database afterwards and names the record altered in a copy, and `audit
// report` lists a patient's accesses.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { execFile } from 'node:child_process';
import path from 'node:path';
import {
  startServer, raw, runCli, addUser, login, assertOutcome, tempDir, sleep, totpSecretOf, totpCode,
} from '../support/server.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { if (srv?.alive()) await srv.stop(); });

const sub = (ev) => ev.subtype?.[0]?.code;
const patientsOf = (ev) => (ev.entity ?? []).filter((e) => e.role?.code === '1').map((e) => e.what.reference);

async function records(query) {
  const r = await raw(srv.base, 'GET', `AuditEvent?${query ? `${query}&` : ''}_count=1000`);
  assert.equal(r.status, 200, r.text);
  return { list: (r.json.entry ?? []).map((e) => e.resource), text: r.text };
}

/** Polls AuditEvent?patient=pid until pred(list) holds (2 s). */
async function waitFor(pid, pred, what) {
  const end = Date.now() + 2000;
  let list = [];
  while (Date.now() < end) {
    ({ list } = await records(`patient=${pid}`));
    if (pred(list)) return list;
    await sleep(20);
  }
  assert.fail(`${what}: AuditEvent?patient=${pid} never got there: ${JSON.stringify(list.map(sub))}`);
}

/** Polls the whole trail (newest first) until find() returns something. */
async function waitForAny(find, what) {
  const end = Date.now() + 2000;
  while (Date.now() < end) {
    const { list, text } = await records('');
    const hit = list.find(find);
    if (hit) return { hit, text };
    await sleep(20);
  }
  return assert.fail(`${what}: no such AuditEvent`);
}

async function newPatient(extra = {}) {
  const r = await raw(srv.base, 'POST', 'Patient', { body: { resourceType: 'Patient', ...extra } });
  assert.equal(r.status, 201, r.text);
  return r.json.id;
}

describe('audit trail', () => {
  test('a create, a read, a search and a delete each leave exactly their record', async () => {
    const pid = await newPatient({ gender: 'female' });
    // the create's record is in its own commit: there already
    let list = (await records(`patient=${pid}`)).list;
    assert.deepEqual(list.map(sub), ['create']);
    const c = list[0];
    assert.equal(c.resourceType, 'AuditEvent');
    assert.equal(c.type.code, 'rest');
    assert.equal(c.action, 'C');
    assert.equal(c.outcome, '0');
    assert.equal(c.agent[0].who.identifier.value, srv.user.username);
    assert.equal(c.agent[0].role[0].coding[0].code, 'service', 'the role the suite signed in with');
    assert.equal(c.agent[0].requestor, true);
    assert.equal(c.agent[0].network.address, '127.0.0.1');
    assert.equal(c.source.observer.display, 'careweave');
    assert.ok(c.entity.some((e) => e.what.reference === `Patient/${pid}` && !e.role));
    assert.deepEqual(patientsOf(c), [`Patient/${pid}`]);

    assert.equal((await raw(srv.base, 'GET', `Patient/${pid}`)).status, 200);
    list = await waitFor(pid, (l) => l.length === 2, 'read');
    assert.deepEqual(list.map(sub), ['read', 'create']);
    assert.equal(list[0].action, 'R');

    const s = await raw(srv.base, 'GET', `Patient?_id=${pid}&gender=female`);
    assert.equal(s.status, 200);
    list = await waitFor(pid, (l) => l.length === 3, 'search');
    assert.deepEqual(list.map(sub), ['search-type', 'read', 'create']);
    const detail = list[0].entity.find((e) => e.detail)?.detail[0].valueString;
    assert.equal(detail, '_id,gender');
    assert.deepEqual(patientsOf(list[0]), [`Patient/${pid}`]);

    assert.equal((await raw(srv.base, 'DELETE', `Patient/${pid}`)).status, 204);
    list = (await records(`patient=${pid}`)).list;
    assert.deepEqual(list.map(sub), ['delete', 'search-type', 'read', 'create']);
    assert.equal(list[0].action, 'D');
    // and nothing more turns up later
    await sleep(300);
    assert.equal((await records(`patient=${pid}`)).list.length, 4);
    // one record by id, as served in the list
    const one = await raw(srv.base, 'GET', `AuditEvent/${list[1].id}`);
    assert.equal(one.status, 200);
    assert.deepEqual(one.json, list[1]);
  });

  test('update, vread, history, $everything, a compartment search and a Consent each leave their record', async () => {
    const pid = await newPatient({ gender: 'male' });
    const p = (await raw(srv.base, 'GET', `Patient/${pid}`)).json;
    assert.equal((await raw(srv.base, 'PUT', `Patient/${pid}`, { body: { ...p, gender: 'other' } })).status, 200);
    assert.equal((await raw(srv.base, 'GET', `Patient/${pid}/_history/1`)).status, 200);
    assert.equal((await raw(srv.base, 'GET', `Patient/${pid}/_history`)).status, 200);
    assert.equal((await raw(srv.base, 'GET', `Patient/${pid}/$everything`)).status, 200);
    assert.equal((await raw(srv.base, 'GET', `Patient/${pid}/Observation`)).status, 200);
    const consent = await raw(srv.base, 'POST', 'Consent', { body: {
      resourceType: 'Consent', status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: `Patient/${pid}` },
      provision: { type: 'permit' },
    } });
    assert.equal(consent.status, 201, consent.text);
    const want = ['create', 'search-type', 'operation', 'history-instance', 'vread', 'update', 'read', 'create'];
    const list = await waitFor(pid, (l) => l.length >= want.length, 'every interaction');
    // Changes are chained in their own commit, reads a moment later in a
    // batch: the trail's order is not the requests' order, so compare the
    // records as a set (each has its time in recorded).
    assert.deepEqual(list.map(sub).sort(), [...want].sort(), JSON.stringify(list.map(sub)));
    assert.ok(list.some((e) => sub(e) === 'create' &&
      e.entity.some((x) => x.what?.reference === `Consent/${consent.json.id}`)), 'the Consent change');
    assert.equal(list.find((e) => sub(e) === 'operation').entity.some((e) => e.what?.reference === `Patient/${pid}`), true);
    // and nothing more turns up later
    await sleep(300);
    assert.equal((await records(`patient=${pid}`)).list.length, want.length);
  });

  test('a compartment search of a type not served names the patient it probed', async () => {
    const pid = await newPatient();
    assert.equal((await raw(srv.base, 'GET', `Patient/${pid}/NoSuchType`)).status, 404);
    const list = await waitFor(pid, (l) => l.length === 2, 'the refused probe');
    assert.equal(sub(list[0]), 'search-type');
    assert.equal(list[0].outcomeDesc, 'HTTP 404');
    assert.ok(list[0].entity.some((e) => e.what?.reference === `Patient/${pid}` && !e.role), JSON.stringify(list[0].entity));
    assert.deepEqual(patientsOf(list[0]), [`Patient/${pid}`]);
  });

  test('an Observation names its patient; a transaction is one record for all its entries', async () => {
    const pid = await newPatient();
    const o = await raw(srv.base, 'POST', 'Observation', {
      body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${pid}` } },
    });
    assert.equal(o.status, 201, o.text);
    const tx = await raw(srv.base, 'POST', '', {
      body: {
        resourceType: 'Bundle', type: 'transaction', entry: [
          { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', code: { text: 'a' }, subject: { reference: `Patient/${pid}` } } },
          { request: { method: 'PUT', url: `Observation/${o.json.id}` }, resource: { ...o.json, status: 'amended' } },
        ],
      },
    });
    assert.equal(tx.status, 200, tx.text);
    const list = (await records(`patient=${pid}`)).list;
    assert.deepEqual(list.map(sub), ['transaction', 'create', 'create']);
    const refs = list[0].entity.filter((e) => !e.role).map((e) => e.what.reference);
    assert.equal(refs.length, 2);
    assert.ok(refs.includes(`Observation/${o.json.id}`));
    assert.deepEqual(patientsOf(list[0]), [`Patient/${pid}`]);
  });

  test('failed writes (422, 412) are recorded with their outcome and write nothing', async () => {
    const before = (await raw(srv.base, 'GET', 'Patient?_summary=count')).json.total;
    const bad = await raw(srv.base, 'POST', 'Patient', { body: { resourceType: 'Patient', birthDate: 'not a date' } });
    assert.equal(bad.status, 422);
    const { hit } = await waitForAny((e) => sub(e) === 'create' && e.outcomeDesc === 'HTTP 422', '422');
    assert.equal(hit.outcome, '4');
    assert.equal(hit.agent[0].who.identifier.value, srv.user.username);
    assert.equal((await raw(srv.base, 'GET', 'Patient?_summary=count')).json.total, before);

    const pid = await newPatient();
    const r = await raw(srv.base, 'PUT', `Patient/${pid}`, {
      headers: { 'if-match': 'W/"7"' }, body: { resourceType: 'Patient', id: pid, gender: 'male' },
    });
    assert.equal(r.status, 412);
    const list = await waitFor(pid, (l) => l.length === 2, '412');
    assert.equal(sub(list[0]), 'update');
    assert.equal(list[0].outcome, '4');
    assert.equal(list[0].outcomeDesc, 'HTTP 412');
    const now = await raw(srv.base, 'GET', `Patient/${pid}`);
    assert.equal(now.json.meta.versionId, '1');
    assert.equal(now.json.gender, undefined);
  });

  test('a search record has parameter names and none of their values', async () => {
    const pid = await newPatient({ name: [{ family: 'Zebulon' }] });
    const s = await raw(srv.base, 'GET', 'Patient?name=Zebulon');
    assert.equal(s.status, 200);
    assert.ok(s.json.entry.some((e) => e.resource.id === pid));
    const list = await waitFor(pid, (l) => l.length === 2, 'search');
    assert.equal(sub(list[0]), 'search-type');
    assert.equal(list[0].entity.find((e) => e.detail).detail[0].valueString, 'name');
    // nowhere in the trail, nor in any one record
    const all = await records('');
    assert.ok(!all.text.includes('Zebulon'), 'a search value reached the audit trail');
    for (const ev of list) assert.ok(!JSON.stringify(ev).includes('Zebulon'));
    // a parameter name careweave does not know is not repeated either
    await raw(srv.base, 'GET', `Patient?_id=${pid}&Zebulon2=1`);
    const l2 = await waitFor(pid, (l) => l.length === 3, 'search with an unknown name');
    assert.equal(l2[0].entity.find((e) => e.detail).detail[0].valueString, '_id,(other)');
    assert.ok(!(await records('')).text.includes('Zebulon2'));
  });

  test('AuditEvent cannot be created, changed or deleted through the API', async () => {
    const pid = await newPatient();
    const [rec] = (await records(`patient=${pid}`)).list;
    const body = { ...rec, outcome: '8' };
    const tries = [
      await raw(srv.base, 'POST', 'AuditEvent', { body: { ...body, id: undefined } }),
      await raw(srv.base, 'PUT', `AuditEvent/${rec.id}`, { body }),
      await raw(srv.base, 'DELETE', `AuditEvent/${rec.id}`),
      await raw(srv.base, 'POST', '', {
        body: { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'PUT', url: `AuditEvent/${rec.id}` }, resource: body }] },
      }),
    ];
    for (const t of tries) {
      assert.equal(t.status, 405, t.text);
      assertOutcome(t.json);
    }
    const batch = await raw(srv.base, 'POST', '', {
      body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'DELETE', url: `AuditEvent/${rec.id}` } }] },
    });
    assert.equal(batch.status, 200);
    assert.match(batch.json.entry[0].response.status, /^405/);
    const again = await raw(srv.base, 'GET', `AuditEvent/${rec.id}`);
    assert.deepEqual(again.json, rec);
    // the attempts themselves are in the trail
    await waitForAny((e) => sub(e) === 'delete' && e.outcomeDesc === 'HTTP 405' &&
      e.entity?.some((x) => x.what?.reference === `AuditEvent/${rec.id}`), 'refused delete');
  });

  test('sign-in, failed sign-in and sign-out are recorded; an unknown name is not kept', async () => {
    const name = `audit-${Date.now()}`;
    const pw = 'a long enough password 1';
    const added = await addUser(srv.db, name, pw, ['--admin']);
    const secret = totpSecretOf(added.stdout); // admins sign in with a code
    const origin = srv.origin;
    const post = (p, body, headers = {}) => fetch(`${origin}${p}`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
    });
    assert.equal((await post('/auth/login', { username: name, password: 'wrong password here' })).status, 401);
    const ghost = `nobody-${Date.now()}`;
    assert.equal((await post('/auth/login', { username: ghost, password: 'wrong password here' })).status, 401);
    const { token } = await login(origin, name, pw, totpCode(secret));
    assert.equal((await post('/auth/logout', {}, { authorization: `Bearer ${token}` })).status, 204);

    const { list, text } = await records('');
    const mine = list.filter((e) => e.type.code === '110114' && e.agent[0].who.identifier.value === name);
    assert.deepEqual(mine.map((e) => [e.subtype[0].code, e.outcome]),
      [['110123', '0'], ['110122', '0'], ['110122', '4']]);
    for (const e of mine) assert.equal(e.type.system, 'http://dicom.nema.org/resources/ontology/DCM');
    const unknown = list.find((e) => e.type.code === '110114' && e.outcome === '4' && !e.agent[0].who.identifier.value);
    assert.ok(unknown, 'the failed sign-in of nobody is recorded');
    assert.equal(unknown.agent[0].network.address, '127.0.0.1');
    assert.ok(!text.includes(ghost), 'the name tried reached the trail');
    assert.ok(!text.includes('wrong password'), 'a password reached the trail');
  });

  test('careweave audit verify passes, report lists a patient, a tampered copy fails', async () => {
    const pid = await newPatient({ name: [{ family: 'Quillfeather' }] });
    await raw(srv.base, 'GET', `Patient/${pid}`);
    await waitFor(pid, (l) => l.length === 2, 'read');
    await srv.stop({ keep: true });

    const ok = await runCli(['audit', 'verify', '--db', srv.db]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^audit: \d+ records, chain intact$/m);

    const rep = await runCli(['audit', 'report', '--patient', pid, '--db', srv.db]);
    assert.equal(rep.code, 0, rep.stderr);
    assert.match(rep.stdout, /\bread\b/);
    assert.match(rep.stdout, /\bcreate\b/);
    assert.ok(rep.stdout.includes(srv.user.username));
    assert.match(rep.stdout, /^2 records/m);
    assert.ok(!rep.stdout.includes('Quillfeather'));
    const since = await runCli(['audit', 'report', '--patient', pid, '--since', '2999-01-01', '--db', srv.db]);
    assert.match(since.stdout, /^0 records/m);

    const dir = tempDir('careweave-audit-');
    try {
      const copy = path.join(dir, 'copy.db');
      copyFileSync(srv.db, copy);
      if (existsSync(`${srv.db}-wal`)) copyFileSync(`${srv.db}-wal`, `${copy}-wal`);
      // outcome 0 -> 4: the record's HTTP status column (a record is columns now)
      const sql = 'DROP TRIGGER audit_no_update; UPDATE audit SET status = 404 WHERE seq = 2;';
      const r = await new Promise((resolve) => execFile('sqlite3', [copy, sql], (e, so, se) => resolve({ e, se })));
      assert.equal(r.e, null, r.se);
      const bad = await runCli(['audit', 'verify', '--db', copy]);
      assert.equal(bad.code, 1, bad.stdout + bad.stderr);
      assert.match(bad.stdout, /record 2 does not match/);

      const sql2 = 'DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 3;';
      const copy2 = path.join(dir, 'copy2.db');
      copyFileSync(srv.db, copy2);
      if (existsSync(`${srv.db}-wal`)) copyFileSync(`${srv.db}-wal`, `${copy2}-wal`);
      await new Promise((resolve) => execFile('sqlite3', [copy2, sql2], resolve));
      const gap = await runCli(['audit', 'verify', '--db', copy2]);
      assert.equal(gap.code, 1);
      assert.match(gap.stdout, /record 3 is missing/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(srv.dir, { recursive: true, force: true });
    }
  });

  test('audit --help, usage errors', async () => {
    const h = await runCli(['audit', '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /careweave audit verify/);
    assert.match(h.stdout, /careweave audit report/);
    assert.equal((await runCli(['audit', 'report'])).code, 2);
    assert.equal((await runCli(['audit', 'frob'])).code, 2);
    assert.equal((await runCli(['audit'])).code, 2);
    const top = await runCli(['--help']);
    assert.match(top.stdout, /^ {2}audit /m);
  });
});

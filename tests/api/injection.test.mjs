// injection.test.mjs: SQL fragments in every place a request can carry
// text (search values, parameter names, modifiers, _sort, _include, _count,
// _cursor, ids in the path, history _since, headers). Each must give a 4xx
// or a correct (usually empty) result, never a 5xx; afterwards the database
// has all its data and `careweave check` says ok.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startServer, raw, runTag, countOf, assertCheckOk, sqliteIntegrity, matchIds } from '../support/server.mjs';

let srv;
let client;
const tag = runTag('inj');
const T = { system: tag.system, code: tag.code };
const SYS = 'urn:careweave:test:inj';
let known;       // Patient/known: version 2
let tricky;      // a Patient whose values are SQL-looking text
let obs;
let baseline;

const PAYLOADS = [
  "' OR 1=1 --",
  "' OR '1'='1",
  '"; DROP TABLE resources; --',
  "'; DROP TABLE resources; --",
  "%' --",
  '%',
  '_',
  '\\',
  "1) UNION SELECT name, sql FROM sqlite_master --",
  "') UNION SELECT * FROM sqlite_master WHERE ('a'='a",
  "1; ATTACH DATABASE '/tmp/careweave-pwned.db' AS pwn; --",
  "Robert'); DELETE FROM resources; --",
  '*/ OR 1=1 /*',
  "' || (SELECT count(*) FROM sqlite_master) || '",
  '\u0000',
];

const TRICKY_FAMILY = "O'Brien\"; DROP TABLE resources; --";

before(async () => {
  srv = await startServer();
  client = srv.client;
  known = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', meta: { tag: [T] }, identifier: [{ system: SYS, value: 'known' }], name: [{ family: 'Known', given: ['Kay'] }], birthDate: '1980-05-05' } });
  known = await client.update({ resourceType: 'Patient', id: known.id, body: { ...known, meta: { tag: [T] }, gender: 'female' } });
  tricky = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', meta: { tag: [T] }, identifier: [{ system: SYS, value: "x' OR 1=1 --" }], name: [{ family: TRICKY_FAMILY, given: ['%_'] }] } });
  for (let i = 0; i < 3; i++) {
    await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', meta: { tag: [T] }, name: [{ family: `Plain${i}` }] } });
  }
  obs = await client.create({ resourceType: 'Observation', body: { resourceType: 'Observation', meta: { tag: [T] }, status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] }, subject: { reference: `Patient/${known.id}` }, valueQuantity: { value: 7, system: 'http://unitsofmeasure.org', code: '%' } } });
  await client.create({ resourceType: 'Questionnaire', body: { resourceType: 'Questionnaire', status: 'active', url: 'http://example.org/q/1' } });
  baseline = {
    Patient: await countOf(client, 'Patient'),
    Observation: await countOf(client, 'Observation'),
    Questionnaire: await countOf(client, 'Questionnaire'),
  };
});
after(async () => {
  if (srv?.alive()) await srv.stop({ keep: false });
});

/**
 * GET path; the status must be one of ok (default 200 or 400); a 200
 * bundle's matches must be a subset of allowed ids.
 */
async function probe(path, { allowed = [], statuses = [200, 400], headers } = {}) {
  const r = await raw(srv.base, 'GET', path, { headers });
  assert.ok(r.status < 500, `${path}: server error ${r.status}: ${r.text.slice(0, 300)}`);
  assert.ok(statuses.includes(r.status), `${path}: status ${r.status} not in ${statuses}: ${r.text.slice(0, 300)}`);
  if (r.status === 200 && r.json?.resourceType === 'Bundle') {
    const ids = matchIds(r.json);
    for (const id of ids) assert.ok(allowed.includes(id), `${path}: unexpected match ${id} (allowed ${allowed})`);
    if (r.json.total !== undefined) assert.ok(r.json.total <= allowed.length, `${path}: total ${r.json.total} > ${allowed.length}`);
  }
  return r;
}

const q = encodeURIComponent;

describe('SQL fragments in search values', () => {
  for (const p of PAYLOADS) {
    test(`values: ${JSON.stringify(p)}`, async () => {
      const trickyOk = [tricky.id];
      // string: only the tricky patient can match (its given name is "%_", its family starts with O'Brien)
      await probe(`Patient?name=${q(p)}`, { allowed: trickyOk });
      await probe(`Patient?name:exact=${q(p)}`, { allowed: trickyOk });
      await probe(`Patient?name:contains=${q(p)}`, { allowed: trickyOk });
      await probe(`Patient?family=${q(p)}`, { allowed: trickyOk });
      // token
      await probe(`Patient?identifier=${q(p)}`);
      await probe(`Patient?identifier=${q(SYS)}|${q(p)}`);
      await probe(`Patient?identifier=${q(p)}|known`);
      await probe(`Patient?gender=${q(p)}`);
      await probe(`Patient?gender:not=${q(p)}`, { allowed: (await allPatients()) });
      await probe(`Patient?_tag=${q(p)}`);
      await probe(`Patient?_id=${q(p)}`);
      await probe(`Patient?_id=${q(known.id + p)}`);
      // date, number, quantity: not valid values
      await probe(`Patient?birthdate=${q(p)}`, { statuses: [400] });
      await probe(`Patient?_lastUpdated=${q(p)}`, { statuses: [400] });
      await probe(`Observation?value-quantity=${q(p)}`, { statuses: [400] });
      await probe(`Observation?value-quantity=7|${q(p)}|${q(p)}`);
      // reference, uri, chain, _has
      await probe(`Observation?subject=${q(p)}`);
      await probe(`Observation?subject=Patient/${q(p)}`);
      await probe(`Observation?subject:Patient=${q(p)}`);
      await probe(`Observation?subject:Patient.name=${q(p)}`);
      await probe(`Patient?_has:Observation:patient:code=${q(p)}`);
      await probe(`Questionnaire?url=${q(p)}`);
      await probe(`Patient?_profile=${q(p)}`);
      // POST _search carries them in the body
      const r = await raw(srv.base, 'POST', 'Patient/_search', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `name=${q(p)}&identifier=${q(p)}` });
      assert.ok(r.status === 200 || r.status === 400, `POST _search: ${r.status}`);
      if (r.status === 200) assert.deepEqual(matchIds(r.json), []);
    });
  }

  test('text that looks like SQL is stored and found as plain text', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { 'family:exact': TRICKY_FAMILY } });
    assert.deepEqual(matchIds(b), [tricky.id]);
    const b2 = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|x' OR 1=1 --` } });
    assert.deepEqual(matchIds(b2), [tricky.id]);
    const b3 = await client.search({ resourceType: 'Patient', searchParams: { given: '%_' } });
    assert.deepEqual(matchIds(b3), [tricky.id]);
    const r = await client.read({ resourceType: 'Patient', id: tricky.id });
    assert.equal(r.name[0].family, TRICKY_FAMILY);
  });

  test('LIKE wildcards are not wildcards', async () => {
    // (only pure wildcards: other punctuation may be folded away by normalization)
    for (const w of ['%', '_', '%%', '__', '%_%']) {
      const b = await client.search({ resourceType: 'Patient', searchParams: { name: w } });
      const ids = matchIds(b);
      assert.ok(!ids.includes(known.id), `name=${w} must not match Known: ${ids}`);
      const c = await client.search({ resourceType: 'Patient', searchParams: { 'name:contains': w } });
      assert.ok(!matchIds(c).includes(known.id), `name:contains=${w} must not match Known`);
    }
  });
});

async function allPatients() {
  const b = await client.search({ resourceType: 'Patient', searchParams: { _count: 1000 } });
  return matchIds(b);
}

describe('SQL fragments in names, modifiers and control parameters', () => {
  const cases = [
    "Patient?name'%20OR%201=1--=x",
    `Patient?${q("name' OR 1=1 --")}=x`,
    `Patient?${q('name;DROP TABLE resources')}=x`,
    `Patient?${q("name:exact'--")}=x`,
    `Patient?${q('name:exact) OR (1=1')}=x`,
    `Patient?${q("_has:Observation:patient'--:code")}=x`,
    `Patient?${q("_has:Observation':patient:code")}=x`,
    `Observation?${q("subject:Patient'--.name")}=x`,
    `Observation?${q("subject:Patient.name'--")}=x`,
    `Patient?_sort=${q('name;DROP TABLE resources')}`,
    `Patient?_sort=${q('name;DROP')}`,
    `Patient?_sort=${q("birthdate DESC; --")}`,
    `Patient?_sort=${q('-_id\'')}`,
    `Patient?_sort=${q('(SELECT 1)')}`,
    `Patient?_sort=${q('1')}`,
    `Observation?_include=${q("Observation:subject' OR 1=1 --")}`,
    `Observation?_include=${q("*' --")}`,
    `Observation?_include=${q('Observation:subject:Patient; DROP TABLE resources')}`,
    `Patient?_revinclude=${q("Observation:subject') --")}`,
    `Patient?_count=${q('1;DROP TABLE resources')}`,
    `Patient?_count=${q('10 OR 1=1')}`,
    `Patient?_count=${q('1e9')}`,
    `Patient?_count=${q('99999999999999999999999')}`,
    `Patient?_cursor=${q("' OR 1=1 --")}`,
    `Patient?_cursor=${q('1) UNION SELECT * FROM sqlite_master --')}`,
    `Patient?_summary=${q("count' --")}`,
    `Patient?_total=${q("accurate'; --")}`,
    `Patient?_elements=${q("name') --")}`,
    `Patient?_elements=${q('*')}`,
  ];
  // valid under strict handling too: a huge _count is capped, _elements may name anything
  const mayPassStrict = new Set([`Patient?_count=${q('99999999999999999999999')}`,
    `Patient?_elements=${q("name') --")}`, `Patient?_elements=${q('*')}`]);
  for (const path of cases) {
    test(path, async () => {
      const allowed = [...(await allPatients()), obs.id];
      // a name that is not a parameter may be ignored (lenient), else 400
      await probe(path, { allowed });
      await probe(path, { allowed, statuses: mayPassStrict.has(path) ? [200, 400] : [400], headers: { prefer: 'handling=strict' } });
    });
  }
});

describe('SQL fragments in paths, history and headers', () => {
  const ids = ["1' OR '1'='1", '1 OR 1=1', "x'; DROP TABLE resources; --", '%', '../../etc/passwd', "known' --"];
  for (const bad of ids) {
    test(`id ${JSON.stringify(bad)} in the path`, async () => {
      for (const [m, path, body] of [
        ['GET', `Patient/${q(bad)}`],
        ['GET', `Patient/${q(bad)}/_history`],
        ['GET', `Patient/${q(bad)}/_history/1`],
        ['GET', `Patient/${known.id}/_history/${q(bad)}`],
        ['GET', `Patient/${q(bad)}/$everything`],
        ['DELETE', `Patient/${q(bad)}`],
        ['PUT', `Patient/${q(bad)}`, { resourceType: 'Patient', id: bad }],
        ['GET', `${q(`Patient${bad}`)}`],
        ['GET', `${q(`Patient${bad}`)}/1`],
      ]) {
        const r = await raw(srv.base, m, path, { body });
        assert.ok(r.status < 500, `${m} ${path}: ${r.status} ${r.text.slice(0, 300)}`);
        if (m === 'GET' && r.status === 200) {
          // only the known patient's own history may come back for the first cases, never everything
          assert.ok(r.json?.resourceType !== 'Bundle' || (r.json.entry ?? []).length === 0, `${m} ${path}: ${r.text.slice(0, 300)}`);
        }
        // an id that is not an id (or a path that is not a route) creates nothing
        if (m === 'PUT') assert.ok(r.status === 400 || r.status === 404, `PUT ${path}: ${r.status}`);
      }
    });
  }
  test('history _since / _at / _count with SQL', async () => {
    for (const p of PAYLOADS) {
      await probe(`_history?_since=${q(p)}`, { statuses: [400] });
      await probe(`Patient/_history?_since=${q(p)}`, { statuses: [400] });
      await probe(`Patient/${known.id}/_history?_since=${q(p)}`, { statuses: [400] });
      await probe(`Patient/_history?_at=${q(p)}`, { statuses: [400] });
      await probe(`Patient/_history?_count=${q(p)}`, { statuses: [400] });
    }
  });
  test('headers with SQL: If-Match, If-None-Exist, Prefer', async () => {
    for (const p of PAYLOADS.filter((x) => !x.includes('\u0000'))) {
      const u = await raw(srv.base, 'PUT', `Patient/${known.id}`, { headers: { 'if-match': `W/"2${p}"` }, body: { ...known, meta: undefined } });
      assert.ok([400, 412].includes(u.status), `If-Match ${p}: ${u.status}`);
      const d = await raw(srv.base, 'DELETE', `Patient?identifier=${q(p)}`);
      assert.ok([200, 204, 400, 404, 412].includes(d.status), `conditional delete ${p}: ${d.status}`);
      const s = await raw(srv.base, 'GET', 'Patient?name=Known', { headers: { prefer: `handling=${p}` } });
      assert.ok(s.status < 500, `Prefer ${p}: ${s.status}`);
      const c = await raw(srv.base, 'POST', 'Observation', { headers: { 'if-none-exist': `code=${p}&_id=${obs.id}` }, body: { resourceType: 'Observation', status: 'final', code: { text: 'ine' } } });
      assert.ok(c.status < 500, `If-None-Exist ${p}: ${c.status}`);
      if (c.status === 201) await client.delete({ resourceType: 'Observation', id: c.json.id });
    }
  });
});

describe('afterwards', () => {
  test('all data is still there and readable', async () => {
    assert.equal(await countOf(client, 'Patient'), baseline.Patient);
    assert.equal(await countOf(client, 'Observation'), baseline.Observation);
    assert.equal(await countOf(client, 'Questionnaire'), baseline.Questionnaire);
    const k = await client.read({ resourceType: 'Patient', id: known.id });
    assert.equal(k.meta.versionId, '2');
    assert.equal(k.name[0].family, 'Known');
    const v1 = await client.vread({ resourceType: 'Patient', id: known.id, version: '1' });
    assert.equal(v1.meta.versionId, '1');
    const o = await client.read({ resourceType: 'Observation', id: obs.id });
    assert.equal(o.subject.reference, `Patient/${known.id}`);
    const s = await client.search({ resourceType: 'Patient', searchParams: { name: 'known' } });
    assert.deepEqual(matchIds(s), [known.id]);
  });
  test('careweave check says ok on the database', async () => {
    const db = srv.db;
    const dir = srv.dir;
    await srv.stop({ keep: true });
    try {
      await assertCheckOk(db);
      const ic = await sqliteIntegrity(db);
      if (ic !== null) assert.equal(ic, 'ok');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

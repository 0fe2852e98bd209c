// compartment.test.mjs: compartment search, GET Patient/{id}/{type}: the
// resources of {type} in the patient's compartment (as the official patient
// CompartmentDefinition says: an Observation is in it through subject or
// performer), filtered by the usual parameters, paged with links that keep
// the compartment path; errors for unknown or deleted patients and for
// types or compartments that cannot be searched this way.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, fhirError, assertOutcome, linkOf, matchIds, entriesByMode, raw } from '../support/server.mjs';

let srv;
let client;
let prac;
const P = {}; // label -> { patient, obs: [ids], byCode: {code: [ids]}, cond: [ids], enc: [ids] }

const LOINC = 'http://loinc.org';

async function seed(label) {
  const patient = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: `Comp${label}` }] } });
  const ref = { reference: `Patient/${patient.id}` };
  const s = { patient, obs: [], byCode: {}, cond: [], enc: [] };
  const obs = async (code, body) => {
    const r = await client.create({ resourceType: 'Observation', body: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code }] }, ...body } });
    s.obs.push(r.id);
    (s.byCode[code] ??= []).push(r.id);
    return r;
  };
  for (let i = 0; i < 2; i++) {
    const enc = await client.create({ resourceType: 'Encounter', body: { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: ref } });
    s.enc.push(enc.id);
    await obs('8867-4', { subject: ref, encounter: { reference: `Encounter/${enc.id}` }, valueQuantity: { value: 60 + i, system: 'http://unitsofmeasure.org', code: '/min' } });
    await obs('4548-4', { subject: ref, performer: [{ reference: `Practitioner/${prac.id}` }], valueQuantity: { value: 6 + i, system: 'http://unitsofmeasure.org', code: '%' } });
  }
  await obs('8310-5', { subject: ref, valueQuantity: { value: 37, system: 'http://unitsofmeasure.org', code: 'Cel' } });
  // In the compartment through performer only: no subject at all.
  await obs('72166-2', { performer: [ref], valueCodeableConcept: { text: 'never smoker' } });
  for (const code of ['44054006', '38341003']) {
    const c = await client.create({ resourceType: 'Condition', body: { resourceType: 'Condition', code: { coding: [{ system: 'http://snomed.info/sct', code }] }, subject: ref } });
    s.cond.push(c.id);
  }
  return s;
}

before(async () => {
  srv = await startServer();
  client = srv.client;
  prac = await client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', name: [{ family: 'Doc' }] } });
  P.A = await seed('A');
  P.B = await seed('B');
  // An Observation of nobody, and one performed by a practitioner only.
  await client.create({ resourceType: 'Observation', body: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code: '8867-4' }] } } });
  await client.create({ resourceType: 'Observation', body: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: LOINC, code: '8867-4' }] }, performer: [{ reference: `Practitioner/${prac.id}` }] } });
});
after(async () => {
  await srv?.stop();
});

const sorted = (a) => [...a].sort();

function search(label, resourceType, searchParams, options) {
  return client.compartmentSearch({ compartment: { resourceType: 'Patient', id: P[label].patient.id }, resourceType, searchParams, options });
}

async function allPages(first) {
  const pages = [first];
  let b = first;
  while (linkOf(b, 'next') && pages.length < 100) {
    b = await client.nextPage({ bundle: b });
    pages.push(b);
  }
  return pages;
}

describe('Patient compartment search', () => {
  test('returns exactly the patient\'s Observations, the performer-only one included', async () => {
    for (const label of ['A', 'B']) {
      const b = await search(label, 'Observation');
      assert.equal(b.resourceType, 'Bundle');
      assert.equal(b.type, 'searchset');
      assert.deepEqual(sorted(matchIds(b)), sorted(P[label].obs), `Patient ${label}`);
      assert.equal(b.entry.length, P[label].obs.length, 'no includes, no duplicates');
      for (const e of b.entry) assert.equal(e.resource.resourceType, 'Observation');
      const performerOnly = P[label].byCode['72166-2'][0];
      assert.ok(matchIds(b).includes(performerOnly), 'an Observation whose performer is the patient is in its compartment');
      assert.ok(linkOf(b, 'self').includes(`/Patient/${P[label].patient.id}/Observation`), `self link keeps the compartment path: ${linkOf(b, 'self')}`);
    }
  });

  test('other types: Condition, Encounter, and the Patient itself', async () => {
    for (const label of ['A', 'B']) {
      assert.deepEqual(sorted(matchIds(await search(label, 'Condition'))), sorted(P[label].cond));
      assert.deepEqual(sorted(matchIds(await search(label, 'Encounter'))), sorted(P[label].enc));
      assert.deepEqual(matchIds(await search(label, 'Patient')), [P[label].patient.id]);
    }
  });

  test('further filtered by search parameters', async () => {
    const b = await search('A', 'Observation', { code: `${LOINC}|8867-4` });
    assert.deepEqual(sorted(matchIds(b)), sorted(P.A.byCode['8867-4']));
    const none = await search('B', 'Observation', { code: 'no-such-code' });
    assert.deepEqual(matchIds(none), []);
    const two = await search('A', 'Observation', { code: '8867-4,8310-5', 'value-quantity': 'gt60' });
    assert.deepEqual(matchIds(two), [P.A.byCode['8867-4'][1]]);
    const cond = await search('B', 'Condition', { code: 'http://snomed.info/sct|38341003' });
    assert.deepEqual(matchIds(cond), [P.B.cond[1]]);
  });

  test('pages with _count=2 through all, forward and back, links keep the path', async () => {
    const first = await search('A', 'Observation', { _count: 2 });
    const pages = await allPages(first);
    assert.equal(pages.length, Math.ceil(P.A.obs.length / 2));
    for (const p of pages.slice(0, -1)) assert.equal(matchIds(p).length, 2);
    for (const p of pages.slice(1)) {
      assert.ok(linkOf(p, 'self').includes(`/Patient/${P.A.patient.id}/Observation?`), linkOf(p, 'self'));
      assert.ok(linkOf(p, 'previous').includes(`/Patient/${P.A.patient.id}/Observation?`), linkOf(p, 'previous'));
    }
    const ids = pages.flatMap(matchIds);
    assert.equal(new Set(ids).size, ids.length, `no duplicates across pages: ${ids}`);
    assert.deepEqual(sorted(ids), sorted(P.A.obs));
    // Back from the last page.
    const back = [];
    let b = pages[pages.length - 1];
    while (linkOf(b, 'previous') && back.length < 100) {
      b = await client.prevPage({ bundle: b });
      back.unshift(...matchIds(b));
    }
    assert.deepEqual(back, ids.slice(0, ids.length - matchIds(pages[pages.length - 1]).length));
  });

  test('_sort, _total, _summary=count and _include work inside a compartment', async () => {
    const byId = await search('B', 'Observation', { _sort: '-_id', _total: 'accurate' });
    assert.deepEqual(matchIds(byId), sorted(P.B.obs).reverse());
    assert.equal(byId.total, P.B.obs.length);
    const count = await search('A', 'Observation', { _summary: 'count' });
    assert.equal(count.total, P.A.obs.length);
    assert.equal((count.entry ?? []).length, 0);
    const inc = await search('A', 'Observation', { code: '8867-4', _include: 'Observation:encounter' });
    assert.deepEqual(sorted(matchIds(inc)), sorted(P.A.byCode['8867-4']));
    assert.deepEqual(sorted(entriesByMode(inc, 'include').map((r) => r.id)), sorted(P.A.enc));
    // Sorted paging keeps the compartment too.
    const pages = await allPages(await search('A', 'Observation', { _sort: '_id', _count: 3 }));
    assert.deepEqual(pages.flatMap(matchIds), sorted(P.A.obs));
  });

  test('POST Patient/{id}/{type}/_search works like GET', async () => {
    const b = await search('B', 'Observation', { code: `${LOINC}|4548-4` }, { postSearch: true });
    assert.deepEqual(sorted(matchIds(b)), sorted(P.B.byCode['4548-4']));
  });

  test('a deleted resource leaves the compartment search', async () => {
    const id = P.B.cond[0];
    await client.delete({ resourceType: 'Condition', id });
    assert.deepEqual(matchIds(await search('B', 'Condition')), [P.B.cond[1]]);
  });

  test('a cursor from one compartment is refused in another', async () => {
    const b = await search('A', 'Observation', { _count: 2 });
    const next = new URL(linkOf(b, 'next'));
    const cursor = next.searchParams.get('_cursor');
    assert.ok(cursor);
    const r = await raw(srv.base, 'GET', `Patient/${P.B.patient.id}/Observation?_count=2&_cursor=${encodeURIComponent(cursor)}`);
    assert.equal(r.status, 400);
    assertOutcome(r.json);
    const plain = await raw(srv.base, 'GET', `Observation?_count=2&_cursor=${encodeURIComponent(cursor)}`);
    assert.equal(plain.status, 400);
  });

  test('an unknown patient -> 404, a deleted one -> 410', async () => {
    const e = await fhirError(client.compartmentSearch({ compartment: { resourceType: 'Patient', id: 'no-such-patient' }, resourceType: 'Observation' }));
    assert.equal(e.status, 404);
    assertOutcome(e.data);
    const gone = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: 'Gone' }] } });
    await client.delete({ resourceType: 'Patient', id: gone.id });
    const g = await fhirError(client.compartmentSearch({ compartment: { resourceType: 'Patient', id: gone.id }, resourceType: 'Observation' }));
    assert.equal(g.status, 410);
    assertOutcome(g.data);
  });

  test('a type outside the Patient compartment -> 400, other compartments are not supported', async () => {
    const e = await fhirError(search('A', 'Practitioner'));
    assert.equal(e.status, 400);
    assertOutcome(e.data);
    assert.ok(e.data.issue.some((i) => i.code === 'not-supported'), JSON.stringify(e.data));
    const x = await fhirError(client.compartmentSearch({ compartment: { resourceType: 'Patient', id: 'x' }, resourceType: 'Practitioner' }));
    assert.equal(x.status, 400);
    const enc = await fhirError(client.compartmentSearch({ compartment: { resourceType: 'Encounter', id: P.A.enc[0] }, resourceType: 'Observation' }));
    assert.equal(enc.status, 400);
    assert.ok(enc.data.issue.some((i) => i.code === 'not-supported'), JSON.stringify(enc.data));
    const obs = await raw(srv.base, 'GET', `Observation/${P.A.obs[0]}/Condition`);
    assert.equal(obs.status, 404);
    assertOutcome(obs.json);
    const unknown = await raw(srv.base, 'GET', `Patient/${P.A.patient.id}/NoSuchType`);
    assert.equal(unknown.status, 404);
    assertOutcome(unknown.json);
    const put = await raw(srv.base, 'PUT', `Patient/${P.A.patient.id}/Observation`, { body: { resourceType: 'Observation' } });
    assert.equal(put.status, 405);
  });

  test('the CapabilityStatement names the Patient compartment', async () => {
    const cs = await client.capabilityStatement();
    assert.ok((cs.rest[0].compartment ?? []).includes('http://hl7.org/fhir/CompartmentDefinition/patient'), JSON.stringify(cs.rest[0].compartment));
  });
});

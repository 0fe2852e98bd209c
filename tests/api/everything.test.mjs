// everything.test.mjs: Patient/$everything returns the patient and the
// resources of its compartment, nothing of another patient, and pages.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, fhirError, assertOutcome, linkOf } from '../support/server.mjs';

let srv;
let client;
const seeded = { A: [], B: [] }; // "Type/id" per patient
let A;
let B;
let prac;

async function seedFor(label) {
  const p = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: `Every${label}` }] } });
  const ref = { reference: `Patient/${p.id}` };
  const keys = [`Patient/${p.id}`];
  const add = async (type, body) => {
    const r = await client.create({ resourceType: type, body: { resourceType: type, ...body } });
    keys.push(`${type}/${r.id}`);
    return r;
  };
  const enc = await add('Encounter', { status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: ref });
  await add('Observation', { status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] }, subject: ref, encounter: { reference: `Encounter/${enc.id}` }, performer: [{ reference: `Practitioner/${prac.id}` }], valueQuantity: { value: 7, system: 'http://unitsofmeasure.org', code: '%' } });
  await add('Observation', { status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, subject: ref, valueQuantity: { value: 70, system: 'http://unitsofmeasure.org', code: '/min' } });
  await add('Condition', { code: { coding: [{ system: 'http://snomed.info/sct', code: '44054006' }] }, subject: ref });
  await add('MedicationRequest', { status: 'active', intent: 'order', medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '860975' }] }, subject: ref });
  await add('AllergyIntolerance', { patient: ref, code: { text: 'penicillin' } });
  return { p, keys };
}

before(async () => {
  srv = await startServer();
  client = srv.client;
  prac = await client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', name: [{ family: 'Doc' }] } });
  const a = await seedFor('A');
  const b = await seedFor('B');
  A = a.p; seeded.A = a.keys;
  B = b.p; seeded.B = b.keys;
  // a resource of no patient at all
  await client.create({ resourceType: 'Organization', body: { resourceType: 'Organization', name: 'Clinic' } });
});
after(async () => {
  await srv?.stop();
});

const key = (r) => `${r.resourceType}/${r.id}`;

async function everything(id, input) {
  const pages = [];
  let b = await client.operation({ name: 'everything', resourceType: 'Patient', id, method: 'GET', input });
  for (;;) {
    pages.push(b);
    if (!linkOf(b, 'next') || pages.length > 100) break;
    b = await client.nextPage({ bundle: b });
  }
  return pages;
}

describe('Patient/$everything', () => {
  test('returns the patient and its compartment, nothing of another patient', async () => {
    const [b, ...more] = await everything(A.id);
    assert.equal(b.resourceType, 'Bundle');
    assert.equal(b.type, 'searchset');
    const got = [b, ...more].flatMap((x) => (x.entry ?? []).map((e) => key(e.resource)));
    for (const k of seeded.A) assert.ok(got.includes(k), `${k} in $everything: ${got}`);
    for (const k of seeded.B) assert.ok(!got.includes(k), `${k} (another patient's) must not be in $everything`);
    assert.equal(new Set(got).size, got.length, 'no duplicates');
    for (const k of got) {
      assert.ok(seeded.A.includes(k) || k === `Practitioner/${prac.id}`, `unexpected ${k}`);
    }
    assert.ok(!got.some((k) => k.startsWith('Organization/')), 'an unrelated Organization is not included');
    assert.equal(got[0], `Patient/${A.id}`, 'the Patient comes first');
  });

  test('the other patient gets its own', async () => {
    const pages = await everything(B.id);
    const got = pages.flatMap((x) => (x.entry ?? []).map((e) => key(e.resource)));
    for (const k of seeded.B) assert.ok(got.includes(k), `${k}`);
    for (const k of seeded.A) assert.ok(!got.includes(k), `${k} leaked into B's $everything`);
  });

  test('pages with _count', async () => {
    const pages = await everything(A.id, { _count: 2 });
    assert.ok(pages.length >= Math.ceil(seeded.A.length / 2), `pages: ${pages.length}`);
    for (const p of pages.slice(0, -1)) assert.equal((p.entry ?? []).filter((e) => (e.search?.mode ?? 'match') === 'match').length, 2);
    const got = pages.flatMap((x) => (x.entry ?? []).map((e) => key(e.resource)));
    assert.equal(new Set(got).size, got.length, `no duplicates across pages: ${got}`);
    for (const k of seeded.A) assert.ok(got.includes(k), `${k} on some page`);
    for (const k of seeded.B) assert.ok(!got.includes(k));
  });

  test('_type restricts the types', async () => {
    const pages = await everything(A.id, { _type: 'Observation,Condition' });
    const got = pages.flatMap((x) => (x.entry ?? []).map((e) => key(e.resource)));
    const want = seeded.A.filter((k) => k.startsWith('Observation/') || k.startsWith('Condition/'));
    for (const k of want) assert.ok(got.includes(k), k);
    for (const k of got) assert.ok(/^(Observation|Condition|Patient)\//.test(k), `${k} not of the asked types`);
  });

  test('a deleted resource is no longer in $everything', async () => {
    const cond = seeded.A.find((k) => k.startsWith('Condition/'));
    await client.delete({ resourceType: 'Condition', id: cond.split('/')[1] });
    const got = (await everything(A.id)).flatMap((x) => (x.entry ?? []).map((e) => key(e.resource)));
    assert.ok(!got.includes(cond));
  });

  test('POST works like GET', async () => {
    const r = await client.operation({ name: 'everything', resourceType: 'Patient', id: B.id, method: 'POST', input: { resourceType: 'Parameters' } });
    const got = (r.entry ?? []).map((e) => key(e.resource));
    assert.ok(got.includes(`Patient/${B.id}`));
  });

  test('an unknown patient -> 404', async () => {
    const e = await fhirError(client.operation({ name: 'everything', resourceType: 'Patient', id: 'no-such-patient', method: 'GET' }));
    assert.equal(e.status, 404);
    assertOutcome(e.data);
  });
});

// medlist.test.mjs: Patient/{id}/$medication-list, the reconciled
// medication list: groups by ingredient, the discrepancies between sources
// (dose, stopped vs active, never prescribed, duplicate, unchecked), who
// reported each entry and when, the reach of the caller, withheld records,
// the audit record, and the groups of the demo patients.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startServer, raw, addUser, login, runCli, tempDir, sleep } from '../support/server.mjs';

const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const FLAGS = 'https://careweave.org/fhir/CodeSystem/medication-list-flag';
const EXT = 'https://careweave.org/fhir/StructureDefinition/medication-list-';
const PW = 'medlist-password-1234';

let srv;
const ids = {};

async function svc(method, url, body) {
  const r = await raw(srv.base, method, url, { body });
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${r.text}`);
  return r.json;
}

const med = (code, text) => ({ coding: [{ system: RXNORM, code }], text });
const mg = (value, unit = 'mg') => ({ doseAndRate: [{ doseQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit } }] });

function request(pid, concept, { status = 'active', by, authored, dose, text, ...extra } = {}) {
  return {
    resourceType: 'MedicationRequest', status, intent: 'order',
    medicationCodeableConcept: concept, subject: { reference: `Patient/${pid}` },
    ...(authored ? { authoredOn: authored } : {}),
    ...(by ? { requester: by } : {}),
    ...(text || dose ? { dosageInstruction: [{ ...(text ? { text } : {}), ...(dose ?? {}) }] } : {}),
    ...extra,
  };
}

function statement(pid, concept, { status = 'active', source, asserted, dose, text, ...extra } = {}) {
  return {
    resourceType: 'MedicationStatement', status,
    medicationCodeableConcept: concept, subject: { reference: `Patient/${pid}` },
    ...(asserted ? { dateAsserted: asserted } : {}),
    ...(source ? { informationSource: source } : {}),
    ...(text || dose ? { dosage: [{ ...(text ? { text } : {}), ...(dose ?? {}) }] } : {}),
    ...extra,
  };
}

async function patient(family) {
  return (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family }] })).id;
}

async function medlist(pid, query = '', headers = {}) {
  const r = await raw(srv.base, 'GET', `Patient/${pid}/$medication-list${query}`, { headers });
  return r;
}

const groups = (list) => Object.fromEntries((list.contained ?? []).map((g) => [g.title, g]));
const codesOf = (x) => (x.extension ?? []).filter((e) => e.url === `${EXT}flag`).map((e) => e.valueCoding.code).sort();
const extOf = (x, name) => (x.extension ?? []).find((e) => e.url === `${EXT}${name}`);
const entryOf = (g, ref) => g.entry.find((e) => e.item.reference === ref);

before(async () => {
  srv = await startServer();
  ids.okafor = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Okafor', prefix: ['Dr.'] }] })).id;
  ids.reyes = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Reyes', prefix: ['Dr.'] }] })).id;
});
after(async () => {
  await srv?.stop();
});

describe('Patient/$medication-list', () => {
  test("a Moss-like record: a dose change is one group and no discrepancy; the outside prescriber's naproxen; acetaminophen never prescribed", async () => {
    const pid = await patient('Mosslike');
    const okafor = { reference: `Practitioner/${ids.okafor}`, display: 'Dr. Anita Okafor' };
    const reyes = { reference: `Practitioner/${ids.reyes}`, display: 'Dr. Samuel Reyes' };
    const old = await svc('POST', 'MedicationRequest', request(pid, med('6809', 'Metformin 500 mg tablet'),
      { status: 'stopped', by: okafor, authored: '2024-03-12', dose: mg(500), text: '500 mg twice daily' }));
    const cur = await svc('POST', 'MedicationRequest', request(pid, med('6809', 'Metformin 1000 mg tablet'),
      { by: okafor, authored: '2025-03-05', dose: mg(1000), text: '1000 mg twice daily', priorPrescription: { reference: `MedicationRequest/${old.id}` } }));
    const nap = await svc('POST', 'MedicationRequest', request(pid, med('7258', 'Naproxen sodium 220 mg tablet'),
      { by: reyes, authored: '2026-09-18', dose: mg(220), reportedBoolean: true,
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/medicationrequest-category', code: 'outpatient' }] }] }));
    const apap = await svc('POST', 'MedicationStatement', statement(pid, med('161', 'Acetaminophen 500 mg tablet'),
      { source: { reference: `Patient/${pid}`, display: 'Walter' }, asserted: '2026-11-18T09:50:00-06:00', text: '500-1000 mg as needed' }));

    const r = await medlist(pid);
    assert.equal(r.status, 200, r.text);
    const list = r.json;
    assert.equal(list.resourceType, 'List');
    assert.equal(list.status, 'current');
    assert.equal(list.mode, 'working');
    assert.deepEqual(list.code.coding[0], { system: 'http://loinc.org', code: '10160-0', display: 'History of Medication use Narrative' });
    assert.equal(list.subject.reference, `Patient/${pid}`);
    assert.ok(Date.parse(list.date) > Date.now() - 60000);
    assert.equal(extOf(list, 'recent-days').valueInteger, 90);
    assert.equal(extOf(list, 'withheld'), undefined);
    const g = groups(list);
    assert.deepEqual(Object.keys(g), ['acetaminophen', 'metformin', 'naproxen']);
    // every top entry points at its contained group
    assert.deepEqual(list.entry.map((e) => e.item.display), ['acetaminophen', 'metformin', 'naproxen']);
    for (const e of list.entry) assert.ok(list.contained.some((c) => `#${c.id}` === e.item.reference));

    // metformin: the new dose replaces the stopped one from the same prescriber
    const met = g.metformin;
    assert.deepEqual(met.entry.map((e) => e.item.reference), [`MedicationRequest/${cur.id}`, `MedicationRequest/${old.id}`]);
    assert.deepEqual(codesOf(met), ['superseded']);
    assert.equal(entryOf(met, `MedicationRequest/${old.id}`).flag.coding[0].code, 'stopped');
    assert.equal(entryOf(met, `MedicationRequest/${cur.id}`).flag.coding[0].code, 'active');
    assert.equal(entryOf(met, `MedicationRequest/${cur.id}`).date, '2025-03-05');
    assert.deepEqual(extOf(entryOf(met, `MedicationRequest/${cur.id}`), 'reporter').valueReference, okafor);
    assert.equal(extOf(entryOf(met, `MedicationRequest/${cur.id}`), 'dose').valueString, '1000 mg');
    assert.equal(list.entry[1].flag.coding[0].code, 'consistent');
    assert.match(met.note[0].text, /No discrepancy found/);

    // naproxen from the orthopedist: who and when, no discrepancy
    const n = entryOf(g.naproxen, `MedicationRequest/${nap.id}`);
    assert.deepEqual(extOf(n, 'reporter').valueReference, reyes);
    assert.equal(extOf(n, 'source').valueCoding.code, 'prescription');
    assert.equal(n.date, '2026-09-18');
    assert.deepEqual(codesOf(g.naproxen), []);
    assert.match(g.naproxen.note[0].text, /recorded from a report/);

    // acetaminophen: patient-reported, prescribed by no one
    const a = entryOf(g.acetaminophen, `MedicationStatement/${apap.id}`);
    assert.equal(extOf(a, 'source').valueCoding.code, 'patient-reported');
    assert.equal(a.date, '2026-11-18T09:50:00-06:00');
    assert.deepEqual(codesOf(a), ['not-prescribed']);
    assert.equal(list.entry[0].flag.coding[0].code, 'discrepancy');
    assert.deepEqual(list.entry[0].flag.coding[0].system, FLAGS);
    assert.match(list.note[0].text, /1 to reconcile: acetaminophen/);
  });

  test('a dose that differs between two active sources is marked and explained; the same dose in grams is not', async () => {
    const pid = await patient('Dosediff');
    const by = { reference: `Practitioner/${ids.okafor}`, display: 'Dr. Okafor' };
    const rx = await svc('POST', 'MedicationRequest', request(pid, med('29046', 'Lisinopril 10 mg tablet'), { by, authored: '2026-01-10', dose: mg(10) }));
    const ms = await svc('POST', 'MedicationStatement', statement(pid, { text: 'Lisinopril 20 mg tablet' },
      { source: { reference: `Patient/${pid}` }, asserted: '2026-11-01', text: '20 mg every morning' }));
    await svc('POST', 'MedicationRequest', request(pid, med('83367', 'Atorvastatin 40 mg tablet'), { by, authored: '2026-01-10', dose: mg(40) }));
    await svc('POST', 'MedicationStatement', statement(pid, med('83367', 'atorvastatin'),
      { source: { reference: `Patient/${pid}` }, dose: mg(0.04, 'g') }));
    const g = groups((await medlist(pid)).json);
    assert.deepEqual(Object.keys(g), ['atorvastatin', 'lisinopril']);
    assert.deepEqual(codesOf(g.lisinopril), ['dose-differs']);
    const e = entryOf(g.lisinopril, `MedicationStatement/${ms.id}`);
    assert.deepEqual(codesOf(e), ['dose-differs']);
    assert.match(extOf(e, 'why').valueString, /dose 20 mg here, 10 mg in MedicationRequest\//);
    assert.match(extOf(entryOf(g.lisinopril, `MedicationRequest/${rx.id}`), 'why').valueString, /dose 10 mg here, 20 mg/);
    assert.match(g.lisinopril.note[0].text, /To reconcile:/);
    // 40 mg and 0.04 g are one dose; a statement of a prescribed drug is not "never prescribed"
    assert.deepEqual(codesOf(g.atorvastatin), []);
  });

  test('stopped by one source and active in another; the same ingredient prescribed twice', async () => {
    const pid = await patient('Stopped');
    const okafor = { reference: `Practitioner/${ids.okafor}` };
    const reyes = { reference: `Practitioner/${ids.reyes}` };
    const stopped = await svc('POST', 'MedicationRequest', request(pid, med('83367', 'Atorvastatin 40 mg tablet'),
      { status: 'stopped', by: okafor, authored: '2026-01-01', dose: mg(40) }));
    const still = await svc('POST', 'MedicationStatement', statement(pid, med('83367', 'Atorvastatin 40 mg'),
      { source: { reference: `Patient/${pid}` }, asserted: '2026-11-20' }));
    const a = await svc('POST', 'MedicationRequest', request(pid, med('29046', 'Lisinopril 10 mg'), { by: okafor, authored: '2026-02-01', dose: mg(10) }));
    const b = await svc('POST', 'MedicationRequest', request(pid, med('29046', 'Lisinopril 10 mg'), { by: reyes, authored: '2026-10-01', dose: mg(10) }));
    const g = groups((await medlist(pid)).json);
    assert.deepEqual(codesOf(g.atorvastatin), ['stopped-vs-active']);
    const s = entryOf(g.atorvastatin, `MedicationRequest/${stopped.id}`);
    assert.equal(s.flag.coding[0].code, 'stopped');
    assert.ok(extOf(s, 'ended').valueDate);
    assert.match(extOf(entryOf(g.atorvastatin, `MedicationStatement/${still.id}`), 'why').valueString,
      new RegExp(`ended it on .*MedicationRequest/${stopped.id}`));
    assert.deepEqual(codesOf(g.lisinopril), ['duplicate']);
    assert.match(extOf(entryOf(g.lisinopril, `MedicationRequest/${a.id}`), 'why').valueString, new RegExp(`MedicationRequest/${b.id}`));
    // a stop older than the window is not listed, nor compared
    const narrow = groups((await medlist(pid, '?recent=0')).json);
    assert.deepEqual(narrow.atorvastatin.entry.map((e) => e.item.reference), [`MedicationStatement/${still.id}`]);
    assert.deepEqual(codesOf(narrow.atorvastatin), []);
    const post = await raw(srv.base, 'POST', `Patient/${pid}/$medication-list`, { body: {
      resourceType: 'Parameters', parameter: [{ name: 'recent', valueInteger: 365 }] } });
    assert.equal(post.status, 200, post.text);
    assert.equal(extOf(post.json, 'recent-days').valueInteger, 365);
  });

  test('records careweave cannot map are grouped by their words and marked unchecked', async () => {
    const pid = await patient('Unmapped');
    const src = { source: { reference: `Patient/${pid}` } };
    const x = await svc('POST', 'MedicationStatement', statement(pid, { text: "Grandma's herbal tonic 10 mL" }, { ...src, text: '10 mL at night' }));
    const y = await svc('POST', 'MedicationStatement', statement(pid, { text: 'grandmas herbal tonic' }, { ...src, text: '20 ml at night' }));
    const list = (await medlist(pid)).json;
    assert.equal(list.contained.length, 1);
    const g = list.contained[0];
    assert.equal(g.title, "Grandma's herbal tonic 10 mL");
    assert.deepEqual(g.entry.map((e) => e.item.reference).sort(), [`MedicationStatement/${x.id}`, `MedicationStatement/${y.id}`].sort());
    assert.deepEqual(codesOf(g), ['dose-differs', 'not-prescribed', 'unchecked']);
    assert.match(g.note[0].text, /careweave cannot identify it/);
  });

  test('a medication named by a Medication resource, or a contained one, is grouped by its ingredients', async () => {
    const pid = await patient('Medref');
    const m = await svc('POST', 'Medication', { resourceType: 'Medication', code: med('6809', 'Metformin 500 mg tablet') });
    const byRef = await svc('POST', 'MedicationRequest', {
      resourceType: 'MedicationRequest', status: 'active', intent: 'order', subject: { reference: `Patient/${pid}` },
      medicationReference: { reference: `Medication/${m.id}` }, requester: { reference: `Practitioner/${ids.okafor}` } });
    const contained = await svc('POST', 'MedicationStatement', {
      resourceType: 'MedicationStatement', status: 'active', subject: { reference: `Patient/${pid}` },
      contained: [{ resourceType: 'Medication', id: 'm', code: med('6809', 'Metformin 500 mg tablet') }],
      medicationReference: { reference: '#m' }, informationSource: { reference: `Patient/${pid}` } });
    const g = groups((await medlist(pid)).json);
    assert.deepEqual(Object.keys(g), ['metformin']);
    assert.deepEqual(g.metformin.entry.map((e) => e.item.reference).sort(),
      [`MedicationRequest/${byRef.id}`, `MedicationStatement/${contained.id}`].sort());
    assert.deepEqual(codesOf(g.metformin), []);
  });

  test('an old stop, an entered-in-error record and an empty list', async () => {
    const pid = await patient('Empty');
    let r = await medlist(pid);
    assert.equal(r.status, 200);
    assert.equal(r.json.entry, undefined);
    assert.equal(r.json.emptyReason.coding[0].code, 'unavailable');
    await svc('POST', 'MedicationRequest', request(pid, med('6809', 'Metformin 500 mg'), { status: 'entered-in-error' }));
    await svc('POST', 'MedicationStatement', statement(pid, med('6809', 'Metformin'), { status: 'completed',
      effectivePeriod: { start: '2019-01-01', end: '2020-01-01' }, source: { reference: `Patient/${pid}` } }));
    r = await medlist(pid);
    assert.equal(r.json.entry, undefined);
    assert.match(r.json.note[0].text, /2 older or entered-in-error records not listed/);
    r = await medlist(pid, '?recent=3650');
    assert.deepEqual(Object.keys(groups(r.json)), ['metformin']);
  });

  test('bad parameters, other types and unknown patients', async () => {
    const pid = await patient('Params');
    assert.equal((await medlist(pid, '?recent=abc')).status, 400);
    assert.equal((await medlist(pid, '?recent=99999')).status, 400);
    assert.equal((await medlist(pid, '?bogus=1', { prefer: 'handling=strict' })).status, 400);
    assert.equal((await medlist(pid, '?bogus=1')).status, 200);
    assert.equal((await medlist('no-such-patient')).status, 404);
    assert.equal((await raw(srv.base, 'GET', `Practitioner/${ids.okafor}/$medication-list`)).status, 404);
    const bad = await raw(srv.base, 'POST', `Patient/${pid}/$medication-list`, { body: { resourceType: 'Parameters', parameter: [{ name: 'recent', valueString: 'x' }] } });
    assert.equal(bad.status, 400);
  });

  test("only the caller's reach: another clinician's patient is 404, withheld records are said to be", async () => {
    const doc = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Teamdoc' }] })).id;
    const mine = await patient('Mine');
    const theirs = await patient('Theirs');
    await svc('POST', 'CareTeam', { resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${mine}` },
      participant: [{ member: { reference: `Practitioner/${doc}` } }] });
    await svc('POST', 'MedicationRequest', request(mine, med('6809', 'Metformin 500 mg'), { by: { reference: `Practitioner/${doc}` } }));
    await svc('POST', 'MedicationStatement', { ...statement(mine, med('29046', 'Lisinopril 10 mg'), { source: { reference: `Patient/${mine}` } }),
      meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }] } });
    await svc('POST', 'MedicationRequest', request(theirs, med('6809', 'Metformin 500 mg')));
    await addUser(srv.db, 'medlist-doc', PW, ['--role', 'physician', '--link', `Practitioner/${doc}`]);
    const { token } = await login(new URL(srv.base).origin, 'medlist-doc', PW);
    const h = { authorization: `Bearer ${token}` };
    const out = await medlist(theirs, '', h);
    assert.equal(out.status, 404);
    const r = await medlist(mine, '', h);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(groups(r.json)), ['metformin']);
    assert.equal(extOf(r.json, 'withheld').valueBoolean, true);
    assert.match(r.json.note[0].text, /Some records were withheld/);
  });

  test('the operation is recorded naming the patient, and listed in the CapabilityStatement', async () => {
    const pid = await patient('Audited');
    assert.equal((await medlist(pid)).status, 200);
    let found = null;
    for (let i = 0; i < 50 && !found; i++) {
      const b = (await raw(srv.base, 'GET', `AuditEvent?patient=${pid}`)).json;
      found = (b.entry ?? []).map((e) => e.resource).find((ev) => ev.subtype?.[0]?.code === 'operation');
      if (!found) await sleep(100);
    }
    assert.ok(found, 'an operation record');
    assert.ok(found.entity.some((e) => e.what?.reference === `Patient/${pid}`));
    const cs = (await raw(srv.base, 'GET', 'metadata')).json;
    const ops = cs.rest[0].resource.find((r) => r.type === 'Patient').operation.map((o) => o.name);
    assert.ok(ops.includes('medication-list'));
  });
});

describe('the demo patients', () => {
  let demo;
  before(async () => {
    const db = path.join(tempDir('careweave-medlist-'), 'careweave.db');
    const r = await runCli(['demo', '--db', db]);
    assert.equal(r.code, 0, r.stderr);
    demo = await startServer({ db });
  });
  after(async () => {
    await demo?.stop();
  });

  test('Walter Moss: five medications, acetaminophen never prescribed; the old metformin order in a wider window', async () => {
    const r = await raw(demo.base, 'GET', 'Patient/moss-patient/$medication-list');
    assert.equal(r.status, 200, r.text);
    const g = groups(r.json);
    assert.deepEqual(Object.keys(g), ['acetaminophen', 'atorvastatin', 'lisinopril', 'metformin', 'naproxen']);
    assert.deepEqual(codesOf(g.acetaminophen), ['not-prescribed']);
    for (const k of ['atorvastatin', 'lisinopril', 'metformin', 'naproxen']) assert.deepEqual(codesOf(g[k]), [], k);
    assert.equal(extOf(g.naproxen.entry[0], 'reporter').valueReference.reference, 'Practitioner/samuel-reyes');
    // the 500 mg order ended 2025-03-12: outside 90 days, inside 1000
    assert.deepEqual(g.metformin.entry.map((e) => e.item.reference), ['MedicationRequest/moss-metformin']);
    const wide = groups((await raw(demo.base, 'GET', 'Patient/moss-patient/$medication-list?recent=1000')).json);
    assert.deepEqual(wide.metformin.entry.map((e) => e.item.reference), ['MedicationRequest/moss-metformin', 'MedicationRequest/moss-metformin-500']);
    assert.deepEqual(codesOf(wide.metformin), ['superseded']);
  });

  test('Rosa Delgado: five medications; the cephalexin course is marked once its end date has passed', async () => {
    const r = await raw(demo.base, 'GET', 'Patient/delgado-patient/$medication-list');
    assert.equal(r.status, 200, r.text);
    const g = groups(r.json);
    assert.deepEqual(Object.keys(g), ['atorvastatin', 'cephalexin', 'insulin glargine', 'lisinopril', 'metformin']);
    for (const k of ['atorvastatin', 'insulin glargine', 'lisinopril', 'metformin']) assert.deepEqual(codesOf(g[k]), [], k);
    const ended = Date.now() > Date.parse('2026-11-28T00:00:00Z');
    assert.deepEqual(codesOf(g.cephalexin), ended ? ['course-ended'] : []);
    assert.equal(extOf(g['insulin glargine'].entry[0], 'dose').valueString, '18 units');
  });
});

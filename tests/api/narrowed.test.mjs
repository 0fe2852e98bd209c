// narrowed.test.mjs: reference parameters that are another one narrowed to
// one target type: Observation.patient is Observation.subject where it is
// a Patient, Encounter.practitioner is Encounter.participant where it is a
// Practitioner. The store keeps rows only for the wider one (rows_of in
// src/store/README.md); every way of searching the narrow one must answer
// as FHIR defines it, which these tests check through a real client:
// plain values, absolute URLs, :missing, chains, _has, _include,
// _revinclude, _sort, updates, deletes and the compartment.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, matchIds, entriesByMode, fhirError, assertOutcome } from '../support/server.mjs';

let srv;
let client;
const R = {}; // seed name -> resource
const byId = new Map(); // id -> seed name
const LOINC = 'http://loinc.org';
const code = (c) => ({ coding: [{ system: LOINC, code: c }] });

before(async () => {
  srv = await startServer();
  client = srv.client;
  const create = async (name, resourceType, body) => {
    R[name] = await client.create({ resourceType, body: { resourceType, ...body } });
    byId.set(R[name].id, name);
  };
  await create('pa', 'Patient', { name: [{ family: 'Alder' }] });
  await create('pb', 'Patient', { name: [{ family: 'Birch' }] });
  await create('loc', 'Location', { name: 'Ward Alder' });
  await create('doc', 'Practitioner', { name: [{ family: 'Doe' }] });
  await create('rp', 'RelatedPerson', { patient: { reference: `Patient/${R.pa.id}` }, name: [{ family: 'Alder' }] });
  const obs = (subject, c) => ({ status: 'final', code: code(c), ...(subject ? { subject } : {}) });
  await create('oPa', 'Observation', obs({ reference: `Patient/${R.pa.id}` }, '4548-4'));
  await create('oPb', 'Observation', obs({ reference: `Patient/${R.pb.id}` }, '2339-0'));
  await create('oLoc', 'Observation', obs({ reference: `Location/${R.loc.id}` }, '4548-4'));
  await create('oAbs', 'Observation', obs({ reference: 'https://other.example/fhir/Patient/p9' }, '4548-4'));
  await create('oAbsLoc', 'Observation', obs({ reference: 'https://other.example/fhir/Location/l9' }, '4548-4'));
  await create('oNone', 'Observation', obs(null, '4548-4'));
  await create('enc', 'Encounter', {
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    subject: { reference: `Patient/${R.pa.id}` },
    participant: [
      { individual: { reference: `Practitioner/${R.doc.id}` } },
      { individual: { reference: `RelatedPerson/${R.rp.id}` } },
    ],
  });
});
after(async () => {
  await srv?.stop();
});

async function names(resourceType, searchParams) {
  const b = await client.search({ resourceType, searchParams: { _count: '100', ...searchParams } });
  return matchIds(b).map((id) => byId.get(id) ?? `?${id}`).sort();
}

/** A search the server must refuse as invalid (400 with an OperationOutcome). */
async function refused(resourceType, searchParams) {
  const e = await fhirError(client.search({ resourceType, searchParams }));
  assert.equal(e.status, 400);
  assertOutcome(e.data);
}

async function included(resourceType, searchParams) {
  const b = await client.search({ resourceType, searchParams });
  return entriesByMode(b, 'include').map((r) => byId.get(r.id) ?? `?${r.id}`).sort();
}

describe('patient: subject to a Patient', () => {
  test('plain values: an id, Type/id; another type is not a patient', async () => {
    assert.deepEqual(await names('Observation', { patient: R.pa.id }), ['oPa']);
    assert.deepEqual(await names('Observation', { patient: `Patient/${R.pa.id}` }), ['oPa']);
    assert.deepEqual(await names('Observation', { patient: `${R.pa.id},${R.pb.id}` }), ['oPa', 'oPb']);
    assert.deepEqual(await names('Observation', { subject: `Location/${R.loc.id}` }), ['oLoc']);
    assert.deepEqual(await names('Observation', { patient: R.loc.id }), []);
    await refused('Observation', { patient: `Location/${R.loc.id}` });
  });

  test('an absolute URL elsewhere: a patient when it names a Patient', async () => {
    assert.deepEqual(await names('Observation', { patient: 'https://other.example/fhir/Patient/p9' }), ['oAbs']);
    assert.deepEqual(await names('Observation', { subject: 'https://other.example/fhir/Patient/p9' }), ['oAbs']);
    assert.deepEqual(await names('Observation', { patient: 'https://other.example/fhir/Location/l9' }), []);
    assert.deepEqual(await names('Observation', { subject: 'https://other.example/fhir/Location/l9' }), ['oAbsLoc']);
  });

  test(':missing: a subject that is no Patient is a missing patient', async () => {
    assert.deepEqual(await names('Observation', { 'patient:missing': 'true' }), ['oAbsLoc', 'oLoc', 'oNone']);
    assert.deepEqual(await names('Observation', { 'patient:missing': 'false' }), ['oAbs', 'oPa', 'oPb']);
    assert.deepEqual(await names('Observation', { 'subject:missing': 'true' }), ['oNone']);
  });

  test('beside another parameter', async () => {
    assert.deepEqual(await names('Observation', { patient: R.pa.id, code: '4548-4' }), ['oPa']);
    assert.deepEqual(await names('Observation', { patient: R.pb.id, code: '4548-4' }), []);
    assert.deepEqual(await names('Observation', { code: '4548-4', 'patient:missing': 'false' }), ['oAbs', 'oPa']);
  });

  test('chains and _has go through Patients only', async () => {
    assert.deepEqual(await names('Observation', { 'patient.name': 'alder' }), ['oPa']);
    assert.deepEqual(await names('Observation', { 'subject:Location.name': 'ward' }), ['oLoc']);
    assert.deepEqual(await names('Patient', { '_has:Observation:patient:code': '4548-4' }), ['pa']);
    await refused('Location', { '_has:Observation:patient:code': '4548-4' });
    assert.deepEqual(await names('Location', { '_has:Observation:subject:code': '4548-4' }), ['loc']);
  });

  test('_include and _revinclude bring Patients only', async () => {
    assert.deepEqual(await included('Observation', { _id: `${R.oPa.id},${R.oLoc.id}`, _include: 'Observation:patient' }), ['pa']);
    assert.deepEqual(await included('Observation', { _id: `${R.oPa.id},${R.oLoc.id}`, _include: 'Observation:subject' }), ['loc', 'pa']);
    assert.deepEqual(await included('Patient', { _id: R.pa.id, _revinclude: 'Observation:patient' }), ['oPa']);
    await refused('Location', { _id: R.loc.id, _revinclude: 'Observation:patient' });
    assert.deepEqual(await included('Location', { _id: R.loc.id, _revinclude: 'Observation:subject' }), ['oLoc']);
  });

  test('_sort=patient orders by the Patient referred to', async () => {
    const b = await client.search({ resourceType: 'Observation', searchParams: { _id: `${R.oPa.id},${R.oPb.id}`, _sort: 'patient' } });
    const got = matchIds(b).map((id) => byId.get(id));
    assert.deepEqual(got, R.pa.id < R.pb.id ? ['oPa', 'oPb'] : ['oPb', 'oPa']);
  });

  test('an update moves the match, a delete ends it; the compartment agrees', async () => {
    const body = { ...R.oPb, subject: { reference: `Location/${R.loc.id}` } };
    await client.update({ resourceType: 'Observation', id: R.oPb.id, body });
    assert.deepEqual(await names('Observation', { patient: R.pb.id }), []);
    assert.deepEqual(await names('Observation', { subject: `Location/${R.loc.id}` }), ['oLoc', 'oPb']);
    const back = await client.read({ resourceType: 'Observation', id: R.oPb.id });
    await client.update({ resourceType: 'Observation', id: R.oPb.id, body: { ...back, subject: { reference: `Patient/${R.pb.id}` } } });
    assert.deepEqual(await names('Observation', { patient: R.pb.id }), ['oPb']);
    const inPa = await client.request(`Patient/${R.pa.id}/Observation`);
    assert.deepEqual(matchIds(inPa).map((id) => byId.get(id)), ['oPa']);
    await client.delete({ resourceType: 'Observation', id: R.oPb.id });
    assert.deepEqual(await names('Observation', { patient: R.pb.id }), []);
  });
});

describe('Encounter practitioner: participant to a Practitioner', () => {
  test('a Practitioner participant is a practitioner, a RelatedPerson is not', async () => {
    assert.deepEqual(await names('Encounter', { practitioner: R.doc.id }), ['enc']);
    assert.deepEqual(await names('Encounter', { participant: `RelatedPerson/${R.rp.id}` }), ['enc']);
    assert.deepEqual(await names('Encounter', { practitioner: R.rp.id }), []);
    await refused('Encounter', { practitioner: `RelatedPerson/${R.rp.id}` });
    assert.deepEqual(await names('Encounter', { 'practitioner.name': 'doe' }), ['enc']);
    assert.deepEqual(await names('Encounter', { 'practitioner:missing': 'false' }), ['enc']);
    assert.deepEqual(await included('Encounter', { _id: R.enc.id, _include: 'Encounter:practitioner' }), ['doc']);
    assert.deepEqual(await included('Encounter', { _id: R.enc.id, _include: 'Encounter:participant' }), ['doc', 'rp']);
  });
});

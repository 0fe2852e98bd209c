// search.test.mjs: search semantics against a known seed set, checked the
// way FHIR R4 defines them (https://hl7.org/fhir/R4/search.html): string,
// token, date, quantity, reference, uri parameters with their modifiers and
// prefixes, chaining, _has, _id, _lastUpdated, _sort, _count, _include,
// _revinclude, _summary, _elements, _total, POST _search, strict/lenient
// handling and invalid values.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, raw, httpOf, fhirError, assertOutcome, runTag, matchIds, entriesByMode, linkOf, sleep,
} from '../support/server.mjs';

let srv;
let client;
const tag = runTag('search');
const T = { system: tag.system, code: tag.code };
const MRN = 'http://hospital.example/mrn';
const OTHER = 'http://other.example/id';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const SCT = 'http://snomed.info/sct';
const US_CORE_PATIENT = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient';

// name -> resource, filled in before()
const P = {};
const O = {};
const E = {};
const C = {};
const Q = {};
const byId = new Map(); // id -> seed name
let tBefore;

const patients = {
  p1: { name: [{ family: 'Moss', given: ['Émile'] }], gender: 'male', birthDate: '1950-03-10', identifier: [{ system: MRN, value: 'MRN-001' }], meta: { profile: [US_CORE_PATIENT] } },
  p2: { name: [{ family: 'Mossberg', given: ['Anna'] }], gender: 'female', birthDate: '1951-01-01', identifier: [{ system: MRN, value: 'MRN-002' }, { system: OTHER, value: 'X-9' }] },
  p3: { name: [{ family: 'Ross', given: ['Émilie'] }], gender: 'female', birthDate: '1951-06-15', identifier: [{ value: 'NOSYS-3' }] },
  p4: { name: [{ family: 'moss', given: ['Zoë'] }], gender: 'other', birthDate: '1951-12-31', identifier: [{ system: OTHER, value: 'MRN-001' }] },
  p5: { name: [{ family: 'Bellamy', given: ['Jean'] }], gender: 'male', birthDate: '1952-02-29' },
  p6: { name: [{ family: 'Ångström', given: ['Öle'] }], gender: 'unknown', birthDate: '1960' },
  p7: { name: [{ family: 'Nobirth', given: ['Kim'] }] },
  p8: { name: [{ family: 'Future', given: ['Ada'] }], gender: 'female', birthDate: '2010-05-05' },
};

function hba1c(value, when) {
  return {
    code: { coding: [{ system: LOINC, code: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood' }], text: 'Hemoglobin A1c' },
    valueQuantity: { value, unit: '%', system: UCUM, code: '%' },
    effectiveDateTime: when,
  };
}

before(async () => {
  srv = await startServer();
  client = srv.client;
  tBefore = new Date(Date.now() - 1000).toISOString();
  await sleep(5);
  const create = async (type, name, body, into) => {
    const r = await client.create({ resourceType: type, body: { resourceType: type, ...body, meta: { ...(body.meta ?? {}), tag: [T] } } });
    into[name] = r;
    byId.set(r.id, name);
    return r;
  };
  // a little apart, so that _lastUpdated orders them strictly
  for (const [n, b] of Object.entries(patients)) {
    await create('Patient', n, b, P);
    await sleep(3);
  }
  const ref = (p) => ({ reference: `Patient/${P[p].id}` });
  await create('Encounter', 'e1', { status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: ref('p1'), period: { start: '2023-04-05T09:00:00Z', end: '2023-04-05T11:00:00Z' } }, E);
  await create('Encounter', 'e2', { status: 'in-progress', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' }, subject: ref('p2'), period: { start: '2023-06-01T00:00:00Z' } }, E);
  await create('Observation', 'o1', { status: 'final', subject: ref('p1'), encounter: { reference: `Encounter/${E.e1.id}` }, ...hba1c(6.5, '2023-04-05T10:00:00Z') }, O);
  await create('Observation', 'o2', { status: 'final', subject: ref('p1'), ...hba1c(7.2, '2023-05-05T10:00:00Z') }, O);
  await create('Observation', 'o3', { status: 'final', subject: ref('p2'), ...hba1c(8.1, '2023-06-01') }, O);
  await create('Observation', 'o4', {
    status: 'final', subject: ref('p2'),
    code: { coding: [{ system: LOINC, code: '2339-0', display: 'Glucose [Mass/volume] in Blood' }], text: 'Glucose' },
    valueQuantity: { value: 120, unit: 'mg/dL', system: UCUM, code: 'mg/dL' },
    effectiveDateTime: '2023-06-02T08:30:00+02:00',
  }, O);
  await create('Observation', 'o5', {
    status: 'preliminary', subject: ref('p3'),
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: LOINC, code: '8867-4', display: 'Heart rate' }], text: 'Heart rate' },
    valueQuantity: { value: 72, unit: '/min', system: UCUM, code: '/min' },
    effectiveDateTime: '2022-01-01',
  }, O);
  await create('Condition', 'c1', {
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    code: { coding: [{ system: SCT, code: '44054006', display: 'Diabetes mellitus type 2' }] }, subject: ref('p1'), onsetDateTime: '2010-01-01',
  }, C);
  await create('Condition', 'c2', {
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'resolved' }] },
    code: { coding: [{ system: SCT, code: '38341003', display: 'Hypertensive disorder' }] }, subject: ref('p3'),
  }, C);
  await create('Questionnaire', 'q1', { status: 'active', url: 'http://example.org/fhir/Questionnaire/phq-9', name: 'PHQ9' }, Q);
  await create('Questionnaire', 'q2', { status: 'active', url: 'http://example.org/fhir/Questionnaire/phq-9-extended', name: 'PHQ9X' }, Q);
  await create('Subscription', 's1', {
    status: 'off', reason: 'test', criteria: 'Observation?code=4548-4',
    channel: { type: 'rest-hook', endpoint: 'https://hooks.example.org/careweave', payload: 'application/fhir+json' },
  }, Q);
});
after(async () => {
  await srv?.stop();
});

/** Sorted seed names of the matches of a search (every page). */
async function names(resourceType, searchParams, options) {
  let b = await client.search({ resourceType, searchParams, options });
  assert.equal(b.resourceType, 'Bundle');
  assert.equal(b.type, 'searchset');
  const out = [];
  for (let pages = 0; ; pages++) {
    for (const id of matchIds(b)) out.push(byId.get(id) ?? `?${id}`);
    if (!linkOf(b, 'next') || pages > 50) break;
    b = await client.nextPage({ bundle: b });
  }
  return out.sort();
}

/** Ordered seed names of the first page. */
async function ordered(resourceType, searchParams) {
  const b = await client.search({ resourceType, searchParams });
  return matchIds(b).map((id) => byId.get(id) ?? `?${id}`);
}

function check(type, params, expected, what = '') {
  test(`${type}?${new URLSearchParams(params).toString()} ${what}`.trim(), async () => {
    assert.deepEqual(await names(type, params), [...expected].sort());
  });
}

/** includes all of yes, none of no (for results where other members are implementation-defined). */
function checkSome(type, params, yes, no) {
  test(`${type}?${new URLSearchParams(params).toString()} has ${yes} and not ${no}`, async () => {
    const got = await names(type, params);
    for (const y of yes) assert.ok(got.includes(y), `${y} expected in ${got}`);
    for (const n of no) assert.ok(!got.includes(n), `${n} not expected in ${got}`);
  });
}

describe('string', () => {
  check('Patient', { name: 'moss' }, ['p1', 'p2', 'p4'], '(starts-with, case-insensitive)');
  check('Patient', { name: 'MOSS' }, ['p1', 'p2', 'p4']);
  check('Patient', { family: 'moss' }, ['p1', 'p2', 'p4']);
  check('Patient', { name: 'emil' }, ['p1', 'p3'], '(accent-insensitive)');
  check('Patient', { name: 'émile' }, ['p1']);
  check('Patient', { family: 'angstrom' }, ['p6']);
  check('Patient', { given: 'zoe' }, ['p4']);
  check('Patient', { name: 'oss' }, [], '(not a substring match)');
  check('Patient', { 'name:exact': 'Moss' }, ['p1']);
  check('Patient', { 'family:exact': 'moss' }, ['p4']);
  check('Patient', { 'family:exact': 'Mos' }, []);
  check('Patient', { 'name:contains': 'oss' }, ['p1', 'p2', 'p3', 'p4']);
  check('Patient', { 'family:contains': 'SSB' }, ['p2']);
  check('Patient', { name: 'moss,bellamy' }, ['p1', 'p2', 'p4', 'p5'], '(OR)');
  check('Patient', { name: ['moss', 'anna'] }, ['p2'], '(AND)');
});

describe('token', () => {
  check('Patient', { identifier: `${MRN}|MRN-001` }, ['p1'], '(system|code)');
  check('Patient', { identifier: 'MRN-001' }, ['p1', 'p4'], '(code, any system)');
  check('Patient', { identifier: '|NOSYS-3' }, ['p3'], '(|code: no system)');
  check('Patient', { identifier: '|MRN-001' }, []);
  check('Patient', { identifier: `${OTHER}|` }, ['p2', 'p4'], '(system|: any code)');
  check('Patient', { gender: 'female' }, ['p2', 'p3', 'p8']);
  check('Patient', { gender: 'female,other' }, ['p2', 'p3', 'p4', 'p8']);
  check('Patient', { 'gender:not': 'male' }, ['p2', 'p3', 'p4', 'p6', 'p7', 'p8'], '(:not includes resources without a value)');
  check('Observation', { code: '4548-4' }, ['o1', 'o2', 'o3']);
  check('Observation', { code: `${LOINC}|4548-4` }, ['o1', 'o2', 'o3']);
  check('Observation', { code: `${SCT}|4548-4` }, []);
  check('Observation', { code: `${LOINC}|` }, ['o1', 'o2', 'o3', 'o4', 'o5']);
  check('Observation', { 'code:not': '4548-4' }, ['o4', 'o5']);
  check('Observation', { 'code:text': 'hemoglobin' }, ['o1', 'o2', 'o3']);
  check('Observation', { 'code:text': 'GLUCOSE' }, ['o4']);
  check('Observation', { category: 'vital-signs' }, ['o5']);
  check('Observation', { status: 'preliminary' }, ['o5']);
  check('Condition', { code: `${SCT}|44054006` }, ['c1']);
  check('Condition', { 'clinical-status': 'active' }, ['c1']);
  check('Encounter', { class: 'AMB' }, ['e1']);
  check('Patient', { _tag: tag.param }, ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8']);
});

// A page cut from one parameter's index rows (sqlite_search.c ix_plan):
// those rows must stand for exactly the live resources of the type.
describe('a search driven by one parameter\'s index', () => {
  const LOCAL = 'http://clinic.example/codes';
  let pid;
  const made = {};
  before(async () => {
    pid = P.p5.id; // a seed patient without Conditions: no new Patient for the Patient searches above
    const cond = (name, coding) => client.create({ resourceType: 'Condition', body: { resourceType: 'Condition', subject: { reference: `Patient/${pid}` }, code: { coding }, meta: { tag: [T] } } }).then((r) => { made[name] = r; byId.set(r.id, name); });
    // two codings with the same code: two index rows, one resource
    await cond('twice', [{ system: SCT, code: '239872002' }, { system: LOCAL, code: '239872002' }]);
    await cond('gone', [{ system: SCT, code: '239872002' }]);
    await cond('changed', [{ system: SCT, code: '239872002' }]);
    for (let i = 0; i < 5; i++) await cond(`paged${i}`, [{ system: SCT, code: '271737000' }]);
    await client.delete({ resourceType: 'Condition', id: made.gone.id });
    await client.update({ resourceType: 'Condition', id: made.changed.id, body: { resourceType: 'Condition', id: made.changed.id, subject: { reference: `Patient/${pid}` }, code: { coding: [{ system: SCT, code: '396275006' }] }, meta: { tag: [T] } } });
  });
  test('a resource with two matching rows is one match; deleted and changed ones are not matches', async () => {
    assert.deepEqual(await names('Condition', { patient: pid, code: '239872002' }), ['twice']);
    assert.deepEqual(await names('Condition', { patient: pid, code: `${SCT}|239872002,${LOCAL}|239872002` }), ['twice']);
    assert.deepEqual(await names('Condition', { code: `${LOCAL}|239872002` }), ['twice']);
    assert.deepEqual(await names('Condition', { patient: pid, code: '396275006' }), ['changed']);
    assert.deepEqual(await names('Condition', { subject: `Patient/${pid}`, _tag: tag.param }),
      ['changed', 'paged0', 'paged1', 'paged2', 'paged3', 'paged4', 'twice']);
  });
  test('pages forward and back through it', async () => {
    const first = await client.search({ resourceType: 'Condition', searchParams: { patient: pid, code: '271737000', _count: 2 } });
    const seen = [matchIds(first)];
    let page = first;
    while (linkOf(page, 'next')) {
      page = await client.nextPage({ bundle: page });
      seen.push(matchIds(page));
    }
    assert.deepEqual(seen.map((p) => p.length), [2, 2, 1]);
    assert.deepEqual(seen.flat().map((id) => byId.get(id)).sort(), ['paged0', 'paged1', 'paged2', 'paged3', 'paged4']);
    const back = await client.prevPage({ bundle: page });
    assert.deepEqual(matchIds(back), seen[1]);
  });
  test('with _id or _lastUpdated beside it (read from res)', async () => {
    assert.deepEqual(await names('Condition', { patient: pid, _id: made.twice.id }), ['twice']);
    assert.deepEqual(await names('Condition', { patient: pid, code: '239872002', _lastUpdated: 'gt2000-01-01' }), ['twice']);
  });
});

describe(':missing', () => {
  check('Patient', { 'birthdate:missing': 'true' }, ['p7']);
  check('Patient', { 'birthdate:missing': 'false' }, ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p8']);
  check('Patient', { 'gender:missing': 'true' }, ['p7']);
  check('Observation', { 'encounter:missing': 'false' }, ['o1']);
  check('Observation', { 'category:missing': 'true' }, ['o1', 'o2', 'o3', 'o4']);
});

describe('date', () => {
  check('Patient', { birthdate: '1951' }, ['p2', 'p3', 'p4'], '(partial date: the year)');
  check('Patient', { birthdate: '1951-06-15' }, ['p3']);
  check('Patient', { birthdate: 'eq1951-06-15' }, ['p3']);
  check('Patient', { birthdate: 'ge1951-06' }, ['p3', 'p4', 'p5', 'p6', 'p8']);
  check('Patient', { birthdate: 'gt1951-06-15' }, ['p4', 'p5', 'p6', 'p8']);
  check('Patient', { birthdate: 'lt1951' }, ['p1']);
  check('Patient', { birthdate: 'le1951-06-15' }, ['p1', 'p2', 'p3']);
  check('Patient', { birthdate: 'sa1951-06-15' }, ['p4', 'p5', 'p6', 'p8']);
  check('Patient', { birthdate: 'eb1951-06-15' }, ['p1', 'p2']);
  check('Patient', { birthdate: '1960' }, ['p6']);
  check('Patient', { birthdate: '1960-05' }, [], '(the search range must contain the partial value)');
  check('Patient', { birthdate: ['ge1951-06-15', 'le1952'] }, ['p3', 'p4', 'p5'], '(AND: a range)');
  check('Patient', { birthdate: '1950-03-10,1952-02-29' }, ['p1', 'p5'], '(OR)');
  checkSome('Patient', { birthdate: 'ne1951' }, ['p1', 'p5', 'p6', 'p8'], ['p2', 'p3', 'p4']);
  checkSome('Patient', { birthdate: 'ap1951-06-15' }, ['p3'], ['p8']);
  check('Observation', { date: '2023-04-05' }, ['o1']);
  check('Observation', { date: '2023-06' }, ['o3', 'o4']);
  check('Observation', { date: 'gt2023-05-05T12:00:00Z' }, ['o3', 'o4']);
  check('Observation', { date: '2023-06-02T06:30:00Z' }, ['o4'], '(time zones are normalized to UTC)');
  check('Observation', { date: 'lt2023' }, ['o5']);
  check('Encounter', { date: '2023-04-05' }, ['e1']);
  check('Condition', { 'onset-date': 'le2010-01-01' }, ['c1']);
});

describe('quantity', () => {
  check('Observation', { 'value-quantity': `gt7|${UCUM}|%` }, ['o2', 'o3']);
  check('Observation', { 'value-quantity': 'lt7' }, ['o1']);
  check('Observation', { 'value-quantity': '7.2' }, ['o2'], '(implicit precision)');
  check('Observation', { 'value-quantity': `7.2|${UCUM}|%` }, ['o2']);
  check('Observation', { 'value-quantity': '120||mg/dL' }, ['o4'], '(unit code, any system)');
  check('Observation', { 'value-quantity': `ge8.1|${UCUM}|%` }, ['o3']);
  check('Observation', { 'value-quantity': `gt7|${UCUM}|mg/dL` }, ['o4']);
  check('Observation', { 'value-quantity': 'le72' }, ['o1', 'o2', 'o3', 'o5']);
});

describe('reference', () => {
  test('subject=Patient/x, subject=x, patient=x, subject:Patient=x', async () => {
    const id = P.p1.id;
    assert.deepEqual(await names('Observation', { subject: `Patient/${id}` }), ['o1', 'o2']);
    assert.deepEqual(await names('Observation', { subject: id }), ['o1', 'o2']);
    assert.deepEqual(await names('Observation', { patient: id }), ['o1', 'o2']);
    assert.deepEqual(await names('Observation', { patient: `Patient/${id}` }), ['o1', 'o2']);
    assert.deepEqual(await names('Observation', { 'subject:Patient': id }), ['o1', 'o2']);
    assert.deepEqual(await names('Observation', { subject: `Patient/${P.p2.id},Patient/${P.p3.id}` }), ['o3', 'o4', 'o5']);
    assert.deepEqual(await names('Observation', { subject: 'Patient/does-not-exist' }), []);
    assert.deepEqual(await names('Observation', { 'subject:Location': id }), []);
    assert.deepEqual(await names('Observation', { encounter: `Encounter/${E.e1.id}` }), ['o1']);
    assert.deepEqual(await names('Condition', { patient: P.p3.id }), ['c2']);
    assert.deepEqual(await names('Encounter', { subject: P.p1.id }), ['e1']);
  });
  test('an absolute reference to this server matches too', async () => {
    assert.deepEqual(await names('Observation', { subject: `${srv.base}/Patient/${P.p1.id}` }), ['o1', 'o2']);
  });
});

describe('uri', () => {
  check('Questionnaire', { url: 'http://example.org/fhir/Questionnaire/phq-9' }, ['q1'], '(exact, not a prefix)');
  check('Questionnaire', { url: 'http://example.org/fhir/Questionnaire/phq' }, []);
  check('Questionnaire', { 'url:below': 'http://example.org/fhir/Questionnaire' }, ['q1', 'q2']);
  check('Subscription', { url: 'https://hooks.example.org/careweave' }, ['s1']);
  check('Patient', { _profile: US_CORE_PATIENT }, ['p1']);
});

describe('chaining and _has', () => {
  check('Observation', { 'subject:Patient.name': 'moss' }, ['o1', 'o2', 'o3', 'o4']);
  check('Observation', { 'subject:Patient.birthdate': '1951-06-15' }, ['o5']);
  check('Observation', { 'patient.identifier': `${MRN}|MRN-002` }, ['o3', 'o4']);
  check('Observation', { 'subject:Patient.name': 'nobody' }, []);
  check('Patient', { '_has:Observation:patient:code': '4548-4' }, ['p1', 'p2']);
  check('Patient', { '_has:Observation:subject:code': '2339-0' }, ['p2']);
  check('Patient', { '_has:Condition:subject:code': '38341003' }, ['p3']);
  check('Patient', { '_has:Observation:patient:code': '0000-0' }, []);
});

describe('_id and _lastUpdated', () => {
  test('_id', async () => {
    assert.deepEqual(await names('Patient', { _id: P.p1.id }), ['p1']);
    assert.deepEqual(await names('Patient', { _id: `${P.p1.id},${P.p3.id}` }), ['p1', 'p3']);
    assert.deepEqual(await names('Patient', { _id: 'nope' }), []);
  });
  test('_lastUpdated', async () => {
    const all = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8'];
    assert.deepEqual(await names('Patient', { _lastUpdated: `gt${tBefore}` }), all);
    assert.deepEqual(await names('Patient', { _lastUpdated: `lt${tBefore}` }), []);
    const lu = P.p4.meta.lastUpdated;
    const got = await names('Patient', { _lastUpdated: `le${lu}` });
    assert.ok(got.includes('p1') && got.includes('p4'), `le lastUpdated of p4: ${got}`);
    assert.ok(!got.includes('p8'), `p8 was created after p4: ${got}`);
  });
});

describe('_sort', () => {
  const withBirth = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p8'];
  test('_sort=birthdate ascending', async () => {
    const got = (await ordered('Patient', { _tag: tag.param, _sort: 'birthdate' })).filter((n) => n !== 'p7');
    assert.deepEqual(got, withBirth);
  });
  test('_sort=-birthdate descending', async () => {
    const got = (await ordered('Patient', { _tag: tag.param, _sort: '-birthdate' })).filter((n) => n !== 'p7');
    assert.deepEqual(got, [...withBirth].reverse());
  });
  test('_sort=gender,-birthdate (multiple keys)', async () => {
    const got = (await ordered('Patient', { _tag: tag.param, _sort: 'gender,-birthdate' })).filter((n) => n !== 'p7');
    assert.deepEqual(got, ['p8', 'p3', 'p2', 'p5', 'p1', 'p4', 'p6']);
  });
  test('_sort=-_lastUpdated: newest first', async () => {
    const got = await ordered('Patient', { _tag: tag.param, _sort: '-_lastUpdated' });
    assert.deepEqual(got, ['p8', 'p7', 'p6', 'p5', 'p4', 'p3', 'p2', 'p1']);
  });
  test('_sort=date on Observation', async () => {
    assert.deepEqual(await ordered('Observation', { _sort: 'date' }), ['o5', 'o1', 'o2', 'o3', 'o4']);
    assert.deepEqual(await ordered('Observation', { _sort: '-date' }), ['o4', 'o3', 'o2', 'o1', 'o5']);
  });
  test('_sort is kept across pages', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _tag: tag.param, _sort: 'birthdate', _count: 3 } });
    const seq = [];
    let page = b;
    for (let i = 0; i < 10 && page; i++) {
      seq.push(...matchIds(page).map((id) => byId.get(id)));
      page = linkOf(page, 'next') ? await client.nextPage({ bundle: page }) : null;
    }
    assert.equal(seq.length, 8);
    assert.deepEqual(seq.filter((n) => n !== 'p7'), withBirth);
  });
});

describe('_count, _include, _revinclude, _summary, _elements, _total', () => {
  test('_count=2 gives 2 and a next link', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _tag: tag.param, _count: 2 } });
    assert.equal(matchIds(b).length, 2);
    assert.ok(linkOf(b, 'next'), 'next link');
    assert.ok(linkOf(b, 'self'), 'self link');
  });
  test('_count=0 gives no entries (a count only)', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _tag: tag.param, _count: 0 } });
    assert.equal((b.entry ?? []).length, 0);
  });
  test('_count above the maximum is capped, not an error', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _tag: tag.param, _count: 100000 } });
    assert.equal(matchIds(b).length, 8);
  });
  test('_include=Observation:subject', async () => {
    const b = await client.search({ resourceType: 'Observation', searchParams: { code: '4548-4', _include: 'Observation:subject' } });
    assert.deepEqual(matchIds(b).map((i) => byId.get(i)).sort(), ['o1', 'o2', 'o3']);
    const inc = entriesByMode(b, 'include');
    assert.deepEqual(inc.map((r) => `${r.resourceType}/${byId.get(r.id)}`).sort(), ['Patient/p1', 'Patient/p2'], 'each included once');
  });
  test('_include=Observation:encounter and two includes', async () => {
    const b = await client.search({ resourceType: 'Observation', searchParams: { _id: O.o1.id, _include: ['Observation:subject', 'Observation:encounter'] } });
    const inc = entriesByMode(b, 'include').map((r) => `${r.resourceType}/${byId.get(r.id)}`).sort();
    assert.deepEqual(inc, ['Encounter/e1', 'Patient/p1']);
  });
  test('_revinclude=Observation:subject', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _id: P.p1.id, _revinclude: 'Observation:subject' } });
    assert.deepEqual(matchIds(b).map((i) => byId.get(i)), ['p1']);
    const inc = entriesByMode(b, 'include').map((r) => byId.get(r.id)).sort();
    assert.deepEqual(inc, ['o1', 'o2']);
  });
  test('_summary=count', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _tag: tag.param, _summary: 'count' } });
    assert.equal(b.total, 8);
    assert.equal((b.entry ?? []).length, 0);
    const o = await client.search({ resourceType: 'Observation', searchParams: { code: '4548-4', _summary: 'count' } });
    assert.equal(o.total, 3);
  });
  test('a result that fits on one page carries its total; a paged one does not guess', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _tag: tag.param } });
    assert.equal(b.total, 8);
    assert.equal(b.entry.length, 8);
    const p = await client.search({ resourceType: 'Patient', searchParams: { _tag: tag.param, _count: 3 } });
    assert.equal(p.entry.length, 3);
    assert.equal(p.total, undefined);
  });
  test('_summary=true marks the resources SUBSETTED', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _id: P.p1.id, _summary: 'true' } });
    const r = b.entry[0].resource;
    assert.equal(r.id, P.p1.id);
    assert.ok((r.meta?.tag ?? []).some((t) => t.code === 'SUBSETTED'));
  });
  test('_elements keeps the listed elements and marks SUBSETTED', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _id: P.p1.id, _elements: 'identifier,gender' } });
    const r = b.entry[0].resource;
    assert.equal(r.resourceType, 'Patient');
    assert.equal(r.id, P.p1.id);
    assert.deepEqual(r.identifier, patients.p1.identifier);
    assert.equal(r.gender, 'male');
    assert.equal(r.name, undefined);
    assert.equal(r.birthDate, undefined);
    assert.ok((r.meta?.tag ?? []).some((t) => t.system === 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue' && t.code === 'SUBSETTED'),
      `SUBSETTED tag: ${JSON.stringify(r.meta)}`);
  });
  test('_total=accurate', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _tag: tag.param, _count: 2, _total: 'accurate' } });
    assert.equal(b.total, 8);
    assert.equal(matchIds(b).length, 2);
    const o = await client.search({ resourceType: 'Observation', searchParams: { 'value-quantity': 'gt7', _total: 'accurate' } });
    assert.equal(o.total, matchIds(o).length);
  });
  test('entries carry fullUrl and search.mode', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _id: P.p1.id } });
    assert.equal(b.entry[0].fullUrl, `${srv.base}/Patient/${P.p1.id}`);
    assert.equal(b.entry[0].search?.mode, 'match');
  });
});

describe('POST _search', () => {
  const cases = [
    { name: 'moss' },
    { 'value-quantity': `gt7|${UCUM}|%` },
    { birthdate: 'ge1951-06', gender: 'female' },
    { 'subject:Patient.name': 'moss', _sort: '-date' },
  ];
  for (const params of cases) {
    test(`POST _search ${JSON.stringify(params)} gives what GET gives`, async () => {
      const type = Object.keys(params).some((k) => k.startsWith('subject') || k.startsWith('value')) ? 'Observation' : 'Patient';
      const g = await client.search({ resourceType: type, searchParams: params });
      const p = await client.search({ resourceType: type, searchParams: params, options: { postSearch: true } });
      assert.equal(httpOf(p).status, 200);
      assert.deepEqual(matchIds(p), matchIds(g));
      assert.ok(matchIds(g).length > 0);
    });
  }
  test('POST _search with both query string and body parameters ANDs them', async () => {
    const r = await raw(srv.base, 'POST', `Patient/_search?gender=female`, {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `birthdate=${encodeURIComponent('1951')}`,
    });
    assert.equal(r.status, 200);
    assert.deepEqual(matchIds(r.json).map((i) => byId.get(i)).sort(), ['p2', 'p3']);
  });
});

describe('handling of unknown parameters and invalid values', () => {
  test('unknown parameter with Prefer: handling=strict -> 400', async () => {
    const e = await fhirError(client.search({ resourceType: 'Patient', searchParams: { name: 'moss', 'not-a-param': 'x' }, options: { headers: { prefer: 'handling=strict' } } }));
    assert.equal(e.status, 400);
    assertOutcome(e.data);
  });
  test('an unknown parameter in a chain with Prefer: handling=strict -> 400', async () => {
    const e = await fhirError(client.search({ resourceType: 'Observation', searchParams: { 'subject:Patient.nope': 'x' }, options: { headers: { prefer: 'handling=strict' } } }));
    assert.equal(e.status, 400);
    assertOutcome(e.data);
  });
  test('unknown parameter with Prefer: handling=lenient -> 200, ignored', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { name: 'moss', 'not-a-param': 'x' }, options: { headers: { prefer: 'handling=lenient' } } });
    assert.equal(httpOf(b).status, 200);
    assert.deepEqual(matchIds(b).map((i) => byId.get(i)).sort(), ['p1', 'p2', 'p4']);
    const self = linkOf(b, 'self') ?? '';
    assert.ok(!self.includes('not-a-param'), `self link leaves out the ignored parameter: ${self}`);
  });
  const bad = [
    ['Patient', { birthdate: 'notadate' }],
    ['Patient', { birthdate: '2023-02-30' }],
    ['Patient', { birthdate: 'xx2020' }],
    ['Patient', { 'name:foo': 'x' }],
    ['Observation', { 'value-quantity': 'abc' }],
    ['Observation', { 'value-quantity': 'gt' }],
    ['Patient', { _count: 'abc' }],
    ['Patient', { _count: '-1' }],
    ['Patient', { _sort: 'not-a-param' }],
    ['Patient', { _include: 'Patient:nope' }],
    ['Patient', { _summary: 'maybe' }],
    ['Patient', { _total: 'lots' }],
    ['Patient', { 'birthdate:missing': 'perhaps' }],
    ['Patient', { '_has:Observation:patient': 'x' }],
  ];
  for (const [type, params] of bad) {
    test(`${type}?${new URLSearchParams(params)} -> 400 OperationOutcome`, async () => {
      const e = await fhirError(client.search({ resourceType: type, searchParams: params }));
      assert.equal(e.status, 400);
      assertOutcome(e.data);
    });
  }
});

describe('more dates and quantities', () => {
  check('Encounter', { date: 'ge2030-01-01' }, ['e2'], '(a period without end is ongoing)');
  check('Encounter', { date: 'lt2023-05' }, ['e1']);
  check('Observation', { date: '2023-04-05T10:00' }, ['o1'], '(minute precision, no zone)');
  check('Observation', { date: 'ge2023-04-05T10:00:00+02:00' }, ['o1', 'o2', 'o3', 'o4'], '(offsets)');
  check('Observation', { 'value-quantity': 'ne7.2' }, ['o1', 'o3', 'o4', 'o5']);
  check('Observation', { 'value-quantity': 'ap7' }, ['o1', 'o2'], '(ap: within 10%: 6.3..7.7)');
  check('Observation', { 'subject:missing': 'false', 'encounter:missing': 'true', code: '4548-4' }, ['o2', 'o3']);
});

describe('more _include', () => {
  test('_include with paging: each page brings its own included resources', async () => {
    let b = await client.search({ resourceType: 'Observation', searchParams: { code: '4548-4', _count: 1, _include: 'Observation:subject', _sort: 'date' } });
    const seen = [];
    for (let i = 0; i < 5 && b; i++) {
      const m = entriesByMode(b, 'match');
      assert.equal(m.length, 1);
      const inc = entriesByMode(b, 'include');
      assert.deepEqual(inc.map((r) => `Patient/${r.id}`), [m[0].subject.reference], 'the subject of this page');
      seen.push(byId.get(m[0].id));
      b = linkOf(b, 'next') ? await client.nextPage({ bundle: b }) : null;
    }
    assert.deepEqual(seen, ['o1', 'o2', 'o3']);
  });
  test('_include=* includes every referenced resource', async () => {
    const b = await client.search({ resourceType: 'Observation', searchParams: { _id: O.o1.id, _include: '*' } });
    const inc = entriesByMode(b, 'include').map((r) => `${r.resourceType}/${byId.get(r.id)}`).sort();
    assert.deepEqual(inc, ['Encounter/e1', 'Patient/p1']);
  });
  test('_include:iterate follows the included resources', async () => {
    const b = await client.search({ resourceType: 'Observation', searchParams: { _id: O.o1.id, _include: 'Observation:encounter', '_include:iterate': 'Encounter:subject' } });
    const inc = entriesByMode(b, 'include').map((r) => `${r.resourceType}/${byId.get(r.id)}`).sort();
    assert.deepEqual(inc, ['Encounter/e1', 'Patient/p1']);
  });
  test('_revinclude of two types', async () => {
    const b = await client.search({ resourceType: 'Patient', searchParams: { _id: P.p1.id, _revinclude: ['Observation:subject', 'Condition:subject', 'Encounter:subject'] } });
    const inc = entriesByMode(b, 'include').map((r) => `${r.resourceType}/${byId.get(r.id)}`).sort();
    assert.deepEqual(inc, ['Condition/c1', 'Encounter/e1', 'Observation/o1', 'Observation/o2']);
  });
  test('_summary=count with _include has no entries', async () => {
    const b = await client.search({ resourceType: 'Observation', searchParams: { code: '4548-4', _include: 'Observation:subject', _summary: 'count' } });
    assert.equal(b.total, 3);
    assert.equal((b.entry ?? []).length, 0);
  });
});

describe('escaping and index maintenance', () => {
  const PR = {};
  before(async () => {
    const mk = async (n, body) => {
      PR[n] = await client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', ...body } });
      byId.set(PR[n].id, n);
    };
    await mk('pr1', { name: [{ family: 'Smith,Jones' }], identifier: [{ system: 'urn:x', value: 'A|B' }], gender: 'male' });
    await mk('pr2', { name: [{ family: 'Smithers' }], identifier: [{ system: 'urn:x', value: 'A' }], gender: 'male' });
    await mk('pr3', { name: [{ family: 'Jones' }], identifier: [{ system: 'urn:x', value: 'A$B' }], gender: 'female' });
  });
  test('\\, escapes a comma in a value; a bare comma is OR', async () => {
    assert.deepEqual(await names('Practitioner', { family: 'Smith\\,Jones' }), ['pr1']);
    assert.deepEqual(await names('Practitioner', { family: 'Smith,Jones' }), ['pr1', 'pr2', 'pr3']);
  });
  test('\\| escapes a bar in a token value', async () => {
    assert.deepEqual(await names('Practitioner', { identifier: 'urn:x|A\\|B' }), ['pr1']);
    assert.deepEqual(await names('Practitioner', { identifier: 'urn:x|A' }), ['pr2']);
    assert.deepEqual(await names('Practitioner', { identifier: 'urn:x|A$B' }), ['pr3']);
  });
  test('the index follows updates and deletes', async () => {
    const id = PR.pr2.id;
    await client.update({ resourceType: 'Practitioner', id, body: { resourceType: 'Practitioner', id, name: [{ family: 'Renamed' }], gender: 'female' } });
    assert.deepEqual(await names('Practitioner', { family: 'smithers' }), []);
    assert.deepEqual(await names('Practitioner', { family: 'renamed' }), ['pr2']);
    assert.deepEqual(await names('Practitioner', { gender: 'male' }), ['pr1']);
    assert.deepEqual(await names('Practitioner', { identifier: 'urn:x|A' }), [], 'an element removed by the update is no longer indexed');
    await client.delete({ resourceType: 'Practitioner', id });
    assert.deepEqual(await names('Practitioner', { family: 'renamed' }), []);
    assert.deepEqual(await names('Practitioner', { gender: 'female' }), ['pr3']);
    const b = await client.search({ resourceType: 'Practitioner', searchParams: { _summary: 'count' } });
    assert.equal(b.total, 2);
  });
});

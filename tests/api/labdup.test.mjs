// tests/api/labdup.test.mjs: duplicate lab tests on the write path
// (issue 4, "Duplicate tests"; src/coord/labs.c, src/api/rules.c).
//
// Each patient gets the results and orders a case needs, written by the
// service user startServer signs in as; a lab order (ServiceRequest) is
// then written and what the rules decide is read back as a clinician
// would: the DetectedIssues on the patient and the Communications to the
// team. Every date is fixed relative to the order's authoredOn, so the
// cases mean the same whatever day they run. The knowledge base is the
// repository's data/kb (labs.tsv, lab-retest.tsv).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, raw } from '../support/server.mjs';
import { ruleHelpers } from '../support/rules.mjs';

const LOINC = 'http://loinc.org';
const SCT = 'http://snomed.info/sct';
const ACT = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const CW_CODES = 'https://careweave.org/fhir/CodeSystem/detected-issue';
const AUTHORED = '2026-11-23T10:00:00-06:00';
const LAB = [{ coding: [{ system: SCT, code: '108252007', display: 'Laboratory procedure' }] }];

let srv;
const P = {}; // practitioners by role
const { svc, patient, issuesOf, alertsOf, team } = ruleHelpers({ srv: () => srv, P });

const loinc = (code, display) => ({ coding: [{ system: LOINC, code, display }] });
const hba1c = loinc('4548-4', 'Hemoglobin A1c/Hemoglobin.total in Blood');

function order(pid, code, extra = {}) {
  return {
    resourceType: 'ServiceRequest', status: 'active', intent: 'order', category: LAB,
    subject: { reference: `Patient/${pid}` },
    requester: { reference: `Practitioner/${P.requester}` },
    authoredOn: AUTHORED, code, ...extra,
  };
}

async function result(pid, code, when, value, unit, extra = {}) {
  return (await svc('POST', 'Observation', {
    resourceType: 'Observation', status: 'final', code,
    subject: { reference: `Patient/${pid}` }, effectiveDateTime: when,
    valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit }, ...extra,
  })).json.id;
}

before(async () => {
  srv = await startServer();
  for (const role of ['requester', 'other', 'pcp', 'pharmacist', 'coordinator']) {
    P[role] = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: `Dr ${role}` }] })).json.id;
  }
});
after(async () => {
  await srv?.stop();
});

describe('the same test already resulted', () => {
  let pid;
  let obs;
  let sr;
  before(async () => {
    pid = await patient('Resulted');
    await team(pid);
    obs = await result(pid, hba1c, '2026-11-01T08:10:00-06:00', 7.2, '%');
    await result(pid, hba1c, '2026-08-01T08:10:00-05:00', 7.9, '%'); // outside 60 days
  });

  test('within the interval: written, an ALLDONE finding saying when and what, the team told', async () => {
    sr = (await svc('POST', 'ServiceRequest', order(pid, { ...hba1c, text: 'HbA1c' }))).json.id;
    const found = await issuesOf(pid);
    assert.equal(found.length, 1, JSON.stringify(found).slice(0, 600));
    const [di] = found;
    assert.equal(di.status, 'final');
    assert.equal(di.severity, 'moderate');
    assert.deepEqual(di.code.coding[0], { system: ACT, code: 'ALLDONE', display: 'already performed' });
    assert.deepEqual(di.implicated.map((x) => x.reference), [`ServiceRequest/${sr}`, `Observation/${obs}`]);
    assert.equal(di.patient.reference, `Patient/${pid}`);
    assert.match(di.detail, /HbA1c was already done 22 days before this order/);
    assert.match(di.detail, /7\.2 % on 2026-11-01/);
    assert.match(di.detail, /60 days \(children with type 1 diabetes\)/);
    assert.match(di.detail, /Source: .*G147/);
    const [c] = await alertsOf(pid);
    assert.ok(c, 'a Communication');
    assert.equal(c.priority, 'routine');
    assert.equal(c.about[0].reference, `DetectedIssue/${di.id}`);
    assert.match(c.payload[0].contentString, /^Duplicate test \(moderate\): HbA1c/);
    assert.deepEqual(c.recipient.map((x) => x.reference).sort(),
      [P.requester, P.pcp, P.coordinator].map((p) => `Practitioner/${p}`).sort(),
      'the requester, the primary care physician and the coordinator');
  });

  test('writing the order again raises nothing new', async () => {
    const s = (await svc('GET', `ServiceRequest/${sr}`)).json;
    delete s.meta;
    s.note = [{ text: 'fasting not needed' }];
    await svc('PUT', `ServiceRequest/${sr}`, s);
    assert.equal((await issuesOf(pid)).length, 1);
    assert.equal((await alertsOf(pid)).length, 1);
  });

  test('revoking the order settles its finding', async () => {
    const s = (await svc('GET', `ServiceRequest/${sr}`)).json;
    delete s.meta;
    s.status = 'revoked';
    await svc('PUT', `ServiceRequest/${sr}`, s);
    const [di] = await issuesOf(pid);
    assert.equal(di.status, 'mitigated');
    const last = di.mitigation[di.mitigation.length - 1];
    assert.deepEqual(last.action.coding[0], { system: ACT, code: '8', display: 'Other Action Taken' });
    assert.match(last.action.text, new RegExp(`ServiceRequest/${sr} is no longer current`));
  });
});

describe('what counts and what does not', () => {
  test('outside the interval, after the order, the order\'s own result, another patient\'s: nothing', async () => {
    const pid = await patient('Nothing');
    const other = await patient('Neighbour');
    await result(pid, hba1c, '2026-09-20T08:00:00-05:00', 7.4, '%'); // 64 days before
    await result(pid, hba1c, '2026-11-24T08:00:00-06:00', 7.0, '%'); // after the order
    await result(other, hba1c, '2026-11-20T08:00:00-06:00', 6.9, '%');
    const sr = (await svc('POST', 'ServiceRequest', order(pid, hba1c))).json.id;
    await result(pid, hba1c, '2026-11-23T09:00:00-06:00', 7.1, '%', { basedOn: [{ reference: `ServiceRequest/${sr}` }] });
    const s = (await svc('GET', `ServiceRequest/${sr}`)).json;
    delete s.meta;
    s.note = [{ text: 'again' }];
    await svc('PUT', `ServiceRequest/${sr}`, s);
    assert.deepEqual(await issuesOf(pid), []);
    assert.deepEqual(await issuesOf(other), []);
  });

  test('a panel containing the ordered test counts (LDL ordered, a lipid panel resulted)', async () => {
    const pid = await patient('Panel');
    const obs = (await svc('POST', 'Observation', {
      resourceType: 'Observation', status: 'final', code: loinc('57698-3', 'Lipid panel'),
      subject: { reference: `Patient/${pid}` }, effectiveDateTime: '2026-10-15T08:00:00-05:00',
      hasMember: [{ display: 'LDL' }],
    })).json.id;
    const sr = (await svc('POST', 'ServiceRequest', order(pid, loinc('13457-7', 'LDL cholesterol (calculated)')))).json.id;
    const [di] = await issuesOf(pid);
    assert.ok(di, 'a finding');
    assert.equal(di.code.coding[0].code, 'ALLDONE');
    assert.deepEqual(di.implicated.map((x) => x.reference), [`ServiceRequest/${sr}`, `Observation/${obs}`]);
    assert.match(di.detail, /LDL cholesterol \(within a lipid panel\) was already done 39 days before/);
    assert.match(di.detail, /for LDL cholesterol \(that of lipid panel\) is 90 days/);
  });

  test('a member of the ordered panel counts (a BMP ordered, potassium resulted)', async () => {
    const pid = await patient('Member');
    const obs = await result(pid, loinc('2823-3', 'Potassium'), '2026-11-19T08:00:00-06:00', 5, 'mmol/L');
    await result(pid, loinc('2951-2', 'Sodium'), '2026-11-01T08:00:00-05:00', 139, 'mmol/L'); // 22 days: its interval is 4
    const r = await svc('POST', 'ServiceRequest', order(pid, loinc('24320-4', 'Basic metabolic panel')),
      { prefer: 'return=OperationOutcome' });
    const found = await issuesOf(pid);
    assert.equal(found.length, 1, JSON.stringify(found).slice(0, 600));
    assert.match(found[0].implicated[0].reference, /^ServiceRequest\//);
    assert.equal(found[0].implicated[1].reference, `Observation/${obs}`);
    assert.match(found[0].detail, /potassium \(part of the ordered basic metabolic panel\) was already done 4 days before/);
    assert.match(found[0].detail, /5 mmol\/L on 2026-11-19/);
    assert.match(found[0].detail, /for potassium is 8 days/);
    // the panel itself has no interval of its own: said, not hidden
    assert.ok(r.json.issue?.some((i) => /Not checked for duplicate tests: basic metabolic panel/.test(i.diagnostics ?? '')), r.text.slice(0, 400));
  });

  test('a DiagnosticReport counts, with its conclusion', async () => {
    const pid = await patient('Report');
    const dr = (await svc('POST', 'DiagnosticReport', {
      resourceType: 'DiagnosticReport', status: 'final', code: loinc('24320-4', 'Basic metabolic panel'),
      subject: { reference: `Patient/${pid}` }, effectiveDateTime: '2026-11-20T07:30:00-06:00',
      conclusion: 'Creatinine 1.3 mg/dL, up from 1.1',
    })).json.id;
    await svc('POST', 'ServiceRequest', order(pid, loinc('2160-0', 'Creatinine')));
    const [di] = await issuesOf(pid);
    assert.ok(di, 'a finding');
    assert.equal(di.implicated[1].reference, `DiagnosticReport/${dr}`);
    assert.match(di.detail, /creatinine \(within a basic metabolic panel\) was already done 3 days before/);
    assert.match(di.detail, /"Creatinine 1\.3 mg\/dL, up from 1\.1" on 2026-11-20/);
  });

  test('an order found by name only (no code) is checked too', async () => {
    const pid = await patient('ByName');
    await result(pid, hba1c, '2026-11-10T08:00:00-06:00', 8.1, '%');
    await svc('POST', 'ServiceRequest', order(pid, { text: 'Hemoglobin A1c' }));
    assert.equal((await issuesOf(pid)).length, 1);
  });
});

describe('pending orders', () => {
  test('another current order of the same test, that close, is a duplicate order; a revoked one is not', async () => {
    const pid = await patient('Pending');
    await team(pid);
    const first = (await svc('POST', 'ServiceRequest', order(pid, hba1c, { authoredOn: '2026-11-20T09:00:00-06:00' }))).json.id;
    await svc('POST', 'ServiceRequest', order(pid, hba1c, { status: 'revoked', authoredOn: '2026-11-21T09:00:00-06:00' }));
    const second = (await svc('POST', 'ServiceRequest', order(pid, hba1c))).json.id;
    const found = await issuesOf(pid);
    assert.equal(found.length, 1, JSON.stringify(found).slice(0, 600));
    const [di] = found;
    assert.deepEqual(di.code.coding[0], { system: CW_CODES, code: 'dup-order', display: 'already ordered, pending' });
    assert.equal(di.severity, 'moderate');
    assert.deepEqual(di.implicated.map((x) => x.reference), [`ServiceRequest/${second}`, `ServiceRequest/${first}`]);
    assert.match(di.detail, new RegExp(`HbA1c is already ordered and pending: ServiceRequest/${first} \\(HbA1c, active, ordered 2026-11-20\\), 3 days from this order`));
    assert.equal((await alertsOf(pid)).length, 1);
    // the first order revoked: the duplicate is settled
    const s = (await svc('GET', `ServiceRequest/${first}`)).json;
    delete s.meta;
    s.status = 'revoked';
    await svc('PUT', `ServiceRequest/${first}`, s);
    assert.equal((await issuesOf(pid))[0].status, 'mitigated');
  });
});

describe('$check on a ServiceRequest: nothing written', () => {
  test('answers the finding it would raise', async () => {
    const pid = await patient('Check');
    const obs = await result(pid, hba1c, '2026-11-01T08:10:00-06:00', 7.2, '%');
    const r = await raw(srv.base, 'POST', 'ServiceRequest/$check', { body: order(pid, hba1c) });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json.type, 'collection');
    const di = r.json.entry.map((e) => e.resource).filter((x) => x.resourceType === 'DetectedIssue');
    assert.equal(di.length, 1);
    assert.equal(di[0].code.coding[0].code, 'ALLDONE');
    assert.equal(di[0].implicated[1].reference, `Observation/${obs}`);
    assert.deepEqual(await issuesOf(pid), []);
    const b = (await svc('GET', `ServiceRequest?subject=${pid}`)).json;
    assert.equal(b.entry?.length ?? 0, 0);
  });

  test('an unknown lab test is said to be unchecked; a referral is not a lab order', async () => {
    const pid = await patient('CheckUnknown');
    const r = await raw(srv.base, 'POST', 'ServiceRequest/$check', { body: order(pid, loinc('1751-7', 'Albumin')) });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    const oo = r.json.entry.map((e) => e.resource).find((x) => x.resourceType === 'OperationOutcome');
    assert.ok(oo && /Not checked for duplicate tests: Albumin: careweave does not know this laboratory test/.test(oo.issue[0].diagnostics), r.text.slice(0, 400));
    const ref = await raw(srv.base, 'POST', 'ServiceRequest/$check', {
      body: { ...order(pid, { text: 'Referral to podiatry' }), category: [{ coding: [{ system: SCT, code: '3457005', display: 'Patient referral' }] }] },
    });
    assert.equal(ref.status, 200);
    assert.deepEqual(ref.json.entry ?? [], []);
  });
});

// risk.test.mjs: Encounter/{id}/$readmission-risk, the LACE index and the
// HOSPITAL score of an inpatient stay: a patient built through the API
// (the stay, an emergency visit before it, earlier admissions, conditions,
// haemoglobin and sodium results, a procedure), each component and band
// checked; missing inputs named; 404 and 422; the caller's reach and
// withheld records; the audit record and the CapabilityStatement.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, raw, addUser, login, sleep } from '../support/server.mjs';

const ICD = 'http://hl7.org/fhir/sid/icd-10-cm';
const SCT = 'http://snomed.info/sct';
const LOINC = 'http://loinc.org';
const PW = 'risk-password-123456';

let srv;

async function svc(method, url, body) {
  const r = await raw(srv.base, method, url, { body });
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${r.text}`);
  return r.json;
}

const patient = async (family) => (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family }] })).id;

const encounter = async (pid, cls, start, end, extra = {}) => (await svc('POST', 'Encounter', {
  resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: cls },
  subject: { reference: `Patient/${pid}` }, period: { start, ...(end ? { end } : {}) }, ...extra,
})).id;

const condition = async (pid, system, code, extra = {}) => (await svc('POST', 'Condition', {
  resourceType: 'Condition', subject: { reference: `Patient/${pid}` }, code: { coding: [{ system, code }] },
  recordedDate: '2025-06-01', ...extra,
})).id;

const lab = async (pid, code, when, value, unit) => (await svc('POST', 'Observation', {
  resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${pid}` },
  code: { coding: [{ system: LOINC, code }] }, effectiveDateTime: when,
  valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit },
})).id;

const risk = (id, headers = {}) => raw(srv.base, 'GET', `Encounter/${id}/$readmission-risk`, { headers });

const scores = (bundle) => {
  const ras = bundle.entry.map((e) => e.resource).filter((r) => r.resourceType === 'RiskAssessment');
  return Object.fromEntries(ras.map((r) => [r.method.coding[0].code, r]));
};
const note = (ra, code) => ra.note.map((n) => n.text).find((t) => t.startsWith(`${code} (`));

before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv?.stop();
});

describe('Encounter/$readmission-risk', () => {
  test('a full record: every LACE and HOSPITAL component, with its records and bands', async () => {
    const pid = await patient('Riskfull');
    // an emergency visit that led to the stay, and one earlier (E: 1)
    const edNow = await encounter(pid, 'EMER', '2026-03-01T06:00:00Z', '2026-03-01T09:30:00Z');
    const edOld = await encounter(pid, 'EMER', '2026-01-10T06:00:00Z', '2026-01-10T08:00:00Z');
    // two admissions in the year before (HOSPITAL: 2)
    await encounter(pid, 'IMP', '2025-06-01T10:00:00Z', '2025-06-04T10:00:00Z');
    await encounter(pid, 'IMP', '2025-10-01T10:00:00Z', '2025-10-03T10:00:00Z');
    // 7 days, oncology service
    const stay = await encounter(pid, 'IMP', '2026-03-01T10:00:00Z', '2026-03-08T12:00:00Z',
      { serviceType: { text: 'Medical oncology' } });
    // C: heart failure 2 + type 2 diabetes with kidney disease 2 (supersedes plain diabetes) = 4 -> 5
    const chf = await condition(pid, ICD, 'I50.9');
    await condition(pid, SCT, '44054006');
    await condition(pid, SCT, '127013003');
    // refuted: not counted
    await condition(pid, ICD, 'F03.90', { verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'refuted' }] } });
    const hb = await lab(pid, '718-7', '2026-03-07T08:00:00Z', 10.8, 'g/dL');
    await lab(pid, '718-7', '2026-03-02T08:00:00Z', 13.1, 'g/dL');
    const na = await lab(pid, '2951-2', '2026-03-07T08:00:00Z', 138, 'mmol/L');
    const proc = (await svc('POST', 'Procedure', { resourceType: 'Procedure', status: 'completed',
      subject: { reference: `Patient/${pid}` }, code: { text: 'Central line' }, performedDateTime: '2026-03-03T10:00:00Z' })).id;

    const r = await risk(stay);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.resourceType, 'Bundle');
    assert.equal(r.json.type, 'collection');
    const { lace, hospital } = scores(r.json);
    for (const ra of [lace, hospital]) {
      assert.equal(ra.status, 'final');
      assert.equal(ra.subject.reference, `Patient/${pid}`);
      assert.equal(ra.encounter.reference, `Encounter/${stay}`);
      assert.equal(ra.method.coding[0].system, 'https://careweave.org/fhir/CodeSystem/risk-score');
      assert.ok(ra.occurrenceDateTime);
      assert.equal(ra.id, undefined, 'computed, not stored');
    }
    // LACE: L 5 (7 days) + A 3 (from the emergency visit) + C 5 + E 1 = 14, high
    assert.match(note(lace, 'L'), /^L \(length of stay\): 5 points of 7: 7 days/);
    assert.match(note(lace, 'A'), /3 points of 3: acute: admitted from an emergency visit/);
    assert.match(note(lace, 'C'), /5 points of 5: .*congestive heart failure \(2.*diabetes with end-organ damage \(2.*weights 4/);
    assert.match(note(lace, 'C'), /diabetes without complications superseded by diabetes with end-organ damage/);
    assert.match(note(lace, 'C'), new RegExp(`Condition/${chf}`));
    assert.match(note(lace, 'E'), new RegExp(`1 point of 4: 1 emergency visit .*not counting Encounter/${edNow}`));
    assert.match(note(lace, 'E'), new RegExp(`Encounter/${edOld}`));
    const lp = lace.prediction[0];
    assert.equal(lp.outcome.text, '30-day readmission or death');
    assert.equal(lp.qualitativeRisk.coding[0].code, 'high');
    assert.match(lp.qualitativeRisk.text, /LACE index 14 of 19: high risk/);
    assert.equal(lp.probabilityDecimal, undefined);
    // HOSPITAL: H 1 + O 2 + S 0 + P 1 + I 1 + A12 2 + LOS 2 = 9, high
    assert.match(note(hospital, 'H'), new RegExp(`1 point of 1: the last during the stay: 10.8 g/dL.*Observation/${hb}`));
    assert.match(note(hospital, 'S'), new RegExp(`0 points of 1: .*138 mmol/L.*Observation/${na}`));
    assert.match(note(hospital, 'O'), /2 points of 2: service: Medical oncology/);
    assert.match(note(hospital, 'P'), new RegExp(`1 point of 1: 1 procedure. From Procedure/${proc}`));
    assert.match(note(hospital, 'I'), /1 point of 1/);
    assert.match(note(hospital, 'A12'), /2 points of 5: 2 inpatient admissions/);
    assert.match(note(hospital, 'LOS'), /2 points of 2/);
    const hp = hospital.prediction[0];
    assert.equal(hp.outcome.text, 'potentially avoidable 30-day readmission');
    assert.equal(hp.qualitativeRisk.coding[0].code, 'high');
    assert.equal(hp.probabilityDecimal, 0.228);
    assert.ok(hospital.basis.some((b) => b.reference === `Procedure/${proc}`));
    assert.ok(lace.basis.some((b) => b.reference === `Condition/${chf}`));
    assert.equal(hospital.note.find((n) => n.text.startsWith('Missing')), undefined);
  });

  test('missing inputs are named, the total is a floor, intermediate is moderate with its own words', async () => {
    const pid = await patient('Risksparse');
    const stay = await encounter(pid, 'IMP', '2026-04-01T10:00:00Z', '2026-04-06T10:00:00Z', {
      priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActPriority', code: 'EM' }] },
      serviceType: { text: 'Medical oncology' },
    });
    const r = await risk(stay);
    assert.equal(r.status, 200, r.text);
    const { lace, hospital } = scores(r.json);
    assert.match(note(lace, 'C'), /missing, no points counted \(up to 5\): looked for the patient's conditions/);
    assert.match(lace.note.at(-1).text, /^Missing: comorbidity/);
    assert.match(lace.prediction[0].qualitativeRisk.text, /at least 7 of 19 \(moderate risk or higher, up to high/);
    // HOSPITAL: O 2 + I 1 + LOS 2 = 5, haemoglobin and sodium missing
    assert.match(note(hospital, 'H'), /missing.*haemoglobin result \(LOINC 718-7/);
    assert.match(note(hospital, 'S'), /missing.*sodium result \(LOINC 2951-2/);
    assert.match(note(hospital, 'P'), /0 points of 1: no procedure recorded/);
    assert.equal(hospital.prediction[0].qualitativeRisk.coding[0].code, 'moderate');
    assert.match(hospital.prediction[0].qualitativeRisk.text, /HOSPITAL score at least 5 of 13 \(intermediate risk/);
    assert.equal(hospital.prediction[0].probabilityDecimal, 0.119);
  });

  test('404 for an unknown Encounter, 422 for one that is not an inpatient stay or has no patient', async () => {
    assert.equal((await risk('no-such-encounter')).status, 404);
    const pid = await patient('Riskamb');
    const amb = await encounter(pid, 'AMB', '2026-04-01T10:00:00Z', '2026-04-01T11:00:00Z');
    const r = await risk(amb);
    assert.equal(r.status, 422, r.text);
    assert.match(r.json.issue[0].diagnostics, /not an inpatient stay \(class AMB/);
    const nobody = (await svc('POST', 'Encounter', { resourceType: 'Encounter', status: 'finished',
      class: { code: 'IMP' }, period: { start: '2026-04-01' } })).id;
    const n = await risk(nobody);
    assert.equal(n.status, 422, n.text);
    assert.match(n.json.issue[0].diagnostics, /no Patient as its subject/);
    // another type has no such operation
    assert.equal((await raw(srv.base, 'GET', `Patient/${pid}/$readmission-risk`)).status, 404);
  });

  test("only the caller's reach: another clinician's patient is 404; withheld records are said to be", async () => {
    const doc = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Riskdoc' }] })).id;
    const mine = await patient('Riskmine');
    const theirs = await patient('Risktheirs');
    await svc('POST', 'CareTeam', { resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${mine}` },
      participant: [{ member: { reference: `Practitioner/${doc}` } }] });
    const myStay = await encounter(mine, 'IMP', '2026-04-01T10:00:00Z', '2026-04-03T10:00:00Z');
    const theirStay = await encounter(theirs, 'IMP', '2026-04-01T10:00:00Z', '2026-04-03T10:00:00Z');
    await condition(mine, ICD, 'I50.9');
    await svc('POST', 'Condition', { resourceType: 'Condition', subject: { reference: `Patient/${mine}` },
      code: { coding: [{ system: ICD, code: 'F03.90' }] }, recordedDate: '2025-01-01',
      meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }] } });
    await addUser(srv.db, 'risk-doc', PW, ['--role', 'physician', '--link', `Practitioner/${doc}`]);
    const { token } = await login(new URL(srv.base).origin, 'risk-doc', PW);
    const h = { authorization: `Bearer ${token}` };
    assert.equal((await risk(theirStay, h)).status, 404);
    const r = await risk(myStay, h);
    assert.equal(r.status, 200, r.text);
    const { lace } = scores(r.json);
    assert.match(note(lace, 'C'), /2 points of 5/); // dementia withheld: not counted
    assert.match(lace.note.map((n) => n.text).join(' '), /Incomplete record: some of the patient's records were withheld/);
    const oo = r.json.entry.map((e) => e.resource).find((x) => x.resourceType === 'OperationOutcome');
    assert.match(oo.issue[0].diagnostics, /1 of the patient's records were withheld/);
  });

  test('the operation is recorded naming the patient, and listed in the CapabilityStatement', async () => {
    const pid = await patient('Riskaudit');
    const stay = await encounter(pid, 'IMP', '2026-04-01T10:00:00Z', '2026-04-02T10:00:00Z');
    assert.equal((await risk(stay)).status, 200);
    let found = null;
    for (let i = 0; i < 50 && !found; i++) {
      const b = (await raw(srv.base, 'GET', `AuditEvent?patient=${pid}`)).json;
      found = (b.entry ?? []).map((e) => e.resource).find((ev) => ev.subtype?.[0]?.code === 'operation');
      if (!found) await sleep(100);
    }
    assert.ok(found, 'an operation record');
    assert.ok(found.entity.some((e) => e.what?.reference === `Encounter/${stay}`));
    const cs = (await raw(srv.base, 'GET', 'metadata')).json;
    const enc = cs.rest[0].resource.find((x) => x.type === 'Encounter');
    assert.ok(enc.operation.some((o) => o.name === 'readmission-risk'));
    assert.ok(cs.rest[0].resource.some((x) => x.type === 'RiskAssessment'));
  });
});

// tests/api/medsafety.test.mjs: the medication rules of the write path
// (issue 4, "Checks on the write path"; src/coord/coord.h, src/api/rules.c).
//
// Each patient gets the records a case needs, written by the service user
// startServer signs in as; what the rules decide is read back the way a
// pharmacist or coordinator would: the answer to the order, the
// DetectedIssues on the patient, the Communications to the team. The
// knowledge base is the repository's data/kb (unit tests cover every
// interaction, class and allergy group of it; these cover the write path).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFileSync, cpSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startServer, raw, runCli, tempDir, addUser, login } from '../support/server.mjs';
import { ruleHelpers } from '../support/rules.mjs';

const RX = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const SCT = 'http://snomed.info/sct';
const ACT = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const OVERRIDE = 'https://careweave.org/fhir/StructureDefinition/override-reason';

let srv;
const P = {}; // practitioners by role
const { svc, patient, issuesOf, alertsOf, team } = ruleHelpers({ srv: () => srv, P });

const rxConcept = (code, display, text) => ({ coding: [{ system: RX, code, display }], ...(text ? { text } : {}) });

function order(pid, concept, extra = {}) {
  return {
    resourceType: 'MedicationRequest', status: 'active', intent: 'order',
    subject: { reference: `Patient/${pid}` },
    requester: { reference: `Practitioner/${P.prescriber}` },
    medicationCodeableConcept: concept, ...extra,
  };
}

const warfarinText = { text: 'Coumadin 5 mg tablet' };
const naproxen = rxConcept('7258', 'naproxen', 'Naproxen sodium 220 mg tablet (Aleve)');
const ibuprofen = rxConcept('5640', 'ibuprofen');

async function medsOf(pid) {
  const b = (await svc('GET', `MedicationRequest?subject=${pid}`)).json;
  return (b.entry ?? []).map((e) => e.resource);
}

before(async () => {
  srv = await startServer();
  for (const role of ['prescriber', 'other', 'pcp', 'pharmacist', 'coordinator']) {
    P[role] = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: `Dr ${role}` }] })).json.id;
  }
});
after(async () => {
  await srv?.stop();
});

describe('a high-severity interaction across prescribers', () => {
  let pid;
  let nap;
  before(async () => {
    pid = await patient('Interaction');
    await team(pid);
    nap = (await svc('POST', 'MedicationRequest', order(pid, naproxen, { requester: { reference: `Practitioner/${P.other}` } }))).json.id;
  });

  test('refuses the order with 409, the DetectedIssue in the OperationOutcome, and writes nothing', async () => {
    const r = await raw(srv.base, 'POST', 'MedicationRequest', { body: order(pid, warfarinText) });
    assert.equal(r.status, 409, r.text.slice(0, 400));
    assert.equal(r.json.resourceType, 'OperationOutcome');
    const issue = r.json.issue.find((i) => i.code === 'business-rule');
    assert.ok(issue && issue.severity === 'error', JSON.stringify(r.json.issue));
    assert.match(issue.diagnostics, /warfarin/);
    assert.match(issue.diagnostics, /naproxen/);
    assert.match(issue.diagnostics, new RegExp(OVERRIDE.replace(/[./]/g, '\\$&')));
    const di = r.json.contained?.find((c) => c.resourceType === 'DetectedIssue');
    assert.ok(di, 'the DetectedIssue is in the OperationOutcome');
    assert.equal(di.severity, 'high');
    assert.deepEqual(di.code.coding[0], { system: ACT, code: 'DRG', display: 'Drug Interaction Alert' });
    assert.ok(di.implicated.some((x) => x.reference === `MedicationRequest/${nap}`));
    assert.match(di.detail, /bleeding/i);
    // nothing written: no warfarin order, no finding, no message
    assert.deepEqual((await medsOf(pid)).map((m) => m.id), [nap]);
    assert.deepEqual(await issuesOf(pid), []);
    assert.deepEqual(await alertsOf(pid), []);
  });

  test('with an override reason it is written, with the finding, the reason and the team told', async () => {
    const reason = 'Atrial fibrillation; naproxen to be stopped today, PPI added';
    const r = await svc('POST', 'MedicationRequest', order(pid, warfarinText, { extension: [{ url: OVERRIDE, valueString: reason }] }));
    const wid = r.json.id;
    const [di] = await issuesOf(pid);
    assert.ok(di, 'a DetectedIssue');
    assert.equal(di.status, 'final');
    assert.equal(di.severity, 'high');
    assert.deepEqual(di.implicated.map((x) => x.reference).sort(), [`MedicationRequest/${nap}`, `MedicationRequest/${wid}`].sort());
    assert.equal(di.patient.reference, `Patient/${pid}`);
    assert.match(di.mitigation[0].action.text, new RegExp(reason.slice(0, 20)));
    assert.equal(di.mitigation[0].author.reference, `Practitioner/${P.prescriber}`);
    const [c] = await alertsOf(pid);
    assert.ok(c, 'a Communication to the team');
    assert.equal(c.priority, 'asap', 'high: asap (routine < urgent < asap < stat)');
    assert.equal(c.about[0].reference, `DetectedIssue/${di.id}`);
    const to = c.recipient.map((x) => x.reference).sort();
    assert.deepEqual(to, [P.prescriber, P.pcp, P.pharmacist, P.coordinator].map((p) => `Practitioner/${p}`).sort(),
      'the prescriber, the primary care physician, the pharmacist and the coordinator; not the therapist');
    assert.match(c.payload[0].contentString, /warfarin/);
  });

  test('writing the order again raises nothing new', async () => {
    const before = await issuesOf(pid);
    const m = (await medsOf(pid)).find((x) => x.id !== nap);
    delete m.meta;
    m.note = [{ text: 'dose checked' }];
    await svc('PUT', `MedicationRequest/${m.id}`, m);
    assert.equal((await issuesOf(pid)).length, before.length);
  });

  test('stopping one of the drugs settles the finding', async () => {
    const m = (await svc('GET', `MedicationRequest/${nap}`)).json;
    delete m.meta;
    m.status = 'stopped';
    await svc('PUT', `MedicationRequest/${nap}`, m);
    const [di] = await issuesOf(pid);
    assert.equal(di.status, 'mitigated');
    const last = di.mitigation[di.mitigation.length - 1];
    assert.equal(last.action.coding[0].code, '13');
    assert.match(last.action.text, new RegExp(`MedicationRequest/${nap}`));
  });
});

describe('what counts and what does not', () => {
  test('a stopped drug, and another patient\'s drug, raise nothing', async () => {
    const a = await patient('Stopped');
    const b = await patient('Other');
    await svc('POST', 'MedicationRequest', order(a, ibuprofen, { status: 'stopped' }));
    await svc('POST', 'MedicationRequest', order(b, ibuprofen));
    await svc('POST', 'MedicationRequest', order(a, warfarinText));
    assert.deepEqual(await issuesOf(a), []);
  });

  test('a patient-reported over-the-counter drug counts', async () => {
    const pid = await patient('Otc');
    await svc('POST', 'MedicationStatement', {
      resourceType: 'MedicationStatement', status: 'active', subject: { reference: `Patient/${pid}` },
      informationSource: { reference: `Patient/${pid}` },
      medicationCodeableConcept: { text: 'ibuprofen 400mg OTC' },
    });
    const r = await raw(srv.base, 'POST', 'MedicationRequest', { body: order(pid, warfarinText) });
    assert.equal(r.status, 409, r.text.slice(0, 300));
  });

  test('a clinical-drug code is mapped to its ingredient', async () => {
    const pid = await patient('Scd');
    await svc('POST', 'MedicationRequest', order(pid, ibuprofen));
    const r = await raw(srv.base, 'POST', 'MedicationRequest', {
      body: order(pid, rxConcept('855332', 'Warfarin Sodium 5 MG Oral Tablet')),
    });
    assert.equal(r.status, 409, r.text.slice(0, 300));
  });

  test('two drugs of one class are a duplicate: written, with a moderate finding and the team told', async () => {
    const pid = await patient('Duplicate');
    await team(pid);
    await svc('POST', 'MedicationRequest', order(pid, naproxen, { requester: { reference: `Practitioner/${P.other}` } }));
    await svc('POST', 'MedicationRequest', order(pid, ibuprofen));
    const dup = (await issuesOf(pid)).find((i) => i.code.coding[0].code === 'DUPTHPCLS');
    assert.ok(dup, 'a duplicate-class finding');
    assert.equal(dup.severity, 'moderate');
    assert.match(dup.detail, /NSAIDs/);
    const c = (await alertsOf(pid)).find((x) => x.about[0].reference === `DetectedIssue/${dup.id}`);
    assert.ok(c, 'the team is told');
    assert.equal(c.priority, 'urgent', 'moderate: urgent');
  });

  test('information only (an ONC non-interruptive pair) is recorded, not sent', async () => {
    const pid = await patient('Info');
    await team(pid);
    await svc('POST', 'MedicationRequest', order(pid, rxConcept('29046', 'lisinopril')));
    await svc('POST', 'MedicationRequest', order(pid, naproxen));
    const info = (await issuesOf(pid)).find((i) => i.code.coding[0].code === 'DRG');
    assert.ok(info, 'the pair is on the record');
    assert.equal(info.severity, 'low');
    assert.deepEqual(await alertsOf(pid), []);
  });

  test('a medication careweave cannot map is written and said to be unchecked', async () => {
    const pid = await patient('Unchecked');
    const r = await raw(srv.base, 'POST', 'MedicationRequest', {
      body: order(pid, { text: 'Zyxlomab 3 mg injection' }),
      headers: { prefer: 'return=OperationOutcome' },
    });
    assert.equal(r.status, 201, r.text.slice(0, 300));
    const w = r.json.issue.find((i) => /Not checked/.test(i.diagnostics ?? ''));
    assert.ok(w, `an unchecked warning: ${r.text.slice(0, 300)}`);
    assert.equal(w.severity, 'warning');
  });
});

describe('allergies', () => {
  test('a drug the patient is allergic to (allergy recorded as text) is refused', async () => {
    const pid = await patient('AllergyText');
    await svc('POST', 'AllergyIntolerance', {
      resourceType: 'AllergyIntolerance', patient: { reference: `Patient/${pid}` },
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
      code: { text: 'PCN' },
    });
    const r = await raw(srv.base, 'POST', 'MedicationRequest', { body: order(pid, { text: 'Amoxicillin 500 mg capsule' }) });
    assert.equal(r.status, 409, r.text.slice(0, 300));
    const di = r.json.contained.find((c) => c.resourceType === 'DetectedIssue');
    assert.equal(di.code.coding[0].code, 'ALGY');
  });

  test('a cross-reactive drug is written with a related-allergy finding; a refuted allergy does not count', async () => {
    const pid = await patient('AllergyCross');
    const allergy = (status) => ({
      resourceType: 'AllergyIntolerance', patient: { reference: `Patient/${pid}` },
      verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification', code: status }] },
      code: { coding: [{ system: SCT, code: '764146007', display: 'Penicillin' }] },
    });
    await svc('POST', 'AllergyIntolerance', allergy('confirmed'));
    await svc('POST', 'MedicationRequest', order(pid, rxConcept('2231', 'cephalexin', 'Cephalexin 500 mg capsule')));
    const ralg = (await issuesOf(pid)).find((i) => i.code.coding[0].code === 'RALG');
    assert.ok(ralg, 'a related-allergy finding');
    assert.notEqual(ralg.severity, 'high');

    const other = await patient('AllergyRefuted');
    await svc('POST', 'AllergyIntolerance', { ...allergy('refuted'), patient: { reference: `Patient/${other}` } });
    await svc('POST', 'MedicationRequest', order(other, { text: 'Amoxicillin 500 mg capsule' }));
    assert.deepEqual(await issuesOf(other), []);
  });
});

describe('a new allergy', () => {
  let pid;
  let amox;
  let allergyId;
  const allergyBody = (verification) => ({
    resourceType: 'AllergyIntolerance', patient: { reference: `Patient/${pid}` },
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
    verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification', code: verification }] },
    code: { text: 'Penicillin allergy' },
  });
  before(async () => {
    pid = await patient('NewAllergy');
    await team(pid);
    amox = (await svc('POST', 'MedicationRequest', order(pid, { text: 'Amoxicillin 500 mg capsule' }))).json.id;
  });

  test('is checked against the current medications, and never refused', async () => {
    const r = await raw(srv.base, 'POST', 'AllergyIntolerance', { body: allergyBody('confirmed') });
    assert.equal(r.status, 201, r.text.slice(0, 300));
    allergyId = r.json.id;
    const [di] = await issuesOf(pid);
    assert.ok(di, 'a finding about the amoxicillin');
    assert.equal(di.code.coding[0].code, 'ALGY');
    assert.equal(di.severity, 'high');
    assert.deepEqual(di.implicated.map((x) => x.reference).sort(),
      [`AllergyIntolerance/${allergyId}`, `MedicationRequest/${amox}`].sort());
    const [c] = await alertsOf(pid);
    assert.ok(c && c.recipient.some((x) => x.reference === `Practitioner/${P.prescriber}`), 'the prescriber of the amoxicillin is told');
  });

  test('refuting it settles the finding', async () => {
    await svc('PUT', `AllergyIntolerance/${allergyId}`, { ...allergyBody('refuted'), id: allergyId });
    const [di] = await issuesOf(pid);
    assert.equal(di.status, 'mitigated');
  });
});

describe('transactions and imports', () => {
  const bundleOf = (pid, ...concepts) => ({
    resourceType: 'Bundle', type: 'transaction',
    entry: concepts.map((c) => ({ request: { method: 'POST', url: 'MedicationRequest' }, resource: order(pid, c) })),
  });

  test('a transaction with two interacting orders is refused whole', async () => {
    const pid = await patient('Transaction');
    const r = await raw(srv.base, 'POST', '', { body: bundleOf(pid, warfarinText, ibuprofen) });
    assert.equal(r.status, 409, r.text.slice(0, 300));
    assert.ok(r.json.contained?.some((c) => c.resourceType === 'DetectedIssue'));
    assert.deepEqual(await medsOf(pid), []);
  });

  test('an import records the finding and never refuses what was prescribed', async () => {
    const dir = tempDir('careweave-medsafety-');
    const db = path.join(dir, 'import.db');
    const file = path.join(dir, 'bundle.json');
    const pid = 'imported-patient';
    writeFileSync(file, JSON.stringify({
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { request: { method: 'PUT', url: `Patient/${pid}` }, resource: { resourceType: 'Patient', id: pid } },
        { request: { method: 'PUT', url: `Practitioner/${P.prescriber}` }, resource: { resourceType: 'Practitioner', id: P.prescriber } },
        ...bundleOf(pid, warfarinText, ibuprofen).entry,
      ],
    }));
    const r = await runCli(['import', '--db', db, file]);
    assert.equal(r.code, 0, r.stderr);
    const s2 = await startServer({ db });
    try {
      const b = (await raw(s2.base, 'GET', `DetectedIssue?patient=${pid}`)).json;
      const di = (b.entry ?? []).map((e) => e.resource);
      assert.equal(di.length, 1, JSON.stringify(di).slice(0, 300));
      assert.equal(di[0].severity, 'high');
    } finally {
      await s2.stop();
    }
  });
});

// The rules read what src/coord/facts.c keeps of each patient (one row,
// changed with every medication, allergy and finding written). These are
// the cases where what is kept could go wrong if it did not follow the
// record.
describe('what the rules keep of a patient follows the record', () => {
  const codes = (issues) => issues.map((i) => i.code.coding[0].code).sort();

  test('a prescription moved to another patient counts for that patient only', async () => {
    const x = await patient('Moved-from');
    const y = await patient('Moved-to');
    const w = (await svc('POST', 'MedicationRequest', order(x, warfarinText))).json;
    delete w.meta;
    w.subject = { reference: `Patient/${y}` };
    await svc('PUT', `MedicationRequest/${w.id}`, w);
    await svc('POST', 'MedicationRequest', order(x, ibuprofen));
    assert.deepEqual(await issuesOf(x), [], 'the warfarin is no longer this patient\'s');
    const r = await raw(srv.base, 'POST', 'MedicationRequest', { body: order(y, ibuprofen) });
    assert.equal(r.status, 409, 'the other patient now takes warfarin');
  });

  test('an order naming a Medication resource is checked by what that Medication is now', async () => {
    const pid = await patient('Medication-resource');
    const med = (await svc('POST', 'Medication', { resourceType: 'Medication', code: rxConcept('11289', 'warfarin') })).json;
    await svc('POST', 'MedicationRequest', {
      ...order(pid, undefined), medicationCodeableConcept: undefined,
      medicationReference: { reference: `Medication/${med.id}` },
    });
    let r = await raw(srv.base, 'POST', 'MedicationRequest', { body: order(pid, ibuprofen) });
    assert.equal(r.status, 409, 'warfarin, through the Medication');
    delete med.meta;
    med.code = rxConcept('161', 'acetaminophen');
    await svc('PUT', `Medication/${med.id}`, med);
    r = await raw(srv.base, 'POST', 'MedicationRequest', { body: order(pid, ibuprofen) });
    assert.equal(r.status, 201, `the Medication is acetaminophen now: ${r.text.slice(0, 300)}`);
  });

  test('a refused order leaves nothing behind for the next one', async () => {
    const pid = await patient('Refused-leaves-nothing');
    await svc('POST', 'MedicationRequest', order(pid, warfarinText));
    const r = await raw(srv.base, 'POST', 'MedicationRequest', { body: order(pid, ibuprofen) });
    assert.equal(r.status, 409);
    await svc('POST', 'MedicationRequest', order(pid, naproxen, { extension: [{ url: OVERRIDE, valueString: 'reviewed' }] }));
    assert.deepEqual(codes(await issuesOf(pid)), ['DRG'],
      'warfarin with naproxen; no second NSAID, since the ibuprofen was never written');
  });

  test('a stopped drug, a deleted allergy and a deleted finding stop counting', async () => {
    const pid = await patient('Deleted-things');
    const w = (await svc('POST', 'MedicationRequest', order(pid, warfarinText))).json;
    const al = (await svc('POST', 'AllergyIntolerance', {
      resourceType: 'AllergyIntolerance', patient: { reference: `Patient/${pid}` }, code: { text: 'Ibuprofen' },
    })).json;
    await svc('DELETE', `AllergyIntolerance/${al.id}`);
    delete w.meta;
    w.status = 'stopped';
    await svc('PUT', `MedicationRequest/${w.id}`, w);
    const ib = (await svc('POST', 'MedicationRequest', order(pid, ibuprofen))).json;
    assert.deepEqual(await issuesOf(pid), [], 'neither the stopped warfarin nor the deleted allergy');
    // a finding deleted from the record is raised again when the order is written again
    const n = (await svc('POST', 'MedicationRequest', order(pid, naproxen))).json;
    const [dup] = await issuesOf(pid);
    assert.equal(dup.code.coding[0].code, 'DUPTHPCLS');
    await svc('DELETE', `DetectedIssue/${dup.id}`);
    delete n.meta;
    n.note = [{ text: 'written again' }];
    await svc('PUT', `MedicationRequest/${n.id}`, n);
    const again = await issuesOf(pid);
    assert.equal(again.length, 1, JSON.stringify(again).slice(0, 300));
    assert.notEqual(again[0].id, dup.id);
    assert.ok(again[0].implicated.some((x) => x.reference === `MedicationRequest/${ib.id}`));
  });

  test('another knowledge base maps what was kept again', async () => {
    // "Zzwarfarin" is no name the repository's kb knows: unchecked when written
    const dir = tempDir('careweave-facts-kb-');
    const kb = path.join(dir, 'kb');
    cpSync(fileURLToPath(new URL('../../data/kb', import.meta.url)), kb, { recursive: true });
    const db = path.join(dir, 'facts.db');
    let s1 = await startServer({ db });
    let pid;
    try {
      pid = (await raw(s1.base, 'POST', 'Patient', { body: { resourceType: 'Patient', name: [{ family: 'Kb-change' }] } })).json.id;
      const r = await raw(s1.base, 'POST', 'MedicationRequest', { body: { ...order(pid, { text: 'Zzwarfarin 5 mg tablet' }), requester: undefined } });
      assert.equal(r.status, 201, r.text.slice(0, 300));
    } finally {
      await s1.stop();
    }
    const drugs = path.join(kb, 'drugs.tsv');
    writeFileSync(drugs, readFileSync(drugs, 'utf8').replace('Coumadin|Jantoven', 'Coumadin|Jantoven|Zzwarfarin'));
    s1 = await startServer({ db, args: ['--kb', kb] });
    try {
      const r = await raw(s1.base, 'POST', 'MedicationRequest', { body: { ...order(pid, ibuprofen), requester: undefined } });
      assert.equal(r.status, 409, `the new kb knows Zzwarfarin is warfarin: ${r.text.slice(0, 300)}`);
    } finally {
      await s1.stop();
    }
  });
});

describe('$check: the rules on a proposed order, nothing written', () => {
  test('answers the DetectedIssues it would raise, and writes nothing', async () => {
    const pid = await patient('Check');
    const nap = (await svc('POST', 'MedicationRequest', order(pid, naproxen))).json.id;
    const r = await raw(srv.base, 'POST', 'MedicationRequest/$check', { body: order(pid, warfarinText) });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal(r.json.resourceType, 'Bundle');
    assert.equal(r.json.type, 'collection');
    const di = r.json.entry.map((e) => e.resource).filter((x) => x.resourceType === 'DetectedIssue');
    assert.equal(di.length, 1);
    assert.equal(di[0].severity, 'high');
    assert.ok(di[0].implicated.some((x) => x.reference === `MedicationRequest/${nap}`));
    assert.deepEqual((await medsOf(pid)).map((m) => m.id), [nap]);
    assert.deepEqual(await issuesOf(pid), []);
    // the answer told about the patient's record: the accounting of disclosures shows it
    let seen = false;
    for (let i = 0; i < 100 && !seen; i++) {
      const b = (await svc('GET', `AuditEvent?patient=${pid}&_count=100`)).json;
      seen = (b.entry ?? []).some((e) => e.resource.subtype?.[0]?.code === 'operation' &&
        e.resource.entity?.some((x) => x.what?.reference === `Patient/${pid}`));
      if (!seen) await new Promise((res) => setTimeout(res, 20));
    }
    assert.ok(seen, 'the $check is in the patient\'s audit trail');
  });

  test('says what it could not check; a bad resource is 422; a type without rules is 400', async () => {
    const pid = await patient('CheckUnknown');
    const r = await raw(srv.base, 'POST', 'MedicationRequest/$check', { body: order(pid, { text: 'Zyxlomab 3 mg' }) });
    assert.equal(r.status, 200);
    const oo = r.json.entry.map((e) => e.resource).find((x) => x.resourceType === 'OperationOutcome');
    assert.ok(oo && /Not checked/.test(oo.issue[0].diagnostics), r.text.slice(0, 300));
    const bad = await raw(srv.base, 'POST', 'MedicationRequest/$check', { body: { ...order(pid, warfarinText), status: 'taken' } });
    assert.equal(bad.status, 422, bad.text.slice(0, 200));
    const none = await raw(srv.base, 'POST', 'Observation/$check', { body: { resourceType: 'Observation', status: 'final', code: { text: 'x' } } });
    assert.equal(none.status, 400);
  });
});

describe('a finding about a sensitive record goes no further than the record', () => {
  const R = { system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' };
  let pid;
  let doctor; // the PCP signed in: on the team, no consent for restricted records
  before(async () => {
    pid = await patient('Sensitive');
    await team(pid);
    await svc('POST', 'MedicationRequest', order(pid, naproxen, { meta: { security: [R] } }));
    await addUser(srv.db, 'medsafety-pcp', 'a long enough password 1', ['--role', 'physician', '--link', `Practitioner/${P.pcp}`]);
    const l = await login(srv.origin, 'medsafety-pcp', 'a long enough password 1');
    doctor = { authorization: `Bearer ${l.token}` };
  });

  test('the refusal does not name the record the caller may not read', async () => {
    const r = await raw(srv.base, 'POST', 'MedicationRequest', { body: order(pid, warfarinText), headers: doctor });
    assert.equal(r.status, 409, r.text.slice(0, 300));
    assert.doesNotMatch(r.text, /naproxen/i);
    const di = r.json.contained.find((c) => c.resourceType === 'DetectedIssue');
    assert.equal(di.severity, 'high');
    assert.equal(di.implicated.length, 1, 'only the order itself');
    const c = await raw(srv.base, 'POST', 'MedicationRequest/$check', { body: order(pid, warfarinText), headers: doctor });
    assert.equal(c.status, 200);
    assert.doesNotMatch(c.text, /naproxen/i);
  });

  test('written, the DetectedIssue carries the label and the message names nothing', async () => {
    await svc('POST', 'MedicationRequest', order(pid, warfarinText, { extension: [{ url: OVERRIDE, valueString: 'reviewed with the pharmacist' }] }));
    const di = (await issuesOf(pid)).find((i) => i.severity === 'high');
    assert.ok(di, 'the service user sees it');
    assert.deepEqual(di.meta.security, [R]);
    assert.match(di.detail, /naproxen/, 'the finding itself is whole');
    const [c] = await alertsOf(pid);
    assert.doesNotMatch(c.payload[0].contentString, /naproxen/i);
    assert.match(c.payload[0].contentString, new RegExp(`DetectedIssue/${di.id}`));
    // and the doctor, who may not see restricted records, does not see the finding
    const seen = await raw(srv.base, 'GET', `DetectedIssue?patient=${pid}`, { headers: doctor });
    assert.equal(seen.status, 200);
    assert.ok(!(seen.json.entry ?? []).some((e) => e.resource.id === di.id), 'withheld like the record');
  });
});

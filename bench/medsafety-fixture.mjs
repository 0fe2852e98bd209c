#!/usr/bin/env node
// bench/medsafety-fixture.mjs: the records the medication-rules scenarios
// of run.sh need, written through the API of a running careweave:
//
//   patient A: 20 current MedicationRequests (from three prescribers; one
//              that the kb does not know, as real lists have), 5 allergies
//              (two that are not medications), a care team (PCP,
//              pharmacist, coordinator);
//   patient B: nothing.
//
// and, in OUT, the request lists and bodies of three scenarios:
//   check-medication   POST MedicationRequest/$check: naproxen proposed for A
//   update-mr-20       PUT of one active naproxen MedicationRequest of A
//                      (checked against the 20 others and the allergies
//                      on every write; it carries an override reason, so a
//                      high finding never refuses it); two bodies, 500 mg
//                      and 250 mg (update-mr-20-b), which wrk alternates at
//                      random, so what careweave keeps of the order changes
//                      on most writes, as it does on a create
//   update-mr-0        the same PUTs for B, whose record is empty: the
//                      baseline of the rules' cost on a write
//
//   node bench/medsafety-fixture.mjs BASE_URL OUT   (BENCH_TOKEN: the session)
import fs from 'node:fs';
import path from 'node:path';

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error('usage: node bench/medsafety-fixture.mjs BASE_URL OUT');
  process.exit(2);
}
const RX = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const SCT = 'http://snomed.info/sct';
const NUCC = 'http://nucc.org/provider-taxonomy';
const OVERRIDE = 'https://careweave.org/fhir/StructureDefinition/override-reason';
const headers = {
  'content-type': 'application/fhir+json', accept: 'application/fhir+json',
  authorization: `Bearer ${process.env.BENCH_TOKEN ?? ''}`,
};

async function send(method, url, body) {
  const r = await fetch(`${base.replace(/\/$/, '')}/${url}`, { method, headers, body: JSON.stringify(body) });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${url}: ${r.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

const practitioner = async (family) => (await send('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family }] })).id;
const prescribers = [await practitioner('Okafor'), await practitioner('Reyes'), await practitioner('Haddad')];
const pharmacist = await practitioner('Natarajan');
const coordinator = await practitioner('Lindqvist');
const patient = async (family) => (await send('POST', 'Patient', { resourceType: 'Patient', name: [{ family }] })).id;
const a = await patient('Twentymeds');
const b = await patient('Nomeds');

// by RxNorm ingredient code and name, as prescribing systems send them
const drugs = [
  ['6809', 'metformin', 'Metformin 1000 mg tablet'], ['29046', 'lisinopril', 'Lisinopril 20 mg tablet'],
  ['83367', 'atorvastatin', 'Atorvastatin 40 mg tablet'], ['17767', 'amlodipine', 'Amlodipine 5 mg tablet'],
  ['6918', 'metoprolol', 'Metoprolol succinate 50 mg ER tablet'], ['10582', 'levothyroxine', 'Levothyroxine 75 mcg tablet'],
  ['7646', 'omeprazole', 'Omeprazole 20 mg capsule'], ['36437', 'sertraline', 'Sertraline 50 mg tablet'],
  ['25480', 'gabapentin', 'Gabapentin 300 mg capsule'], ['5487', 'hydrochlorothiazide', 'Hydrochlorothiazide 25 mg tablet'],
  ['4603', 'furosemide', 'Furosemide 20 mg tablet'], ['1191', 'aspirin', 'Aspirin 81 mg tablet'],
  ['519', 'allopurinol', 'Allopurinol 100 mg tablet'], ['135447', 'donepezil', 'Donepezil 10 mg tablet'],
  ['274783', 'insulin glargine', 'Insulin glargine 100 units/mL pen'], ['161', 'acetaminophen', 'Acetaminophen 500 mg tablet'],
  ['52175', 'losartan', 'Losartan 50 mg tablet'], ['8640', 'prednisone', 'Prednisone 5 mg tablet'],
  ['32968', 'clopidogrel', 'Clopidogrel 75 mg tablet'], [null, null, 'Tamsulosin 0.4 mg capsule'],
];
const mr = (pid, [code, display, text], by, extra = {}) => ({
  resourceType: 'MedicationRequest', status: 'active', intent: 'order',
  subject: { reference: `Patient/${pid}` }, requester: { reference: `Practitioner/${by}` },
  medicationCodeableConcept: { ...(code ? { coding: [{ system: RX, code, display }] } : {}), text },
  extension: [{ url: OVERRIDE, valueString: 'benchmark fixture' }], ...extra,
});
for (let i = 0; i < drugs.length; i++) await send('POST', 'MedicationRequest', mr(a, drugs[i], prescribers[i % 3]));
const allergy = (coding, text) => ({
  resourceType: 'AllergyIntolerance', patient: { reference: `Patient/${a}` },
  clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
  code: { ...(coding ? { coding: [coding] } : {}), text },
});
await send('POST', 'AllergyIntolerance', allergy({ system: SCT, code: '764146007', display: 'Penicillin' }, 'Penicillin'));
await send('POST', 'AllergyIntolerance', allergy(null, 'Sulfa drugs'));
await send('POST', 'AllergyIntolerance', allergy(null, 'Codeine'));
await send('POST', 'AllergyIntolerance', allergy(null, 'Latex'));
await send('POST', 'AllergyIntolerance', allergy(null, 'Shellfish'));
await send('POST', 'CareTeam', {
  resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${a}` },
  participant: [
    { role: [{ coding: [{ system: SCT, code: '446050000', display: 'Primary care physician' }] }], member: { reference: `Practitioner/${prescribers[0]}` } },
    { role: [{ coding: [{ system: NUCC, code: '183500000X', display: 'Pharmacist' }] }], member: { reference: `Practitioner/${pharmacist}` } },
    { role: [{ text: 'Nurse care coordinator' }], member: { reference: `Practitioner/${coordinator}` } },
  ],
});

const naproxen = ['7258', 'naproxen', 'Naproxen 500 mg tablet'];
const write = (name, url, body) => {
  fs.mkdirSync(path.join(out, 'paths'), { recursive: true });
  fs.writeFileSync(path.join(out, 'paths', `${name}.txt`), `/fhir/${url}\n`);
  fs.writeFileSync(path.join(out, `${name}.json`), JSON.stringify(body));
};
write('check-medication', 'MedicationRequest/$check', mr(a, naproxen, prescribers[1]));
// the rows being updated: written once first, so a PUT is an update
const ua = await send('POST', 'MedicationRequest', mr(a, naproxen, prescribers[1]));
const ub = await send('POST', 'MedicationRequest', mr(b, naproxen, prescribers[1]));
const naproxen250 = ['7258', 'naproxen', 'Naproxen 250 mg tablet'];
write('update-mr-20', `MedicationRequest/${ua.id}`, { ...mr(a, naproxen, prescribers[1]), id: ua.id });
write('update-mr-20-b', `MedicationRequest/${ua.id}`, { ...mr(a, naproxen250, prescribers[1]), id: ua.id });
write('update-mr-0', `MedicationRequest/${ub.id}`, { ...mr(b, naproxen, prescribers[1]), id: ub.id });
write('update-mr-0-b', `MedicationRequest/${ub.id}`, { ...mr(b, naproxen250, prescribers[1]), id: ub.id });
console.log(JSON.stringify({ patientWith20: a, patientWithNone: b, medications: drugs.length, allergies: 5 }));

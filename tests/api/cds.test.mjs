// tests/api/cds.test.mjs: CDS Hooks 1.x (issue 4; src/api/cds.c).
//
// Requests are shaped like the specification's own order-select and
// order-sign examples (hookInstance, fhirServer, hook, context with
// userId, patientId, encounterId, selections and a draftOrders Bundle),
// sent as an EHR would, with careweave's Bearer session. The answers are
// checked against the card rules of the specification: summary under 140
// characters, indicator info/warning/critical, source.label, and a
// selectionBehavior with every list of suggestions.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, raw } from '../support/server.mjs';

const RX = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const SELECT = 'careweave-medication-safety-select';
const SIGN = 'careweave-medication-safety-sign';

let srv;
let cds;

before(async () => {
  srv = await startServer();
  cds = (p) => `${srv.origin}/cds-services${p ?? ''}`;
});
after(async () => {
  await srv?.stop();
});

async function svc(method, url, body) {
  const r = await raw(srv.base, method, url, { body });
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${r.text.slice(0, 600)}`);
  return r;
}

const naproxen = { coding: [{ system: RX, code: '7258', display: 'naproxen' }], text: 'Naproxen sodium 220 mg tablet (Aleve)' };
const warfarin = { coding: [{ system: RX, code: '855332', display: 'Warfarin Sodium 5 MG Oral Tablet' }], text: 'Coumadin 5 mg tablet' };
const ibuprofen = { coding: [{ system: RX, code: '5640', display: 'ibuprofen' }] };
const metformin = { coding: [{ system: RX, code: '6809', display: 'metformin' }], text: 'Metformin 500 mg tablet' };

// A draft MedicationRequest as the specification's examples write one.
function draft(id, pid, concept) {
  return {
    resourceType: 'MedicationRequest', id, status: 'draft', intent: 'order',
    medicationCodeableConcept: concept,
    subject: { reference: `Patient/${pid}` },
    dosageInstruction: [{ text: '1 tablet by mouth daily', timing: { repeat: { frequency: 1, period: 1, periodUnit: 'd' } } }],
  };
}

function hookRequest(hook, pid, drafts, { selections, prefetch } = {}) {
  return {
    hookInstance: randomUUID(),
    fhirServer: 'https://ehr.example.org/fhir',
    hook,
    context: {
      userId: 'Practitioner/example',
      patientId: pid,
      encounterId: '89284',
      ...(selections ? { selections } : {}),
      draftOrders: { resourceType: 'Bundle', entry: drafts.map((resource) => ({ resource })) },
    },
    ...(prefetch ? { prefetch } : {}),
  };
}

function call(id, body, opts = {}) {
  return raw(srv.base, 'POST', cds(`/${id}`), { body, headers: { 'content-type': 'application/json', accept: 'application/json', ...(opts.headers ?? {}) }, auth: opts.auth ?? true });
}

function assertValidCards(json) {
  assert.ok(Array.isArray(json.cards), `cards is a list: ${JSON.stringify(json).slice(0, 300)}`);
  for (const c of json.cards) {
    assert.equal(typeof c.summary, 'string');
    assert.ok(c.summary.length > 0 && c.summary.length < 140, `summary under 140: ${c.summary}`);
    assert.ok(['info', 'warning', 'critical'].includes(c.indicator), c.indicator);
    assert.equal(c.source?.label, 'careweave');
    assert.match(c.uuid, /^[0-9a-f-]{36}$/);
    if (c.suggestions) {
      assert.ok(['at-most-one', 'any'].includes(c.selectionBehavior), 'selectionBehavior with suggestions');
      for (const s of c.suggestions) {
        assert.equal(typeof s.label, 'string');
        for (const a of s.actions ?? []) {
          assert.ok(['create', 'update', 'delete'].includes(a.type));
          assert.equal(typeof a.description, 'string');
        }
      }
    }
  }
}

async function patientOnNaproxen(name) {
  const pid = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: name }] })).json.id;
  const nap = (await svc('POST', 'MedicationRequest', {
    resourceType: 'MedicationRequest', status: 'active', intent: 'order',
    subject: { reference: `Patient/${pid}` }, medicationCodeableConcept: naproxen,
  })).json.id;
  return { pid, nap };
}

describe('discovery', () => {
  test('GET /cds-services lists the order-select and order-sign services, no session needed', async () => {
    const r = await raw(srv.base, 'GET', cds(), { auth: false, headers: { accept: 'application/json' } });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.match(r.headers.get('content-type'), /application\/json/);
    const byId = Object.fromEntries(r.json.services.map((s) => [s.id, s]));
    assert.equal(byId[SELECT]?.hook, 'order-select');
    assert.equal(byId[SIGN]?.hook, 'order-sign');
    for (const s of r.json.services) {
      assert.ok(s.title && s.description, 'title and description');
      assert.equal(s.prefetch.patient, 'Patient/{{context.patientId}}');
      assert.match(s.prefetch.medications, /^MedicationRequest\?patient=\{\{context\.patientId\}\}/);
      assert.match(s.prefetch.allergies, /^AllergyIntolerance\?patient=\{\{context\.patientId\}\}/);
    }
  });

  test('a service needs a session: 401 without one', async () => {
    const r = await call(SIGN, hookRequest('order-sign', 'x', []), { auth: false });
    assert.equal(r.status, 401);
  });
});

describe('a patient careweave holds, on naproxen', () => {
  let pid;
  let nap;
  before(async () => {
    ({ pid, nap } = await patientOnNaproxen('CdsHeld'));
  });

  test('order-select: the selected warfarin draft gets a critical card with a remove suggestion; the other draft none', async () => {
    const body = hookRequest('order-select', pid,
      [draft('draft-warfarin', pid, warfarin), draft('draft-ibuprofen', pid, ibuprofen)],
      { selections: ['MedicationRequest/draft-warfarin'] });
    const r = await call(SELECT, body);
    assert.equal(r.status, 200, r.text.slice(0, 600));
    assert.match(r.headers.get('content-type'), /application\/json/);
    assertValidCards(r.json);
    // the selected draft against the record (naproxen) and against the other
    // draft of the session (ibuprofen); the unselected draft gets no card of its own
    assert.equal(r.json.cards.length, 2, JSON.stringify(r.json.cards.map((c) => c.summary)));
    for (const k of r.json.cards) {
      assert.deepEqual(k.suggestions[0].actions[0].resourceId, ['MedicationRequest/draft-warfarin'], k.summary);
    }
    assert.ok(r.json.cards.some((k) => /ibuprofen/i.test(k.summary)), 'the other draft is compared with');
    const c = r.json.cards.find((k) => /naproxen/i.test(k.summary));
    assert.ok(c, 'the record is compared with');
    assert.equal(c.indicator, 'critical');
    assert.match(c.summary, /warfarin/i);
    assert.match(c.summary, /naproxen/i);
    assert.match(c.detail, /bleeding/i);
    assert.match(c.detail, /What to do/);
    assert.equal(c.source.topic.code, 'DRG');
    assert.equal(c.selectionBehavior, 'at-most-one');
    const del = c.suggestions[0].actions[0];
    assert.equal(del.type, 'delete');
    assert.deepEqual(del.resourceId, ['MedicationRequest/draft-warfarin']);
    // nothing written: still only the naproxen order, no finding
    const meds = (await svc('GET', `MedicationRequest?subject=${pid}`)).json.entry.map((e) => e.resource.id);
    assert.deepEqual(meds, [nap]);
    assert.equal((await svc('GET', `DetectedIssue?patient=${pid}`)).json.entry ?? undefined, undefined);
  });

  test('order-sign: every draft is checked, critical first', async () => {
    const body = hookRequest('order-sign', pid, [draft('draft-ibuprofen', pid, ibuprofen), draft('draft-warfarin', pid, warfarin)]);
    const r = await call(SIGN, body);
    assert.equal(r.status, 200, r.text.slice(0, 600));
    assertValidCards(r.json);
    assert.ok(r.json.cards.length >= 2, JSON.stringify(r.json.cards.map((c) => c.summary)));
    assert.equal(r.json.cards[0].indicator, 'critical');
    const targets = r.json.cards.flatMap((c) => (c.suggestions ?? []).flatMap((s) => s.actions.flatMap((a) => a.resourceId)));
    assert.ok(targets.includes('MedicationRequest/draft-warfarin'));
    assert.ok(targets.includes('MedicationRequest/draft-ibuprofen'), 'two NSAIDs: the ibuprofen draft is named too');
  });

  test('order-sign: two drafts are compared with each other, not only with the record', async () => {
    const other = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'CdsTwoDrafts' }] })).json.id;
    const r = await call(SIGN, hookRequest('order-sign', other, [draft('draft-warfarin-2', other, warfarin), draft('draft-ibuprofen-2', other, ibuprofen)]));
    assert.equal(r.status, 200, r.text.slice(0, 600));
    assertValidCards(r.json);
    assert.equal(r.json.cards[0]?.indicator, 'critical', JSON.stringify(r.json.cards.map((c) => c.summary)));
    assert.match(r.json.cards[0].summary, /warfarin/i);
    // and a single draft is never compared with itself
    const one = await call(SIGN, hookRequest('order-sign', other, [draft('draft-warfarin-3', other, warfarin)]));
    assert.deepEqual(one.json, { cards: [] });
  });

  test('the call is in the patient\'s audit trail', async () => {
    let seen = false;
    for (let i = 0; i < 100 && !seen; i++) {
      const b = (await svc('GET', `AuditEvent?patient=${pid}&_count=100`)).json;
      seen = (b.entry ?? []).some((e) => e.resource.subtype?.[0]?.code === 'operation' &&
        e.resource.entity?.some((x) => x.what?.reference === `Patient/${pid}`));
      if (!seen) await new Promise((res) => setTimeout(res, 20));
    }
    assert.ok(seen, 'an operation record naming the patient');
  });

  test('nothing found: an empty list of cards', async () => {
    const other = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'CdsClean' }] })).json.id;
    const r = await call(SIGN, hookRequest('order-sign', other, [draft('draft-metformin', other, metformin)]));
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.deepEqual(r.json, { cards: [] });
  });

  test('a draft order of another kind (a lab test) next to the medication is answered too', async () => {
    const other = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'CdsLab' }] })).json.id;
    const lab = {
      resourceType: 'ServiceRequest', id: 'draft-hba1c', status: 'draft', intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '4548-4', display: 'Hemoglobin A1c' }] },
      subject: { reference: `Patient/${other}` },
    };
    const r = await call(SIGN, hookRequest('order-sign', other, [lab, draft('draft-metformin', other, metformin)]));
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assertValidCards(r.json);
    assert.ok(!r.json.cards.some((c) => /Not checked/.test(c.summary)), 'a lab order is not a medication careweave failed to check');
  });

  test('a medication careweave cannot identify: an info card saying it was not checked', async () => {
    const r = await call(SIGN, hookRequest('order-sign', pid, [draft('draft-unknown', pid, { text: 'Zyxlomab 3 mg' })]));
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assertValidCards(r.json);
    assert.equal(r.json.cards.length, 1);
    assert.equal(r.json.cards[0].indicator, 'info');
    assert.match(r.json.cards[0].summary, /Not checked/);
    assert.match(r.json.cards[0].detail, /not\*\* known to be safe/);
  });
});

describe('bad requests are 400', () => {
  let pid;
  before(async () => {
    pid = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'CdsBad' }] })).json.id;
  });

  const cases = [
    ['a wrong hook', SIGN, () => hookRequest('order-select', pid, [], { selections: ['MedicationRequest/a'] }), /order-sign hook/],
    ['no context', SIGN, () => { const b = hookRequest('order-sign', pid, []); delete b.context; return b; }, /context is required/],
    ['no patientId', SIGN, () => { const b = hookRequest('order-sign', pid, []); delete b.context.patientId; return b; }, /patientId/],
    ['no draftOrders', SIGN, () => { const b = hookRequest('order-sign', pid, []); delete b.context.draftOrders; return b; }, /draftOrders/],
    ['no hookInstance', SIGN, () => { const b = hookRequest('order-sign', pid, []); delete b.hookInstance; return b; }, /hookInstance/],
    ['order-select without selections', SELECT, () => hookRequest('order-select', pid, [draft('d1', pid, warfarin)]), /selections/],
    ['a selection naming no draft', SELECT, () => hookRequest('order-select', pid, [draft('d1', pid, warfarin)], { selections: ['MedicationRequest/nope'] }), /names no draft/],
    ['a draft about another patient', SIGN, () => hookRequest('order-sign', pid, [draft('d1', 'someone-else', warfarin)]), /another patient/],
    ['an invalid draft', SIGN, () => hookRequest('order-sign', pid, [{ ...draft('d1', pid, warfarin), status: 'taken' }]), /not a valid MedicationRequest/],
    ['a prefetched patient that is not the context\'s', SIGN, () => hookRequest('order-sign', pid, [], { prefetch: { patient: { resourceType: 'Patient', id: 'other' } } }), /prefetch\.patient/],
  ];
  for (const [name, id, body, re] of cases) {
    test(name, async () => {
      const r = await call(id, body());
      assert.equal(r.status, 400, r.text.slice(0, 300));
      assert.equal(r.json.resourceType, 'OperationOutcome');
      assert.match(JSON.stringify(r.json.issue), re);
    });
  }

  test('a malformed body', async () => {
    const r = await call(SIGN, '{"hook": "order-sign", "context": ');
    assert.equal(r.status, 400, r.text.slice(0, 300));
    const arr = await call(SIGN, '[1, 2]');
    assert.equal(arr.status, 400);
  });

  test('an unknown service is 404, GET on a service 405', async () => {
    const r = await call('no-such-service', hookRequest('order-sign', pid, []));
    assert.equal(r.status, 404, r.text.slice(0, 300));
    const g = await raw(srv.base, 'GET', cds(`/${SIGN}`));
    assert.equal(g.status, 405);
  });
});

describe('a patient careweave does not hold: the prefetch is used', () => {
  const ehrPid = 'ehr-patient-1288992';
  const prefetch = {
    patient: { resourceType: 'Patient', id: ehrPid, name: [{ family: 'Elsewhere' }] },
    medications: {
      resourceType: 'Bundle', type: 'searchset',
      entry: [{
        resource: {
          resourceType: 'MedicationRequest', id: 'ehr-naproxen', status: 'active', intent: 'order',
          subject: { reference: `https://ehr.example.org/fhir/Patient/${ehrPid}` }, medicationCodeableConcept: naproxen,
        },
      }, {
        // stopped: not current, not compared
        resource: {
          resourceType: 'MedicationRequest', id: 'ehr-old', status: 'stopped', intent: 'order',
          subject: { reference: `Patient/${ehrPid}` }, medicationCodeableConcept: ibuprofen,
        },
      }],
    },
    allergies: {
      resourceType: 'Bundle', type: 'searchset',
      entry: [{
        resource: {
          resourceType: 'AllergyIntolerance', id: 'ehr-pcn',
          clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
          code: { text: 'Penicillin' }, patient: { reference: `Patient/${ehrPid}` },
        },
      }],
    },
  };

  test('the prefetched medications and allergies are what the drafts are checked against', async () => {
    const amox = { coding: [{ system: RX, code: '723', display: 'amoxicillin' }], text: 'Amoxicillin 500 mg capsule' };
    const r = await call(SIGN, hookRequest('order-sign', ehrPid,
      [draft('draft-warfarin', ehrPid, warfarin), draft('draft-amox', ehrPid, amox)], { prefetch }));
    assert.equal(r.status, 200, r.text.slice(0, 600));
    assertValidCards(r.json);
    const crit = r.json.cards.filter((c) => c.indicator === 'critical');
    assert.ok(crit.some((c) => /warfarin/i.test(c.summary) && /naproxen/i.test(c.summary)), JSON.stringify(r.json.cards.map((c) => c.summary)));
    assert.ok(r.json.cards.some((c) => c.source.topic?.code === 'ALGY' &&
      c.suggestions?.[0].actions[0].resourceId[0] === 'MedicationRequest/draft-amox'), 'the penicillin allergy');
    assert.ok(!r.json.cards.some((c) => /ibuprofen/i.test(c.summary)), 'a stopped prefetched order is not compared');
  });

  test('without the prefetch: nothing to compare with, and info cards say so', async () => {
    const r = await call(SIGN, hookRequest('order-sign', ehrPid, [draft('draft-warfarin', ehrPid, warfarin)]));
    assert.equal(r.status, 200, r.text.slice(0, 600));
    assertValidCards(r.json);
    assert.ok(r.json.cards.every((c) => c.indicator === 'info'));
    assert.ok(r.json.cards.some((c) => /medications/.test(c.summary)));
    assert.ok(r.json.cards.some((c) => /allergies/.test(c.summary)));
  });
});

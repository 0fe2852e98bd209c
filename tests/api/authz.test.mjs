// tests/api/authz.test.mjs: who may see and change what (issue 3, "Roles
// and relationships"; the rules are in src/access/README.md).
//
// The fixtures are built through the API by the service user startServer
// signs in as: two patients, A (in everyone's reach) and B (in no one's),
// a CareTeam for each, a Practitioner for every clinical role reaching A's
// team three ways (as itself, through a PractitionerRole, through an
// Organization), a RelatedPerson and a patient account. Then each role signs
// in as a real user (`careweave user add --link`) and walks every
// interaction on both patients; a denied write is checked to have changed
// nothing. Consent scenarios follow: a deny, a sensitive label withheld and
// then granted, an expired permit, a caregiver limited to the classes the
// Consent names, a Consent naming an actor that does not exist.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, raw, addUser, login, totpSecretOf, totpCode } from '../support/server.mjs';

const PW = 'a long enough password 1';
const ACT = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const CLINICAL = ['coordinator', 'physician', 'nurse', 'pharmacist', 'therapist', 'social-worker'];

let srv;
const ids = {};
const users = {}; // role -> bearer headers

async function svc(method, url, body) {
  const r = await raw(srv.base, method, url, { body });
  assert.ok(r.status < 300, `${method} ${url} as service: ${r.status} ${r.text.slice(0, 400)}`);
  return r.json;
}

async function as(role, method, url, body, headers = {}) {
  return raw(srv.base, method, url, { body, headers: { ...users[role], ...headers } });
}

const obs = (pid, extra = {}) => ({
  resourceType: 'Observation', status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
  subject: { reference: `Patient/${pid}` }, valueString: 'x', ...extra,
});

async function signIn(name, role, link) {
  const extra = role === 'admin' ? ['--admin'] : ['--role', role, ...(link ? ['--link', link] : [])];
  const added = await addUser(srv.db, name, PW, extra);
  const secret = totpSecretOf(added.stdout);
  const { token } = await login(new URL(srv.base).origin, name, PW, secret ? totpCode(secret) : undefined);
  return { authorization: `Bearer ${token}` };
}

before(async () => {
  srv = await startServer();
  ids.orgA = (await svc('POST', 'Organization', { resourceType: 'Organization', name: 'A clinic' })).id;
  ids.patA = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Inreach' }] })).id;
  ids.patB = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Outofreach' }] })).id;
  ids.other = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Other' }] })).id;
  const members = [];
  for (const role of CLINICAL) {
    ids[role] = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: role }] })).id;
    if (role === 'physician') {
      // on the team through a PractitionerRole of theirs
      const pr = await svc('POST', 'PractitionerRole', { resourceType: 'PractitionerRole', practitioner: { reference: `Practitioner/${ids[role]}` } });
      members.push({ member: { reference: `PractitionerRole/${pr.id}` } });
    } else if (role === 'nurse') {
      // on the team through the Organization a PractitionerRole of theirs belongs to
      await svc('POST', 'PractitionerRole', { resourceType: 'PractitionerRole', practitioner: { reference: `Practitioner/${ids[role]}` }, organization: { reference: `Organization/${ids.orgA}` } });
      members.push({ member: { reference: `Organization/${ids.orgA}` } });
    } else {
      members.push({ member: { reference: `Practitioner/${ids[role]}` }, period: { start: '2020-01-01' } });
    }
  }
  // a former member: the participant period has ended
  members.push({ member: { reference: `Practitioner/${ids.other}` }, period: { start: '2020-01-01', end: '2021-01-01' } });
  ids.teamA = (await svc('POST', 'CareTeam', { resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${ids.patA}` }, participant: members })).id;
  ids.teamB = (await svc('POST', 'CareTeam', { resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${ids.patB}` }, participant: [{ member: { reference: `Practitioner/${ids.other}` } }] })).id;
  ids.rpA = (await svc('POST', 'RelatedPerson', { resourceType: 'RelatedPerson', patient: { reference: `Patient/${ids.patA}` } })).id;
  ids.rpExpired = (await svc('POST', 'RelatedPerson', { resourceType: 'RelatedPerson', patient: { reference: `Patient/${ids.patA}` } })).id;
  ids.consentA = (await svc('POST', 'Consent', {
    resourceType: 'Consent', status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: `Patient/${ids.patA}` },
    provision: {
      type: 'permit', period: { start: '2020-01-01' },
      actor: [{ role: { text: 'recipient' }, reference: { reference: `RelatedPerson/${ids.rpA}` } }],
      class: [{ system: 'http://hl7.org/fhir/resource-types', code: 'Observation' }],
      provision: [{
        type: 'permit', period: { start: '2020-01-01', end: '2021-01-01' },
        actor: [{ role: { text: 'recipient' }, reference: { reference: `RelatedPerson/${ids.rpExpired}` } }],
      }],
    },
  })).id;
  ids.obsA = (await svc('POST', 'Observation', obs(ids.patA))).id;
  ids.obsB = (await svc('POST', 'Observation', obs(ids.patB))).id;
  ids.condA = (await svc('POST', 'Condition', { resourceType: 'Condition', subject: { reference: `Patient/${ids.patA}` }, code: { text: 'x' } })).id;
  ids.psyA = (await svc('POST', 'Observation', obs(ids.patA, { meta: { security: [{ system: ACT, code: 'PSY' }] } }))).id;

  users.admin = await signIn('az-admin', 'admin');
  for (const role of CLINICAL) users[role] = await signIn(`az-${role}`, role, `Practitioner/${ids[role]}`);
  users.patient = await signIn('az-patient', 'patient', `Patient/${ids.patA}`);
  users.caregiver = await signIn('az-caregiver', 'caregiver', `RelatedPerson/${ids.rpA}`);
  users.expired = await signIn('az-expired', 'caregiver', `RelatedPerson/${ids.rpExpired}`);
  users.former = await signIn('az-former', 'physician', `Practitioner/${ids.other}`);
  ids.privacy = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Privacy' }] })).id;
  users['privacy-officer'] = await signIn('az-privacy', 'privacy-officer', `Practitioner/${ids.privacy}`);
});

after(async () => { await srv?.stop(); });

const matchIds = (b) => (b.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource.id);

describe('admin', () => {
  test('admins manage users but get 403 on clinical data; metadata stays open', async () => {
    for (const [m, u] of [['GET', `Patient/${ids.patA}`], ['GET', 'Observation'], ['POST', 'Observation'], ['GET', 'Practitioner'], ['GET', '_history']]) {
      const r = await as('admin', m, u, m === 'POST' ? obs(ids.patA) : undefined);
      assert.equal(r.status, 403, `${m} ${u}`);
      assert.equal(r.json.resourceType, 'OperationOutcome');
      assert.equal(r.json.issue[0].code, 'forbidden');
    }
    assert.equal((await as('admin', 'GET', 'metadata')).status, 200);
  });
});

describe('privacy officer', () => {
  test('no clinical data on either patient, every write refused; the directory and the audit trail read', async () => {
    for (const pid of [ids.patA, ids.patB]) {
      for (const [m, u, body] of [
        ['GET', `Patient/${pid}`],
        ['GET', `Observation?subject=Patient/${pid}`],
        ['GET', `Patient/${pid}/$everything`],
        ['GET', `Patient/${pid}/_history`],
        ['POST', 'Observation', obs(pid)],
      ]) {
        const r = await as('privacy-officer', m, u, body);
        assert.equal(r.status, 403, `${m} ${u}: ${r.text.slice(0, 200)}`);
        assert.equal(r.json.resourceType, 'OperationOutcome');
      }
    }
    assert.equal((await as('privacy-officer', 'GET', `Observation/${ids.obsA}`)).status, 403);
    assert.equal((await as('privacy-officer', 'GET', `Practitioner/${ids.physician}`)).status, 200, 'the directory');
    const trail = await as('privacy-officer', 'GET', `AuditEvent?patient=${ids.patA}`);
    assert.equal(trail.status, 200, trail.text.slice(0, 200));
    assert.equal(trail.json.resourceType, 'Bundle');
  });
});

describe('the matrix: every role, every interaction, a patient in and out of reach', () => {
  const reads = (role) => CLINICAL.includes(role) || role === 'patient' || role === 'caregiver';
  const writes = (role) => CLINICAL.includes(role);

  for (const role of [...CLINICAL, 'patient', 'caregiver']) {
    test(role, async () => {
      // read
      assert.equal((await as(role, 'GET', `Observation/${ids.obsA}`)).status, reads(role) ? 200 : 404, 'read A');
      assert.equal((await as(role, 'GET', `Observation/${ids.obsB}`)).status, 404, 'read B');
      assert.equal((await as(role, 'GET', `Patient/${ids.patB}`)).status, 404, 'read Patient B');
      assert.equal((await as(role, 'GET', 'Observation/no-such-id')).status, 404, 'read unknown');
      assert.equal((await as(role, 'GET', `Observation/${ids.obsB}/_history/1`)).status, 404, 'vread B');
      // search: B's data never matches, and totals agree
      const s = await as(role, 'GET', 'Observation?_total=accurate');
      assert.equal(s.status, 200);
      assert.ok(!matchIds(s.json).includes(ids.obsB), 'search: B withheld');
      assert.equal(matchIds(s.json).includes(ids.obsA), reads(role), 'search: A');
      const sb = await as(role, 'GET', `Observation?subject=Patient/${ids.patB}&_total=accurate`);
      assert.equal(sb.json.total, 0, 'search by B');
      // compartment search and $everything
      assert.equal((await as(role, 'GET', `Patient/${ids.patB}/Observation`)).status, 404, 'compartment B');
      assert.equal((await as(role, 'GET', `Patient/${ids.patA}/Observation`)).status, 200, 'compartment A');
      assert.equal((await as(role, 'GET', `Patient/${ids.patB}/$everything`)).status, 404, '$everything B');
      const ev = await as(role, 'GET', `Patient/${ids.patA}/$everything`);
      assert.equal(ev.status, 200, '$everything A');
      // the medication list, and the rules' $check (it tells about the patient's medications)
      assert.equal((await as(role, 'GET', `Patient/${ids.patA}/$medication-list`)).status, reads(role) ? 200 : 404, '$medication-list A');
      assert.equal((await as(role, 'GET', `Patient/${ids.patB}/$medication-list`)).status, 404, '$medication-list B');
      const proposal = (pid) => ({ resourceType: 'MedicationRequest', status: 'active', intent: 'order',
        subject: { reference: `Patient/${pid}` }, medicationCodeableConcept: { text: 'Coumadin 5 mg tablet' } });
      assert.equal((await as(role, 'POST', 'MedicationRequest/$check', proposal(ids.patA))).status, writes(role) ? 200 : 403, '$check A');
      assert.equal((await as(role, 'POST', 'MedicationRequest/$check', proposal(ids.patB))).status, 404, '$check B');
      // history
      assert.equal((await as(role, 'GET', `Observation/${ids.obsB}/_history`)).status, 404, 'history B');
      assert.equal((await as(role, 'GET', `Observation/${ids.obsA}/_history`)).status, reads(role) ? 200 : 404, 'history A');
      const th = await as(role, 'GET', 'Observation/_history?_count=1000');
      assert.ok(!(th.json.entry ?? []).some((e) => e.resource?.id === ids.obsB), 'type history: B withheld');
      // the care directory
      assert.equal((await as(role, 'GET', `Practitioner/${ids.other}`)).status, 200, 'directory read');
      // create
      const cA = await as(role, 'POST', 'Observation', obs(ids.patA));
      assert.equal(cA.status, writes(role) ? 201 : 403, `create A: ${cA.text.slice(0, 200)}`);
      const before = (await svc('GET', `Observation?subject=Patient/${ids.patB}&_summary=count`)).total;
      assert.equal((await as(role, 'POST', 'Observation', obs(ids.patB))).status, 404, 'create B');
      assert.equal((await svc('GET', `Observation?subject=Patient/${ids.patB}&_summary=count`)).total, before, 'create B changed nothing');
      // update
      const cur = await svc('GET', `Observation/${ids.obsA}`);
      const uA = await as(role, 'PUT', `Observation/${ids.obsA}`, { ...cur, valueString: role });
      assert.equal(uA.status, writes(role) ? 200 : 403, 'update A');
      const curB = await svc('GET', `Observation/${ids.obsB}`);
      assert.equal((await as(role, 'PUT', `Observation/${ids.obsB}`, { ...curB, valueString: role })).status, 404, 'update B');
      assert.equal((await svc('GET', `Observation/${ids.obsB}`)).meta.versionId, curB.meta.versionId, 'update B changed nothing');
      // moving a resource to another patient
      if (writes(role)) {
        const now = await svc('GET', `Observation/${ids.obsA}`);
        assert.equal((await as(role, 'PUT', `Observation/${ids.obsA}`, { ...now, subject: { reference: `Patient/${ids.patB}` } })).status, 404, 'move to B');
      }
      // delete
      const victimA = (await svc('POST', 'Observation', obs(ids.patA))).id;
      assert.equal((await as(role, 'DELETE', `Observation/${victimA}`)).status, writes(role) ? 204 : 403, 'delete A');
      assert.equal((await as(role, 'DELETE', `Observation/${ids.obsB}`)).status, 404, 'delete B');
      assert.equal((await svc('GET', `Observation/${ids.obsB}`)).id, ids.obsB, 'delete B changed nothing');
      // a transaction entry out of reach refuses the whole transaction
      const tx = (entries) => ({ resourceType: 'Bundle', type: 'transaction', entry: entries });
      const e = (pid) => ({ fullUrl: `urn:uuid:${crypto.randomUUID()}`, resource: obs(pid), request: { method: 'POST', url: 'Observation' } });
      const countA = (await svc('GET', `Observation?subject=Patient/${ids.patA}&_summary=count`)).total;
      assert.equal((await as(role, 'POST', '', tx([e(ids.patA), e(ids.patB)]))).status, writes(role) ? 404 : 403, 'transaction with B');
      assert.equal((await svc('GET', `Observation?subject=Patient/${ids.patA}&_summary=count`)).total, countA, 'transaction rolled back');
      assert.equal((await as(role, 'POST', '', tx([e(ids.patA)]))).status, writes(role) ? 200 : 403, 'transaction A');
      // the directory is the clinicians' to keep
      assert.equal((await as(role, 'POST', 'Organization', { resourceType: 'Organization', name: 'n' })).status, writes(role) ? 201 : 403, 'directory write');
    });
  }

  test('a former team member (participant period ended) reaches nobody', async () => {
    assert.equal((await as('former', 'GET', `Observation/${ids.obsA}`)).status, 404);
    assert.equal((await as('former', 'GET', `Observation/${ids.obsB}`)).status, 200, 'on B\'s team');
  });

  test('a patient writes their own medicines, consents and messages, nothing else', async () => {
    const ms = { resourceType: 'MedicationStatement', status: 'active', medicationCodeableConcept: { text: 'vitamin D' }, subject: { reference: `Patient/${ids.patA}` } };
    assert.equal((await as('patient', 'POST', 'MedicationStatement', ms)).status, 201);
    assert.equal((await as('patient', 'POST', 'MedicationStatement', { ...ms, subject: { reference: `Patient/${ids.patB}` } })).status, 404);
    assert.equal((await as('patient', 'GET', `Condition/${ids.condA}`)).status, 200, 'their own record');
    assert.equal((await as('patient', 'GET', `Observation/${ids.psyA}`)).status, 200, 'their own sensitive data');
  });
});

describe('other doors', () => {
  test('batch entries are checked one by one, with the same answers', async () => {
    const r = await as('physician', 'POST', '', {
      resourceType: 'Bundle', type: 'batch', entry: [
        { request: { method: 'GET', url: `Observation/${ids.obsA}` } },
        { request: { method: 'GET', url: `Observation/${ids.obsB}` } },
        { resource: obs(ids.patB), request: { method: 'POST', url: 'Observation' } },
        { resource: obs(ids.patA), request: { method: 'POST', url: 'Observation' } },
      ],
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.entry.map((e) => e.response.status.slice(0, 3)), ['200', '404', '404', '201']);
  });

  test('_include never brings in another patient\'s data', async () => {
    // a service-made Observation of A that points at B's Observation
    const link = (await svc('POST', 'Observation', obs(ids.patA, { hasMember: [{ reference: `Observation/${ids.obsB}` }] }))).id;
    const r = await as('nurse', 'GET', `Observation?_id=${link}&_include=Observation:has-member`);
    assert.deepEqual(matchIds(r.json), [link]);
    assert.ok(!(r.json.entry ?? []).some((e) => e.resource?.id === ids.obsB));
    assert.equal((r.json.entry ?? []).filter((e) => e.search?.mode === 'outcome').length, 1, 'withheld said');
  });

  test('a condition matches only within the caller\'s patients', async () => {
    const tag = `tag-${Date.now()}`;
    const b = await svc('POST', 'Observation', obs(ids.patB, { identifier: [{ system: 'urn:t', value: tag }] }));
    // If-None-Exist does not see B's match, and creating for B is out of reach
    const r = await as('coordinator', 'POST', 'Observation', obs(ids.patB, { identifier: [{ system: 'urn:t', value: tag }] }), { 'if-none-exist': `identifier=urn:t|${tag}` });
    assert.equal(r.status, 404);
    const d = await as('coordinator', 'DELETE', `Observation?identifier=urn:t|${tag}`);
    assert.equal(d.status, 404);
    assert.equal((await svc('GET', `Observation/${b.id}`)).id, b.id, 'still there');
    const u = await as('coordinator', 'GET', `Observation?identifier=urn:t|${tag}&_summary=count`);
    assert.equal(u.json.total, 0);
  });

  test('system history shows only what the caller may see', async () => {
    const h = await as('patient', 'GET', '_history?_count=1000');
    assert.equal(h.status, 200);
    const seen = new Set((h.json.entry ?? []).map((e) => e.resource?.id));
    assert.ok(!seen.has(ids.obsB) && !seen.has(ids.patB));
    assert.ok(seen.has(ids.obsA));
  });
});

describe('role escalation and consent', () => {
  test('a clinician cannot add themselves to a stranger\'s CareTeam', async () => {
    const team = await svc('GET', `CareTeam/${ids.teamB}`);
    const r = await as('physician', 'PUT', `CareTeam/${ids.teamB}`, { ...team, participant: [...team.participant, { member: { reference: `Practitioner/${ids.physician}` } }] });
    assert.equal(r.status, 404);
    assert.equal((await svc('GET', `CareTeam/${ids.teamB}`)).meta.versionId, team.meta.versionId);
    assert.equal((await as('physician', 'GET', `Observation/${ids.obsB}`)).status, 404);
  });

  test('a Consent naming an actor that does not exist is refused with 422', async () => {
    const r = await as('coordinator', 'POST', 'Consent', {
      resourceType: 'Consent', status: 'active', scope: { coding: [{ code: 'patient-privacy' }] },
      category: [{ text: 'x' }], patient: { reference: `Patient/${ids.patA}` },
      provision: { type: 'permit', actor: [{ role: { text: 'r' }, reference: { reference: 'Practitioner/nobody-at-all' } }] },
    });
    assert.equal(r.status, 422, r.text);
  });

  test('a deny takes effect at once, and lifting it too', async () => {
    assert.equal((await as('therapist', 'GET', `Observation/${ids.obsA}`)).status, 200);
    const deny = await svc('POST', 'Consent', {
      resourceType: 'Consent', status: 'active', scope: { coding: [{ code: 'patient-privacy' }] },
      category: [{ text: 'x' }], patient: { reference: `Patient/${ids.patA}` },
      provision: { type: 'deny', actor: [{ role: { text: 'r' }, reference: { reference: `Practitioner/${ids.therapist}` } }] },
    });
    assert.equal((await as('therapist', 'GET', `Observation/${ids.obsA}`)).status, 404);
    assert.equal((await as('therapist', 'GET', `Patient/${ids.patA}/$everything`)).status, 404);
    assert.equal((await as('therapist', 'POST', 'Observation', obs(ids.patA))).status, 404);
    assert.equal((await as('social-worker', 'GET', `Observation/${ids.obsA}`)).status, 200, 'others still see A');
    await svc('DELETE', `Consent/${deny.id}`);
    assert.equal((await as('therapist', 'GET', `Observation/${ids.obsA}`)).status, 200);
  });

  test('a sensitive label is withheld, the search says so, and a consent grants it', async () => {
    assert.equal((await as('coordinator', 'GET', `Observation/${ids.psyA}`)).status, 404);
    const s = await as('coordinator', 'GET', `Observation?subject=Patient/${ids.patA}`);
    assert.ok(!matchIds(s.json).includes(ids.psyA));
    const out = (s.json.entry ?? []).filter((e) => e.search?.mode === 'outcome');
    assert.equal(out.length, 1, 'one withheld outcome');
    assert.equal(out[0].resource.issue[0].code, 'suppressed');
    assert.doesNotMatch(JSON.stringify(out[0]), new RegExp(ids.psyA), 'no details');
    const ev = await as('coordinator', 'GET', `Patient/${ids.patA}/$everything`);
    assert.ok(!(ev.json.entry ?? []).some((e) => e.resource?.id === ids.psyA), '$everything withholds it');
    const inc = await as('coordinator', 'GET', `Patient?_id=${ids.patA}&_revinclude=Observation:subject`);
    assert.ok(!(inc.json.entry ?? []).some((e) => e.resource?.id === ids.psyA), '_revinclude withholds it');
    const grant = await svc('POST', 'Consent', {
      resourceType: 'Consent', status: 'active', scope: { coding: [{ code: 'patient-privacy' }] },
      category: [{ text: 'x' }], patient: { reference: `Patient/${ids.patA}` },
      provision: { type: 'permit', actor: [{ role: { text: 'r' }, reference: { reference: `Practitioner/${ids.coordinator}` } }], securityLabel: [{ system: ACT, code: 'PSY' }] },
    });
    assert.equal((await as('coordinator', 'GET', `Observation/${ids.psyA}`)).status, 200);
    assert.equal((await as('nurse', 'GET', `Observation/${ids.psyA}`)).status, 404, 'only for the one named');
    await svc('DELETE', `Consent/${grant.id}`);
  });

  test('a caregiver sees only the classes the consent grants; an expired permit grants nothing', async () => {
    assert.equal((await as('caregiver', 'GET', `Observation/${ids.obsA}`)).status, 200);
    assert.equal((await as('caregiver', 'GET', `Condition/${ids.condA}`)).status, 404);
    assert.equal((await as('caregiver', 'GET', `Observation/${ids.psyA}`)).status, 404, 'no label granted');
    const c = await as('caregiver', 'GET', `Condition?subject=Patient/${ids.patA}`);
    assert.equal(matchIds(c.json).length, 0);
    assert.equal((await as('expired', 'GET', `Observation/${ids.obsA}`)).status, 404);
    assert.equal((await as('expired', 'GET', `Patient/${ids.patA}/$everything`)).status, 404);
  });
});

describe('accounting of disclosures', () => {
  test('AuditEvent?patient= is for the patient, a coordinator who reaches them and system clients', async () => {
    // the matrix above read patient A's record many times; wait for those
    // read records to be flushed (every 100 ms)
    let own;
    for (let i = 0; i < 50; i++) {
      own = await as('patient', 'GET', `AuditEvent?patient=${ids.patA}&_count=1000`);
      if ((own.json?.entry ?? []).length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(own.status, 200);
    const n = own.json.entry.length;
    assert.ok(n > 0, 'the patient sees who accessed their record');
    const coord = await as('coordinator', 'GET', `AuditEvent?patient=${ids.patA}&_count=1000`);
    assert.ok(coord.json.entry.length >= n, 'their coordinator sees it too');
    for (const role of ['physician', 'nurse', 'pharmacist', 'therapist', 'social-worker', 'caregiver']) {
      const r = await as(role, 'GET', `AuditEvent?patient=${ids.patA}`);
      assert.equal(r.status, 200, role);
      assert.equal((r.json.entry ?? []).length, 0, `${role} does not see the accounting`);
    }
    const other = await as('patient', 'GET', `AuditEvent?patient=${ids.patB}`);
    assert.equal((other.json.entry ?? []).length, 0, 'nor anyone else\'s');
    assert.equal((await as('coordinator', 'GET', `AuditEvent?patient=${ids.patB}`)).json.entry, undefined,
      'a coordinator out of reach sees nothing');
    assert.equal((await as('coordinator', 'GET', 'AuditEvent')).status, 403, 'no listing of everyone');
    assert.equal((await as('admin', 'GET', `AuditEvent?patient=${ids.patA}`)).status, 403);
    const one = own.json.entry[0].resource.id;
    assert.equal((await as('patient', 'GET', `AuditEvent/${one}`)).status, 200);
    assert.equal((await as('nurse', 'GET', `AuditEvent/${one}`)).status, 404, 'a record is not shown by id either');
    assert.equal((await raw(srv.base, 'GET', `AuditEvent/${one}`)).status, 200, 'the service user may');
  });
});

// tests/api/glass.test.mjs: break-the-glass emergency access and the
// privacy-officer role (issue 3, "Break-the-glass"; the rules are in
// src/access/README.md).
//
// The fixtures are built by the service user startServer signs in as:
// patient B, whose care team has a coordinator user (on the team as
// themselves) and a nurse whose participant role says "care coordinator"
// (no user), a Consent of B denying the outsider everything, an
// Observation of B and one labelled PSY; patient C, whom nobody reaches.
// The outsider is a physician on no team. The server runs the test
// build's clock file, so a grant's expiry is a write of the file, not a
// wait.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServer, raw, addUser, login, tempDir, totpSecretOf, totpCode, runCli } from '../support/server.mjs';

const PW = 'a long enough password 1';
const ACT = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
const REASON = 'Unconscious in the emergency department, no team member reachable';

let srv;
let clock;
const ids = {};
const users = {}; // name -> bearer headers
const logins = {}; // name -> login answer (token, csrf)

async function svc(method, url, body) {
  const r = await raw(srv.base, method, url, { body });
  assert.ok(r.status < 300, `${method} ${url} as service: ${r.status} ${r.text.slice(0, 400)}`);
  return r.json;
}

const as = (who, method, url, body, headers = {}) =>
  raw(srv.base, method, url, { body, headers: { ...users[who], ...headers } });

const obs = (pid, extra = {}) => ({
  resourceType: 'Observation', status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
  subject: { reference: `Patient/${pid}` }, valueString: 'x', ...extra,
});

const claim = (reason, minutes) => ({
  resourceType: 'Parameters',
  parameter: [
    ...(reason === undefined ? [] : [{ name: 'reason', valueString: reason }]),
    ...(minutes === undefined ? [] : [{ name: 'minutes', valueInteger: minutes }]),
  ],
});

const matchIds = (b) => (b.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource.id);
const notifications = async (pid) => (await svc('GET', `Communication?subject=Patient/${pid}`)).entry ?? [];

async function signIn(name, extra) {
  const added = await addUser(srv.db, name, PW, extra);
  const secret = totpSecretOf(added.stdout); // admins have one-time codes
  logins[name] = await login(new URL(srv.base).origin, name, PW, secret ? totpCode(secret) : undefined);
  users[name] = { authorization: `Bearer ${logins[name].token}` };
}

before(async () => {
  const dir = tempDir();
  clock = path.join(dir, 'clock');
  writeFileSync(clock, '0\n');
  srv = await startServer({ env: { CAREWEAVE_TEST_CLOCK_FILE: clock }, args: ['--session-idle', '7200'] });
  const prac = async (family) => (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family }] })).id;
  ids.outsider = await prac('Outsider');
  ids.coord = await prac('Coordinator');
  ids.nurseCoord = await prac('Nurse coordinator');
  ids.nurse = await prac('Nurse');
  ids.privacy = await prac('Privacy');
  ids.patB = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Emergency' }] })).id;
  ids.patC = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Elsewhere' }] })).id;
  ids.teamB = (await svc('POST', 'CareTeam', {
    resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${ids.patB}` },
    participant: [
      { member: { reference: `Practitioner/${ids.coord}` } },
      { role: [{ text: 'Nurse care coordinator' }], member: { reference: `Practitioner/${ids.nurseCoord}` } },
      { role: [{ text: 'Wound care nurse' }], member: { reference: `Practitioner/${ids.nurse}` } },
    ],
  })).id;
  ids.rpB = (await svc('POST', 'RelatedPerson', { resourceType: 'RelatedPerson', patient: { reference: `Patient/${ids.patB}` } })).id;
  ids.denyB = (await svc('POST', 'Consent', {
    resourceType: 'Consent', status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
    patient: { reference: `Patient/${ids.patB}` },
    provision: { type: 'deny', actor: [{ role: { text: 'recipient' }, reference: { reference: `Practitioner/${ids.outsider}` } }] },
  })).id;
  ids.obsB = (await svc('POST', 'Observation', obs(ids.patB))).id;
  ids.psyB = (await svc('POST', 'Observation', obs(ids.patB, { meta: { security: [{ system: ACT, code: 'PSY' }] } }))).id;
  ids.obsC = (await svc('POST', 'Observation', obs(ids.patC))).id;

  await signIn('bg-outsider', ['--role', 'physician', '--link', `Practitioner/${ids.outsider}`]);
  await signIn('bg-coord', ['--role', 'coordinator', '--link', `Practitioner/${ids.coord}`]);
  await signIn('bg-nurse', ['--role', 'nurse', '--link', `Practitioner/${ids.nurse}`]);
  await signIn('bg-privacy', ['--role', 'privacy-officer', '--link', `Practitioner/${ids.privacy}`]);
  await signIn('bg-patient', ['--role', 'patient', '--link', `Patient/${ids.patB}`]);
  await signIn('bg-caregiver', ['--role', 'caregiver', '--link', `RelatedPerson/${ids.rpB}`]);
  await signIn('bg-admin', ['--admin']);
});

after(async () => { await srv?.stop(); });

describe('break-the-glass', () => {
  test('before a grant the outsider reaches nothing of B', async () => {
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}`)).status, 404);
    assert.equal((await as('bg-outsider', 'GET', `Patient/${ids.patB}/$everything`)).status, 404);
    const s = await as('bg-outsider', 'GET', `Observation?subject=Patient/${ids.patB}&_total=accurate`);
    assert.equal(s.json.total, 0);
  });

  test('patients, caregivers, admins, privacy officers and system clients may not claim it', async () => {
    for (const who of ['bg-patient', 'bg-caregiver', 'bg-admin', 'bg-privacy']) {
      const r = await as(who, 'POST', `Patient/${ids.patB}/$break-glass`, claim(REASON));
      assert.equal(r.status, 403, who);
      assert.equal(r.json.resourceType, 'OperationOutcome');
    }
    assert.equal((await raw(srv.base, 'POST', `Patient/${ids.patB}/$break-glass`, { body: claim(REASON) })).status, 403, 'service');
    assert.equal((await notifications(ids.patB)).length, 0);
  });

  test('a claim without a proper reason or minutes is refused and writes nothing', async () => {
    const cases = [
      [claim(undefined), 400],
      [claim('too short'), 422],
      [claim('x'.repeat(1001)), 422],
      [claim(REASON, 0), 422],
      [claim(REASON, 241), 422],
      [{ resourceType: 'Patient' }, 400],
    ];
    for (const [body, status] of cases) {
      const r = await as('bg-outsider', 'POST', `Patient/${ids.patB}/$break-glass`, body);
      assert.equal(r.status, status, JSON.stringify(body).slice(0, 80));
      assert.equal(r.json.resourceType, 'OperationOutcome');
    }
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}`)).status, 404, 'still no access');
    assert.equal((await notifications(ids.patB)).length, 0, 'no notification');
  });

  test('an unknown patient is 404', async () => {
    const r = await as('bg-outsider', 'POST', 'Patient/no-such-patient/$break-glass', claim(REASON));
    assert.equal(r.status, 404);
  });

  test('with a cookie session the claim needs the CSRF token', async () => {
    const cookie = `cw_session=${logins['bg-outsider'].token}; cw_csrf=${logins['bg-outsider'].csrf}`;
    const r = await raw(srv.base, 'POST', `Patient/${ids.patB}/$break-glass`, { auth: false, headers: { cookie }, body: claim(REASON) });
    assert.equal(r.status, 403);
    assert.equal((await notifications(ids.patB)).length, 0);
  });

  test('the outsider breaks the glass and reaches B, Consent deny and labels included, until it expires', async () => {
    const r = await as('bg-outsider', 'POST', `Patient/${ids.patB}/$break-glass`, claim(REASON, 5));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.resourceType, 'Parameters');
    const p = Object.fromEntries(r.json.parameter.map((x) => [x.name, x]));
    const until = Date.parse(p.expires.valueInstant);
    assert.ok(Math.abs(until - (Date.now() + 5 * 60000)) < 60000, p.expires.valueInstant);
    assert.equal(p.patient.valueReference.reference, `Patient/${ids.patB}`);
    assert.equal(p.outcome.resource.resourceType, 'OperationOutcome');

    // reads, labels and the Consent deny overridden
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}`)).status, 200, 'read');
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.psyB}`)).status, 200, 'PSY label');
    assert.equal((await as('bg-outsider', 'GET', `Patient/${ids.patB}`)).status, 200, 'Patient');
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}/_history`)).status, 200, 'history');
    // searches, in the SQL restriction: totals agree, nothing withheld
    const s = await as('bg-outsider', 'GET', `Observation?subject=Patient/${ids.patB}&_total=accurate`);
    assert.equal(s.json.total, 2);
    assert.deepEqual(matchIds(s.json).sort(), [ids.obsB, ids.psyB].sort());
    assert.ok(!(s.json.entry ?? []).some((e) => e.search?.mode === 'outcome'), 'nothing withheld');
    const inc = await as('bg-outsider', 'GET', `Observation?_id=${ids.obsB}&_include=Observation:subject`);
    assert.ok(inc.json.entry.some((e) => e.search?.mode === 'include' && e.resource.id === ids.patB), '_include');
    const ev = await as('bg-outsider', 'GET', `Patient/${ids.patB}/$everything`);
    assert.equal(ev.status, 200);
    assert.ok(ev.json.entry.some((e) => e.resource.id === ids.psyB), '$everything');
    // a write, as a care-team member would
    const w = await as('bg-outsider', 'POST', 'Observation', obs(ids.patB));
    assert.equal(w.status, 201, w.text);
    // another patient stays out of reach
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsC}`)).status, 404, 'C');
    assert.equal((await as('bg-outsider', 'GET', `Patient/${ids.patC}/$everything`)).status, 404, 'C everything');
    const all = await as('bg-outsider', 'GET', 'Observation?_count=100');
    assert.ok(!matchIds(all.json).includes(ids.obsC), 'search: C withheld');

    // the grant expires by the access clock, and access ends at once
    writeFileSync(clock, `${5 * 60 + 1}\n`);
    try {
      assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}`)).status, 404, 'read after expiry');
      const after = await as('bg-outsider', 'GET', `Observation?subject=Patient/${ids.patB}&_total=accurate`);
      assert.equal(after.json.total, 0, 'search after expiry');
      assert.equal((await as('bg-outsider', 'GET', `Patient/${ids.patB}/$everything`)).status, 404);
      assert.equal((await as('bg-outsider', 'POST', 'Observation', obs(ids.patB))).status, 404, 'write after expiry');
    } finally {
      writeFileSync(clock, '0\n');
    }
  });

  test('the notification names the coordinators and the privacy officer, and holds no clinical value', async () => {
    const n = await notifications(ids.patB);
    assert.equal(n.length, 1);
    const c = n[0].resource;
    assert.equal(c.status, 'completed');
    assert.equal(c.priority, 'urgent');
    assert.equal(c.category[0].coding[0].code, 'notification');
    assert.equal(c.subject.reference, `Patient/${ids.patB}`);
    assert.equal(c.sender.reference, `Practitioner/${ids.outsider}`);
    const to = c.recipient.map((x) => x.reference).sort();
    assert.deepEqual(to, [`Practitioner/${ids.coord}`, `Practitioner/${ids.nurseCoord}`, `Practitioner/${ids.privacy}`].sort());
    const text = c.payload[0].contentString;
    assert.ok(text.includes(REASON), 'the reason');
    assert.ok(text.includes('bg-outsider'), 'who');
    assert.ok(!text.includes('4548-4'), 'no clinical value');
    // the coordinator sees it through the care team
    const seen = await as('bg-coord', 'GET', `Communication?subject=Patient/${ids.patB}`);
    assert.deepEqual(matchIds(seen.json), [c.id]);
  });

  test('the grant is in the audit trail as break-the-glass, with its reason, for the privacy officer', async () => {
    const r = await as('bg-privacy', 'GET', `AuditEvent?patient=${ids.patB}&_count=1000`);
    assert.equal(r.status, 200, r.text.slice(0, 300));
    const events = (r.json.entry ?? []).map((e) => e.resource);
    const btg = events.filter((e) => e.subtype?.some((c) => c.code === 'BTG'));
    assert.equal(btg.length, 1, 'one break-the-glass record');
    const e = btg[0];
    assert.equal(e.subtype[0].system, 'http://terminology.hl7.org/CodeSystem/v3-ActReason');
    assert.equal(e.purposeOfEvent[0].coding[0].code, 'BTG');
    assert.equal(e.purposeOfEvent[0].text, REASON);
    assert.equal(e.agent[0].who.identifier.value, 'bg-outsider');
    const [c] = (await notifications(ids.patB)).map((x) => x.resource);
    const what = e.entity.map((x) => x.what?.reference);
    assert.ok(what.includes(`Patient/${ids.patB}`) && what.includes(`Communication/${c.id}`), JSON.stringify(what));
    // and what the outsider read under it is there too, by name (read
    // records are written in batches, every 100 ms: allow a few)
    let reads = [];
    for (let i = 0; i < 20 && !reads.length; i++) {
      if (i) await new Promise((res) => setTimeout(res, 100));
      const again = await as('bg-privacy', 'GET', `AuditEvent?patient=${ids.patB}&_count=1000`);
      reads = (again.json.entry ?? []).map((x) => x.resource).filter((x) =>
        x.subtype?.some((c2) => c2.code === 'read') && x.agent[0].who.identifier.value === 'bg-outsider');
    }
    assert.ok(reads.length >= 1, 'the reads under the grant are recorded');
    // the claimant may not read the trail
    const own = await as('bg-outsider', 'GET', `AuditEvent?patient=${ids.patB}`);
    assert.ok(own.status === 403 || (own.json.entry ?? []).length === 0, `outsider reads the trail: ${own.status}`);
  });

  test('a privacy officer reads the notifications addressed to them and no clinical data', async () => {
    const [c] = (await notifications(ids.patB)).map((e) => e.resource);
    const list = await as('bg-privacy', 'GET', 'Communication');
    assert.equal(list.status, 200);
    assert.deepEqual(matchIds(list.json), [c.id]);
    assert.equal((await as('bg-privacy', 'GET', `Communication/${c.id}`)).status, 200);
    assert.equal((await as('bg-privacy', 'GET', `Practitioner/${ids.outsider}`)).status, 200, 'the directory');
    for (const [m, u, body] of [
      ['GET', `Observation/${ids.obsB}`],
      ['GET', 'Observation'],
      ['GET', `Patient/${ids.patB}`],
      ['GET', `Patient/${ids.patB}/$everything`],
      ['POST', 'Observation', obs(ids.patB)],
      ['PUT', `Communication/${c.id}`, { ...c, status: 'entered-in-error' }],
    ]) {
      const r = await as('bg-privacy', m, u, body);
      assert.equal(r.status, 403, `${m} ${u}: ${r.text.slice(0, 200)}`);
    }
    // one that is not addressed to them stays hidden
    const other = await svc('POST', 'Communication', { resourceType: 'Communication', status: 'completed', subject: { reference: `Patient/${ids.patB}` } });
    const loose = await svc('POST', 'Communication', { resourceType: 'Communication', status: 'completed' });
    for (const c2 of [other, loose]) {
      assert.equal((await as('bg-privacy', 'GET', `Communication/${c2.id}`)).status, 404);
      assert.ok(!matchIds((await as('bg-privacy', 'GET', 'Communication')).json).includes(c2.id));
    }
  });
});

// After the tests above the outsider holds a live grant on B again (the
// clock is back at 0). The accounting of disclosures marks what was read
// through it; then the grant is ended early, by the clinician, by a
// privacy officer and by the operator's CLI, each time at once.
describe('break-the-glass: marked reads and early ends', () => {
  const BTG = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
  const isBtg = (e) => (e.purposeOfEvent ?? []).some((p) => p.coding?.some((c) => c.system === BTG && c.code === 'BTG'));
  const trail = async (pid) => ((await as('bg-privacy', 'GET', `AuditEvent?patient=${pid}&_count=1000`)).json.entry ?? []).map((e) => e.resource);
  const who = (e) => e.agent[0].who.identifier.value;
  async function waitTrail(pid, pred, what) {
    for (let i = 0; i < 40; i++) {
      const list = await trail(pid);
      const hit = list.filter(pred);
      if (hit.length) return hit;
      await new Promise((res) => setTimeout(res, 50));
    }
    return assert.fail(`${what}: not in AuditEvent?patient=${pid}`);
  }
  const ends = async (pid) => (await notifications(pid)).map((e) => e.resource)
    .filter((c) => c.topic?.text === 'Break-the-glass emergency access ended');

  test('a read made only through the grant carries the BTG purpose; a care-team read does not', async () => {
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}`)).status, 200, 'the grant is live again');
    assert.equal((await as('bg-outsider', 'GET', `Observation?subject=Patient/${ids.patB}`)).status, 200);
    assert.equal((await as('bg-coord', 'GET', `Observation/${ids.obsB}`)).status, 200);
    const mine = await waitTrail(ids.patB, (e) => who(e) === 'bg-outsider' && e.subtype?.[0]?.code === 'search-type', 'the search');
    assert.ok(isBtg(mine[0]), JSON.stringify(mine[0].purposeOfEvent));
    const reads = await waitTrail(ids.patB, (e) => who(e) === 'bg-outsider' && e.subtype?.[0]?.code === 'read', 'the read');
    // the reads served under the grant (here and above) are marked, the
    // refused ones before the grant and after its expiry are not
    assert.ok(reads.filter((e) => e.outcome === '0').length >= 3, JSON.stringify(reads.map((e) => [e.outcome, e.entity?.[0]?.what])));
    assert.ok(reads.filter((e) => e.outcome === '0').every(isBtg), 'every read under the grant is marked');
    assert.ok(reads.filter((e) => e.outcome !== '0').length >= 2);
    assert.ok(!reads.filter((e) => e.outcome !== '0').some(isBtg), 'a refused read is not');
    const team = await waitTrail(ids.patB, (e) => who(e) === 'bg-coord' && e.subtype?.[0]?.code === 'read', 'the coordinator');
    assert.ok(!team.some(isBtg), 'a care-team read is not an emergency access');
    // C is out of reach: a refused read of C is not marked either
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsC}`)).status, 404);
    const refused = await waitTrail(ids.patC, (e) => who(e) === 'bg-outsider', 'the refused read');
    assert.ok(!refused.some(isBtg));
  });

  test('only the holder or a privacy officer may end a grant', async () => {
    for (const w of ['bg-patient', 'bg-caregiver', 'bg-admin']) {
      assert.equal((await as(w, 'POST', `Patient/${ids.patB}/$break-glass-end`)).status, 403, w);
    }
    assert.equal((await raw(srv.base, 'POST', `Patient/${ids.patB}/$break-glass-end`)).status, 403, 'service');
    // a clinician with no grant of their own has nothing to end
    const r = await as('bg-nurse', 'POST', `Patient/${ids.patB}/$break-glass-end`);
    assert.equal(r.status, 404, r.text);
    assert.equal((await as('bg-outsider', 'POST', `Patient/${ids.patB}/$break-glass-end`, { resourceType: 'Patient' })).status, 400);
    assert.equal((await as('bg-outsider', 'POST', `Patient/${ids.patB}/$break-glass-end`,
      { resourceType: 'Parameters', parameter: [{ name: 'grant', valueString: 'x' }] })).status, 400);
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}`)).status, 200, 'still live');
    assert.equal((await ends(ids.patB)).length, 0, 'no end notification');
  });

  test('the clinician ends their own grant: access stops at once, the same people are told, it is recorded', async () => {
    const [grant] = (await notifications(ids.patB)).map((e) => e.resource)
      .filter((c) => c.topic?.text === 'Break-the-glass emergency access');
    const r = await as('bg-outsider', 'POST', `Patient/${ids.patB}/$break-glass-end`, {
      resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: 'The patient was handed over to the team' }],
    });
    assert.equal(r.status, 200, r.text);
    const p = r.json.parameter;
    assert.ok(p.some((x) => x.name === 'grant' && /^\d+$/.test(x.valueString)));
    const nref = p.find((x) => x.name === 'notification').valueReference.reference;
    // at once: the very next request
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}`)).status, 404, 'read after the end');
    assert.equal((await as('bg-outsider', 'GET', `Observation?subject=Patient/${ids.patB}&_total=accurate`)).json.total, 0);
    assert.equal((await as('bg-outsider', 'GET', `Patient/${ids.patB}/$everything`)).status, 404);
    // the end's notification: the grant's recipients, about the grant's
    const [end] = await ends(ids.patB);
    assert.equal(`Communication/${end.id}`, nref);
    assert.deepEqual(end.recipient.map((x) => x.reference).sort(), grant.recipient.map((x) => x.reference).sort());
    assert.equal(end.about[0].reference, `Communication/${grant.id}`);
    assert.equal(end.sender.reference, `Practitioner/${ids.outsider}`);
    assert.ok(end.payload[0].contentString.includes('handed over'));
    // the audit record: BTG, action D, the ender, the reason
    const [rec] = await waitTrail(ids.patB, (e) => e.subtype?.[0]?.code === 'BTG' && e.action === 'D', 'the end');
    assert.equal(who(rec), 'bg-outsider');
    assert.ok(isBtg(rec));
    assert.equal(rec.purposeOfEvent[0].text, 'The patient was handed over to the team');
    assert.ok(rec.entity.some((x) => x.what?.reference === nref));
    // nothing left to end
    assert.equal((await as('bg-outsider', 'POST', `Patient/${ids.patB}/$break-glass-end`)).status, 404);
  });

  test('a privacy officer revokes any live grant on the patient', async () => {
    const g = await as('bg-outsider', 'POST', `Patient/${ids.patB}/$break-glass`, claim(REASON, 30));
    assert.equal(g.status, 200, g.text);
    const gid = g.json.parameter.find((x) => x.name === 'grant').valueString;
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}`)).status, 200);
    // a grant that is not on this patient is not found
    assert.equal((await as('bg-privacy', 'POST', `Patient/${ids.patC}/$break-glass-end`)).status, 404);
    const r = await as('bg-privacy', 'POST', `Patient/${ids.patB}/$break-glass-end`,
      { resourceType: 'Parameters', parameter: [{ name: 'grant', valueString: gid }] });
    assert.equal(r.status, 200, r.text);
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}`)).status, 404, 'revoked');
    const recs = await waitTrail(ids.patB, (e) => e.subtype?.[0]?.code === 'BTG' && e.action === 'D' && who(e) === 'bg-privacy', 'the revocation');
    assert.equal(recs.length, 1);
    assert.equal((await ends(ids.patB)).length, 2);
  });

  test('careweave glass list and glass end: the operator ends a grant', async () => {
    const g = await as('bg-outsider', 'POST', `Patient/${ids.patB}/$break-glass`, claim(REASON, 30));
    assert.equal(g.status, 200, g.text);
    const gid = g.json.parameter.find((x) => x.name === 'grant').valueString;
    const list = await runCli(['glass', 'list', '--db', srv.db]);
    assert.equal(list.code, 0, list.stderr);
    const row = list.stdout.split('\n').find((l) => l.startsWith(`${gid} `));
    assert.ok(row && row.includes('bg-outsider') && row.includes(ids.patB) && /\blive$/.test(row), list.stdout);
    assert.ok(!list.stdout.includes(REASON), 'the reason is not listed');
    assert.match(list.stdout, /^1 grant live$/m);
    const other = await runCli(['glass', 'list', '--patient', ids.patC, '--db', srv.db]);
    assert.match(other.stdout, /^0 grants live$/m);

    const end = await runCli(['glass', 'end', gid, '--reason', 'Ended by the operator on request', '--db', srv.db]);
    assert.equal(end.code, 0, end.stderr);
    assert.equal((await as('bg-outsider', 'GET', `Observation/${ids.obsB}`)).status, 404, 'ended by the CLI');
    const all = await runCli(['glass', 'list', '--all', '--db', srv.db]);
    assert.match(all.stdout.split('\n').find((l) => l.startsWith(`${gid} `)), /ended \S+ by the operator$/);
    assert.ok(all.stdout.split('\n').some((l) => / ended \S+ by bg-privacy$/.test(l)), all.stdout);
    assert.ok(all.stdout.split('\n').some((l) => / ended \S+ by bg-outsider$/.test(l)), all.stdout);
    const recs = await waitTrail(ids.patB, (e) => e.subtype?.[0]?.code === 'BTG' && e.action === 'D' &&
      e.agent[0].role?.[0]?.coding?.[0]?.code === 'operator', 'the operator end');
    assert.equal(recs.length, 1);
    assert.equal((await ends(ids.patB)).length, 3);
    const again = await runCli(['glass', 'end', gid, '--db', srv.db]);
    assert.equal(again.code, 1, again.stdout + again.stderr);
    assert.equal((await runCli(['glass', 'end', '--db', srv.db])).code, 2);
    assert.equal((await runCli(['glass', 'frob'])).code, 2);
    assert.match((await runCli(['--help'])).stdout, /^ {2}glass /m);
  });

  test('the accounting of disclosures (audit report) shows the emergency accesses as such', async () => {
    const rep = await runCli(['audit', 'report', '--patient', ids.patB, '--db', srv.db]);
    assert.equal(rep.code, 0, rep.stderr);
    const lines = rep.stdout.split('\n');
    assert.ok(lines.some((l) => l.includes('bg-outsider') && /\bread BTG\b/.test(l)), rep.stdout);
    assert.ok(lines.some((l) => l.includes('bg-outsider') && /\bBTG-end\b/.test(l)));
    assert.ok(lines.some((l) => l.includes('bg-coord') && /\bread\b/.test(l) && !/\bread BTG\b/.test(l)));
    assert.ok(!rep.stdout.includes(REASON));
  });
});

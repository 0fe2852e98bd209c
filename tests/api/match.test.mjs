// match.test.mjs: POST Patient/$match (issue 5, patient matching; the
// rules are in src/coord/README.md, "Patient matching"), through a real
// FHIR client: an identifier match is certain, demographic matches are
// graded and ordered by score, onlyCertainMatches and count, patients the
// caller may not read are never answered (a coordinator with one patient
// on their team), the audit record names the patients disclosed, and bad
// input is a 400 or 422 OperationOutcome. Every request's audit records
// are checked at stop() (tests/support/audit-check.mjs).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, raw, addUser, login, fhirError, assertOutcome, Client, sleep } from '../support/server.mjs';

const GRADE = 'http://hl7.org/fhir/StructureDefinition/match-grade';
const REASONS = 'https://careweave.org/fhir/StructureDefinition/match-reasons';
const MRN = 'urn:oid:2.16.840.1.113883.19.5.99';
const PW = 'match-password-12345';

let srv;
const ids = {};

const params = (resource, extra = []) => ({
  resourceType: 'Parameters',
  parameter: [{ name: 'resource', resource }, ...extra],
});

const gradeOf = (e) => e.search.extension.find((x) => x.url === GRADE)?.valueCode;
const reasonsOf = (e) => e.search.extension.find((x) => x.url === REASONS)?.valueString;
const matches = (b) => (b.entry ?? []).filter((e) => e.search?.mode === 'match');

function match(client, resource, extra) {
  return client.operation({ resourceType: 'Patient', name: '$match', input: params(resource, extra) });
}

const anna = {
  resourceType: 'Patient',
  identifier: [{ system: MRN, value: 'MRN-4711' }],
  name: [{ family: 'Lindqvist', given: ['Anna', 'Maria'] }],
  gender: 'female', birthDate: '1984-03-07',
  telecom: [{ system: 'phone', value: '+1 (555) 201-3344' }],
  address: [{ line: ['12 North Oak Street'], city: 'Springfield', postalCode: '62704' }],
};

before(async () => {
  srv = await startServer();
  const mk = async (body) => (await srv.client.create({ resourceType: 'Patient', body })).id;
  ids.anna = await mk(anna);
  // her twin: same family, birth date, address and phone
  ids.twin = await mk({ ...anna, identifier: [{ system: MRN, value: 'MRN-4712' }], name: [{ family: 'Lindqvist', given: ['Sofia'] }] });
  // someone born the same day
  ids.stranger = await mk({ resourceType: 'Patient', name: [{ family: 'Novak', given: ['Petr'] }], gender: 'male', birthDate: '1984-03-07' });
  // an old duplicate, inactive: never answered
  ids.inactive = await mk({ ...anna, identifier: [{ system: MRN, value: 'MRN-0001' }], active: false });
  // Jonas Berg, in a coordinator's reach; Jonas Berg's namesake, not
  ids.inReach = await mk({ resourceType: 'Patient', name: [{ family: 'Berg', given: ['Jonas'] }], gender: 'male', birthDate: '1970-05-05' });
  ids.outOfReach = await mk({ resourceType: 'Patient', name: [{ family: 'Berg', given: ['Jonas'] }], gender: 'male', birthDate: '1970-05-05' });
  const pr = await srv.client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', name: [{ family: 'Coordinator' }] } });
  await srv.client.create({
    resourceType: 'CareTeam',
    body: { resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${ids.inReach}` }, participant: [{ member: { reference: `Practitioner/${pr.id}` } }] },
  });
  await addUser(srv.db, 'match-coordinator', PW, ['--role', 'coordinator', '--link', `Practitioner/${pr.id}`]);
  const { token } = await login(new URL(srv.base).origin, 'match-coordinator', PW);
  ids.coordinator = new Client({ baseUrl: srv.base, bearerToken: token });
});

after(async () => { await srv?.stop(); });

describe('Patient/$match', () => {
  test('an identifier is a certain match, whatever else the fragment lacks', async () => {
    const b = await match(srv.client, { resourceType: 'Patient', identifier: [{ system: MRN, value: 'MRN-4711' }] });
    assert.equal(b.resourceType, 'Bundle');
    assert.equal(b.type, 'searchset');
    const m = matches(b);
    assert.equal(m.length, 1, JSON.stringify(b).slice(0, 800));
    assert.equal(m[0].resource.id, ids.anna);
    assert.equal(m[0].fullUrl, `${srv.base}/Patient/${ids.anna}`);
    assert.equal(gradeOf(m[0]), 'certain');
    assert.ok(m[0].search.score >= 0.85 && m[0].search.score <= 1);
    assert.equal(reasonsOf(m[0]), 'identifier agrees');
    assert.equal(b.total, 1);
  });

  test('demographic matches are graded and ordered; a typo and a new address is probable, the twin is not certain', async () => {
    const b = await match(srv.client, {
      resourceType: 'Patient', name: [{ family: 'Lindquist', given: ['Anna'] }], gender: 'female', birthDate: '1984-03-07',
      address: [{ line: ['400 Elm Avenue'], postalCode: '60614' }],
    });
    const m = matches(b);
    assert.ok(m.length >= 1);
    assert.equal(m[0].resource.id, ids.anna);
    assert.equal(gradeOf(m[0]), 'probable');
    assert.match(reasonsOf(m[0]), /family name is spelled alike/);
    assert.match(reasonsOf(m[0]), /address differs/);
    for (let i = 1; i < m.length; i++) assert.ok(m[i].search.score <= m[i - 1].search.score);
    const got = m.map((e) => e.resource.id);
    assert.ok(!got.includes(ids.stranger), 'a stranger born the same day is no match');
    assert.ok(!got.includes(ids.inactive), 'an inactive record is never a candidate');
    // the same fragment as the twin sends it: Anna is no better than possible
    const t = matches(await match(srv.client, { ...anna, identifier: undefined, name: [{ family: 'Lindqvist', given: ['Sofia'] }] }));
    assert.equal(t[0].resource.id, ids.twin);
    assert.equal(gradeOf(t[0]), 'certain');
    const a = t.find((e) => e.resource.id === ids.anna);
    assert.ok(!a || ['possible', 'certainly-not'].includes(gradeOf(a)), JSON.stringify(a?.search));
    if (a) assert.match(reasonsOf(a), /given name differs/);
  });

  test('a married-name change with the same birth date, given name and phone is probable', async () => {
    const m = matches(await match(srv.client, {
      resourceType: 'Patient', name: [{ family: 'Haddad', given: ['Anna'] }], birthDate: '1984-03-07',
      telecom: [{ system: 'phone', value: '555.201.3344' }],
    }));
    assert.equal(m[0].resource.id, ids.anna);
    assert.equal(gradeOf(m[0]), 'probable');
    assert.match(reasonsOf(m[0]), /family name differs/);
  });

  test('onlyCertainMatches leaves out the rest and says so; count caps the answer', async () => {
    const frag = { resourceType: 'Patient', name: [{ family: 'Lindqvist', given: ['Anna'] }], gender: 'female', birthDate: '1984-07-03' };
    const all = matches(await match(srv.client, frag));
    assert.ok(all.length >= 1 && all.every((e) => gradeOf(e) !== 'certain'), 'a swapped birth date is never certain');
    const only = await match(srv.client, frag, [{ name: 'onlyCertainMatches', valueBoolean: true }]);
    assert.equal(matches(only).length, 0);
    const oo = (only.entry ?? []).find((e) => e.search?.mode === 'outcome');
    assert.ok(oo && /not certain/.test(oo.resource.issue[0].diagnostics));
    assert.equal(only.total, 0);
    const certain = await match(srv.client, anna, [{ name: 'onlyCertainMatches', valueBoolean: true }]);
    assert.deepEqual(matches(certain).map((e) => e.resource.id), [ids.anna]);
    // count: the twin and Anna both match the family, birth date and address
    const two = matches(await match(srv.client, { resourceType: 'Patient', name: [{ family: 'Lindqvist' }], birthDate: '1984-03-07', address: anna.address }));
    assert.ok(two.length >= 2, `${two.length} matches`);
    const one = await match(srv.client, { resourceType: 'Patient', name: [{ family: 'Lindqvist' }], birthDate: '1984-03-07', address: anna.address },
      [{ name: 'count', valueInteger: 1 }]);
    assert.equal(matches(one).length, 1);
    const many = await match(srv.client, anna, [{ name: 'count', valueInteger: 100000 }]);
    assert.ok(matches(many).length >= 1);
  });

  test('a patient the caller may not read is never answered, nor hinted at', async () => {
    const frag = { resourceType: 'Patient', name: [{ family: 'Berg', given: ['Jonas'] }], gender: 'male', birthDate: '1970-05-05' };
    const svc = matches(await match(srv.client, frag)).map((e) => e.resource.id).sort();
    assert.deepEqual(svc, [ids.inReach, ids.outOfReach].sort());
    const b = await match(ids.coordinator, frag);
    assert.deepEqual(matches(b).map((e) => e.resource.id), [ids.inReach]);
    assert.ok(!JSON.stringify(b).includes(ids.outOfReach));
    assert.ok(!(b.entry ?? []).some((e) => e.search?.mode === 'outcome'), 'nothing says a record was withheld');
    // none of Anna's family is in the coordinator's reach
    const none = await match(ids.coordinator, anna);
    assert.equal(none.total, 0);
    assert.equal(none.entry, undefined);
  });

  test('the audit record names the patients disclosed', async () => {
    const frag = { resourceType: 'Patient', name: [{ family: 'Berg', given: ['Jonas'] }], gender: 'male', birthDate: '1970-05-05' };
    await match(ids.coordinator, frag);
    let rec = null;
    for (let i = 0; i < 100 && !rec; i++) {
      const b = (await raw(srv.base, 'GET', `AuditEvent?patient=${ids.inReach}&_count=100`)).json;
      rec = (b.entry ?? []).map((e) => e.resource).find((ev) => ev.subtype?.[0]?.code === 'operation' &&
        ev.agent?.[0]?.who?.identifier?.value === 'match-coordinator');
      if (!rec) await sleep(50);
    }
    assert.ok(rec, 'an operation record naming the patient answered');
    assert.ok(rec.entity.some((e) => e.what?.reference === `Patient/${ids.inReach}`));
    assert.ok(!JSON.stringify(rec).includes(ids.outOfReach), 'the patient withheld is not named');
  });

  test('bad input is a 400 or 422 OperationOutcome', async () => {
    const post = (body) => raw(srv.base, 'POST', 'Patient/$match', { body });
    const cases = [
      [{ resourceType: 'Patient', name: [{ family: 'X' }] }, 400, /Parameters/],
      [{ resourceType: 'Parameters' }, 400, /resource .*missing/],
      [params({ resourceType: 'Observation', status: 'final', code: { text: 'x' } }), 400, /must be a Patient/],
      [params({ resourceType: 'Patient', gender: 'female' }), 400, /nothing to match on/],
      [params(anna, [{ name: 'count', valueInteger: 0 }]), 400, /count/],
      [params(anna, [{ name: 'count', valueString: '5' }]), 400, /count/],
      [params(anna, [{ name: 'onlyCertainMatches', valueString: 'yes' }]), 400, /onlyCertainMatches/],
      [params(anna, [{ name: 'resource', resource: anna }]), 400, /more than once/],
      [params({ resourceType: 'Patient', birthDate: '1984-02-31', name: [{ family: 'X' }] }), 422, /./],
      [params({ resourceType: 'Patient', favouriteColour: 'blue', name: [{ family: 'X' }] }), 422, /./],
    ];
    for (const [body, status, words] of cases) {
      const r = await post(body);
      assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 200)}: ${r.text.slice(0, 300)}`);
      assertOutcome(r.json);
      assert.match(r.json.issue.map((i) => i.diagnostics).join(' '), words);
    }
    const notJson = await raw(srv.base, 'POST', 'Patient/$match', { body: '{"resourceType":' });
    assert.equal(notJson.status, 400);
    const e = await fhirError(srv.client.operation({ resourceType: 'Observation', name: '$match', input: params(anna) }));
    assert.equal(e.status, 404);
    const get = await raw(srv.base, 'GET', 'Patient/$match');
    assert.equal(get.status, 405);
  });

  test('the operation is in the CapabilityStatement', async () => {
    const cs = (await raw(srv.base, 'GET', 'metadata')).json;
    const op = cs.rest[0].resource.find((r) => r.type === 'Patient').operation.find((o) => o.name === 'match');
    assert.equal(op.definition, 'http://hl7.org/fhir/OperationDefinition/Patient-match');
  });
});

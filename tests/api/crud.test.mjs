// crud.test.mjs: create, read, vread, update, delete, history, metadata,
// content negotiation, Prefer, If-Match and concurrent read-modify-write,
// against the real server with a real FHIR client (fhir-kit-client).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  startServer, raw, httpOf, fhirError, assertOutcome, runTag, sleep, repoRoot, authHeader,
} from '../support/server.mjs';

let srv;
let client;
const tag = runTag('crud');

function patient(extra = {}) {
  return {
    resourceType: 'Patient',
    meta: { tag: [{ system: tag.system, code: tag.code }] },
    name: [{ family: 'Crud', given: ['Alice'] }],
    gender: 'female',
    birthDate: '1970-01-02',
    ...extra,
  };
}

const servedTypes = readFileSync(path.join(repoRoot, 'src/fhir/served.def'), 'utf8')
  .split('\n').map((l) => /^SERVED\((\w+)\)/.exec(l)).filter(Boolean).map((m) => m[1]);

before(async () => {
  srv = await startServer();
  client = srv.client;
});
after(async () => {
  await srv?.stop();
});

describe('create, read, vread, update, delete', () => {
  let id;
  let created;

  test('create returns 201 with Location, ETag W/"1" and an assigned id', async () => {
    created = await client.create({ resourceType: 'Patient', body: patient() });
    const { status, headers } = httpOf(created);
    assert.equal(status, 201);
    assert.equal(created.resourceType, 'Patient');
    assert.ok(typeof created.id === 'string' && /^[A-Za-z0-9\-.]{1,64}$/.test(created.id), `id: ${created.id}`);
    id = created.id;
    assert.equal(created.meta?.versionId, '1');
    assert.ok(created.meta?.lastUpdated, 'meta.lastUpdated set');
    assert.ok(!Number.isNaN(Date.parse(created.meta.lastUpdated)), 'lastUpdated is an instant');
    assert.equal(headers.get('etag'), 'W/"1"');
    const loc = headers.get('location');
    assert.ok(loc, 'Location header');
    // [base]/[type]/[id]/_history/[vid]
    assert.match(loc, new RegExp(`/Patient/${id}/_history/1$`), `Location: ${loc}`);
    assert.ok(loc.startsWith(srv.base) || loc.startsWith('Patient/'), `Location is under the base: ${loc}`);
    assert.ok(headers.get('last-modified'), 'Last-Modified header');
    assert.deepEqual(created.name, [{ family: 'Crud', given: ['Alice'] }]);
  });

  test('create ignores an id given in the body', async () => {
    const r = await client.create({ resourceType: 'Patient', body: patient({ id: 'client-chosen-id' }) });
    assert.equal(httpOf(r).status, 201);
    assert.notEqual(r.id, 'client-chosen-id');
    await fhirError(client.read({ resourceType: 'Patient', id: 'client-chosen-id' }))
      .then((e) => assert.equal(e.status, 404));
  });

  test('two creates get different ids', async () => {
    const a = await client.create({ resourceType: 'Patient', body: patient() });
    const b = await client.create({ resourceType: 'Patient', body: patient() });
    assert.notEqual(a.id, b.id);
  });

  test('read returns the resource with ETag and meta', async () => {
    const r = await client.read({ resourceType: 'Patient', id });
    const { status, headers } = httpOf(r);
    assert.equal(status, 200);
    assert.equal(r.id, id);
    assert.equal(r.meta.versionId, '1');
    assert.equal(r.meta.lastUpdated, created.meta.lastUpdated);
    assert.equal(headers.get('etag'), 'W/"1"');
    assert.match(headers.get('content-type') ?? '', /^application\/(fhir\+)?json/);
    assert.equal(r.birthDate, '1970-01-02');
  });

  test('read of an unknown id is 404 with an OperationOutcome', async () => {
    const e = await fhirError(client.read({ resourceType: 'Patient', id: 'does-not-exist-123' }));
    assert.equal(e.status, 404);
    assertOutcome(e.data);
  });

  test('vread of version 1 and of a version that does not exist', async () => {
    const v1 = await client.vread({ resourceType: 'Patient', id, version: '1' });
    assert.equal(httpOf(v1).status, 200);
    assert.equal(v1.meta.versionId, '1');
    const e = await fhirError(client.vread({ resourceType: 'Patient', id, version: '99' }));
    assert.equal(e.status, 404);
  });

  test('update makes version 2', async () => {
    const body = { ...patient(), id, birthDate: '1970-01-03' };
    const u = await client.update({ resourceType: 'Patient', id, body });
    const { status, headers } = httpOf(u);
    assert.equal(status, 200);
    assert.equal(u.meta.versionId, '2');
    assert.equal(headers.get('etag'), 'W/"2"');
    assert.equal(u.birthDate, '1970-01-03');
    assert.ok(Date.parse(u.meta.lastUpdated) >= Date.parse(created.meta.lastUpdated));
    const r = await client.read({ resourceType: 'Patient', id });
    assert.equal(r.meta.versionId, '2');
    assert.equal(r.birthDate, '1970-01-03');
    const v1 = await client.vread({ resourceType: 'Patient', id, version: '1' });
    assert.equal(v1.birthDate, '1970-01-02', 'version 1 is kept as it was');
  });

  test('update of a new id with a client id creates it (201)', async () => {
    const cid = `crud-client-${Date.now()}`;
    const u = await client.update({ resourceType: 'Patient', id: cid, body: { ...patient(), id: cid } });
    const { status, headers } = httpOf(u);
    assert.equal(status, 201);
    assert.equal(u.id, cid);
    assert.equal(u.meta.versionId, '1');
    assert.equal(headers.get('etag'), 'W/"1"');
    const r = await client.read({ resourceType: 'Patient', id: cid });
    assert.equal(r.id, cid);
    const u2 = await client.update({ resourceType: 'Patient', id: cid, body: { ...patient(), id: cid, gender: 'other' } });
    assert.equal(httpOf(u2).status, 200);
    assert.equal(u2.meta.versionId, '2');
  });

  test('delete: read gives 410, old versions stay readable, history shows the delete', async () => {
    const d = await client.delete({ resourceType: 'Patient', id });
    assert.ok([200, 204].includes(httpOf(d).status), `delete status ${httpOf(d).status}`);

    const gone = await fhirError(client.read({ resourceType: 'Patient', id }));
    assert.equal(gone.status, 410);

    const v2 = await client.vread({ resourceType: 'Patient', id, version: '2' });
    assert.equal(v2.meta.versionId, '2');
    assert.equal(v2.birthDate, '1970-01-03');
    const v1 = await client.vread({ resourceType: 'Patient', id, version: '1' });
    assert.equal(v1.meta.versionId, '1');

    // the delete is version 3; reading it is 410
    const v3 = await fhirError(client.vread({ resourceType: 'Patient', id, version: '3' }));
    assert.equal(v3.status, 410);

    const h = await client.history({ resourceType: 'Patient', id });
    assert.equal(h.resourceType, 'Bundle');
    assert.equal(h.type, 'history');
    assert.equal(h.entry.length, 3, `history entries: ${JSON.stringify(h.entry)}`);
    const [e3, e2, e1] = h.entry; // newest first
    assert.equal(e3.request?.method, 'DELETE', `newest entry is the delete: ${JSON.stringify(e3)}`);
    assert.equal(e3.resource, undefined, 'a delete entry has no resource');
    assert.equal(e2.resource?.meta?.versionId, '2');
    assert.equal(e2.request?.method, 'PUT');
    assert.equal(e1.resource?.meta?.versionId, '1');
    assert.equal(e1.request?.method, 'POST');
    for (const e of h.entry) assert.ok(e.response?.status, 'history entries carry response.status');

    // the deleted resource is no longer found by search
    const s = await client.search({ resourceType: 'Patient', searchParams: { _id: id } });
    assert.equal((s.entry ?? []).length, 0);
  });

  test('delete of a deleted resource is still fine, and an update brings it back', async () => {
    const d = await client.delete({ resourceType: 'Patient', id });
    assert.ok([200, 204].includes(httpOf(d).status));
    const u = await client.update({ resourceType: 'Patient', id, body: { ...patient(), id } });
    assert.ok([200, 201].includes(httpOf(u).status));
    assert.equal(u.meta.versionId, '4');
    const r = await client.read({ resourceType: 'Patient', id });
    assert.equal(r.meta.versionId, '4');
  });
});

describe('history', () => {
  const ids = [];
  test('type and system history list the versions written', async () => {
    for (let i = 0; i < 3; i++) {
      const p = await client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', name: [{ family: `Hist${i}` }] } });
      ids.push(p.id);
    }
    await client.update({ resourceType: 'Practitioner', id: ids[0], body: { resourceType: 'Practitioner', id: ids[0], name: [{ family: 'Hist0b' }] } });

    const th = await client.history({ resourceType: 'Practitioner' });
    assert.equal(th.type, 'history');
    const keys = th.entry.map((e) => `${e.resource.id}/${e.resource.meta.versionId}`);
    assert.deepEqual(keys.slice(0, 4), [`${ids[0]}/2`, `${ids[2]}/1`, `${ids[1]}/1`, `${ids[0]}/1`],
      'type history: newest first');
    assert.ok(th.entry.every((e) => e.resource.resourceType === 'Practitioner'));

    const sh = await client.history({});
    assert.equal(sh.type, 'history');
    const skeys = sh.entry.map((e) => e.resource ? `${e.resource.resourceType}/${e.resource.id}/${e.resource.meta.versionId}` : e.request?.url);
    assert.equal(skeys[0], `Practitioner/${ids[0]}/2`, 'system history starts with the newest version');
    for (const k of [`Practitioner/${ids[1]}/1`, `Practitioner/${ids[2]}/1`]) assert.ok(skeys.includes(k), `${k} in system history`);
    assert.ok(sh.entry.some((e) => e.resource?.resourceType === 'Patient'), 'system history has other types');
  });

  test('history _count pages and _since filters', async () => {
    const h = await client.request('Practitioner/_history?_count=2');
    assert.equal(h.entry.length, 2);
    const next = (h.link ?? []).find((l) => l.relation === 'next');
    assert.ok(next, 'a next link when there is more');
    const h2 = await client.nextPage({ bundle: h });
    assert.equal(h2.entry.length, 2);
    const k1 = h.entry.map((e) => `${e.resource.id}/${e.resource.meta.versionId}`);
    const k2 = h2.entry.map((e) => `${e.resource.id}/${e.resource.meta.versionId}`);
    assert.equal(k1.filter((k) => k2.includes(k)).length, 0, 'pages do not overlap');

    await sleep(5);
    const since = new Date().toISOString();
    await sleep(5);
    const p = await client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', name: [{ family: 'Later' }] } });
    const hs = await client.request(`Practitioner/_history?_since=${encodeURIComponent(since)}`);
    assert.deepEqual(hs.entry.map((e) => e.resource.id), [p.id]);
  });
});

describe('metadata', () => {
  test('CapabilityStatement lists the served types with search parameters', async () => {
    const cs = await client.capabilityStatement();
    assert.equal(httpOf(cs).status, 200);
    assert.equal(cs.resourceType, 'CapabilityStatement');
    assert.equal(cs.fhirVersion, '4.0.1');
    assert.equal(cs.kind, 'instance');
    assert.ok(cs.status, 'status');
    assert.ok(cs.date, 'date');
    assert.ok((cs.format ?? []).some((f) => /json/.test(f)), `format lists json: ${cs.format}`);
    const rest = cs.rest?.find((r) => r.mode === 'server');
    assert.ok(rest, 'rest[mode=server]');
    const types = rest.resource.map((r) => r.type);
    for (const t of servedTypes) assert.ok(types.includes(t), `${t} in CapabilityStatement`);
    for (const t of types) assert.ok(servedTypes.includes(t), `${t} advertised but not in served.def`);
    const pat = rest.resource.find((r) => r.type === 'Patient');
    const codes = (pat.searchParam ?? []).map((s) => s.name);
    for (const c of ['name', 'birthdate', 'gender', 'identifier', 'family']) assert.ok(codes.includes(c), `Patient searchParam ${c}`);
    for (const s of pat.searchParam) assert.ok(s.type, `searchParam ${s.name} has a type`);
    const ints = (pat.interaction ?? []).map((i) => i.code);
    for (const c of ['read', 'vread', 'update', 'delete', 'create', 'search-type', 'history-instance']) assert.ok(ints.includes(c), `interaction ${c}`);
    const obs = rest.resource.find((r) => r.type === 'Observation');
    const ocodes = obs.searchParam.map((s) => s.name);
    for (const c of ['code', 'subject', 'patient', 'date', 'value-quantity']) assert.ok(ocodes.includes(c), `Observation searchParam ${c}`);
    for (const c of ['patch', 'history-type']) assert.ok(ints.includes(c), `interaction ${c}`);
    // the audit trail is read and searched, never written: it says so
    const audit = rest.resource.find((r) => r.type === 'AuditEvent');
    assert.deepEqual(audit.interaction.map((i) => i.code).sort(), ['read', 'search-type']);
    assert.equal(audit.updateCreate, false);
    assert.equal(audit.conditionalDelete, 'not-supported');
    assert.ok(rest.interaction?.some((i) => i.code === 'transaction'), 'system interaction transaction');
    assert.ok(rest.interaction?.some((i) => i.code === 'batch'), 'system interaction batch');
  });
});

describe('content negotiation', () => {
  let id;
  before(async () => {
    id = (await client.create({ resourceType: 'Patient', body: patient() })).id;
  });

  for (const fmt of ['json', 'application/json', 'application/fhir+json']) {
    test(`_format=${fmt} gives JSON`, async () => {
      const r = await client.request(`Patient/${id}?_format=${encodeURIComponent(fmt)}`);
      assert.equal(httpOf(r).status, 200);
      assert.equal(r.id, id);
      assert.match(httpOf(r).headers.get('content-type'), /json/);
    });
  }

  test('Accept: application/json gives JSON', async () => {
    const r = await raw(srv.base, 'GET', `Patient/${id}`, { headers: { accept: 'application/json' } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/(fhir\+)?json/);
    assert.equal(r.json.id, id);
  });

  test('Accept: */* gives FHIR JSON', async () => {
    const r = await raw(srv.base, 'GET', `Patient/${id}`, { headers: { accept: '*/*' } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/fhir\+json/);
  });

  test('Accept XML only -> 406', async () => {
    const r = await raw(srv.base, 'GET', `Patient/${id}`, { headers: { accept: 'application/fhir+xml' } });
    assert.equal(r.status, 406);
  });

  test('_format=xml -> 406', async () => {
    const r = await raw(srv.base, 'GET', `Patient/${id}?_format=xml`, { headers: { accept: 'application/fhir+json' } });
    assert.equal(r.status, 406);
  });

  test('an XML body -> 415 and nothing is created', async () => {
    const n0 = (await client.search({ resourceType: 'Patient', searchParams: { _summary: 'count' } })).total;
    const r = await raw(srv.base, 'POST', 'Patient', {
      headers: { 'content-type': 'application/fhir+xml' },
      body: '<Patient xmlns="http://hl7.org/fhir"><gender value="male"/></Patient>',
    });
    assert.equal(r.status, 415);
    const n1 = (await client.search({ resourceType: 'Patient', searchParams: { _summary: 'count' } })).total;
    assert.equal(n1, n0);
  });
});

describe('Prefer return', () => {
  test('return=minimal: 201, Location, no resource body', async () => {
    const r = await raw(srv.base, 'POST', 'Patient', { headers: { prefer: 'return=minimal' }, body: patient() });
    assert.equal(r.status, 201);
    assert.match(r.headers.get('location') ?? '', /\/Patient\/[A-Za-z0-9\-.]+\/_history\/1$/);
    assert.equal(r.headers.get('etag'), 'W/"1"');
    assert.ok(r.text === '' || r.json?.resourceType !== 'Patient', `minimal body: ${r.text.slice(0, 200)}`);
  });

  test('return=OperationOutcome: the body is an OperationOutcome', async () => {
    const r = await raw(srv.base, 'POST', 'Patient', { headers: { prefer: 'return=OperationOutcome' }, body: patient() });
    assert.equal(r.status, 201);
    assert.equal(r.json?.resourceType, 'OperationOutcome', r.text.slice(0, 300));
    assert.ok(r.headers.get('location'));
  });

  test('return=representation: the body is the resource', async () => {
    const r = await client.create({ resourceType: 'Patient', body: patient(), options: { headers: { prefer: 'return=representation' } } });
    assert.equal(r.resourceType, 'Patient');
    assert.equal(r.meta.versionId, '1');
  });

  test('update with return=minimal', async () => {
    const p = await client.create({ resourceType: 'Patient', body: patient() });
    const r = await raw(srv.base, 'PUT', `Patient/${p.id}`, { headers: { prefer: 'return=minimal' }, body: { ...patient(), id: p.id } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('etag'), 'W/"2"');
    assert.ok(r.text === '' || r.json?.resourceType !== 'Patient');
  });
});

describe('If-Match', () => {
  test('stale If-Match -> 412 and nothing written; current If-Match -> 200', async () => {
    const p = await client.create({ resourceType: 'Patient', body: patient() });
    const u1 = await client.update({ resourceType: 'Patient', id: p.id, body: { ...patient(), id: p.id, gender: 'male' } });
    assert.equal(u1.meta.versionId, '2');

    const stale = await fhirError(client.update({
      resourceType: 'Patient', id: p.id, body: { ...patient(), id: p.id, gender: 'other' },
      options: { headers: { 'if-match': 'W/"1"' } },
    }));
    assert.equal(stale.status, 412);
    assertOutcome(stale.data);
    const r = await client.read({ resourceType: 'Patient', id: p.id });
    assert.equal(r.meta.versionId, '2');
    assert.equal(r.gender, 'male');

    const ok = await client.update({
      resourceType: 'Patient', id: p.id, body: { ...patient(), id: p.id, gender: 'other' },
      options: { headers: { 'if-match': 'W/"2"' } },
    });
    assert.equal(httpOf(ok).status, 200);
    assert.equal(ok.meta.versionId, '3');
    assert.equal(ok.gender, 'other');
  });

  test('If-Match on delete: stale -> 412, current -> deleted', async () => {
    const p = await client.create({ resourceType: 'Patient', body: patient() });
    await client.update({ resourceType: 'Patient', id: p.id, body: { ...patient(), id: p.id } });
    const e = await fhirError(client.delete({ resourceType: 'Patient', id: p.id, options: { headers: { 'if-match': 'W/"1"' } } }));
    assert.equal(e.status, 412);
    assert.equal((await client.read({ resourceType: 'Patient', id: p.id })).meta.versionId, '2');
    await client.delete({ resourceType: 'Patient', id: p.id, options: { headers: { 'if-match': 'W/"2"' } } });
    assert.equal((await fhirError(client.read({ resourceType: 'Patient', id: p.id }))).status, 410);
  });

  test('16 concurrent read-modify-write clients with If-Match lose no update', async () => {
    const CLIENTS = 16;
    const PER_CLIENT = 4;
    const obs = await client.create({
      resourceType: 'Observation',
      body: {
        resourceType: 'Observation', status: 'final',
        meta: { tag: [{ system: tag.system, code: tag.code }] },
        code: { coding: [{ system: 'urn:careweave:test', code: 'counter' }] },
        valueInteger: 0,
      },
    });
    const id = obs.id;
    let successes = 0;
    let conflicts = 0;
    const deadline = Date.now() + 90000;
    async function worker() {
      for (let done = 0; done < PER_CLIENT;) {
        assert.ok(Date.now() < deadline, 'read-modify-write did not finish in time');
        const cur = await client.read({ resourceType: 'Observation', id });
        const etag = httpOf(cur).headers.get('etag');
        assert.equal(etag, `W/"${cur.meta.versionId}"`);
        const next = { ...cur, valueInteger: cur.valueInteger + 1 };
        delete next.meta;
        try {
          const u = await client.update({ resourceType: 'Observation', id, body: next, options: { headers: { 'if-match': etag } } });
          assert.equal(httpOf(u).status, 200);
          assert.equal(Number(u.meta.versionId), Number(cur.meta.versionId) + 1);
          successes++;
          done++;
        } catch (e) {
          if (e.response?.status === 412) { conflicts++; continue; }
          throw e;
        }
      }
    }
    await Promise.all(Array.from({ length: CLIENTS }, worker));
    const fin = await client.read({ resourceType: 'Observation', id });
    assert.equal(successes, CLIENTS * PER_CLIENT);
    assert.equal(fin.valueInteger, successes, `final counter ${fin.valueInteger}, successful updates ${successes} (412s: ${conflicts})`);
    assert.equal(Number(fin.meta.versionId), successes + 1);
    const h = await client.request(`Observation/${id}/_history?_count=1000`);
    assert.equal(h.entry.length, successes + 1, 'one version per successful update');
    const values = h.entry.map((e) => e.resource.valueInteger).sort((a, b) => a - b);
    assert.deepEqual(values, Array.from({ length: successes + 1 }, (_, i) => i), 'each version is the previous + 1');
  });
});

describe('fidelity: what is stored is what was sent', () => {
  test('a rich resource reads back equal to what was sent (apart from id and meta)', async () => {
    const body = {
      resourceType: 'Patient',
      meta: { tag: [{ system: tag.system, code: tag.code }], profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient'] },
      text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml"><p>Zoë &amp; 李小龙 — “quotes” \\ backslash</p></div>' },
      extension: [
        { url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race', extension: [{ url: 'text', valueString: 'Mixed 🙂' }] },
        { url: 'http://example.org/ext/flag', valueBoolean: false },
      ],
      identifier: [{ use: 'official', system: 'urn:oid:2.16.840.1.113883.4.1', value: '999-99-9999', period: { start: '2001-02-03T04:05:06+05:30' } }],
      active: true,
      name: [{ use: 'official', family: 'Ñúñez-Ö\'Brien', given: ['Ana', 'María'], prefix: ['Dr.'] }, { text: 'Ana 🙂 Núñez' }],
      telecom: [{ system: 'phone', value: '+1 (555) 010-9999', use: 'home', rank: 1 }],
      gender: 'female',
      birthDate: '1985-07-09',
      _birthDate: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1985-07-09T04:30:00-07:00' }] },
      deceasedBoolean: false,
      address: [{ line: ['1 Main St', 'Apt \u00e9 2'], city: 'Springfield', postalCode: '01101', country: 'US' }],
      maritalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-MaritalStatus', code: 'M' }] },
      multipleBirthInteger: 2,
      contact: [{ relationship: [{ text: 'mother' }], name: { family: 'Núñez' } }],
      communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'es' }] }, preferred: true }],
    };
    const c = await client.create({ resourceType: 'Patient', body });
    const r = await client.read({ resourceType: 'Patient', id: c.id });
    const strip = (x) => {
      const y = structuredClone(x);
      delete y.id;
      delete y.meta.versionId;
      delete y.meta.lastUpdated;
      return y;
    };
    assert.deepEqual(strip(r), strip(body));
  });

  test('decimals keep their precision (FHIR decimal: 7.20 is not 7.2)', async () => {
    // JSON.stringify cannot write 7.20, so the body is written by hand
    const text = '{"resourceType":"Observation","status":"final","code":{"text":"precision"},' +
      '"valueQuantity":{"value":7.20,"unit":"%"},' +
      '"component":[{"code":{"text":"a"},"valueQuantity":{"value":0.010}},' +
      '{"code":{"text":"b"},"valueQuantity":{"value":12345678901234567890.123456789}},' +
      '{"code":{"text":"c"},"valueQuantity":{"value":0.1}},' +
      '{"code":{"text":"d"},"valueQuantity":{"value":100}}]}';
    const c = await raw(srv.base, 'POST', 'Observation', { body: text });
    assert.equal(c.status, 201, c.text);
    const r = await raw(srv.base, 'GET', `Observation/${c.json.id}`);
    const bad = [];
    for (const lit of ['7.20', '0.010', '12345678901234567890.123456789', '0.1', '100']) {
      if (!new RegExp(`"value":${lit.replace('.', '\\.')}[,}]`).test(r.text)) bad.push(lit);
    }
    assert.deepEqual(bad, [], `decimals not kept as written; served: ${r.text}`);
  });

  test('meta.versionId and meta.lastUpdated sent by the client are replaced', async () => {
    const c = await client.create({ resourceType: 'Patient', body: { ...patient(), meta: { versionId: '99', lastUpdated: '2000-01-01T00:00:00Z' } } });
    assert.equal(c.meta.versionId, '1');
    assert.notEqual(c.meta.lastUpdated, '2000-01-01T00:00:00Z');
    const u = await client.update({ resourceType: 'Patient', id: c.id, body: { ...patient(), id: c.id, meta: { versionId: '42' } } });
    assert.equal(u.meta.versionId, '2');
  });

  test('a large resource (2 MB of narrative) reads back intact', async () => {
    const div = `<div xmlns="http://www.w3.org/1999/xhtml">${'<p>line ü</p>'.repeat(150000)}</div>`;
    const c = await client.create({ resourceType: 'Patient', body: { ...patient(), text: { status: 'generated', div } } });
    const r = await client.read({ resourceType: 'Patient', id: c.id });
    assert.equal(r.text.div, div);
  });
});

describe('HTTP details', () => {
  test('conditional read: If-None-Match with the current ETag -> 304', async () => {
    const c = await client.create({ resourceType: 'Patient', body: patient() });
    const r = await raw(srv.base, 'GET', `Patient/${c.id}`, { headers: { 'if-none-match': 'W/"1"' } });
    assert.equal(r.status, 304);
    await client.update({ resourceType: 'Patient', id: c.id, body: { ...patient(), id: c.id } });
    const r2 = await raw(srv.base, 'GET', `Patient/${c.id}`, { headers: { 'if-none-match': 'W/"1"' } });
    assert.equal(r2.status, 200);
    assert.equal(r2.json.meta.versionId, '2');
  });

  test('security headers on success and on errors', async () => {
    for (const [m, p] of [['GET', 'metadata'], ['GET', 'Patient/nope'], ['GET', 'Patient?birthdate=x']]) {
      const r = await raw(srv.base, m, p);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `${m} ${p}`);
    }
  });

  test('large responses are gzip-compressed when the client accepts it', async () => {
    const { request } = await import('node:http');
    const { gunzipSync } = await import('node:zlib');
    const u = new URL(`${srv.base}/Patient?_count=200`);
    const res = await new Promise((resolve, reject) => {
      const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers: { 'accept-encoding': 'gzip', accept: 'application/fhir+json', ...authHeader(srv.base) } }, (r) => {
        const chunks = [];
        r.on('data', (d) => chunks.push(d));
        r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-encoding'], 'gzip');
    const b = JSON.parse(gunzipSync(res.body).toString('utf8'));
    assert.equal(b.resourceType, 'Bundle');
  });

  test('_pretty=true still gives the same JSON', async () => {
    const c = await client.create({ resourceType: 'Patient', body: patient() });
    const r = await raw(srv.base, 'GET', `Patient/${c.id}?_pretty=true`);
    assert.equal(r.status, 200);
    assert.equal(r.json.id, c.id);
  });
});

describe('concurrent writes', () => {
  test('64 concurrent creates get 64 distinct ids, all readable', async () => {
    const n0 = (await client.search({ resourceType: 'Patient', searchParams: { _summary: 'count' } })).total;
    const rs = await Promise.all(Array.from({ length: 64 }, (_, i) => client.create({ resourceType: 'Patient', body: patient({ name: [{ family: `Conc${i}` }] }) })));
    const ids = rs.map((r) => r.id);
    assert.equal(new Set(ids).size, 64);
    const n1 = (await client.search({ resourceType: 'Patient', searchParams: { _summary: 'count' } })).total;
    assert.equal(n1, n0 + 64);
    for (const r of rs) assert.equal(r.meta.versionId, '1');
  });

  test('32 concurrent blind updates of one resource get versions 2..33, each once', async () => {
    const c = await client.create({ resourceType: 'Patient', body: patient() });
    const rs = await Promise.all(Array.from({ length: 32 }, (_, i) => client.update({ resourceType: 'Patient', id: c.id, body: { ...patient(), id: c.id, name: [{ family: `Blind${i}` }] } })));
    const versions = rs.map((r) => Number(r.meta.versionId)).sort((a, b) => a - b);
    assert.deepEqual(versions, Array.from({ length: 32 }, (_, i) => i + 2));
    const h = await client.request(`Patient/${c.id}/_history?_count=100`);
    assert.equal(h.entry.length, 33);
    // each version holds what its update sent
    for (const r of rs) {
      const v = await client.vread({ resourceType: 'Patient', id: c.id, version: r.meta.versionId });
      assert.equal(v.name[0].family, r.name[0].family);
    }
    const cur = await client.read({ resourceType: 'Patient', id: c.id });
    assert.equal(cur.meta.versionId, '33');
  });
});

// transaction.test.mjs: transaction and batch Bundles: urn:uuid references
// rewritten, conditional references resolved, If-None-Exist in an entry,
// all-or-nothing rollback, batch entries failing alone.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, raw, httpOf, fhirError, assertOutcome, runTag, countOf } from '../support/server.mjs';

let srv;
let client;
const tag = runTag('tx');
const SYS = 'urn:careweave:test:tx';
const T = { system: tag.system, code: tag.code };

function urn() {
  return `urn:uuid:${randomUUID()}`;
}
function uniq(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
async function idsByIdentifier(type, value) {
  const b = await client.search({ resourceType: type, searchParams: { identifier: `${SYS}|${value}` } });
  return (b.entry ?? []).map((e) => e.resource.id);
}
function idFromLocation(loc, type) {
  const m = new RegExp(`${type}/([A-Za-z0-9\\-.]+)`).exec(loc ?? '');
  assert.ok(m, `location of a ${type}: ${loc}`);
  return m[1];
}

before(async () => {
  srv = await startServer();
  client = srv.client;
});
after(async () => {
  await srv?.stop();
});

describe('transaction', () => {
  test('urn:uuid references between entries are rewritten to the new ids', async () => {
    const pu = urn();
    const eu = urn();
    const ou = urn();
    const v = uniq('uuid');
    const bundle = {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        // the Observation comes first: references resolve whatever the order
        { fullUrl: ou, request: { method: 'POST', url: 'Observation' }, resource: {
          resourceType: 'Observation', meta: { tag: [T] }, status: 'final', identifier: [{ system: SYS, value: v }],
          code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
          subject: { reference: pu }, encounter: { reference: eu }, valueQuantity: { value: 60, system: 'http://unitsofmeasure.org', code: '/min' },
        } },
        { fullUrl: pu, request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', meta: { tag: [T] }, identifier: [{ system: SYS, value: v }], name: [{ family: 'Uuid' }] } },
        { fullUrl: eu, request: { method: 'POST', url: 'Encounter' }, resource: {
          resourceType: 'Encounter', meta: { tag: [T] }, status: 'finished', identifier: [{ system: SYS, value: v }],
          class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: pu },
        } },
      ],
    };
    const resp = await client.transaction({ body: bundle });
    assert.equal(httpOf(resp).status, 200);
    assert.equal(resp.resourceType, 'Bundle');
    assert.equal(resp.type, 'transaction-response');
    assert.equal(resp.entry.length, 3);
    for (const e of resp.entry) assert.match(e.response.status, /^201/);
    const oid = idFromLocation(resp.entry[0].response.location, 'Observation');
    const pid = idFromLocation(resp.entry[1].response.location, 'Patient');
    const eid = idFromLocation(resp.entry[2].response.location, 'Encounter');
    for (const e of resp.entry) assert.match(e.response.location, /\/_history\/1$/);

    const obs = await client.read({ resourceType: 'Observation', id: oid });
    assert.equal(obs.subject.reference, `Patient/${pid}`);
    assert.equal(obs.encounter.reference, `Encounter/${eid}`);
    const enc = await client.read({ resourceType: 'Encounter', id: eid });
    assert.equal(enc.subject.reference, `Patient/${pid}`);
    // and the index follows the rewritten references
    const s = await client.search({ resourceType: 'Observation', searchParams: { patient: pid } });
    assert.deepEqual(s.entry.map((e) => e.resource.id), [oid]);
    const s2 = await client.search({ resourceType: 'Observation', searchParams: { encounter: `Encounter/${eid}` } });
    assert.deepEqual(s2.entry.map((e) => e.resource.id), [oid]);
  });

  test('a transaction posted to [base] without the trailing slash works too', async () => {
    const v = uniq('noslash');
    const r = await raw(srv.base, 'POST', srv.base, { body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [{ request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }] } }],
    } });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    assert.equal((await idsByIdentifier('Patient', v)).length, 1);
  });

  test('conditional references (Type?identifier=sys|val) are resolved', async () => {
    const npi = uniq('npi');
    const prac = await client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: npi }], name: [{ family: 'Cond' }] } });
    const pat = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', identifier: [{ system: SYS, value: npi }] } });
    const v = uniq('condref');
    const resp = await client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [{ request: { method: 'POST', url: 'Observation' }, resource: {
        resourceType: 'Observation', status: 'final', identifier: [{ system: SYS, value: v }], code: { text: 'cond ref' },
        subject: { reference: `Patient?identifier=${SYS}|${npi}` },
        performer: [{ reference: `Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|${npi}` }],
      } }],
    } });
    const oid = idFromLocation(resp.entry[0].response.location, 'Observation');
    const obs = await client.read({ resourceType: 'Observation', id: oid });
    assert.equal(obs.subject.reference, `Patient/${pat.id}`);
    assert.equal(obs.performer[0].reference, `Practitioner/${prac.id}`);
    const s = await client.search({ resourceType: 'Observation', searchParams: { performer: `Practitioner/${prac.id}` } });
    assert.deepEqual(s.entry.map((e) => e.resource.id), [oid]);
  });

  test('a conditional reference that matches nothing or several fails the transaction', async () => {
    const dup = uniq('dup');
    await client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', identifier: [{ system: SYS, value: dup }] } });
    await client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', identifier: [{ system: SYS, value: dup }] } });
    for (const ref of [`Practitioner?identifier=${SYS}|${uniq('none')}`, `Practitioner?identifier=${SYS}|${dup}`]) {
      const v = uniq('badref');
      const e = await fhirError(client.transaction({ body: {
        resourceType: 'Bundle', type: 'transaction',
        entry: [
          { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }] } },
          { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', identifier: [{ system: SYS, value: v }], code: { text: 'x' }, performer: [{ reference: ref }] } },
        ],
      } }), ref);
      assert.ok([400, 404, 409, 412, 422].includes(e.status), `${ref}: status ${e.status}`);
      assertOutcome(e.data);
      assert.deepEqual(await idsByIdentifier('Patient', v), [], 'the Patient entry was rolled back');
      assert.deepEqual(await idsByIdentifier('Observation', v), []);
    }
  });

  test('If-None-Exist inside an entry: existing resource reused, its urn:uuid points at it', async () => {
    const v = uniq('ine');
    const existing = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }], name: [{ family: 'Existing' }] } });
    const pu = urn();
    const resp = await client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { fullUrl: pu, request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYS}|${v}` }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }], name: [{ family: 'Duplicate' }] } },
        { request: { method: 'POST', url: 'Condition' }, resource: { resourceType: 'Condition', identifier: [{ system: SYS, value: v }], code: { text: 'x' }, subject: { reference: pu } } },
      ],
    } });
    assert.match(resp.entry[0].response.status, /^200/);
    assert.equal(idFromLocation(resp.entry[0].response.location, 'Patient'), existing.id);
    assert.match(resp.entry[1].response.status, /^201/);
    assert.deepEqual(await idsByIdentifier('Patient', v), [existing.id]);
    const cid = idFromLocation(resp.entry[1].response.location, 'Condition');
    const cond = await client.read({ resourceType: 'Condition', id: cid });
    assert.equal(cond.subject.reference, `Patient/${existing.id}`);
    const p = await client.read({ resourceType: 'Patient', id: existing.id });
    assert.equal(p.name[0].family, 'Existing');
    assert.equal(p.meta.versionId, '1');
  });

  test('PUT, DELETE and GET entries in a transaction', async () => {
    const v = uniq('mixed');
    const a = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }], gender: 'male' } });
    const b = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }] } });
    const cid = uniq('put-create');
    const resp = await client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { request: { method: 'PUT', url: `Patient/${a.id}` }, resource: { resourceType: 'Patient', id: a.id, identifier: [{ system: SYS, value: v }], gender: 'female' } },
        { request: { method: 'DELETE', url: `Patient/${b.id}` } },
        { request: { method: 'PUT', url: `Patient/${cid}` }, resource: { resourceType: 'Patient', id: cid, identifier: [{ system: SYS, value: v }] } },
      ],
    } });
    assert.match(resp.entry[0].response.status, /^200/);
    assert.match(resp.entry[1].response.status, /^20[04]/);
    assert.match(resp.entry[2].response.status, /^201/);
    assert.equal((await client.read({ resourceType: 'Patient', id: a.id })).gender, 'female');
    assert.equal((await fhirError(client.read({ resourceType: 'Patient', id: b.id }))).status, 410);
    assert.equal((await client.read({ resourceType: 'Patient', id: cid })).id, cid);
  });

  test('an invalid 3rd entry rolls the whole transaction back', async () => {
    const v = uniq('rollback');
    const pu = urn();
    const n0 = { Patient: await countOf(client, 'Patient'), Encounter: await countOf(client, 'Encounter'), Observation: await countOf(client, 'Observation') };
    const e = await fhirError(client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { fullUrl: pu, request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', meta: { tag: [T] }, identifier: [{ system: SYS, value: v }] } },
        { request: { method: 'POST', url: 'Encounter' }, resource: { resourceType: 'Encounter', meta: { tag: [T] }, identifier: [{ system: SYS, value: v }], status: 'finished', class: { code: 'AMB' }, subject: { reference: pu } } },
        { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', identifier: [{ system: SYS, value: v }], status: 'final', code: { text: 'x' }, effectiveDateTime: 'not-a-date' } },
      ],
    } }));
    assert.ok([400, 422].includes(e.status), `status ${e.status}`);
    assertOutcome(e.data);
    assert.ok(e.data.issue.some((i) => (i.expression ?? []).concat(i.location ?? []).some((x) => /Observation|entry\[2\]/.test(x)) || /2|third|Observation/.test(i.diagnostics ?? '')),
      `the outcome says which entry failed: ${JSON.stringify(e.data.issue)}`);
    assert.deepEqual(await idsByIdentifier('Patient', v), []);
    assert.deepEqual(await idsByIdentifier('Encounter', v), []);
    assert.deepEqual(await idsByIdentifier('Observation', v), []);
    const n1 = { Patient: await countOf(client, 'Patient'), Encounter: await countOf(client, 'Encounter'), Observation: await countOf(client, 'Observation') };
    assert.deepEqual(n1, n0);
  });

  test('a stale ifMatch in the 2nd entry rolls back the 1st', async () => {
    const v = uniq('rb412');
    const p = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }] } });
    await client.update({ resourceType: 'Patient', id: p.id, body: { resourceType: 'Patient', id: p.id, identifier: [{ system: SYS, value: v }], gender: 'male' } });
    const e = await fhirError(client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }] } },
        { request: { method: 'PUT', url: `Patient/${p.id}`, ifMatch: 'W/"1"' }, resource: { resourceType: 'Patient', id: p.id, identifier: [{ system: SYS, value: v }], gender: 'female' } },
      ],
    } }));
    assert.equal(e.status, 412);
    assert.deepEqual(await idsByIdentifier('Patient', v), [p.id]);
    assert.equal((await client.read({ resourceType: 'Patient', id: p.id })).meta.versionId, '2');
  });

  test('two entries for the same resource in one transaction are refused', async () => {
    const p = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient' } });
    const e = await fhirError(client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { request: { method: 'PUT', url: `Patient/${p.id}` }, resource: { resourceType: 'Patient', id: p.id, gender: 'male' } },
        { request: { method: 'DELETE', url: `Patient/${p.id}` } },
      ],
    } }));
    assert.equal(e.status, 400);
    assert.equal((await client.read({ resourceType: 'Patient', id: p.id })).meta.versionId, '1');
  });

  test('a Bundle that is neither batch nor transaction -> 400', async () => {
    const e = await fhirError(client.transaction({ body: { resourceType: 'Bundle', type: 'collection', entry: [] } }));
    assert.ok([400, 422].includes(e.status), `status ${e.status}`);
  });

  test('an empty transaction is fine', async () => {
    const r = await client.transaction({ body: { resourceType: 'Bundle', type: 'transaction' } });
    assert.equal(r.type, 'transaction-response');
    assert.equal((r.entry ?? []).length, 0);
  });
});

describe('batch', () => {
  test('one bad entry fails alone with a 4xx; the others succeed', async () => {
    const v = uniq('batch');
    const p = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: 'BatchRead' }] } });
    const resp = await client.batch({ body: {
      resourceType: 'Bundle', type: 'batch',
      entry: [
        { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: `${v}-a` }] } },
        { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: `${v}-b` }], birthDate: 12 } },
        { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: `${v}-c` }] } },
        { request: { method: 'GET', url: `Patient/${p.id}` } },
        { request: { method: 'GET', url: 'Patient/does-not-exist' } },
        { request: { method: 'GET', url: `Patient?identifier=${SYS}|${v}-a` } },
      ],
    } });
    assert.equal(httpOf(resp).status, 200);
    assert.equal(resp.type, 'batch-response');
    assert.equal(resp.entry.length, 6);
    const st = resp.entry.map((e) => Number.parseInt(e.response.status, 10));
    assert.equal(st[0], 201);
    assert.ok(st[1] >= 400 && st[1] < 500, `bad entry status ${st[1]}`);
    assert.equal(resp.entry[1].response.outcome?.resourceType, 'OperationOutcome');
    assert.equal(st[2], 201);
    assert.equal(st[3], 200);
    assert.equal(resp.entry[3].resource?.id, p.id);
    assert.equal(st[4], 404);
    assert.equal(st[5], 200);
    assert.equal(resp.entry[5].resource?.resourceType, 'Bundle');
    assert.equal((await idsByIdentifier('Patient', `${v}-a`)).length, 1);
    assert.equal((await idsByIdentifier('Patient', `${v}-b`)).length, 0);
    assert.equal((await idsByIdentifier('Patient', `${v}-c`)).length, 1);
  });

  test('a batch entry may not reference another entry by urn:uuid', async () => {
    const pu = urn();
    const v = uniq('batchref');
    const resp = await client.batch({ body: {
      resourceType: 'Bundle', type: 'batch',
      entry: [
        { fullUrl: pu, request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }] } },
        { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', identifier: [{ system: SYS, value: v }], code: { text: 'x' }, subject: { reference: pu } } },
      ],
    } });
    assert.match(resp.entry[0].response.status, /^201/);
    const st = Number.parseInt(resp.entry[1].response.status, 10);
    if (st === 201) {
      // if the server accepts it, the reference must not be left dangling as urn:uuid
      const oid = idFromLocation(resp.entry[1].response.location, 'Observation');
      const obs = await client.read({ resourceType: 'Observation', id: oid });
      assert.ok(!obs.subject.reference.startsWith('urn:uuid:'), `dangling urn:uuid reference stored: ${obs.subject.reference}`);
    } else {
      assert.ok(st >= 400 && st < 500, `status ${st}`);
    }
  });
});

describe('transaction: more', () => {
  test('urn:uuid references deep inside a resource are rewritten too', async () => {
    const pu = urn();
    const ou = urn();
    const v = uniq('deep');
    const resp = await client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { fullUrl: pu, request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }] } },
        { fullUrl: ou, request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', identifier: [{ system: SYS, value: v }], code: { text: 'member' }, subject: { reference: pu } } },
        { request: { method: 'POST', url: 'Observation' }, resource: {
          resourceType: 'Observation', status: 'final', identifier: [{ system: SYS, value: `${v}-panel` }], code: { text: 'panel' },
          subject: { reference: pu },
          hasMember: [{ reference: ou }],
          extension: [{ url: 'http://example.org/ext/about', valueReference: { reference: pu } }],
          component: [{ code: { text: 'c' }, extension: [{ url: 'http://example.org/ext/src', valueReference: { reference: ou } }], valueString: 'x' }],
        } },
      ],
    } });
    const pid = idFromLocation(resp.entry[0].response.location, 'Patient');
    const oid = idFromLocation(resp.entry[1].response.location, 'Observation');
    const panel = await client.read({ resourceType: 'Observation', id: idFromLocation(resp.entry[2].response.location, 'Observation') });
    assert.equal(panel.hasMember[0].reference, `Observation/${oid}`);
    assert.equal(panel.extension[0].valueReference.reference, `Patient/${pid}`);
    assert.equal(panel.component[0].extension[0].valueReference.reference, `Observation/${oid}`);
    assert.ok(!JSON.stringify(panel).includes('urn:uuid:'), JSON.stringify(panel));
  });

  test('a urn:uuid that no entry has -> 4xx, nothing written', async () => {
    const v = uniq('dangling');
    const e = await fhirError(client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }] } },
        { request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', identifier: [{ system: SYS, value: v }], code: { text: 'x' }, subject: { reference: urn() } } },
      ],
    } }));
    assert.ok(e.status >= 400 && e.status < 500, `status ${e.status}`);
    assert.deepEqual(await idsByIdentifier('Patient', v), []);
  });

  test('conditional update and conditional delete entries', async () => {
    const v = uniq('condtx');
    const a = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', identifier: [{ system: SYS, value: `${v}-a` }] } });
    const b = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', identifier: [{ system: SYS, value: `${v}-b` }] } });
    const resp = await client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { request: { method: 'PUT', url: `Patient?identifier=${SYS}|${v}-a` }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: `${v}-a` }], gender: 'female' } },
        { request: { method: 'PUT', url: `Patient?identifier=${SYS}|${v}-c` }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: `${v}-c` }] } },
        { request: { method: 'DELETE', url: `Patient?identifier=${SYS}|${v}-b` } },
      ],
    } });
    assert.match(resp.entry[0].response.status, /^200/);
    assert.match(resp.entry[1].response.status, /^201/);
    assert.match(resp.entry[2].response.status, /^20[04]/);
    const ra = await client.read({ resourceType: 'Patient', id: a.id });
    assert.equal(ra.gender, 'female');
    assert.equal(ra.meta.versionId, '2');
    assert.equal((await idsByIdentifier('Patient', `${v}-c`)).length, 1);
    assert.equal((await fhirError(client.read({ resourceType: 'Patient', id: b.id }))).status, 410);
  });

  test('a GET entry sees the writes of the same transaction', async () => {
    const v = uniq('txget');
    const resp = await client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { request: { method: 'GET', url: `Patient?identifier=${SYS}|${v}` } },
        { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }] } },
      ],
    } });
    // GETs are processed after the writes (http.html#trules)
    const sb = resp.entry[0].resource;
    assert.equal(sb?.resourceType, 'Bundle');
    assert.equal((sb.entry ?? []).length, 1, JSON.stringify(sb));
  });

  test('16 concurrent transactions of 10 entries each: exactly 160 resources', async () => {
    const v = uniq('conctx');
    const rs = await Promise.all(Array.from({ length: 16 }, (_, t) => client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: Array.from({ length: 10 }, (_, i) => ({ request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', identifier: [{ system: SYS, value: v }], name: [{ family: `T${t}E${i}` }] } })),
    } })));
    for (const r of rs) assert.equal(r.entry.length, 10);
    const b = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|${v}`, _summary: 'count' } });
    assert.equal(b.total, 160);
  });
});

// 64 creates and more: the writer inserts while a helper thread rewrites
// references, serializes and extracts the index rows ahead of it (api/bundle.c,
// struct pipe). What a client sees must be the same as for a small Bundle.
describe('transaction: big Bundles (creates made ready beside the writer)', () => {
  const N = 120;
  async function bigBundle(v, npi, extra = () => ({})) {
    const pu = urn();
    const eu = urn();
    const entry = [
      { fullUrl: pu, request: { method: 'POST', url: 'Patient' }, resource: {
        resourceType: 'Patient', identifier: [{ system: SYS, value: v }], name: [{ family: 'Big', given: ['Tx'] }] } },
      { fullUrl: eu, request: { method: 'POST', url: 'Encounter' }, resource: {
        resourceType: 'Encounter', status: 'finished', identifier: [{ system: SYS, value: v }],
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: pu } } },
    ];
    for (let i = 0; i < N; i++) {
      entry.push({ request: { method: 'POST', url: 'Observation' }, resource: {
        resourceType: 'Observation', status: 'final', identifier: [{ system: SYS, value: `${v}-${i}` }],
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, effectiveDateTime: '2026-11-30T10:00:00Z',
        subject: { reference: pu }, encounter: { reference: eu },
        performer: [{ reference: `Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|${npi}` }],
        valueQuantity: { value: 60 + i, system: 'http://unitsofmeasure.org', code: '/min' }, ...extra(i) } });
    }
    return { resourceType: 'Bundle', type: 'transaction', entry };
  }
  async function practitioner() {
    const npi = uniq('npi');
    const prac = await client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: npi }], name: [{ family: 'Big' }] } });
    return { npi, prac };
  }

  test('every create is written with its references, index rows and compartment', async () => {
    const { npi, prac } = await practitioner();
    const v = uniq('big');
    // entry 7 names the Patient of this Bundle by a condition: a type the
    // Bundle writes, so the writer resolves it after the Patient is written
    const resp = await client.transaction({ body: await bigBundle(v, npi, (i) => (i === 5 ? { subject: { reference: `Patient?identifier=${SYS}|${v}` } } : {})) });
    assert.equal(resp.entry.length, N + 2);
    assert.ok(resp.entry.every((e) => e.response.status.startsWith('201')), 'all 201 Created');
    const pid = idFromLocation(resp.entry[0].response.location, 'Patient');
    const encId = idFromLocation(resp.entry[1].response.location, 'Encounter');
    const obsIds = resp.entry.slice(2).map((e) => idFromLocation(e.response.location, 'Observation'));
    assert.equal(new Set(obsIds).size, N);

    // searched by each kind of index row the creates carry
    const bySubject = await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${pid}`, _count: '500' } });
    assert.deepEqual(bySubject.entry.map((e) => e.resource.id).sort(), [...obsIds].sort());
    const byAll = await client.search({ resourceType: 'Observation', searchParams: {
      patient: pid, code: 'http://loinc.org|8867-4', category: 'vital-signs', date: 'ge2026-11-30', performer: `Practitioner/${prac.id}`,
      encounter: `Encounter/${encId}`, 'value-quantity': 'ge100', _count: '500' } });
    assert.equal(byAll.entry?.length, N - 40, 'values 100 and up');
    const one = await client.search({ resourceType: 'Observation', searchParams: { identifier: `${SYS}|${v}-77` } });
    assert.deepEqual(one.entry.map((e) => e.resource.id), [obsIds[77]]);
    // the patient's compartment holds them all
    const comp = await client.search({ resourceType: 'Observation', compartment: { resourceType: 'Patient', id: pid }, searchParams: { _count: '500' } });
    assert.equal(comp.entry.length, N);

    // stored as answered: references rewritten, first version, the same time for all
    const times = new Set();
    for (const i of [0, 5, 63, 64, N - 1]) {
      const o = await client.read({ resourceType: 'Observation', id: obsIds[i] });
      assert.equal(o.subject.reference, `Patient/${pid}`, `entry ${i + 2} subject`);
      assert.equal(o.encounter.reference, `Encounter/${encId}`);
      assert.equal(o.performer[0].reference, `Practitioner/${prac.id}`);
      assert.equal(o.meta.versionId, '1');
      assert.equal(o.valueQuantity.value, 60 + i);
      times.add(o.meta.lastUpdated);
    }
    assert.equal(times.size, 1, 'one transaction, one lastUpdated');
    const h = await client.history({ resourceType: 'Observation', id: obsIds[64] });
    assert.equal(h.entry.length, 1);
  });

  test('a conditional reference matching nothing at entry 90 fails it all, nothing written', async () => {
    const { npi } = await practitioner();
    const v = uniq('bignone');
    const body = await bigBundle(v, npi, (i) => (i === 88 ? { performer: [{ reference: `Practitioner?identifier=${SYS}|${uniq('none')}` }] } : {}));
    const e = await fhirError(client.transaction({ body }));
    assert.equal(e.status, 400);
    assertOutcome(e.data);
    assert.ok(JSON.stringify(e.data).includes('Bundle.entry[90]'), JSON.stringify(e.data.issue));
    assert.deepEqual(await idsByIdentifier('Patient', v), [], 'the Patient entry was rolled back');
    assert.deepEqual(await idsByIdentifier('Observation', `${v}-3`), []);
  });

  // the creates' content is checked beside the writer too: every problem
  // is still reported, and nothing is written
  test('invalid content in entries 70 and 110: both reported, nothing written', async () => {
    const { npi } = await practitioner();
    const v = uniq('biginvalid');
    const body = await bigBundle(v, npi, (i) => (i === 68 ? { effectiveDateTime: 'not-a-date' } : i === 108 ? { colour: 'red' } : {}));
    const e = await fhirError(client.transaction({ body }));
    assert.ok([400, 422].includes(e.status), `status ${e.status}`);
    assertOutcome(e.data);
    const where = e.data.issue.flatMap((i) => (i.expression ?? []).concat(i.location ?? []));
    assert.ok(where.some((x) => x.startsWith('Bundle.entry[70].resource.effective')), JSON.stringify(e.data.issue));
    assert.ok(where.some((x) => x.startsWith('Bundle.entry[110].resource')), JSON.stringify(e.data.issue));
    assert.equal(e.data.issue.filter((i) => i.severity === 'error').length, 2, JSON.stringify(e.data.issue));
    assert.deepEqual(await idsByIdentifier('Patient', v), []);
    assert.deepEqual(await idsByIdentifier('Observation', `${v}-3`), []);
  });

  test('a bad request and invalid content in a big Bundle: both reported before anything runs', async () => {
    const { npi } = await practitioner();
    const v = uniq('bigboth');
    const body = await bigBundle(v, npi, (i) => (i === 30 ? { effectiveDateTime: 'not-a-date' } : {}));
    body.entry[99].request.url = 'Observation/not-for-a-create';
    const e = await fhirError(client.transaction({ body }));
    assert.equal(e.status, 400);
    const where = e.data.issue.flatMap((i) => (i.expression ?? []).concat(i.location ?? []));
    assert.ok(where.some((x) => x.startsWith('Bundle.entry[32].resource.effective')), JSON.stringify(e.data.issue));
    assert.ok(where.some((x) => x.startsWith('Bundle.entry[99].request')), JSON.stringify(e.data.issue));
    assert.deepEqual(await idsByIdentifier('Patient', v), []);
  });

  test('a urn:uuid no entry has, at entry 100, fails it all, nothing written', async () => {
    const { npi } = await practitioner();
    const v = uniq('bigdangling');
    const body = await bigBundle(v, npi, (i) => (i === 98 ? { encounter: { reference: urn() } } : {}));
    const e = await fhirError(client.transaction({ body }));
    assert.equal(e.status, 400);
    assertOutcome(e.data);
    assert.ok(JSON.stringify(e.data).includes('Bundle.entry[100]'), JSON.stringify(e.data.issue));
    assert.deepEqual(await idsByIdentifier('Patient', v), []);
    assert.deepEqual(await idsByIdentifier('Encounter', v), []);
  });
});

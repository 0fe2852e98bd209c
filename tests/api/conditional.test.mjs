// conditional.test.mjs: conditional create (If-None-Exist), conditional
// update and conditional delete, including 32 racing conditional creates.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, httpOf, fhirError, assertOutcome, runTag } from '../support/server.mjs';

let srv;
let client;
const tag = runTag('cond');
const SYS = 'urn:careweave:test:mrn';

function patient(value, extra = {}) {
  return {
    resourceType: 'Patient',
    meta: { tag: [{ system: tag.system, code: tag.code }] },
    identifier: [{ system: SYS, value }],
    name: [{ family: 'Conditional', given: [value] }],
    ...extra,
  };
}

async function idsFor(value) {
  const b = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|${value}` } });
  return (b.entry ?? []).map((e) => e.resource.id).sort();
}

before(async () => {
  srv = await startServer();
  client = srv.client;
});
after(async () => {
  await srv?.stop();
});

describe('conditional create (If-None-Exist)', () => {
  test('no match creates (201)', async () => {
    const r = await client.create({
      resourceType: 'Patient', body: patient('c-0'),
      options: { headers: { 'if-none-exist': `identifier=${SYS}|c-0` } },
    });
    assert.equal(httpOf(r).status, 201);
    assert.deepEqual(await idsFor('c-0'), [r.id]);
  });

  test('one match returns the existing resource (200) and creates nothing', async () => {
    const first = await client.create({ resourceType: 'Patient', body: patient('c-1') });
    const r = await client.create({
      resourceType: 'Patient', body: patient('c-1', { gender: 'male' }),
      options: { headers: { 'if-none-exist': `identifier=${SYS}|c-1` } },
    });
    assert.equal(httpOf(r).status, 200);
    assert.ok(r.id === first.id || r.resourceType !== 'Patient', `the existing resource: ${JSON.stringify(r).slice(0, 300)}`);
    assert.deepEqual(await idsFor('c-1'), [first.id]);
    const cur = await client.read({ resourceType: 'Patient', id: first.id });
    assert.equal(cur.meta.versionId, '1', 'the existing one is not updated');
    assert.equal(cur.gender, undefined);
  });

  test('two matches -> 412 and nothing created', async () => {
    await client.create({ resourceType: 'Patient', body: patient('c-2') });
    await client.create({ resourceType: 'Patient', body: patient('c-2') });
    const e = await fhirError(client.create({
      resourceType: 'Patient', body: patient('c-2'),
      options: { headers: { 'if-none-exist': `identifier=${SYS}|c-2` } },
    }));
    assert.equal(e.status, 412);
    assertOutcome(e.data);
    assert.equal((await idsFor('c-2')).length, 2);
  });

  test('If-None-Exist with an invalid search -> 400 and nothing created', async () => {
    // a bad search in the condition is a client error, not a create
    const e = await fhirError(client.create({
      resourceType: 'Patient', body: patient('c-bad'),
      options: { headers: { 'if-none-exist': 'birthdate=notadate' } },
    }));
    assert.equal(e.status, 400);
    assert.deepEqual(await idsFor('c-bad'), []);
  });

  test('32 parallel identical conditional creates make exactly one resource', async () => {
    const N = 32;
    const results = await Promise.all(Array.from({ length: N }, () => client.create({
      resourceType: 'Patient', body: patient('race-1'),
      options: { headers: { 'if-none-exist': `identifier=${SYS}|race-1` } },
    }).then((r) => ({ status: httpOf(r).status, id: r.id }), (e) => ({ status: e.response?.status ?? String(e), data: e.response?.data }))));
    const statuses = results.map((r) => r.status);
    const created = results.filter((r) => r.status === 201);
    const existing = results.filter((r) => r.status === 200);
    assert.equal(created.length, 1, `exactly one 201; statuses: ${JSON.stringify(statuses)} ${JSON.stringify(results.find((r) => r.data)?.data ?? '')}`);
    assert.equal(existing.length, N - 1, `the others get 200; statuses: ${JSON.stringify(statuses)}`);
    const b = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|race-1`, _total: 'accurate' } });
    assert.equal(b.total, 1);
    assert.equal(b.entry.length, 1);
    const id = b.entry[0].resource.id;
    assert.equal(created[0].id, id);
    for (const r of existing) if (r.id) assert.equal(r.id, id, 'every 200 names the one resource');
  });
});

describe('conditional create inside transactions', () => {
  test('16 parallel transactions with the same ifNoneExist make exactly one resource', async () => {
    const rs = await Promise.all(Array.from({ length: 16 }, () => client.transaction({ body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [{ request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${SYS}|tx-race` }, resource: patient('tx-race') }],
    } }).then((r) => r.entry[0].response.status, (e) => `error ${e.response?.status}`)));
    assert.equal(rs.filter((s) => /^201/.test(s)).length, 1, `statuses ${rs}`);
    assert.equal(rs.filter((s) => /^200/.test(s)).length, 15, `statuses ${rs}`);
    assert.equal((await idsFor('tx-race')).length, 1);
  });
});

describe('conditional update', () => {
  test('no match creates (201)', async () => {
    const r = await client.update({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|u-0` }, body: patient('u-0') });
    assert.equal(httpOf(r).status, 201);
    assert.equal(r.meta.versionId, '1');
    assert.deepEqual(await idsFor('u-0'), [r.id]);
  });

  test('one match updates it (200, version 2)', async () => {
    const first = await client.create({ resourceType: 'Patient', body: patient('u-1') });
    const r = await client.update({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|u-1` }, body: patient('u-1', { gender: 'female' }) });
    assert.equal(httpOf(r).status, 200);
    assert.equal(r.id, first.id);
    assert.equal(r.meta.versionId, '2');
    const cur = await client.read({ resourceType: 'Patient', id: first.id });
    assert.equal(cur.gender, 'female');
    assert.deepEqual(await idsFor('u-1'), [first.id]);
  });

  test('one match with a different id in the body -> 400 and nothing written', async () => {
    const first = await client.create({ resourceType: 'Patient', body: patient('u-id') });
    const e = await fhirError(client.update({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|u-id` }, body: patient('u-id', { id: 'some-other-id', gender: 'male' }) }));
    assert.equal(e.status, 400);
    const cur = await client.read({ resourceType: 'Patient', id: first.id });
    assert.equal(cur.meta.versionId, '1');
  });

  test('two matches -> 412 and nothing written', async () => {
    const a = await client.create({ resourceType: 'Patient', body: patient('u-2') });
    const b = await client.create({ resourceType: 'Patient', body: patient('u-2') });
    const e = await fhirError(client.update({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|u-2` }, body: patient('u-2', { gender: 'male' }) }));
    assert.equal(e.status, 412);
    assertOutcome(e.data);
    for (const id of [a.id, b.id]) {
      const cur = await client.read({ resourceType: 'Patient', id });
      assert.equal(cur.meta.versionId, '1');
      assert.equal(cur.gender, undefined);
    }
  });

  test('16 parallel conditional updates with no match create exactly one', async () => {
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => client.update({
      resourceType: 'Patient', searchParams: { identifier: `${SYS}|u-race` }, body: patient('u-race', { gender: i % 2 ? 'male' : 'female' }),
    }).then((r) => httpOf(r).status, (e) => e.response?.status ?? String(e))));
    assert.equal(results.filter((s) => s === 201).length, 1, `statuses ${results}`);
    assert.equal(results.filter((s) => s === 200).length, 15, `statuses ${results}`);
    const ids = await idsFor('u-race');
    assert.equal(ids.length, 1);
    const cur = await client.read({ resourceType: 'Patient', id: ids[0] });
    assert.equal(cur.meta.versionId, '16');
  });
});

describe('conditional delete', () => {
  test('one match deletes it', async () => {
    const a = await client.create({ resourceType: 'Patient', body: patient('d-1') });
    const r = await client.request(`Patient?identifier=${encodeURIComponent(`${SYS}|d-1`)}`, { method: 'DELETE' });
    assert.ok([200, 204].includes(httpOf(r).status));
    assert.equal((await fhirError(client.read({ resourceType: 'Patient', id: a.id }))).status, 410);
    assert.deepEqual(await idsFor('d-1'), []);
  });

  test('no match is not an error and deletes nothing', async () => {
    const keep = await client.create({ resourceType: 'Patient', body: patient('d-keep') });
    let status;
    try {
      status = httpOf(await client.request(`Patient?identifier=${encodeURIComponent(`${SYS}|d-none`)}`, { method: 'DELETE' })).status;
    } catch (e) {
      status = e.response?.status;
    }
    assert.ok([200, 204, 404].includes(status), `status ${status}`);
    assert.equal((await client.read({ resourceType: 'Patient', id: keep.id })).meta.versionId, '1');
  });

  test('several matches: 412 (nothing deleted) or all deleted', async () => {
    const a = await client.create({ resourceType: 'Patient', body: patient('d-2') });
    const b = await client.create({ resourceType: 'Patient', body: patient('d-2') });
    const other = await client.create({ resourceType: 'Patient', body: patient('d-other') });
    let status;
    try {
      status = httpOf(await client.request(`Patient?identifier=${encodeURIComponent(`${SYS}|d-2`)}`, { method: 'DELETE' })).status;
    } catch (e) {
      status = e.response?.status;
    }
    const left = await idsFor('d-2');
    if (status === 412) assert.deepEqual(left, [a.id, b.id].sort());
    else {
      assert.ok([200, 204].includes(status), `status ${status}`);
      assert.deepEqual(left, []);
    }
    assert.equal((await client.read({ resourceType: 'Patient', id: other.id })).meta.versionId, '1');
  });

  test('a conditional delete without any condition is refused', async () => {
    const n0 = (await client.search({ resourceType: 'Patient', searchParams: { _summary: 'count' } })).total;
    let status;
    try {
      status = httpOf(await client.request('Patient', { method: 'DELETE' })).status;
    } catch (e) {
      status = e.response?.status;
    }
    assert.ok(status >= 400 && status < 500, `DELETE [base]/Patient status ${status}`);
    const n1 = (await client.search({ resourceType: 'Patient', searchParams: { _summary: 'count' } })).total;
    assert.equal(n1, n0);
  });
});

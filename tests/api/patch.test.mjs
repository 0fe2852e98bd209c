// tests/api/patch.test.mjs: the FHIR patch interaction with JSON Patch
// (RFC 6902), driven by a real FHIR client (fhir-kit-client's patch()):
// a coordinator moves a Task along and adds notes without sending the whole
// resource. Every operation, every kind of bad patch (each answered with
// its OperationOutcome, the resource left as it was), If-Match, patches
// racing each other (none lost), who may patch what, the audit record and
// the CapabilityStatement.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, raw, httpOf, fhirError, assertOutcome, addUser, login, runCli,
} from '../support/server.mjs';

let srv;
let client;
let pid;

async function newTask(extra = {}) {
  return client.create({
    resourceType: 'Task',
    body: {
      resourceType: 'Task', status: 'requested', intent: 'order', priority: 'routine',
      description: 'Arrange transport to the clinic', for: { reference: `Patient/${pid}` },
      input: [{ type: { text: 'seats' }, valueInteger: 1 }, { type: { text: 'distance km' }, valueDecimal: 12.50 }],
      ...extra,
    },
  });
}
const patch = (id, jsonPatch, headers) => client.patch({ resourceType: 'Task', id, jsonPatch, options: headers ? { headers } : {} });
const read = (id) => client.read({ resourceType: 'Task', id });

before(async () => {
  srv = await startServer();
  client = srv.client;
  pid = (await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: 'Patched' }] } })).id;
});
after(async () => {
  await srv?.stop();
});

describe('what a patch does', () => {
  test('replace, add (a member, an array, at the end with "-"), test: one new version', async () => {
    const t = await newTask();
    const out = await patch(t.id, [
      { op: 'test', path: '/status', value: 'requested' },
      { op: 'replace', path: '/status', value: 'in-progress' },
      { op: 'add', path: '/note', value: [{ text: 'called the daughter' }] },
      { op: 'add', path: '/note/-', value: { text: 'ride booked for Tuesday' } },
      { op: 'add', path: '/businessStatus', value: { text: 'waiting for the ride' } },
    ]);
    const { status, headers } = httpOf(out);
    assert.equal(status, 200);
    assert.equal(headers.get('etag'), 'W/"2"');
    assert.equal(out.status, 'in-progress');
    assert.deepEqual(out.note.map((n) => n.text), ['called the daughter', 'ride booked for Tuesday']);
    assert.equal(out.meta.versionId, '2');
    const again = await read(t.id);
    assert.deepEqual(again, out, 'what was answered is what is stored');
    assert.equal(again.input[1].valueDecimal, 12.50, 'the rest of the resource is kept as it was');
  });

  test('remove, move, copy, and an insert in the middle of an array', async () => {
    const t = await newTask({ note: [{ text: 'a' }, { text: 'c' }] });
    const out = await patch(t.id, [
      { op: 'add', path: '/note/1', value: { text: 'b' } },
      { op: 'copy', from: '/note/0', path: '/note/-' },
      { op: 'remove', path: '/note/3' },
      { op: 'move', from: '/input/1', path: '/input/0' },
      { op: 'remove', path: '/priority' },
    ]);
    assert.equal(httpOf(out).status, 200);
    assert.deepEqual(out.note.map((n) => n.text), ['a', 'b', 'c']);
    assert.deepEqual(out.input.map((i) => i.type.text), ['distance km', 'seats']);
    assert.equal(out.priority, undefined);
  });

  test('a test compares numbers by value (12.5 is the stored 12.50) and a path with ~1', async () => {
    const t = await newTask({ extension: [{ url: 'https://example.org/a/b', valueString: 'x' }] });
    const out = await patch(t.id, [
      { op: 'test', path: '/input/1/valueDecimal', value: 12.5 },
      { op: 'replace', path: '/input/1/valueDecimal', value: 3.10 },
      { op: 'test', path: '/extension/0/url', value: 'https://example.org/a/b' },
    ]);
    assert.equal(out.input[1].valueDecimal, 3.1);
    const r = await raw(srv.base, 'GET', `Task/${t.id}`);
    assert.match(r.text, /"valueDecimal":3\.1\b/);
  });
});

describe('bad patches: an OperationOutcome, nothing written', () => {
  let t;
  before(async () => {
    t = await newTask();
  });
  const cases = [
    ['a test that fails', 422, [{ op: 'test', path: '/status', value: 'completed' }, { op: 'replace', path: '/status', value: 'cancelled' }], /the value differs/],
    ['a test of a number by value', 422, [{ op: 'test', path: '/input/0/valueInteger', value: 2 }], /the value differs/],
    ['a path that names nothing (replace)', 422, [{ op: 'replace', path: '/owner', value: { reference: 'Practitioner/x' } }], /names nothing/],
    ['an array index past the end', 422, [{ op: 'add', path: '/input/5', value: { type: { text: 'x' }, valueString: 'y' } }], /no such index/],
    ['remove of what is not there', 422, [{ op: 'remove', path: '/note/0' }], /names nothing/],
    ['a change of the id', 422, [{ op: 'replace', path: '/id', value: 'someone-else' }], /type or id/],
    ['a change of the resourceType', 422, [{ op: 'replace', path: '/resourceType', value: 'Patient' }], /type or id/],
    ['a result that is not a valid Task', 422, [{ op: 'replace', path: '/status', value: 'nearly-done' }], /task-status/],
    ['an element Task does not have', 422, [{ op: 'add', path: '/colour', value: 'blue' }], /colour/],
    ['the whole resource', 422, [{ op: 'replace', path: '', value: {} }], /whole resource/],
    ['an unknown operation', 400, [{ op: 'merge', path: '/status', value: 'x' }], /not a JSON Patch operation/],
    ['an operation without its value', 400, [{ op: 'add', path: '/note' }], /needs "value"/],
    ['a path that is not a JSON Pointer', 400, [{ op: 'remove', path: 'status' }], /JSON Pointer/],
    ['a bad escape', 400, [{ op: 'remove', path: '/a~2b' }], /JSON Pointer/],
    ['not an array', 400, { op: 'remove', path: '/status' }, /array of operations/],
  ];
  for (const [what, status, ops, why] of cases) {
    test(`${what}: ${status}`, async () => {
      const before = await read(t.id);
      const e = await fhirError(patch(t.id, ops), what);
      assert.equal(e.status, status, JSON.stringify(e.data));
      assertOutcome(e.data, what);
      assert.match(e.data.issue.map((i) => `${i.diagnostics} ${i.expression ?? ''}`).join(' '), why);
      const now = await read(t.id);
      assert.equal(now.meta.versionId, before.meta.versionId, 'nothing written');
      assert.deepEqual(now, before);
    });
  }

  test('a body that is not JSON: 400', async () => {
    const r = await raw(srv.base, 'PATCH', `Task/${t.id}`, { body: '[{"op":', headers: { 'content-type': 'application/json-patch+json' } });
    assert.equal(r.status, 400, r.text);
    assertOutcome(r.json);
  });

  test('a patch sent as a FHIR resource (FHIRPath Patch): 415', async () => {
    const r = await raw(srv.base, 'PATCH', `Task/${t.id}`, { body: { resourceType: 'Parameters', parameter: [] } });
    assert.equal(r.status, 415, r.text);
    assert.match(r.json.issue[0].diagnostics, /json-patch\+json/);
  });

  test('an unknown or deleted resource: 404, 410', async () => {
    const e = await fhirError(patch('no-such-task', [{ op: 'remove', path: '/note' }]));
    assert.equal(e.status, 404);
    const gone = await newTask();
    await client.delete({ resourceType: 'Task', id: gone.id });
    const g = await fhirError(patch(gone.id, [{ op: 'replace', path: '/status', value: 'cancelled' }]));
    assert.equal(g.status, 410);
  });
});

describe('versions', () => {
  test('If-Match with a stale version: 412, nothing written; with the current one: applied', async () => {
    const t = await newTask();
    await patch(t.id, [{ op: 'replace', path: '/priority', value: 'urgent' }]);
    const e = await fhirError(patch(t.id, [{ op: 'replace', path: '/priority', value: 'stat' }], { 'If-Match': 'W/"1"' }));
    assert.equal(e.status, 412);
    assert.equal((await read(t.id)).priority, 'urgent');
    const ok = await patch(t.id, [{ op: 'replace', path: '/priority', value: 'stat' }], { 'If-Match': 'W/"2"' });
    assert.equal(ok.meta.versionId, '3');
  });

  test('16 clients adding a note each at once: every note is there', async () => {
    const t = await newTask({ note: [{ text: 'the first' }] });
    const n = 16;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => patch(t.id, [{ op: 'add', path: '/note/-', value: { text: `note ${i}` } }])
      .then(() => 'ok', (e) => `HTTP ${e.response?.status}`)));
    const done = results.filter((r) => r === 'ok').length;
    const now = await read(t.id);
    assert.deepEqual(results, Array(n).fill('ok'), 'each applies to the version before it: none is refused');
    assert.equal(now.note.length, 1 + n, 'and none is lost');
    assert.deepEqual(new Set(now.note.slice(1).map((x) => x.text)), new Set(Array.from({ length: n }, (_, i) => `note ${i}`)));
    assert.equal(Number(now.meta.versionId), 1 + n);
  });
});

describe('who may patch', () => {
  test('a coordinator outside the patient\'s care team cannot see the Task to patch it (404)', async () => {
    const prac = (await client.create({ resourceType: 'Practitioner', body: { resourceType: 'Practitioner', name: [{ family: 'Outsider' }] } })).id;
    const name = `outsider-${process.pid}`;
    const pw = 'a long enough password 7';
    await addUser(srv.db, name, pw, ['--role', 'coordinator', '--link', `Practitioner/${prac}`]);
    const { token } = await login(new URL(srv.base).origin, name, pw);
    const t = await newTask();
    const r = await raw(srv.base, 'PATCH', `Task/${t.id}`, {
      body: JSON.stringify([{ op: 'replace', path: '/status', value: 'cancelled' }]),
      headers: { 'content-type': 'application/json-patch+json', authorization: `Bearer ${token}` },
    });
    assert.equal(r.status, 404, r.text);
    assert.equal((await read(t.id)).status, 'requested');
  });
});

describe('what the server says of it', () => {
  test('the CapabilityStatement lists patch for the types, and the audit trail records it', async () => {
    const cs = await client.capabilityStatement();
    const task = cs.rest[0].resource.find((r) => r.type === 'Task');
    assert.ok(task.interaction.some((i) => i.code === 'patch'), JSON.stringify(task.interaction));
    const t = await newTask();
    await patch(t.id, [{ op: 'replace', path: '/status', value: 'accepted' }]);
    await srv.stop({ keep: true });
    const r = await runCli(['audit', 'dump', '--db', srv.db]);
    assert.equal(r.code, 0, r.stderr);
    const recs = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const rec = recs.find((e) => e.subtype?.[0]?.code === 'patch' && (e.entity ?? []).some((x) => x.what?.reference === `Task/${t.id}`));
    assert.ok(rec, 'a patch record for the Task');
    assert.equal(rec.action, 'U');
    srv = await startServer({ db: srv.db });
    client = srv.client;
  });
});

describe('inside Bundles (the patch in a Binary, as FHIR carries it)', () => {
  const binary = (ops) => ({ resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify(ops)).toString('base64') });
  const family = async (name) => (await raw(srv.base, 'GET', `Patient?family=${name}&_summary=count`)).json.total;

  test('a transaction creates a patient and patches a Task to name it (urn:uuid: in the patch resolved)', async () => {
    const t = await newTask();
    const r = await raw(srv.base, 'POST', '', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { fullUrl: 'urn:uuid:7c9e6679-7425-40de-944b-e07fc1f90ae7', resource: { resourceType: 'Patient', name: [{ family: 'Bundlepatched' }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: binary([{ op: 'replace', path: '/for', value: { reference: 'urn:uuid:7c9e6679-7425-40de-944b-e07fc1f90ae7' } }, { op: 'replace', path: '/status', value: 'accepted' }]),
          request: { method: 'PATCH', url: `Task/${t.id}`, ifMatch: 'W/"1"' } },
      ] } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.type, 'transaction-response');
    assert.match(r.json.entry[1].response.status, /^200/);
    assert.equal(r.json.entry[1].response.etag, 'W/"2"');
    const now = await read(t.id);
    const pid2 = r.json.entry[0].response.location.split('/')[1];
    assert.equal(now.for.reference, `Patient/${pid2}`);
    assert.equal(now.status, 'accepted');
  });

  test('a patch that does not apply rolls the whole transaction back', async () => {
    const t = await newTask();
    const r = await raw(srv.base, 'POST', '', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { resourceType: 'Patient', name: [{ family: 'Neverwritten' }] }, request: { method: 'POST', url: 'Patient' } },
        { resource: binary([{ op: 'test', path: '/status', value: 'completed' }, { op: 'replace', path: '/status', value: 'cancelled' }]),
          request: { method: 'PATCH', url: `Task/${t.id}` } },
      ] } });
    assert.equal(r.status, 422, r.text);
    assert.ok(r.json.issue.some((i) => /the value differs/.test(i.diagnostics) && i.expression?.[0] === 'Bundle.entry[1].resource'), JSON.stringify(r.json.issue));
    assert.equal(await family('Neverwritten'), 0, 'nothing of the transaction was written');
    assert.equal((await read(t.id)).status, 'requested');
  });

  test('a PATCH entry that is not a Binary JSON Patch: 415 before anything is written', async () => {
    const t = await newTask();
    const r = await raw(srv.base, 'POST', '', { body: {
      resourceType: 'Bundle', type: 'transaction', entry: [
        { resource: { resourceType: 'Parameters', parameter: [] }, request: { method: 'PATCH', url: `Task/${t.id}` } },
      ] } });
    assert.equal(r.status, 415, r.text);
    assert.match(r.json.issue[0].diagnostics, /Binary with contentType application\/json-patch\+json/);
    assert.equal(r.json.issue[0].expression?.[0], 'Bundle.entry[0].resource');
  });

  test('a batch: each PATCH entry answers for itself', async () => {
    const t = await newTask();
    const r = await raw(srv.base, 'POST', '', { body: {
      resourceType: 'Bundle', type: 'batch', entry: [
        { resource: binary([{ op: 'add', path: '/note', value: [{ text: 'from a batch' }] }]), request: { method: 'PATCH', url: `Task/${t.id}` } },
        { resource: { ...binary([]), data: '%%%not base64' }, request: { method: 'PATCH', url: `Task/${t.id}` } },
        { resource: binary([{ op: 'remove', path: '/nothing-here' }]), request: { method: 'PATCH', url: `Task/${t.id}` } },
      ] } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.entry.map((e) => e.response.status.slice(0, 3)), ['200', '400', '422']);
    const now = await read(t.id);
    assert.deepEqual(now.note.map((n) => n.text), ['from a batch']);
    assert.equal(now.meta.versionId, '2');
  });
});

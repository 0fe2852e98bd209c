// badinput.test.mjs: bad requests get the right 4xx with an
// OperationOutcome, and none of them writes anything: a snapshot of counts
// and newest history versions taken before each one equals the one after.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, raw, httpOf, fhirError, assertOutcome, snapshot, authHeader } from '../support/server.mjs';

let srv;
let client;
let pid;     // an existing Patient, version 2
const TYPES = ['Patient', 'Observation'];

before(async () => {
  srv = await startServer();
  client = srv.client;
  const p = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: 'Bad' }], gender: 'male' } });
  pid = p.id;
  await client.update({ resourceType: 'Patient', id: pid, body: { resourceType: 'Patient', id: pid, name: [{ family: 'Bad' }], gender: 'female' } });
  await client.create({ resourceType: 'Observation', body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: `Patient/${pid}` } } });
});
after(async () => {
  await srv?.stop();
});

/**
 * Runs fn (which returns {status, body}), asserts the status is one of
 * statuses, the body an OperationOutcome (when outcome), and that nothing
 * was written.
 */
function rejects(name, statuses, fn, { outcome = true, types = TYPES } = {}) {
  test(name, async () => {
    const s0 = await snapshot(client, types);
    const r = await fn();
    const ok = Array.isArray(statuses) ? statuses : [statuses];
    assert.ok(ok.includes(r.status), `${name}: status ${r.status}, expected ${ok.join(' or ')}; body: ${String(r.text ?? JSON.stringify(r.body)).slice(0, 500)}`);
    if (outcome) assertOutcome(r.body ?? r.json, name);
    const s1 = await snapshot(client, types);
    assert.deepEqual(s1, s0, `${name}: something was written`);
    const cur = await client.read({ resourceType: 'Patient', id: pid });
    assert.equal(cur.meta.versionId, '2', 'the known Patient is unchanged');
    assert.equal(cur.gender, 'female');
    return r;
  });
}

const post = (path, body, headers) => () => raw(srv.base, 'POST', path, { body, headers });
const put = (path, body, headers) => () => raw(srv.base, 'PUT', path, { body, headers });

describe('malformed bodies', () => {
  rejects('malformed JSON -> 400', 400, post('Patient', '{"resourceType": "Patient", "name": ['));
  rejects('trailing garbage -> 400', 400, post('Patient', '{"resourceType": "Patient"} x'));
  rejects('a JSON array -> 400', [400, 422], post('Patient', '[]'));
  rejects('a JSON string -> 400', [400, 422], post('Patient', '"Patient"'));
  rejects('JSON null -> 400', [400, 422], post('Patient', 'null'));
  rejects('an empty body -> 400', [400, 422], post('Patient', ''));
  rejects('duplicate keys -> 400', [400, 422], post('Patient', '{"resourceType":"Patient","gender":"male","gender":"female"}'));
  rejects('invalid UTF-8 -> 400', [400, 422], post('Patient', Buffer.concat([Buffer.from('{"resourceType":"Patient","name":[{"family":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}]}')])));
  rejects('a NUL byte inside a string -> 400/422', [400, 422], post('Patient', '{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}'));
  rejects('deeply nested JSON -> 400/422', [400, 422, 413], post('Patient', '{"resourceType":"Patient","extension":' + '['.repeat(100000) + ']'.repeat(100000) + '}'));
  rejects('a body with content-type text/plain -> 415', 415, post('Patient', '{"resourceType":"Patient"}', { 'content-type': 'text/plain' }));
});

describe('content that does not validate', () => {
  test('birthDate: 12 -> 422 with expression Patient.birthDate', async () => {
    const s0 = await snapshot(client, TYPES);
    const e = await fhirError(client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', birthDate: 12 } }));
    assert.equal(e.status, 422);
    assertOutcome(e.data);
    const exprs = e.data.issue.flatMap((i) => [...(i.expression ?? []), ...(i.location ?? [])]);
    assert.ok(exprs.includes('Patient.birthDate'), `expression Patient.birthDate in ${JSON.stringify(e.data.issue)}`);
    assert.deepEqual(await snapshot(client, TYPES), s0);
  });
  test('unknown element -> 422 naming it', async () => {
    const s0 = await snapshot(client, TYPES);
    const e = await fhirError(client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', favouriteColour: 'blue' } }));
    assert.equal(e.status, 422);
    assertOutcome(e.data);
    assert.ok(JSON.stringify(e.data.issue).includes('favouriteColour'), JSON.stringify(e.data.issue));
    assert.deepEqual(await snapshot(client, TYPES), s0);
  });
  test('every problem is reported, with its location', async () => {
    const s0 = await snapshot(client, TYPES);
    const e = await fhirError(client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', gender: 'robot', birthDate: '1970-13-01', name: [{ given: [1] }, { given: ['ok', 2] }] } }));
    assert.equal(e.status, 422);
    const exprs = e.data.issue.flatMap((i) => [...(i.expression ?? []), ...(i.location ?? [])]);
    for (const x of ['Patient.gender', 'Patient.birthDate', 'Patient.name[0].given[0]', 'Patient.name[1].given[1]']) {
      assert.ok(exprs.includes(x), `${x} in ${JSON.stringify(exprs)}`);
    }
    assert.deepEqual(await snapshot(client, TYPES), s0);
  });
  rejects('gender outside its required value set -> 422', 422, post('Patient', { resourceType: 'Patient', gender: 'robot' }));
  rejects('an impossible date -> 422', 422, post('Patient', { resourceType: 'Patient', birthDate: '2023-02-30' }));
  rejects('a choice element with a type it does not allow -> 422', 422, post('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueAddress: { city: 'X' } }));
  rejects('two alternatives of one choice element -> 422', [400, 422], post('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueString: 'a', valueInteger: 1 }));
  rejects('a missing required element (Observation.code) -> 422', 422, post('Observation', { resourceType: 'Observation', status: 'final' }));
  rejects('an array where a single value belongs -> 422', 422, post('Patient', { resourceType: 'Patient', gender: ['male'] }));
  rejects('a single value where an array belongs -> 422', 422, post('Patient', { resourceType: 'Patient', name: { family: 'x' } }));
  rejects('null as a value -> 400/422', [400, 422], post('Patient', { resourceType: 'Patient', gender: null }));
  rejects('an empty string -> 400/422', [400, 422], post('Patient', { resourceType: 'Patient', gender: '' }));
  rejects('an empty array -> 400/422', [400, 422], post('Patient', { resourceType: 'Patient', name: [] }));
  rejects('an invalid contained resource -> 422', 422, post('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, contained: [{ resourceType: 'Patient', id: 'c1', birthDate: 'x' }] }));
  rejects('an integer out of range -> 422', [400, 422], post('Patient', { resourceType: 'Patient', multipleBirthInteger: 1e30 }));
  rejects('an invalid update -> 422, the resource unchanged', 422, () => raw(srv.base, 'PUT', `Patient/${pid}`, { body: { resourceType: 'Patient', id: pid, birthDate: 12 } }));
  rejects('an invalid conditional update -> 422', 422, () => raw(srv.base, 'PUT', `Patient?_id=${pid}`, { body: { resourceType: 'Patient', birthDate: 'soon' } }));
  rejects('an unknown element inside a datatype (name[0].nickname) -> 422', 422, post('Patient', { resourceType: 'Patient', name: [{ family: 'x', nickname: 'y' }] }));
  rejects('an unknown element inside a backbone (contact[0].mood) -> 422', 422, post('Patient', { resourceType: 'Patient', contact: [{ mood: 'calm' }] }));
  rejects('a string where a boolean belongs -> 422', 422, post('Patient', { resourceType: 'Patient', active: 'true' }));
  rejects('a string where an integer belongs -> 422', 422, post('Patient', { resourceType: 'Patient', multipleBirthInteger: '2' }));
  rejects('a fraction where an integer belongs -> 422', 422, post('Patient', '{"resourceType":"Patient","multipleBirthInteger":2.5}'));
  rejects('a primitive extension that is not an object (_gender: "x") -> 422', [400, 422], post('Patient', { resourceType: 'Patient', gender: 'male', _gender: 'x' }));
  rejects('an empty object -> 400/422', [400, 422], post('Patient', { resourceType: 'Patient', name: [{}] }));
  rejects('a JSON comment -> 400', 400, post('Patient', '{"resourceType":"Patient" /* hi */}'));
  rejects('an extension without url -> 422', [400, 422], post('Patient', { resourceType: 'Patient', extension: [{ valueString: 'x' }] }));
  rejects('a reference with a bad shape (reference: 5) -> 422', 422, post('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 5 } }));
  rejects('an instant without a time zone (meta.lastUpdated) is ignored or refused, never stored as sent', [201, 400, 422], post('Patient', { resourceType: 'Patient', meta: { lastUpdated: '2020-01-01T00:00:00' }, gender: 'male' }), { outcome: false });
  rejects('a bad id in the body of an update -> 400', 400, put('Patient/bad$id', { resourceType: 'Patient', id: 'bad$id' }));
  rejects('an id longer than 64 characters -> 400', 400, put(`Patient/${'a'.repeat(65)}`, { resourceType: 'Patient', id: 'a'.repeat(65) }));
});

describe('types and ids', () => {
  rejects('unknown resource type in the URL (create) -> 404/400', [400, 404], post('Foo', { resourceType: 'Foo' }));
  rejects('unknown resource type in the URL (read) -> 404/400', [400, 404], () => raw(srv.base, 'GET', 'Foo/1'));
  rejects('a real FHIR type careweave does not serve -> 404/400', [400, 404], post('Basic', { resourceType: 'Basic', code: { text: 'x' } }));
  rejects('unknown resource type in the body -> 400/422', [400, 422], post('Patient', { resourceType: 'Foo' }));
  rejects('no resourceType in the body -> 400/422', [400, 422], post('Patient', { gender: 'male' }));
  rejects('resourceType differs from the URL (create) -> 400', 400, post('Patient', { resourceType: 'Observation', status: 'final', code: { text: 'x' } }));
  rejects('resourceType differs from the URL (update) -> 400', 400, () => raw(srv.base, 'PUT', `Patient/${pid}`, { body: { resourceType: 'Observation', id: pid, status: 'final', code: { text: 'x' } } }));
  rejects('id in the body differs from the URL -> 400', 400, () => raw(srv.base, 'PUT', `Patient/${pid}`, { body: { resourceType: 'Patient', id: 'someone-else', gender: 'male' } }));
  rejects('no id in the body of an update -> 400', 400, () => raw(srv.base, 'PUT', `Patient/${pid}`, { body: { resourceType: 'Patient', gender: 'male' } }));
  rejects('POST to an instance -> 405/400', [400, 405], post(`Patient/${pid}`, { resourceType: 'Patient', id: pid }));
  rejects('a Bundle posted to a type endpoint -> 400', [400, 422], post('Patient', { resourceType: 'Bundle', type: 'transaction', entry: [] }));
  rejects('a non-Bundle posted to [base] -> 400', [400, 422, 405], post('', { resourceType: 'Patient' }));
  rejects('a conditional reference outside a transaction -> 422', [422],
    post('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' },
      subject: { reference: 'Patient?identifier=http://hospital.example/mrn|123' } }));
  rejects('a urn:uuid reference outside a Bundle -> 422', [422],
    post('Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' },
      subject: { reference: 'urn:uuid:11111111-1111-4111-8111-111111111111' } }));
  rejects('vread with a non-numeric version -> 400/404', [400, 404], () => raw(srv.base, 'GET', `Patient/${pid}/_history/abc`));
});

describe('methods and preconditions', () => {
  test('a PATCH that does not apply -> 422 (tests/api/patch.test.mjs has the rest)', async () => {
    const s0 = await snapshot(client, TYPES);
    const e = await fhirError(client.patch({ resourceType: 'Patient', id: pid, jsonPatch: [{ op: 'test', path: '/gender', value: 'other' }, { op: 'replace', path: '/gender', value: 'male' }] }));
    assert.equal(e.status, 422);
    assert.deepEqual(await snapshot(client, TYPES), s0);
  });
  rejects('PATCH of a whole type -> 405', 405, () => raw(srv.base, 'PATCH', 'Patient', { headers: { 'content-type': 'application/json-patch+json' }, body: '[]' }));
  rejects('an unknown method -> 405/501', [405, 501, 400], () => raw(srv.base, 'PROPFIND', `Patient/${pid}`), { outcome: false });
  rejects('stale If-Match -> 412', 412, () => raw(srv.base, 'PUT', `Patient/${pid}`, { headers: { 'if-match': 'W/"1"' }, body: { resourceType: 'Patient', id: pid, gender: 'male' } }));
  rejects('If-Match for a future version -> 412', 412, () => raw(srv.base, 'PUT', `Patient/${pid}`, { headers: { 'if-match': 'W/"7"' }, body: { resourceType: 'Patient', id: pid, gender: 'male' } }));
  rejects('a malformed If-Match -> 400/412', [400, 412], () => raw(srv.base, 'PUT', `Patient/${pid}`, { headers: { 'if-match': 'garbage' }, body: { resourceType: 'Patient', id: pid, gender: 'male' } }));
  rejects('If-Match on a resource that does not exist -> 404/409/412', [404, 409, 412], () => raw(srv.base, 'PUT', 'Patient/not-there-yet', { headers: { 'if-match': 'W/"1"' }, body: { resourceType: 'Patient', id: 'not-there-yet' } }));
});

describe('invalid searches', () => {
  rejects('birthdate=notadate -> 400', 400, () => raw(srv.base, 'GET', 'Patient?birthdate=notadate'));
  rejects('unknown modifier -> 400', 400, () => raw(srv.base, 'GET', 'Patient?name:sideways=x'));
  rejects('a quantity that is not a number -> 400', 400, () => raw(srv.base, 'GET', 'Observation?value-quantity=lots'));
  rejects('an unknown parameter, strict -> 400', 400, () => raw(srv.base, 'GET', 'Patient?nonsense=1', { headers: { prefer: 'handling=strict' } }));
  rejects('a bad conditional update search -> 400', 400, () => raw(srv.base, 'PUT', 'Patient?birthdate=notadate', { body: { resourceType: 'Patient' } }));
  rejects('a bad conditional delete search -> 400', 400, () => raw(srv.base, 'DELETE', 'Patient?birthdate=notadate'));
  rejects('a bad _since in history -> 400', 400, () => raw(srv.base, 'GET', `Patient/${pid}/_history?_since=yesterday`));
});

describe('robustness: odd URLs, many parameters, many elements', () => {
  rejects('invalid percent-encoding in the query -> 400 or taken literally', [200, 400], () => raw(srv.base, 'GET', 'Patient?name=%ZZ'), { outcome: false });
  rejects('invalid percent-encoding in the path -> 400/404', [400, 404], () => raw(srv.base, 'GET', 'Patient/%ZZ'), { outcome: false });
  rejects('a 100 KB query string -> 400/414/431 or a result', [200, 400, 414, 431], () => raw(srv.base, 'GET', `Patient?name=${'a'.repeat(100000)}`, { timeoutMs: 5000 }), { outcome: false });
  rejects('5,000 repeated parameters -> 400 or a result', [200, 400, 414, 431], () => raw(srv.base, 'GET', `Patient?${Array.from({ length: 5000 }, (_, i) => `_id=x${i}`).join('&')}`, { timeoutMs: 5000 }), { outcome: false });
  rejects('5,000 OR values -> 400 or a result', [200, 400], () => raw(srv.base, 'GET', `Patient?_id=${Array.from({ length: 5000 }, (_, i) => `x${i}`).join(',')}`, { timeoutMs: 5000 }), { outcome: false });
  rejects('a chain 10 deep -> 400', [400], () => raw(srv.base, 'GET', `Observation?${'subject:Patient.link:Patient.'.repeat(5)}name=x`), { outcome: true });
  rejects('a 64 KB header -> 400/431', [400, 413, 431], () => raw(srv.base, 'GET', `Patient/${pid}`, { headers: { 'x-big': 'a'.repeat(65536) }, timeoutMs: 5000 }), { outcome: false });
  test('a valid resource with 50,000 identifiers is handled (stored or refused), not a crash', async () => {
    const body = { resourceType: 'Patient', identifier: Array.from({ length: 50000 }, (_, i) => ({ system: 'urn:many', value: `v${i}` })) };
    const r = await raw(srv.base, 'POST', 'Patient', { body });
    assert.ok(r.status === 201 || (r.status >= 400 && r.status < 500), `status ${r.status}: ${r.text.slice(0, 300)}`);
    if (r.status === 201) {
      const b = await client.search({ resourceType: 'Patient', searchParams: { identifier: 'urn:many|v49999' } });
      assert.deepEqual(b.entry.map((e) => e.resource.id), [r.json.id]);
      await client.delete({ resourceType: 'Patient', id: r.json.id });
    }
  });
  test('a request body that stops halfway (client hangs up) leaves nothing behind', async () => {
    const s0 = await snapshot(client, TYPES);
    const { connect } = await import('node:net');
    const u = new URL(srv.base);
    await new Promise((resolve) => {
      const sock = connect(Number(u.port), u.hostname, () => {
        sock.write(`POST ${u.pathname}/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 1000\r\n\r\n{"resourceType":"Patient","gender":"ma`);
        setTimeout(() => { sock.destroy(); resolve(); }, 200);
      });
      sock.on('error', resolve);
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await snapshot(client, TYPES), s0);
  });
});

/**
 * Sends a large body with node:http and returns the status of the
 * response, which may come before the whole body has been sent (the server
 * may then close the connection: write errors are expected and ignored).
 */
function sendBig(url, size, { chunked = false } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers = { 'content-type': 'application/fhir+json', accept: 'application/fhir+json', ...authHeader(srv.base) };
    if (!chunked) headers['content-length'] = String(size);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers });
    let done = false;
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        done = true;
        let body = null;
        try { body = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, text, body });
      });
      res.on('error', () => { if (!done) { done = true; resolve({ status: res.statusCode, text, body: null }); } });
    });
    req.on('error', (e) => { if (!done) setTimeout(() => { if (!done) reject(new Error(`no response to a ${size}-byte body: ${e.message}`)); }, 500); });
    // a valid resource padded with a long string, so that only the size is wrong
    const head = Buffer.from('{"resourceType":"Patient","name":[{"family":"');
    const tail = Buffer.from('"}]}');
    const chunk = Buffer.alloc(1 << 20, 'a');
    let left = size - head.length - tail.length;
    req.write(head);
    (function pump() {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (req.destroyed) return;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      if (!req.destroyed) req.end(tail);
    })();
  });
}

describe('limits', () => {
  const MiB = 1 << 20;
  // three times: a client must get the 413 every time, not a reset connection
  for (const n of [1, 2, 3]) {
    rejects(`a 17 MiB body -> 413 (${n})`, 413, () => sendBig(`${srv.base}/Patient`, 17 * MiB), { outcome: false });
  }
  rejects('a 17 MiB chunked body (no Content-Length) -> 413', 413, () => sendBig(`${srv.base}/Patient`, 17 * MiB, { chunked: true }), { outcome: false });
  test('the server still works after the big bodies', async () => {
    const r = await client.read({ resourceType: 'Patient', id: pid });
    assert.equal(r.id, pid);
  });
  test('a body just under the limit is not refused for its size', async () => {
    const r = await sendBig(`${srv.base}/Patient`, 15 * MiB);
    assert.notEqual(r.status, 413);
    assert.ok(r.status < 500, `status ${r.status}: ${r.text.slice(0, 300)}`);
  });
});

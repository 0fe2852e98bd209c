// tests/api/audit-check.test.mjs: the audit completeness check itself
// (tests/support/audit-check.mjs), on requests and records made up here:
// it must find a missing record and a record too many, and expect nothing
// of what the rules say is not recorded.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { recordRequests, stopRecording, compare } from '../support/audit-check.mjs';

const rec = (requests) => {
  const r = recordRequests(`http://127.0.0.1:${40000 + Math.floor(Math.random() * 20000)}`);
  stopRecording(r);
  r.startedAt = 0;
  r.requests.push(...requests);
  return r;
};
const ev = (code, status, what, extra = {}) => ({
  resourceType: 'AuditEvent', id: String(Math.random()), subtype: [{ code }], action: 'R',
  recorded: new Date().toISOString(), outcomeDesc: `HTTP ${status}`,
  agent: [{ who: { identifier: { value: 'u' } }, role: [{ coding: [{ code: 'service' }] }] }],
  entity: what ? [{ what: what.includes('/') ? { reference: what } : { type: what } }] : undefined, ...extra,
});

describe('the audit completeness check', () => {
  test('every request with its record: no problem', async () => {
    const r = rec([
      { method: 'POST', path: '/auth/login', status: 200 },
      { method: 'GET', path: '/fhir/Patient/p1', status: 200 },
      { method: 'GET', path: '/fhir/Patient', query: '?name=x', status: 200 },
      { method: 'GET', path: '/fhir/metadata', status: 200 },
      { method: 'GET', path: '/fhir/Patient/p1', status: 401 },
      { method: 'GET', path: '/fhir/a/b/c/d/e/f/g', status: 404, resBody: '{"diagnostics":"No such endpoint"}' },
    ]);
    assert.deepEqual(await compare(r, [ev('110122', 200), ev('read', 200, 'Patient/p1'), ev('search-type', 200, 'Patient')]), []);
  });

  test('a missing record and a record too many are named', async () => {
    const r = rec([{ method: 'GET', path: '/fhir/Patient/p1/_history/1', status: 200 }]);
    const p = await compare(r, [ev('read', 200, 'Observation/o1')]);
    assert.equal(p.length, 2, p.join('\n'));
    assert.match(p[0], /GET \/fhir\/Patient\/p1\/_history\/1 -> 200: no vread record/);
    assert.match(p[1], /read R HTTP 200 Observation\/o1 .*no request of this test explains/);
  });

  test('a batch: one record per entry, the batch none; a transaction: one, and its reads', async () => {
    const batch = { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient/p1' } }, { request: { method: 'GET', url: 'metadata' } }, { request: { method: 'DELETE', url: 'Patient/p2' } }] };
    const tx = { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'POST', url: 'Patient' } }, { request: { method: 'GET', url: 'Patient/p1' } }] };
    const answer = (sts) => JSON.stringify({ resourceType: 'Bundle', entry: sts.map((s) => ({ response: { status: s } })) });
    const r = rec([
      { method: 'POST', path: '/fhir', status: 200, reqBody: JSON.stringify(batch), resBody: answer(['200 OK', '200 OK', '204 No Content']) },
      { method: 'POST', path: '/fhir/', status: 200, reqBody: JSON.stringify(tx), resBody: answer(['201 Created', '200 OK']) },
    ]);
    const ok = [ev('read', 200, 'Patient/p1'), ev('delete', 204, 'Patient/p2'), ev('transaction', 200, 'Patient/p3'), ev('read', 200, 'Patient/p1')];
    assert.deepEqual(await compare(r, ok), []);
    assert.equal((await compare(r, ok.slice(1))).length, 1, 'a batch entry without its record');
  });

  test('records of operator tools and of before the start are not this server\'s', async () => {
    const r = rec([]);
    r.startedAt = Date.now();
    const old = ev('read', 200, 'Patient/p1', { recorded: new Date(r.startedAt - 60000).toISOString() });
    const op = ev('transaction', 200, null, { agent: [{ role: [{ coding: [{ code: 'operator' }] }] }] });
    assert.deepEqual(await compare(r, [old, op]), []);
  });
});

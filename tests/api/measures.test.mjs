// tests/api/measures.test.mjs: GET /fhir/$transitions-measures (issue 5,
// "Measures"), over stays written through the API as any client would:
// admissions, 30-day readmissions and the rate, discharges followed up
// (the contact task done in time, a visit within 7 and 14 days),
// medication reconciliation, unreviewed results; and bad input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, raw } from '../support/server.mjs';

let srv;
const DAY = 86400000;
const iso = (ms) => new Date(ms).toISOString();
const day = (ms) => iso(ms).slice(0, 10);

async function svc(method, url, body) {
  const r = await raw(srv.base, method, url, { body });
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${r.text.slice(0, 400)}`);
  return r.json;
}

const stay = (pid, cls, start, end) => ({
  resourceType: 'Encounter', status: end ? 'finished' : 'in-progress',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: cls },
  subject: { reference: `Patient/${pid}` },
  period: { start: iso(start), ...(end ? { end: iso(end) } : {}) },
});

const param = (p, name) => p.parameter.find((x) => x.name === name);

before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv?.stop();
});

test('the measures of a period count what happened in it', async () => {
  const now = Date.now();
  const pid = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Measured' }] })).id;
  // a stay ended 20 days ago, then a readmission 12 days ago, ended 6 days ago
  const first = await svc('POST', 'Encounter', stay(pid, 'IMP', now - 25 * DAY, now - 20 * DAY));
  await svc('POST', 'Encounter', stay(pid, 'IMP', now - 12 * DAY, now - 6 * DAY));
  // a visit 3 days after the second discharge
  await svc('POST', 'Encounter', stay(pid, 'AMB', now - 3 * DAY, now - 3 * DAY + 3600000));
  // the first discharge's contact task done the day after
  const contact = (await svc('GET', `Task?identifier=urn:careweave:transitions|${first.id}:contact`)).entry[0].resource;
  delete contact.meta;
  contact.status = 'completed';
  contact.executionPeriod = { end: iso(now - 19 * DAY) };
  await svc('PUT', `Task/${contact.id}`, contact);

  const m = await svc('GET', `$transitions-measures?start=${day(now - 29 * DAY)}&end=${day(now)}`);
  assert.equal(m.resourceType, 'Parameters');
  assert.equal(param(m, 'admissions').valueInteger, 2);
  assert.equal(param(m, 'readmissions-30-days').valueInteger, 1);
  assert.equal(param(m, 'discharges').valueInteger, 2);
  assert.equal(param(m, 'discharges-readmitted-30-days').valueInteger, 1);
  assert.equal(param(m, 'readmission-rate').valueDecimal, 0.5);
  assert.equal(param(m, 'contact-within-2-business-days').valueInteger, 1);
  assert.equal(param(m, 'visit-within-7-days').valueInteger, 1);
  assert.equal(param(m, 'visit-within-14-days').valueInteger, 1);
  assert.equal(param(m, 'medication-reconciliation-within-30-days').valueInteger, 0);
  // a shorter period sees only the second stay
  const m2 = await svc('GET', `$transitions-measures?start=${day(now - 13 * DAY)}&end=${day(now)}`);
  assert.equal(param(m2, 'admissions').valueInteger, 1);
  assert.equal(param(m2, 'readmissions-30-days').valueInteger, 1);
});

test('bad input is a 400 that says why', async () => {
  for (const q of ['start=yesterday', 'end=2026-13-01', 'unreviewed-days=-1', 'start=2026-02-01&end=2026-01-01',
    'start=2020-01-01&end=2026-01-01']) {
    const r = await raw(srv.base, 'GET', `$transitions-measures?${q}`);
    assert.equal(r.status, 400, `${q}: ${r.status} ${r.text.slice(0, 200)}`);
    assert.equal(r.json.resourceType, 'OperationOutcome');
  }
});

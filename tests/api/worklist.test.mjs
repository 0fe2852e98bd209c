// tests/api/worklist.test.mjs: GET /fhir/Task/$worklist, what a member of
// the care team has to do now: their open Tasks, most pressing first, and
// the reviews of results left open too long, whoever owns them; work that
// goes away with the stay that made it; and due dates that skip holidays.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import { startServer, raw, tempDir } from '../support/server.mjs';

let srv;
const DAY = 86400000;

async function svc(method, url, body) {
  const r = await raw(srv.base, method, url, { body });
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${r.text.slice(0, 400)}`);
  return r.json;
}

before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv?.stop();
});

test('open Tasks of the owner, most pressing first, and overdue reviews', async () => {
  const me = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Coordinator' }] })).id;
  const other = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Other' }] })).id;
  const pid = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Worked' }] })).id;
  const task = (extra) => svc('POST', 'Task', {
    resourceType: 'Task', status: 'requested', intent: 'order', for: { reference: `Patient/${pid}` },
    authoredOn: new Date(Date.now() - DAY).toISOString(), ...extra,
  });
  const routine = await task({ priority: 'routine', owner: { reference: `Practitioner/${me}` }, description: 'routine' });
  const late = await task({ priority: 'urgent', owner: { reference: `Practitioner/${me}` }, description: 'urgent, due soon',
    restriction: { period: { end: new Date(Date.now() + DAY).toISOString() } } });
  const stat = await task({ priority: 'stat', owner: { reference: `Practitioner/${me}` }, description: 'stat' });
  await task({ priority: 'stat', status: 'completed', owner: { reference: `Practitioner/${me}` }, description: 'done' });
  const review = await task({ priority: 'routine', owner: { reference: `Practitioner/${other}` }, description: 'an old review',
    code: { coding: [{ system: 'https://careweave.org/fhir/CodeSystem/results-task', code: 'review-result' }] },
    authoredOn: new Date(Date.now() - 5 * DAY).toISOString() });
  await task({ priority: 'routine', owner: { reference: `Practitioner/${other}` }, description: 'a fresh review',
    code: { coding: [{ system: 'https://careweave.org/fhir/CodeSystem/results-task', code: 'review-result' }] } });

  const b = await svc('GET', `Task/$worklist?owner=Practitioner/${me}&unreviewed-days=3`);
  assert.equal(b.resourceType, 'Bundle');
  const ids = b.entry.map((e) => e.resource.id);
  assert.deepEqual(ids, [stat.id, late.id, review.id, routine.id],
    'stat, then urgent, then the routine ones oldest first (the overdue review of another, then mine); ' +
    'nothing done, no fresh review');
});

test('bad input is a 400 that says why', async () => {
  for (const q of ['owner=Patient/x', 'owner=Practitioner/x&unreviewed-days=-1', '']) {
    const r = await raw(srv.base, 'GET', `Task/$worklist?${q}`);
    assert.equal(r.status, 400, `${q}: ${r.status} ${r.text.slice(0, 200)}`);
  }
  const r = await raw(srv.base, 'GET', 'Patient/$worklist?owner=Practitioner/x');
  assert.equal(r.status, 404);
});

test('a hospital stay deleted from the record takes its open work and flags with it', async () => {
  const pid = (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: 'Mistaken' }] })).id;
  const start = new Date(Date.now() - 2 * DAY).toISOString();
  const enc = await svc('POST', 'Encounter', {
    resourceType: 'Encounter', status: 'in-progress',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
    subject: { reference: `Patient/${pid}` }, period: { start },
  });
  const open = async () => (await svc('GET', `Task?focus=Encounter/${enc.id}`)).entry?.map((e) => e.resource) ?? [];
  const flags = async () => (await svc('GET', `Flag?encounter=Encounter/${enc.id}`)).entry?.map((e) => e.resource) ?? [];
  const [send] = await open();
  assert.equal(send?.code.coding[0].code, 'send-records', 'the admission gave the coordinator work');
  assert.equal(send.status, 'requested');
  assert.equal((await flags())[0]?.status, 'active', 'and a "currently admitted" flag');

  const del = await raw(srv.base, 'DELETE', `Encounter/${enc.id}`);
  assert.equal(del.status, 204, del.text);
  const [after] = await open();
  assert.equal(after.status, 'cancelled', 'no one is to send records for a stay that did not happen');
  assert.match(after.statusReason.text, /deleted/);
  assert.equal((await flags())[0].status, 'entered-in-error');
});

// The contact Task careweave made for an inpatient stay of a new patient
// discharged at end (ms), on the server at base.
async function contactAfterDischarge(base, family, end) {
  const post = async (url, body) => {
    const r = await raw(base, 'POST', url, { body });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };
  const pid = (await post('Patient', { resourceType: 'Patient', name: [{ family }] })).id;
  const enc = await post('Encounter', {
    resourceType: 'Encounter', status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' },
    subject: { reference: `Patient/${pid}` },
    period: { start: new Date(end - 3 * DAY).toISOString(), end: new Date(end).toISOString() },
  });
  const r = await raw(base, 'GET', `Task?focus=Encounter/${enc.id}`);
  const contact = (r.json.entry ?? []).map((e) => e.resource).find((t) => t.code.coding[0].code === 'contact');
  assert.ok(contact, r.text.slice(0, 500));
  return contact;
}

// ms plus n days for which business(ms) holds, a day at a time
function addBusinessDays(ms, n, business) {
  let due = ms;
  while (n > 0) {
    due += DAY;
    if (business(due)) n--;
  }
  return due;
}

test('the first contact after a discharge is due in 2 business days, holidays skipped (serve --holidays)', async () => {
  const dir = tempDir();
  const end = Date.now() - 3600 * 1000;
  const day = (ms) => new Date(ms).toISOString().slice(0, 10);
  const weekday = (ms) => ![0, 6].includes(new Date(ms).getUTCDay());
  // the next two weekdays after the discharge are this clinic's holidays
  const off = [];
  for (let t = end + DAY; off.length < 2; t += DAY) if (weekday(t)) off.push(day(t));
  writeFileSync(`${dir}/holidays.txt`, `# the clinic's own days\n${off.join('\n')}\n`);
  const own = await startServer({ db: `${dir}/careweave.db`, args: ['--holidays', `${dir}/holidays.txt`] });
  try {
    const contact = await contactAfterDischarge(own.base, 'Holiday', end);
    const due = addBusinessDays(end, 2, (ms) => weekday(ms) && !off.includes(day(ms)));
    assert.equal(contact.restriction.period.end, new Date(due).toISOString(),
      `2 business days after ${new Date(end).toISOString()}, not on ${off.join(' or ')}`);
  } finally {
    await own.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('business days are the clinic\'s days with serve --tz (an evening discharge in Los Angeles)', async () => {
  const zone = 'America/Los_Angeles';
  const local = (ms) => new Intl.DateTimeFormat('en-US', { timeZone: zone, weekday: 'short', hour: 'numeric', hourCycle: 'h23' }).formatToParts(new Date(ms));
  const part = (ms, type) => local(ms).find((p) => p.type === type).value;
  // the last 20:00 there before now: the next day in UTC
  let end = Math.floor((Date.now() - 3600 * 1000) / 3600000) * 3600000;
  while (part(end, 'hour') !== '20') end -= 3600000;
  const own = await startServer({ args: ['--tz', zone] });
  try {
    const contact = await contactAfterDischarge(own.base, 'Evening', end);
    const due = addBusinessDays(end, 2, (ms) => !['Sat', 'Sun'].includes(part(ms, 'weekday')));
    assert.equal(contact.restriction.period.end, new Date(due).toISOString(),
      `2 business days in ${zone} after ${part(end, 'weekday')} 20:00 there`);
  } finally {
    await own.stop();
  }
});

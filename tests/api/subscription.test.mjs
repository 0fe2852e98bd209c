// tests/api/subscription.test.mjs: FHIR R4 Subscriptions over rest-hook
// (issue 5: "the care team is notified at once ... pushed to subscribers").
//
// A real HTTP endpoint (node's http server on loopback) stands in for the
// subscriber's system. A nurse coordinator signs in as herself and
// subscribes to the Communications addressed to her; the admission a
// hospital feed announces over MLLP must reach her endpoint as the
// Communication careweave wrote, with the header her Subscription names,
// and the disclosure must be in the audit trail. Then: a Subscription
// without payload (an empty POST), one whose owner may not read what
// matched (nothing sent), changes that roll back (nothing queued), every
// Subscription careweave refuses (422, nothing written), a failing
// endpoint (retries, status error with why, active again once it
// answers), a deleted Subscription (nothing more sent), and a server that
// sends to a list of hosts only.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { rmSync } from 'node:fs';
import { Hl7Client } from '@medplum/hl7';
import { Hl7Message } from '@medplum/core';
import { startServer, raw, runCli, addUser, login, sleep, tempDir } from '../support/server.mjs';

const PW = 'a long enough password 1';
const MRN = 'urn:careweave:hl7v2:id:ADT1:MR';

let srv;
let mllpPort;
const ids = {};
const users = {}; // name -> bearer headers

// ---- the subscriber's endpoint ----------------------------------------------

const hits = []; // { method, url, headers, body }
const failing = new Set(); // paths answered 503
let endpoint;
let hook;

function startEndpoint() {
  return new Promise((resolve) => {
    hook = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        const path = req.url.split('/').slice(0, 2).join('/');
        if (failing.has(path)) {
          res.writeHead(503).end('down');
          hits.push({ method: req.method, url: req.url, headers: req.headers, body, failed: true });
          return;
        }
        hits.push({ method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      });
    });
    hook.listen(0, '127.0.0.1', () => {
      endpoint = `http://127.0.0.1:${hook.address().port}`;
      resolve();
    });
  });
}

async function waitFor(what, pred, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const got = pred();
    if (got) return got;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}; hits: ${JSON.stringify(hits.map((h) => `${h.method} ${h.url}`))}`);
    await sleep(50);
  }
}

// ---- helpers --------------------------------------------------------------------

async function svc(method, url, body) {
  const r = await raw(srv.base, method, url, { body });
  assert.ok(r.status < 300, `${method} ${url} as service: ${r.status} ${r.text.slice(0, 400)}`);
  return r.json;
}
async function as(user, method, url, body) {
  return raw(srv.base, method, url, { body, headers: users[user] });
}
async function signIn(name, role, link) {
  await addUser(srv.db, name, PW, ['--role', role, '--link', link]);
  const { token } = await login(new URL(srv.base).origin, name, PW);
  users[name] = { authorization: `Bearer ${token}` };
}
const subscription = (criteria, path, extra = {}) => ({
  resourceType: 'Subscription', status: 'requested',
  reason: 'tell me what is addressed to me', criteria,
  channel: { type: 'rest-hook', endpoint: `${endpoint}${path}`, payload: 'application/fhir+json', ...extra },
});
const message = (pid, recipient, text) => ({
  resourceType: 'Communication', status: 'completed',
  subject: { reference: `Patient/${pid}` },
  recipient: [{ reference: `Practitioner/${recipient}` }],
  payload: [{ contentString: text }],
});

async function sendHl7(text) {
  const client = new Hl7Client({ host: '127.0.0.1', port: mllpPort });
  try {
    const ack = await client.sendAndWait(Hl7Message.parse(text));
    return ack.getSegment('MSA').getField(1).toString();
  } finally {
    await client.close();
  }
}

async function auditRecords() {
  const r = await runCli(['audit', 'dump', '--db', srv.db]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

before(async () => {
  await startEndpoint();
  srv = await startServer({ args: ['--mllp-port', '0', '--subscription-retry-ms', '200'] });
  mllpPort = Number(/careweave mllp listening on [^:]+:(\d+)/.exec(srv.stdout())[1]);
  ids.pcp = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Hart', given: ['Helen'] }] })).id;
  ids.coord = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Nolan', given: ['Nora'] }] })).id;
  ids.outsider = (await svc('POST', 'Practitioner', { resourceType: 'Practitioner', name: [{ family: 'Elsewhere' }] })).id;
  ids.moss = (await svc('POST', 'Patient', {
    resourceType: 'Patient', name: [{ family: 'Moss', given: ['Walter'] }], birthDate: '1951-03-02', gender: 'male',
    identifier: [{ system: MRN, value: 'MOSS75' }],
  })).id;
  ids.team = (await svc('POST', 'CareTeam', {
    resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${ids.moss}` },
    participant: [
      { role: [{ coding: [{ system: 'http://snomed.info/sct', code: '446050000', display: 'Primary care physician' }] }],
        member: { reference: `Practitioner/${ids.pcp}` } },
      { role: [{ coding: [{ system: 'http://snomed.info/sct', code: '768730001', display: 'Care coordinator' }] }],
        member: { reference: `Practitioner/${ids.coord}` } },
    ],
  })).id;
  await signIn(`nora-${process.pid}`, 'coordinator', `Practitioner/${ids.coord}`);
  await signIn(`olive-${process.pid}`, 'coordinator', `Practitioner/${ids.outsider}`);
});
after(async () => {
  await srv?.stop();
  hook?.close();
});

describe('a coordinator subscribed to what is addressed to her', () => {
  let sub;

  test('asks for a Subscription and careweave makes it active', async () => {
    const r = await as(`nora-${process.pid}`, 'POST', 'Subscription', subscription(
      `Communication?recipient=Practitioner/${ids.coord}`, '/nora',
      { header: ['Authorization: Bearer nora-s3cret'] }));
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.status, 'active');
    sub = r.json;
  });

  test('an admission over MLLP reaches her endpoint as the Communication careweave wrote', async () => {
    const a01 = [
      'MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|CW|CW|20261201083000||ADT^A01^ADT_A01|SUB0001|P|2.5',
      'EVN|A01|20261201083000',
      'PID|1||MOSS75^^^ADT1^MR||MOSS^WALTER||19510302|M',
      'PV1|1|I|4N^401^1||||111^ATTEND^ANNA|||MED||||7|||||V9001^^^ADT1^VN|||||||||||||||||||||||||20261201083000',
    ].join('\r');
    assert.equal(await sendHl7(a01), 'AA');
    const hit = await waitFor('the admission notice', () => hits.find((h) => h.url.startsWith('/nora/Communication/')));
    assert.equal(hit.method, 'PUT');
    assert.equal(hit.headers.authorization, 'Bearer nora-s3cret', 'the header her Subscription names');
    assert.match(hit.headers['content-type'], /application\/fhir\+json/);
    const comm = JSON.parse(hit.body);
    assert.equal(comm.resourceType, 'Communication');
    assert.equal(hit.url, `/nora/Communication/${comm.id}`);
    assert.ok(comm.recipient.some((x) => x.reference === `Practitioner/${ids.coord}`));
    assert.equal(comm.subject.reference, `Patient/${ids.moss}`);
    // what was sent is what careweave holds
    const stored = await svc('GET', `Communication/${comm.id}`);
    assert.equal(stored.meta.versionId, comm.meta.versionId);
  });

  test('the disclosure is in the audit trail: who, what, to which host', async () => {
    // queued like a read's record: on disk within AUDIT_FLUSH_MS
    let exp = [];
    for (let i = 0; i < 50 && !exp.length; i++) {
      if (i) await sleep(100);
      exp = (await auditRecords()).filter((e) => e.type?.code === '110106');
    }
    assert.ok(exp.length >= 1, 'an Export record');
    const e = exp.at(-1);
    assert.equal(e.agent[0].who?.identifier?.value ?? e.agent[0].altId, `nora-${process.pid}`, JSON.stringify(e.agent));
    assert.ok(e.entity.some((x) => /^Communication\//.test(x.what?.reference ?? '')));
    assert.ok(e.entity.some((x) => x.what?.reference === `Patient/${ids.moss}`), 'whose record it was');
    assert.equal(e.outcome, '0');
    assert.ok(!JSON.stringify(e).includes('nora-s3cret'), 'never the header');
    assert.ok(!JSON.stringify(e).includes('/nora'), 'never the path');
  });

  test('a message to someone else is not sent to her', async () => {
    const before = hits.length;
    await svc('POST', 'Communication', message(ids.moss, ids.pcp, 'for the PCP only'));
    const mine = await svc('POST', 'Communication', message(ids.moss, ids.coord, 'for Nora'));
    await waitFor('her message', () => hits.find((h) => h.url === `/nora/Communication/${mine.id}`));
    assert.ok(!hits.slice(before).some((h) => h.body.includes('for the PCP only')));
  });

  test('a change that rolls back queues nothing', async () => {
    const before = hits.length;
    const bundle = {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { resource: message(ids.moss, ids.coord, 'rolled back'), request: { method: 'POST', url: 'Communication' } },
        { resource: { resourceType: 'Patient', birthDate: 'not a date' }, request: { method: 'POST', url: 'Patient' } },
      ],
    };
    const r = await raw(srv.base, 'POST', '', { body: bundle });
    assert.ok(r.status >= 400, r.text);
    const after = await svc('POST', 'Communication', message(ids.moss, ids.coord, 'after the rollback'));
    await waitFor('the next message', () => hits.find((h) => h.url === `/nora/Communication/${after.id}`));
    assert.ok(!hits.slice(before).some((h) => h.body.includes('rolled back')));
  });

  test('is hers alone: another user neither reads nor changes it (it holds her endpoint secret)', async () => {
    const olive = `olive-${process.pid}`;
    assert.equal((await as(olive, 'GET', `Subscription/${sub.id}`)).status, 404);
    const found = await as(olive, 'GET', 'Subscription');
    assert.equal(found.status, 200);
    assert.ok(!(found.json.entry ?? []).some((e) => e.resource?.id === sub.id), 'not in her search either');
    assert.ok(!found.text.includes('nora-s3cret'));
    const stolen = { ...sub, channel: { ...sub.channel, endpoint: `${endpoint}/olive-steals` } };
    delete stolen.meta;
    assert.equal((await as(olive, 'PUT', `Subscription/${sub.id}`, stolen)).status, 404);
    assert.equal((await as(olive, 'DELETE', `Subscription/${sub.id}`)).status, 404);
    const still = await as(`nora-${process.pid}`, 'GET', `Subscription/${sub.id}`);
    assert.equal(still.status, 200);
    assert.equal(still.json.meta.versionId, sub.meta.versionId);
  });

  test('deleted, it sends nothing more', async () => {
    const r = await as(`nora-${process.pid}`, 'DELETE', `Subscription/${sub.id}`);
    assert.ok(r.status < 300, r.text);
    const before = hits.length;
    const last = await svc('POST', 'Communication', message(ids.moss, ids.coord, 'after the delete'));
    await sleep(1000);
    assert.ok(!hits.slice(before).some((h) => h.url.includes(last.id)));
  });
});

test('without a payload the notice is an empty POST to the endpoint as given', async () => {
  // through a real FHIR client, as a subscriber's system would
  const r = await srv.client.create({ resourceType: 'Subscription',
    body: subscription(`Flag?patient=Patient/${ids.moss}`, '/empty', { payload: undefined }) });
  assert.equal(r.status, 'active');
  assert.equal(r.channel.payload, undefined);
  await svc('POST', 'Flag', { resourceType: 'Flag', status: 'active', code: { text: 'falls risk' }, subject: { reference: `Patient/${ids.moss}` } });
  const hit = await waitFor('the empty notice', () => hits.find((h) => h.url === '/empty'));
  assert.equal(hit.method, 'POST');
  assert.equal(hit.body, '');
});

test('an owner who may not read what matched is sent nothing', async () => {
  // Olive coordinates other patients: Mr Moss is not in her reach
  const r = await as(`olive-${process.pid}`, 'POST', 'Subscription', subscription(
    `Communication?subject=Patient/${ids.moss}`, '/olive'));
  assert.equal(r.status, 201, r.text);
  const c = await svc('POST', 'Communication', message(ids.moss, ids.pcp, 'not for Olive'));
  // a later notice of a Subscription that may read proves the queue moved on
  await svc('POST', 'Subscription', subscription(`Communication?subject=Patient/${ids.moss}`, '/svc'));
  const c2 = await svc('POST', 'Communication', message(ids.moss, ids.pcp, 'for the service'));
  await waitFor('the service notice', () => hits.find((h) => h.url === `/svc/Communication/${c2.id}`));
  await sleep(300);
  assert.ok(!hits.some((h) => h.url.startsWith('/olive')), 'nothing reached Olive');
  assert.ok(!hits.some((h) => h.url === `/svc/Communication/${c.id}`), 'the service subscribed after it');
});

describe('what careweave refuses (422, nothing written)', () => {
  const bad = [
    ['a type careweave does not serve', (s) => { s.criteria = 'Basic?code=x'; }],
    ['an unknown search parameter', (s) => { s.criteria = 'Communication?colour=blue'; }],
    ['a result parameter', (s) => { s.criteria = 'Communication?_count=5'; }],
    ['a channel other than rest-hook', (s) => { s.channel.type = 'websocket'; }],
    ['plain http off this machine', (s) => { s.channel.endpoint = 'http://example.org/hook'; }],
    ['a scheme that is not http(s)', (s) => { s.channel.endpoint = 'ftp://example.org/hook'; }],
    ['a payload careweave does not send', (s) => { s.channel.payload = 'application/fhir+xml'; }],
    ['a header that breaks the line', (s) => { s.channel.header = ['X-A: 1\r\nX-B: 2']; }],
    ['a header without a name', (s) => { s.channel.header = [': value']; }],
  ];
  for (const [what, change] of bad) {
    test(what, async () => {
      const before = (await svc('GET', 'Subscription?_summary=count')).total;
      const s = subscription('Communication?category=notification', '/never');
      change(s);
      const r = await raw(srv.base, 'POST', 'Subscription', { body: s });
      assert.equal(r.status, 422, r.text);
      assert.equal(r.json.resourceType, 'OperationOutcome');
      assert.ok(r.json.issue.some((i) => /^Subscription\./.test(i.expression?.[0] ?? '')), JSON.stringify(r.json.issue));
      assert.equal((await svc('GET', 'Subscription?_summary=count')).total, before);
    });
  }
});

test('a failing endpoint: retried, status error with why, active again once it answers', async () => {
  failing.add('/flaky');
  const s = await svc('POST', 'Subscription', subscription(`Observation?subject=Patient/${ids.moss}`, '/flaky'));
  const obs = await svc('POST', 'Observation', {
    resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${ids.moss}` },
    code: { coding: [{ system: 'http://loinc.org', code: '4548-4', display: 'Hemoglobin A1c' }] },
    valueQuantity: { value: 7.9, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
  });
  await waitFor('three failed tries', () => hits.filter((h) => h.url.startsWith('/flaky') && h.failed).length >= 3 || null);
  let cur;
  for (let i = 0; i < 100; i++) {
    cur = await svc('GET', `Subscription/${s.id}`);
    if (cur.status === 'error') break;
    await sleep(100);
  }
  assert.equal(cur.status, 'error');
  assert.match(cur.error, /HTTP 503/);
  failing.delete('/flaky');
  const ok = await waitFor('the delivery once it answers', () => hits.find((h) => h.url === `/flaky/Observation/${obs.id}` && !h.failed));
  assert.equal(JSON.parse(ok.body).id, obs.id);
  for (let i = 0; i < 100; i++) {
    cur = await svc('GET', `Subscription/${s.id}`);
    if (cur.status === 'active') break;
    await sleep(100);
  }
  assert.equal(cur.status, 'active');
  assert.equal(cur.error, undefined);
  // the tries went out in order, one at a time
  const tries = hits.filter((h) => h.url.startsWith('/flaky'));
  assert.ok(tries.every((h) => h.url === `/flaky/Observation/${obs.id}`));
});

test('a notice waiting when the server is killed is delivered after the restart', async () => {
  // a server of its own: killed with SIGKILL, started again on its file
  const dir = tempDir();
  const db = `${dir}/careweave.db`;
  const args = ['--subscription-retry-ms', '200'];
  let a = await startServer({ db, args });
  let b;
  try {
    failing.add('/crash');
    const pat = await raw(a.base, 'POST', 'Patient', { body: { resourceType: 'Patient', name: [{ family: 'Restart' }] } });
    assert.equal(pat.status, 201, pat.text);
    const sub = await raw(a.base, 'POST', 'Subscription', { body: subscription(`Flag?patient=Patient/${pat.json.id}`, '/crash') });
    assert.equal(sub.status, 201, sub.text);
    const flag = await raw(a.base, 'POST', 'Flag', { body: { resourceType: 'Flag', status: 'active', code: { text: 'needs transport' }, subject: { reference: `Patient/${pat.json.id}` } } });
    assert.equal(flag.status, 201, flag.text);
    await waitFor('a failed try', () => hits.find((h) => h.url === `/crash/Flag/${flag.json.id}` && h.failed));
    await a.kill();
    failing.delete('/crash');
    b = await startServer({ db, args });
    const ok = await waitFor('the delivery after the restart',
      () => hits.find((h) => h.url === `/crash/Flag/${flag.json.id}` && !h.failed));
    assert.equal(JSON.parse(ok.body).code.text, 'needs transport');
  } finally {
    await b?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('a server that sends to a list of hosts only (--subscription-hosts)', () => {
  test('a Subscription to a host off the list is refused where it is written', async () => {
    const dir = tempDir();
    const a = await startServer({ db: `${dir}/careweave.db`, args: ['--subscription-hosts', '127.0.0.1,*.example.org'] });
    try {
      const pat = await raw(a.base, 'POST', 'Patient', { body: { resourceType: 'Patient', name: [{ family: 'Listed' }] } });
      const post = (ep) => raw(a.base, 'POST', 'Subscription', { body: { ...subscription(`Flag?patient=Patient/${pat.json.id}`, ''), channel: { type: 'rest-hook', endpoint: ep, payload: 'application/fhir+json' } } });
      for (const ep of ['https://intranet.local/hook', 'https://example.org/hook', 'https://evil.example.org.attacker.net/hook', 'http://localhost:9/hook']) {
        const r = await post(ep);
        assert.equal(r.status, 422, `${ep}: ${r.text}`);
        const issue = r.json.issue.find((i) => i.expression?.[0] === 'Subscription.channel.endpoint');
        assert.ok(issue, JSON.stringify(r.json.issue));
      }
      const bad = await post('https://intranet.local/hook');
      assert.match(bad.json.issue[0].diagnostics, /intranet\.local is not on it/);
      assert.equal((await raw(a.base, 'GET', 'Subscription?_summary=count')).json.total, 0, 'nothing written');

      assert.equal((await post('https://hooks.EXAMPLE.org/x')).status, 201, 'a name under *.example.org, any case');
      const ok = await post(`${endpoint}/listed`);
      assert.equal(ok.status, 201, ok.text);
      const flag = await raw(a.base, 'POST', 'Flag', { body: { resourceType: 'Flag', status: 'active', code: { text: 'needs a ride' }, subject: { reference: `Patient/${pat.json.id}` } } });
      await waitFor('the delivery to a listed host', () => hits.find((h) => h.url === `/listed/Flag/${flag.json.id}`));
    } finally {
      await a.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('one written before the list sends nothing, and its status says why', async () => {
    const dir = tempDir();
    const db = `${dir}/careweave.db`;
    let a = await startServer({ db });
    let b;
    try {
      const pat = await raw(a.base, 'POST', 'Patient', { body: { resourceType: 'Patient', name: [{ family: 'Before' }] } });
      const sub = await raw(a.base, 'POST', 'Subscription', { body: subscription(`Flag?patient=Patient/${pat.json.id}`, '/unlisted') });
      assert.equal(sub.status, 201, sub.text);
      const owner = a.user;
      await a.stop({ keep: true });
      a = null;
      b = await startServer({ db, args: ['--subscription-hosts', 'hooks.example.org'] });
      const flag = await raw(b.base, 'POST', 'Flag', { body: { resourceType: 'Flag', status: 'active', code: { text: 'needs a ride' }, subject: { reference: `Patient/${pat.json.id}` } } });
      assert.equal(flag.status, 201, flag.text);
      // a Subscription is its owner's alone: read it as the one who wrote it
      const { token } = await login(new URL(b.base).origin, owner.username, owner.password);
      let now;
      const end = Date.now() + 15000;
      while (Date.now() < end) {
        now = (await raw(b.base, 'GET', `Subscription/${sub.json.id}`, { headers: { authorization: `Bearer ${token}` } })).json;
        if (now.status === 'error') break;
        await sleep(50);
      }
      assert.equal(now.status, 'error', JSON.stringify(now));
      assert.match(now.error, /127\.0\.0\.1 is not on it/);
      assert.ok(!hits.some((h) => h.url.startsWith('/unlisted')), 'nothing was sent');
      const { meta, ...rest } = now;
      const off = await raw(b.base, 'PUT', `Subscription/${sub.json.id}`, { body: { ...rest, status: 'off' }, headers: { authorization: `Bearer ${token}` } });
      assert.equal(off.status, 200, `its owner may still turn it off: ${off.text}`);
    } finally {
      await a?.stop();
      await b?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// paging.test.mjs: 1,000 Observations for one patient, written in one
// transaction, paged through with _count=37 by next links to the end and by
// previous links back; sorted paging with ties; tampered cursors.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, raw, httpOf, fhirError, assertOutcome, runTag, matchIds, linkOf } from '../support/server.mjs';

let srv;
let client;
const tag = runTag('paging');
const N = 1000;
const PAGE = 37;
let patientId;
let expectedIds;

before(async () => {
  srv = await startServer();
  client = srv.client;
  const p = await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: 'Pager' }] } });
  patientId = p.id;
  const entry = [];
  for (let i = 0; i < N; i++) {
    const day = String(1 + (i % 25)).padStart(2, '0'); // 40 observations share each date
    entry.push({
      request: { method: 'POST', url: 'Observation' },
      resource: {
        resourceType: 'Observation',
        meta: { tag: [{ system: tag.system, code: tag.code }] },
        status: 'final',
        identifier: [{ system: 'urn:careweave:test:seq', value: String(i) }],
        code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
        subject: { reference: `Patient/${patientId}` },
        effectiveDateTime: `2020-01-${day}`,
        valueQuantity: { value: i, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
      },
    });
  }
  const resp = await client.transaction({ body: { resourceType: 'Bundle', type: 'transaction', entry } });
  assert.equal(resp.type, 'transaction-response');
  assert.equal(resp.entry.length, N);
  expectedIds = new Set();
  for (const e of resp.entry) {
    assert.match(e.response.status, /^201/);
    const m = /Observation\/([^/]+)/.exec(e.response.location);
    assert.ok(m, `location: ${e.response.location}`);
    expectedIds.add(m[1]);
  }
  assert.equal(expectedIds.size, N);
});
after(async () => {
  await srv?.stop();
});

async function pageAll(searchParams) {
  const pages = [];
  let b = await client.search({ resourceType: 'Observation', searchParams });
  for (;;) {
    pages.push(b);
    assert.ok(pages.length <= Math.ceil(N / PAGE) + 1, 'too many pages: the next links do not end');
    if (!linkOf(b, 'next')) break;
    b = await client.nextPage({ bundle: b });
  }
  return pages;
}

describe('paging 1,000 results by 37', () => {
  let pages;
  test('next links visit every match exactly once', async () => {
    pages = await pageAll({ subject: `Patient/${patientId}`, _count: PAGE });
    const ids = pages.flatMap(matchIds);
    const seen = new Set();
    const dups = ids.filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
    assert.deepEqual(dups, [], 'no duplicates');
    assert.equal(ids.length, N);
    for (const id of ids) assert.ok(expectedIds.has(id), `unexpected id ${id}`);
    assert.equal(pages.length, Math.ceil(N / PAGE));
    for (const p of pages.slice(0, -1)) assert.equal(matchIds(p).length, PAGE);
    assert.equal(matchIds(pages.at(-1)).length, N % PAGE || PAGE);
  });

  test('previous links walk back to the start', async () => {
    assert.ok(pages, 'forward paging ran');
    assert.equal(linkOf(pages[0], 'previous'), null, 'the first page has no previous link');
    let b = pages.at(-1);
    const back = [matchIds(b)];
    for (let i = 0; i < pages.length + 1 && linkOf(b, 'previous'); i++) {
      b = await client.prevPage({ bundle: b });
      back.push(matchIds(b));
    }
    back.reverse();
    assert.equal(back.length, pages.length, 'as many pages backwards as forwards');
    assert.deepEqual(back, pages.map(matchIds), 'the same pages in the same order');
  });

  test('sorted by date (with ties) pages without loss or repeat, in order', async () => {
    const sp = await pageAll({ subject: `Patient/${patientId}`, _count: PAGE, _sort: 'date' });
    const entries = sp.flatMap((p) => (p.entry ?? []).filter((e) => (e.search?.mode ?? 'match') === 'match').map((e) => e.resource));
    assert.equal(entries.length, N);
    assert.equal(new Set(entries.map((r) => r.id)).size, N);
    for (let i = 1; i < entries.length; i++) {
      assert.ok(entries[i - 1].effectiveDateTime <= entries[i].effectiveDateTime,
        `order at ${i}: ${entries[i - 1].effectiveDateTime} > ${entries[i].effectiveDateTime}`);
    }
  });

  test('descending sort on a quantity pages in order', async () => {
    const sp = await pageAll({ subject: `Patient/${patientId}`, _count: 250, _sort: '-value-quantity' });
    const vals = sp.flatMap((p) => (p.entry ?? []).map((e) => e.resource.valueQuantity.value));
    assert.deepEqual(vals, Array.from({ length: N }, (_, i) => N - 1 - i));
  });

  test('_total=accurate says 1000 and _count=1000 returns all in one page', async () => {
    const b = await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${patientId}`, _count: 1000, _total: 'accurate' } });
    assert.equal(b.total, N);
    assert.equal(matchIds(b).length, N);
    assert.equal(linkOf(b, 'next'), null);
  });

  test('default page size is 50', async () => {
    const b = await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${patientId}` } });
    assert.equal(matchIds(b).length, 50);
    assert.ok(linkOf(b, 'next'));
  });

  test('writes between pages do not make the next page repeat or skip', async () => {
    const first = await client.search({ resourceType: 'Observation', searchParams: { _tag: tag.param, _count: PAGE } });
    // a new matching resource lands after the first page was served
    const extra = await client.create({
      resourceType: 'Observation',
      body: { resourceType: 'Observation', status: 'final', meta: { tag: [{ system: tag.system, code: tag.code }] }, code: { text: 'late' }, subject: { reference: `Patient/${patientId}` } },
    });
    let b = first;
    const ids = [...matchIds(b)];
    while (linkOf(b, 'next')) {
      b = await client.nextPage({ bundle: b });
      ids.push(...matchIds(b));
    }
    assert.equal(new Set(ids).size, ids.length, 'no repeats');
    for (const id of expectedIds) assert.ok(ids.includes(id), `${id} not skipped`);
    assert.ok(ids.length === N || (ids.length === N + 1 && ids.includes(extra.id)));
    await client.delete({ resourceType: 'Observation', id: extra.id });
  });
});

describe('cursors', () => {
  let nextUrl;
  before(async () => {
    const b = await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${patientId}`, _count: PAGE } });
    nextUrl = linkOf(b, 'next');
    assert.ok(nextUrl);
  });

  function withCursor(url, fn) {
    const u = new URL(url);
    const c = u.searchParams.get('_cursor');
    assert.ok(c, `the next link carries _cursor: ${url}`);
    u.searchParams.set('_cursor', fn(c));
    return u.toString();
  }

  test('the untouched next link works', async () => {
    const r = await raw(srv.base, 'GET', nextUrl);
    assert.equal(r.status, 200);
    assert.equal(matchIds(r.json).length, PAGE);
  });

  test('a cursor with one character changed -> 400', async () => {
    for (const pos of [0.25, 0.5, 0.9]) {
      const url = withCursor(nextUrl, (c) => {
        const i = Math.min(c.length - 1, Math.floor(c.length * pos));
        const ch = c[i] === 'A' ? 'B' : 'A';
        return c.slice(0, i) + ch + c.slice(i + 1);
      });
      const e = await fhirError(client.request(url), `tampered cursor at ${pos}`);
      assert.equal(e.status, 400, `tampered cursor at ${pos}: ${url}`);
      assertOutcome(e.data);
    }
  });

  test('a truncated, extended or made-up cursor -> 400', async () => {
    for (const f of [(c) => c.slice(0, -2), (c) => c + 'AA', () => 'abc', () => '', () => "' OR 1=1 --", () => 'A'.repeat(5000)]) {
      const url = withCursor(nextUrl, f);
      const e = await fhirError(client.request(url), `cursor ${url}`);
      assert.equal(e.status, 400, url);
    }
  });

  test('a cursor of one search used on another search -> 400 or the right results', async () => {
    const c = new URL(nextUrl).searchParams.get('_cursor');
    const r = await raw(srv.base, 'GET', `Patient?_cursor=${encodeURIComponent(c)}`);
    assert.ok(r.status === 400 || (r.status === 200 && (r.json.entry ?? []).every((e) => e.resource.resourceType === 'Patient')),
      `status ${r.status}: ${r.text.slice(0, 300)}`);
  });
});

describe('keyset paging over ties, missing values and multi-valued sort keys', () => {
  const M = 120;
  let p2;
  let ids2;
  before(async () => {
    p2 = (await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: 'Pager2' }] } })).id;
    const entry = Array.from({ length: M }, (_, i) => ({
      request: { method: 'POST', url: 'Observation' },
      resource: {
        resourceType: 'Observation', status: 'final',
        // several codes each: a resource has more than one value for _sort=code
        code: { coding: [{ system: 'http://loinc.org', code: `c-${i % 7}` }, { system: 'http://loinc.org', code: `d-${i % 3}` }, { system: 'urn:x', code: `e-${i}` }] },
        subject: { reference: `Patient/${p2}` },
        // half have no value: sorting must still place each resource once
        ...(i % 2 ? { valueQuantity: { value: i % 10, system: 'http://unitsofmeasure.org', code: '1' } } : {}),
        ...(i % 3 ? { effectiveDateTime: `2021-0${1 + (i % 9)}-01` } : {}),
      },
    }));
    const resp = await client.transaction({ body: { resourceType: 'Bundle', type: 'transaction', entry } });
    ids2 = new Set(resp.entry.map((e) => /Observation\/([^/]+)/.exec(e.response.location)[1]));
    assert.equal(ids2.size, M);
  });

  for (const sort of ['value-quantity', '-value-quantity', 'date', '-date', 'code', '-code', '_lastUpdated', '-_lastUpdated', 'value-quantity,-date', '_id', '-_id']) {
    test(`_sort=${sort} with _count=7: every resource exactly once, forwards and backwards`, async () => {
      const pages = [];
      let b = await client.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${p2}`, _count: 7, _sort: sort } });
      for (;;) {
        pages.push(matchIds(b));
        if (!linkOf(b, 'next') || pages.length > M) break;
        b = await client.nextPage({ bundle: b });
      }
      const all = pages.flat();
      const dups = all.filter((id, i) => all.indexOf(id) !== i);
      assert.deepEqual(dups, [], `_sort=${sort}: repeated ids`);
      assert.equal(all.length, M, `_sort=${sort}: ${all.length} of ${M}`);
      for (const id of all) assert.ok(ids2.has(id));
      // and back
      const back = [pages.at(-1)];
      for (let i = 0; i < pages.length && linkOf(b, 'previous'); i++) {
        b = await client.prevPage({ bundle: b });
        back.unshift(matchIds(b));
      }
      assert.deepEqual(back, pages, `_sort=${sort}: previous links give the same pages`);
    });
  }
});

describe('history paging', () => {
  test('Observation/_history by 37: every version once, newest first', async () => {
    let b = await client.request('Observation/_history?_count=37');
    const keys = [];
    const times = [];
    for (let i = 0; i < 200; i++) {
      for (const e of b.entry ?? []) {
        const k = e.resource ? `${e.resource.id}/${e.resource.meta.versionId}` : `${e.request?.url}|${e.response?.etag ?? ''}`;
        keys.push(k);
        times.push(e.resource?.meta?.lastUpdated ?? e.response?.lastModified);
      }
      if (!linkOf(b, 'next')) break;
      b = await client.nextPage({ bundle: b });
    }
    const dups = keys.filter((k, i) => keys.indexOf(k) !== i);
    assert.deepEqual(dups, [], 'no version twice');
    for (const id of expectedIds) assert.ok(keys.includes(`${id}/1`), `${id}/1 in the history`);
    for (let i = 1; i < times.length; i++) {
      if (times[i - 1] && times[i]) assert.ok(times[i - 1] >= times[i], `newest first at ${i}: ${times[i - 1]} < ${times[i]}`);
    }
  });
});

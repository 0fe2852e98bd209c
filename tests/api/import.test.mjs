// import.test.mjs: `careweave import` of the Synthea sample (real export
// data: conditional references, US Core profiles, long narrative) into a
// fresh database; served counts per type equal the NDJSON line counts,
// conditional references are rewritten to resources that exist, and the
// file order does not matter.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startServer, runCli, tempDir, countOf, sharedData } from '../support/server.mjs';

const dataDir = path.join(sharedData, 'synthea-10');
const haveData = existsSync(dataDir);
const skip = haveData ? false : `sample data not found at ${dataDir}`;

const files = haveData ? readdirSync(dataDir).filter((f) => f.endsWith('.ndjson')).sort().map((f) => path.join(dataDir, f)) : [];
const lines = {};   // type -> resources in the file
const byType = {};  // type -> parsed resources
for (const f of files) {
  const type = path.basename(f, '.ndjson');
  const rs = readFileSync(f, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  lines[type] = rs.length;
  byType[type] = rs;
}

const dirs = [];
const servers = [];
after(async () => {
  for (const s of servers) if (s.alive()) await s.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function importInto(fileList) {
  const dir = tempDir('careweave-import-');
  dirs.push(dir);
  const db = path.join(dir, 'careweave.db');
  const t0 = Date.now();
  const r = await runCli(['import', '--db', db, ...fileList], { timeoutMs: 170000 });
  assert.equal(r.code, 0, `careweave import failed (code ${r.code}, signal ${r.signal})\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-4000)}`);
  assert.doesNotMatch(r.stderr, /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/, r.stderr.slice(-4000));
  return { db, ms: Date.now() - t0, out: r };
}

async function countsOf(client) {
  const out = {};
  for (const t of Object.keys(lines)) out[t] = await countOf(client, t);
  return out;
}

/** The first resource of type whose JSON holds a conditional reference to target, and that reference. */
function withConditionalRef(type, target) {
  const re = new RegExp(`"reference":"(${target}\\?identifier=[^"]+)"`);
  for (const r of byType[type] ?? []) {
    const m = re.exec(JSON.stringify(r));
    if (m) return { res: r, ref: m[1] };
  }
  return null;
}

/** Every reference string in a JSON value. */
function refsIn(v, out = []) {
  if (Array.isArray(v)) for (const x of v) refsIn(x, out);
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === 'reference' && typeof x === 'string') out.push(x);
      else refsIn(x, out);
    }
  }
  return out;
}

describe('careweave import (synthea-10)', { skip }, () => {
  let first;
  let srv;
  let forward;

  before(async () => {
    first = await importInto(files);
    srv = await startServer({ db: first.db });
    servers.push(srv);
  });

  test('counts per type match the NDJSON line counts', async () => {
    forward = await countsOf(srv.client);
    assert.deepEqual(forward, lines);
  });

  test('ids are kept, and references between imported resources work', async () => {
    const p = byType.Patient[0];
    const r = await srv.client.read({ resourceType: 'Patient', id: p.id });
    assert.equal(r.id, p.id);
    assert.equal(r.meta.versionId, '1');
    const mine = byType.Encounter.filter((e) => e.subject?.reference === `Patient/${p.id}`).length;
    assert.equal(await countOf(srv.client, 'Encounter', { patient: p.id }), mine);
    const conds = byType.Condition.filter((c) => c.subject?.reference === `Patient/${p.id}`).length;
    assert.equal(await countOf(srv.client, 'Condition', { subject: `Patient/${p.id}` }), conds);
  });

  test('a conditional reference (Practitioner?identifier=us-npi|...) was rewritten to a Practitioner that exists', async () => {
    const found = withConditionalRef('Encounter', 'Practitioner');
    assert.ok(found, 'the sample has a conditional Practitioner reference');
    const npi = found.ref.split('|')[1];
    const enc = await srv.client.read({ resourceType: 'Encounter', id: found.res.id });
    const refs = refsIn(enc);
    assert.ok(!refs.some((x) => x.includes('?')), `no conditional reference left: ${refs.filter((x) => x.includes('?'))}`);
    const pref = enc.participant[0].individual.reference;
    const m = /^Practitioner\/([A-Za-z0-9\-.]+)$/.exec(pref);
    assert.ok(m, `rewritten to Practitioner/<id>: ${pref}`);
    const prac = await srv.client.read({ resourceType: 'Practitioner', id: m[1] });
    assert.ok(prac.identifier.some((i) => i.system === 'http://hl7.org/fhir/sid/us-npi' && i.value === npi), `Practitioner/${m[1]} has NPI ${npi}`);
    // and the index knows it: searching by that practitioner finds the encounter
    const b = await srv.client.search({ resourceType: 'Encounter', searchParams: { practitioner: `Practitioner/${m[1]}`, _id: found.res.id } });
    assert.equal((b.entry ?? []).length, 1);
  });

  test('Location and Organization conditional references are rewritten too', async () => {
    for (const [type, target] of [['Procedure', 'Location'], ['Encounter', 'Organization'], ['MedicationRequest', 'Practitioner']]) {
      const found = withConditionalRef(type, target);
      if (!found) continue;
      const r = await srv.client.read({ resourceType: type, id: found.res.id });
      const refs = refsIn(r).filter((x) => x.startsWith(`${target}`));
      assert.ok(refs.length > 0, `${type}/${found.res.id} references a ${target}`);
      for (const x of refs) {
        const m = new RegExp(`^${target}/([A-Za-z0-9\\-.]+)$`).exec(x);
        assert.ok(m, `${type}: ${x} was rewritten`);
        await srv.client.read({ resourceType: target, id: m[1] });
      }
    }
  });

  test('importing the same file again changes no counts', async () => {
    await srv.stop();
    const r = await runCli(['import', '--db', first.db, path.join(dataDir, 'Patient.ndjson'), path.join(dataDir, 'Practitioner.ndjson')], { timeoutMs: 120000 });
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    srv = await startServer({ db: first.db });
    servers.push(srv);
    assert.deepEqual(await countsOf(srv.client), lines);
  });

  test('importing the files in reverse order gives the same counts', async () => {
    const second = await importInto([...files].reverse());
    const s2 = await startServer({ db: second.db });
    servers.push(s2);
    assert.deepEqual(await countsOf(s2.client), lines);
    const found = withConditionalRef('Encounter', 'Practitioner');
    const enc = await s2.client.read({ resourceType: 'Encounter', id: found.res.id });
    assert.match(enc.participant[0].individual.reference, /^Practitioner\/[A-Za-z0-9\-.]+$/, 'rewritten whatever the order');
    await s2.stop();
  });

  test('careweave check says ok on the imported database', async () => {
    await srv.stop();
    const r = await runCli(['check', '--db', first.db]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, /\bok\b/i);
  });
});

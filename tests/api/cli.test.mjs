// cli.test.mjs: the careweave command as a user runs it ($CAREWEAVE_BIN,
// child processes): help and usage errors with the exit codes of the
// README (0 ok, 1 bad data, 2 usage, 3 I/O or database), `demo` against
// tests/data/demo/expected.json (twice: same counts), `export` of one
// patient's record, `import` errors that name the file and line, `check`.
// Every run must also be free of sanitizer reports.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { startServer, runCli, tempDir, countOf, repoRoot } from '../support/server.mjs';

const expected = JSON.parse(readFileSync(path.join(repoRoot, 'tests/data/demo/expected.json'), 'utf8'));
const COMMANDS = ['serve', 'import', 'export', 'demo', 'user', 'check', 'backup', 'key', 'kb'];
const SANITIZER_RE = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;

let dir;
before(() => { dir = tempDir('careweave-cli-'); });
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

/** Runs careweave args; checks the exit code and that no sanitizer spoke. */
async function cli(args, code) {
  const r = await runCli(args, { timeoutMs: 60000 });
  const ctx = `careweave ${args.join(' ')}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-3000)}`;
  assert.doesNotMatch(r.stderr, SANITIZER_RE, ctx);
  if (code !== undefined) assert.equal(r.code, code, ctx);
  return r;
}

/** The per-type lines of an import report: "  Patient   2". */
function reportedCounts(stdout) {
  const out = {};
  for (const m of stdout.matchAll(/^ {2}([A-Z][A-Za-z]+) +(\d+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

const entriesTotal = Object.values(expected.files).reduce((n, f) => n + f.entries, 0);

describe('help and usage', () => {
  test('--help exits 0 and lists every command', async () => {
    const r = await cli(['--help'], 0);
    for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^ +${c} `, 'm'), `${c} listed`);
  });

  test('each command answers --help with exit 0', async () => {
    for (const c of COMMANDS) {
      const r = await cli([c, '--help'], 0);
      assert.match(r.stdout, new RegExp(`usage: careweave ${c}`));
    }
    const s = await cli(['serve', '--help'], 0);
    assert.match(s.stdout, /--idle-timeout SECONDS/);
    assert.match(s.stdout, /--request-timeout SECONDS/);
  });

  test('an unknown command exits 2 with a message on stderr', async () => {
    const r = await cli(['frobnicate'], 2);
    assert.match(r.stderr, /'frobnicate' is not a careweave command/);
    assert.equal(r.stdout, '');
    const none = await cli([], 2);
    assert.match(none.stderr, /usage: careweave/);
  });

  test('bad serve options exit 2 before anything is opened', async () => {
    const db = path.join(dir, 'never.db');
    for (const [args, re] of [
      [['--port', 'notanumber'], /--port/],
      [['--port', '70000'], /--port/],
      [['--idle-timeout', '0'], /--idle-timeout/],
      [['--request-timeout', 'soon'], /--request-timeout/],
      [['--max-body', '2T'], /--max-body/],
      [['--bind', 'example.org'], /--bind/],
      [['stray'], /unexpected argument/],
    ]) {
      const r = await cli(['serve', '--db', db, ...args], 2);
      assert.match(r.stderr, re, `serve ${args.join(' ')}`);
    }
    assert.equal(existsSync(db), false, 'no database was created');
  });
});

describe('demo, export, check', () => {
  let db;
  before(() => { db = path.join(dir, 'demo', 'careweave.db'); });

  test('demo loads data/demo: the counts per type are those of expected.json', async () => {
    const r = await cli(['demo', '--db', db], 0);
    assert.match(r.stdout, new RegExp(`imported ${entriesTotal} resources from ${Object.keys(expected.files).length} files`));
    assert.deepEqual(reportedCounts(r.stdout), expected.total);
  });

  test('demo again: it PUTs the same ids, the served counts stay those of expected.json', async () => {
    const r = await cli(['demo', '--db', db], 0);
    assert.deepEqual(reportedCounts(r.stdout), expected.total);
    const srv = await startServer({ db });
    try {
      const served = {};
      for (const t of Object.keys(expected.total)) served[t] = await countOf(srv.client, t);
      assert.deepEqual(served, expected.total);
      // the medication rules raised what a pharmacist would expect, once
      // however often the demo is loaded, and nothing else
      const issues = (await srv.client.search({ resourceType: 'DetectedIssue', searchParams: { _count: 50 } }))
        .entry?.map((e) => e.resource) ?? [];
      assert.deepEqual(issues.map((i) => ({
        patient: i.patient.reference, code: i.code.coding[0].code, severity: i.severity,
        implicated: i.implicated.map((x) => x.reference).sort(),
      })), expected.rules.DetectedIssue);
      // a port that is taken: 3, I/O
      const port = new URL(srv.base).port;
      const busy = await cli(['serve', '--db', path.join(dir, 'busy.db'), '--port', port], 3);
      assert.match(busy.stderr, /cannot listen/);
    } finally {
      await srv.stop();
    }
  });

  test('export --patient moss-patient writes its record: the Patient and its compartment', async () => {
    const out = path.join(dir, 'moss.json');
    await cli(['export', '--db', db, '--patient', 'moss-patient', '--out', out], 0);
    const b = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(b.resourceType, 'Bundle');
    assert.equal(b.type, 'searchset');
    const res = b.entry.map((e) => e.resource);
    assert.equal(b.total, res.length);
    const byType = {};
    for (const x of res) byType[x.resourceType] = (byType[x.resourceType] ?? 0) + 1;
    // $everything is the patient compartment here: the Patient and what
    // points at it, not the practitioners and organizations it points at
    // (10-moss.json has 78 entries; 75 are in the compartment).
    assert.equal(res.length, expected.patient_compartment['Patient/moss-patient']);
    assert.equal(res.filter((x) => x.resourceType === 'Patient').map((x) => x.id).join(), 'moss-patient');
    const mossTypes = expected.files['10-moss.json'].types;
    assert.equal(byType.Observation, mossTypes.Observation);
    assert.equal(byType.Condition, mossTypes.Condition);
    for (const x of res) {
      if (x.resourceType !== 'Patient') {
        assert.match(JSON.stringify(x), /"Patient\/moss-patient"/, `${x.resourceType}/${x.id} is moss-patient's`);
      }
    }
    assert.equal(new Set(res.map((x) => `${x.resourceType}/${x.id}`)).size, res.length, 'no duplicates');

    // to standard output as well
    const r = await cli(['export', '--db', db, '--patient', 'delgado-patient'], 0);
    assert.equal(JSON.parse(r.stdout).entry.length, expected.patient_compartment['Patient/delgado-patient']);
  });

  test('export of an unknown patient exits 1; without --patient 2; without a database 3', async () => {
    const r = await cli(['export', '--db', db, '--patient', 'nope'], 1);
    assert.match(r.stderr, /patient nope not found/);
    assert.equal(r.stdout, '');
    await cli(['export', '--db', db], 2);
    await cli(['export', '--db', db, '--patient', 'not an id'], 2);
    const missing = path.join(dir, 'missing', 'careweave.db');
    await cli(['export', '--db', missing, '--patient', 'moss-patient'], 3);
    assert.equal(existsSync(missing), false);
  });

  test('check --db prints ok; a missing database exits 3 and is not created', async () => {
    const r = await cli(['check', '--db', db], 0);
    assert.match(r.stdout, /^ok$/m);
    const missing = path.join(dir, 'nothing.db');
    const m = await cli(['check', '--db', missing], 3);
    assert.match(m.stderr, /cannot open database/);
    assert.equal(existsSync(missing), false);
  });
});

describe('import errors', () => {
  test('a malformed NDJSON line exits 1, naming the file and the line; nothing of it is kept', async () => {
    const db = path.join(dir, 'bad-ndjson.db');
    const f = path.join(dir, 'Patient.ndjson');
    writeFileSync(f, '{"resourceType":"Patient","id":"ok-1"}\n\n{"resourceType":"Patient","id":"ok-2"\n');
    const r = await cli(['import', '--db', db, f], 1);
    assert.ok(r.stderr.includes(`${f}:3: malformed JSON`), r.stderr);
    assert.match(r.stderr, /0 resources were committed/);
  });

  test('a malformed .json file exits 1, naming the file and where in it', async () => {
    const db = path.join(dir, 'bad-json.db');
    const f = path.join(dir, 'bad.json');
    writeFileSync(f, '{"resourceType": "Bundle",\n "type": "collection",\n "entry": [\n  {,}\n]}\n');
    const r = await cli(['import', '--db', db, f], 1);
    assert.ok(r.stderr.includes(`${f}: malformed JSON`), r.stderr);
    assert.match(r.stderr, /line 4/);
  });

  test('a missing file exits 3 (I/O), naming it', async () => {
    const db = path.join(dir, 'missing-file.db');
    const f = path.join(dir, 'no-such-file.ndjson');
    const r = await cli(['import', '--db', db, f], 3);
    assert.ok(r.stderr.includes(`cannot open ${f}`), r.stderr);
  });

  test('usage errors exit 2: no file named, a file that is neither .json nor .ndjson', async () => {
    const db = path.join(dir, 'usage.db');
    await cli(['import', '--db', db], 2);
    const f = path.join(dir, 'notes.txt');
    writeFileSync(f, 'hello\n');
    const r = await cli(['import', '--db', db, f], 2);
    assert.match(r.stderr, /unknown kind of file/);
  });

  test('an empty folder imports nothing and exits 0', async () => {
    const db = path.join(dir, 'empty.db');
    const empty = tempDir('careweave-cli-empty-');
    try {
      const r = await cli(['import', '--db', db, empty], 0);
      assert.match(r.stderr, /no \.json or \.ndjson files/);
      assert.match(r.stdout, /imported 0 resources/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

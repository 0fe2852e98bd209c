// kb.test.mjs: `careweave kb check` and `careweave kb lookup` as a user
// runs them ($CAREWEAVE_BIN), and `serve` refusing a malformed knowledge
// base. Exit codes: 0 ok, 1 invalid kb, 2 usage, 3 cannot read, 4 not found.
// Runs from the repository root, where data/kb is the default folder.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { binPath, tempDir, repoRoot } from '../support/server.mjs';

const SANITIZER_RE = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;
const KB = path.join(repoRoot, 'data/kb');

let dir;
before(() => { dir = tempDir('careweave-kb-'); });
after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

/** Runs careweave args with env added; checks the exit code and the sanitizers. */
function cli(args, code, env = {}) {
  return new Promise((resolve) => {
    execFile(binPath(), args, { cwd: repoRoot, env: { ...process.env, ...env }, timeout: 60000 },
      (error, stdout, stderr) => {
        const rc = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        const ctx = `careweave ${args.join(' ')}\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`;
        assert.doesNotMatch(stderr, SANITIZER_RE, ctx);
        if (code !== undefined) assert.equal(rc, code, ctx);
        resolve({ code: rc, stdout, stderr });
      });
  });
}

/** A copy of data/kb with line appended to file; returns [folder, line number]. */
function brokenCopy(name, file, line) {
  const d = path.join(dir, name);
  cpSync(KB, d, { recursive: true });
  const lines = readFileSync(path.join(d, file), 'utf8').split('\n').length;
  appendFileSync(path.join(d, file), line);
  return [d, lines];
}

describe('kb check', () => {
  test('the shipped files load: counts, exit 0', async () => {
    const r = await cli(['kb', 'check'], 0);
    assert.match(r.stdout, /^kb: data\/kb: \d+ drugs, \d+ products, \d+ classes, \d+ interactions, \d+ allergy rules, \d+ lab tests, \d+ retest intervals, \d+ comorbidity codes in \d+ groups, \d+ sources, \d+ names: ok$/m);
    const n = Number(r.stdout.match(/(\d+) interactions/)[1]);
    assert.ok(n >= 48, 'every reference pair is there');
  });

  test('--kb and $CAREWEAVE_KB name the folder', async () => {
    const a = await cli(['kb', 'check', '--kb', KB], 0);
    assert.match(a.stdout, /: ok$/m);
    const b = await cli(['kb', 'check'], 3, { CAREWEAVE_KB: path.join(dir, 'nowhere') });
    assert.match(b.stderr, /nowhere\/sources\.tsv: cannot read/);
    // --kb wins over the environment
    await cli(['kb', 'check', '--kb', KB], 0, { CAREWEAVE_KB: path.join(dir, 'nowhere') });
  });

  test('a malformed row: exit 1, every problem as FILE:LINE: reason', async () => {
    const [d, line] = brokenCopy('bad-severity', 'interactions.tsv',
      'x1\twarfarin\taspirin\tsevere\tyes\tbleeding\tavoid\tonc-hp\nx2\twarfarin\n');
    const r = await cli(['kb', 'check', '--kb', d], 1);
    assert.match(r.stderr, new RegExp(`interactions\\.tsv:${line}: the severity 'severe' is not high, moderate or low`));
    assert.match(r.stderr, new RegExp(`interactions\\.tsv:${line + 1}: 2 columns, expected 8`));
    assert.match(r.stderr, /is invalid/);
    assert.equal(r.stdout, '');
  });

  test('a bad LOINC check digit and an unknown class are named', async () => {
    const [d, line] = brokenCopy('bad-loinc', 'labs.tsv', 'new test\t4548-5\tverified\t\t\t\tvsac\n');
    const r = await cli(['kb', 'check', '--kb', d], 1);
    assert.match(r.stderr, new RegExp(`labs\\.tsv:${line}: '4548-5' is not a LOINC code`));
    const [d2, line2] = brokenCopy('bad-class', 'drugs.tsv', 'newdrug\t\tunknown\t\tfrobnicators\tatc\n');
    const r2 = await cli(['kb', 'check', '--kb', d2], 1);
    assert.match(r2.stderr, new RegExp(`drugs\\.tsv:${line2}: the class 'frobnicators' is not in classes\\.tsv`));
  });
});

describe('kb lookup', () => {
  test('a brand name in medication text: warfarin, its interactions, sources', async () => {
    const r = await cli(['kb', 'lookup', 'Coumadin 5 mg tablet'], 0);
    assert.match(r.stdout, /^medication text: mapped$/m);
    assert.match(r.stdout, /^drug: warfarin$/m);
    assert.match(r.stdout, /rxcui +11289 \(verified\)/);
    assert.match(r.stdout, /interacts with NSAIDs: high, interruptive \(warfarin-nsaids\)/);
    assert.match(r.stdout, /source +pddi-warfarin-nsaids: HL7 PDDI-CDS IG/);
  });

  test('by RxCUI, by synonym, a class, a lab test by LOINC', async () => {
    assert.match((await cli(['kb', 'lookup', '5640'], 0)).stdout, /^drug: ibuprofen$/m);
    assert.match((await cli(['kb', 'lookup', 'paracetamol'], 0)).stdout, /^drug: acetaminophen$/m);
    const pcn = await cli(['kb', 'lookup', 'PCN'], 0);
    assert.match(pcn.stdout, /^class: penicillins$/m);
    assert.match(pcn.stdout, /members +penicillin G, penicillin V, amoxicillin/);
    const a1c = await cli(['kb', 'lookup', '4548-4'], 0);
    assert.match(a1c.stdout, /^lab test: HbA1c$/m);
    assert.match(a1c.stdout, /retest +not within 90 days/);
    const bmp = await cli(['kb', 'lookup', 'BMP'], 0);
    assert.match(bmp.stdout, /members +creatinine, potassium, sodium, urea nitrogen, glucose/);
    assert.match(bmp.stdout, /part of +comprehensive metabolic panel/);
  });

  test('text with a word not understood is partial, and says which', async () => {
    const r = await cli(['kb', 'lookup', 'lisinopril 10 mg with frobozzamine'], 0);
    assert.match(r.stdout, /^medication text: partial \('frobozzamine' not understood: the rest is unchecked\)$/m);
  });

  test('not found: exit 4; usage: exit 2', async () => {
    const r = await cli(['kb', 'lookup', 'Seasonique 91 Day Pack'], 4);
    assert.match(r.stdout, /not found: .* it would be unchecked/);
    await cli(['kb'], 2);
    await cli(['kb', 'lookup'], 2);
    await cli(['kb', 'frobnicate'], 2);
    const h = await cli(['kb', '--help'], 0);
    assert.match(h.stdout, /usage: careweave kb check/);
  });
});

describe('serve and the kb', () => {
  test('serve refuses a malformed kb before opening the database', async () => {
    const [d, line] = brokenCopy('bad-serve', 'allergy.tsv', 'penicillins\tfrobnicators\tlow\tnote\tpichichero\n');
    const db = path.join(dir, 'never.db');
    const r = await cli(['serve', '--kb', d, '--db', db, '--port', '0'], 1);
    assert.match(r.stderr, new RegExp(`allergy\\.tsv:${line}: 'frobnicators' \\(reacts\\) is neither a drug`));
    assert.equal(existsSync(db), false, 'no database was created');
    const r2 = await cli(['serve', '--db', db, '--port', '0'], 3, { CAREWEAVE_KB: path.join(dir, 'nowhere') });
    assert.match(r2.stderr, /cannot be read/);
    assert.equal(existsSync(db), false);
  });
});

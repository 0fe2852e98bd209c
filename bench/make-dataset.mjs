#!/usr/bin/env node
// bench/make-dataset.mjs: builds the benchmark data set in bench/out/.
//
//   node bench/make-dataset.mjs [--replicas N] [--out DIR] [--data DIR]
//
// What it writes (all deterministic: the same inputs give the same bytes):
//   dataset/NN-Type.ndjson   >= 100,000 resources to `careweave import`, one
//                            file per type, numbered in dependency order
//                            (shared Organization/Location/Practitioner/
//                            PractitionerRole, then Patient, Encounter,
//                            Condition, then what references those).
//                            = synthea-1000 once (1,144 patients without
//                            history, their allergies and devices, the shared
//                            directory resources) + N replicas of synthea-10's
//                            clinical data. Replica r gets ids "<id>-r<r>" and
//                            every reference and identifier that carried one
//                            of synthea-10's clinical ids is rewritten the same
//                            way, so each replica is a closed world. Conditional
//                            references (Practitioner?identifier=...) stay as
//                            they are: they point at the shared resources.
//   paths/*.txt              request paths for the wrk scenarios, one a line
//   create-observation.json  the body POSTed by the create scenario
//   ingest/bundle-NN.json    transaction Bundles for the ingest scenario (10 x
//                            1,000 entries = 10,000 new resources; POST
//                            entries with urn:uuid references
//                            Patient <- Encounter <- Condition/Procedure/...)
//   manifest.json            counts, for run.sh and the README
//
// Only node's standard library; reads ../shared/data (the Synthea samples).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const REPLICAS = Number(arg('--replicas', process.env.BENCH_REPLICAS ?? 14));
const OUT = path.resolve(arg('--out', path.join(here, 'out')));
const DATA = path.resolve(arg('--data', process.env.BENCH_DATA ?? path.join(repoRoot, '..', 'shared', 'data')));
const INGEST_BUNDLES = Number(arg('--ingest-bundles', 10));
const INGEST_ENTRIES = Number(arg('--ingest-entries', 1000));

const SHARED_TYPES = ['Organization', 'Location', 'Practitioner', 'PractitionerRole'];
// Import order: a resource's literal references point at types earlier in it.
const ORDER = [
  ...SHARED_TYPES, 'Patient', 'Encounter', 'Condition', 'AllergyIntolerance', 'Device',
  'Immunization', 'Procedure', 'MedicationRequest', 'DocumentReference',
];
const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

function readNdjson(dir) {
  const byType = new Map();
  for (const f of fs.readdirSync(dir).sort()) {
    if (!f.endsWith('.ndjson')) continue;
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const r = JSON.parse(line);
      if (!byType.has(r.resourceType)) byType.set(r.resourceType, []);
      byType.get(r.resourceType).push({ line, res: r });
    }
  }
  return byType;
}

function uuidFrom(...parts) {
  const h = createHash('sha1').update(parts.join('|')).digest('hex');
  // RFC 4122 layout, version 5 style bits (name-based, SHA-1)
  const v = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${v}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function literalRefs(res) {
  const out = [];
  const walk = (v) => {
    if (Array.isArray(v)) { for (const x of v) walk(x); return; }
    if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'reference' && typeof x === 'string') out.push(x);
        else walk(x);
      }
    }
  };
  walk(res);
  return out;
}

fs.mkdirSync(OUT, { recursive: true });
for (const d of ['dataset', 'paths', 'ingest']) {
  fs.rmSync(path.join(OUT, d), { recursive: true, force: true });
  fs.mkdirSync(path.join(OUT, d), { recursive: true });
}

const s10 = readNdjson(path.join(DATA, 'synthea-10'));
const s1k = readNdjson(path.join(DATA, 'synthea-1000'));

// ---- the import data set ----------------------------------------------------

const files = new Map(ORDER.map((t) => [t, []])); // type -> lines
const counts = {};
const seen = new Set(); // "Type/id" already written
function emit(type, id, line) {
  const key = `${type}/${id}`;
  if (seen.has(key)) return false;
  seen.add(key);
  if (!files.has(type)) files.set(type, []);
  files.get(type).push(line);
  counts[type] = (counts[type] ?? 0) + 1;
  return true;
}

// synthea-1000 once, with its ids; then synthea-10's shared directory
// resources that synthea-1000 does not already hold.
let skippedShared = 0;
for (const [type, rows] of s1k) for (const { line, res } of rows) emit(type, res.id, line);
for (const type of SHARED_TYPES) {
  for (const { line, res } of s10.get(type) ?? []) if (!emit(type, res.id, line)) skippedShared++;
}

// The clinical ids of synthea-10 (everything but the shared types).
const clinicalIds = new Set();
for (const [type, rows] of s10) {
  if (SHARED_TYPES.includes(type)) continue;
  for (const { res } of rows) clinicalIds.add(res.id);
}

const patientPaths = [];
const encounterPaths = [];
const codePairs = new Set();
const names = []; // [normalized family, normalized given...] per patient
for (let r = 1; r <= REPLICAS; r++) {
  const suffix = `-r${r}`;
  const rewrite = (line) => line.replace(UUID_RE, (u) => (clinicalIds.has(u) ? u + suffix : u));
  for (const type of ORDER) {
    if (SHARED_TYPES.includes(type)) continue;
    for (const { line, res } of s10.get(type) ?? []) {
      const id = res.id + suffix;
      emit(type, id, rewrite(line));
      if (type === 'Patient') patientPaths.push(`/fhir/Patient/${id}`);
      if (type === 'Encounter') encounterPaths.push(`/fhir/Encounter/${id}`);
      if (type === 'Condition') {
        const pid = res.subject?.reference?.replace(/^Patient\//, '');
        for (const c of res.code?.coding ?? []) {
          if (c.system === 'http://snomed.info/sct' && pid) codePairs.add(`${pid}${suffix}\t${c.code}`);
        }
      }
    }
  }
}
for (const { res } of s1k.get('Patient') ?? []) patientPaths.push(`/fhir/Patient/${res.id}`);

const order = [...files.keys()].filter((t) => files.get(t).length);
const datasetFiles = [];
order.forEach((type, i) => {
  const f = path.join(OUT, 'dataset', `${String(i + 1).padStart(2, '0')}-${type}.ndjson`);
  fs.writeFileSync(f, files.get(type).join('\n') + '\n');
  datasetFiles.push(path.relative(OUT, f));
});
const total = Object.values(counts).reduce((a, b) => a + b, 0);

// Conditional references: how many shared resources each one matches (an
// ambiguous or dangling one is a server-side 412/lenient case, worth knowing).
const identIndex = new Map(); // "Type?identifier=sys|val" -> count
for (const type of SHARED_TYPES) {
  for (const line of files.get(type)) {
    const res = JSON.parse(line);
    for (const idf of res.identifier ?? []) {
      const k = `${type}?identifier=${idf.system}|${idf.value}`;
      identIndex.set(k, (identIndex.get(k) ?? 0) + 1);
    }
  }
}
const condRefStats = { resolved: 0, none: 0, ambiguous: 0 };
const condRefSeen = new Set();
for (const [, lines] of files) {
  for (const line of lines) {
    for (const m of line.matchAll(/"reference":"([A-Za-z]+\?identifier=[^"]*)"/g)) {
      if (condRefSeen.has(m[1])) continue;
      condRefSeen.add(m[1]);
      const n = identIndex.get(m[1]) ?? 0;
      if (n === 1) condRefStats.resolved++;
      else if (n === 0) condRefStats.none++;
      else condRefStats.ambiguous++;
    }
  }
}

// ---- request lists for wrk -----------------------------------------------------

const norm = (s) => s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
for (const line of files.get('Patient')) {
  const res = JSON.parse(line);
  const parts = [];
  for (const n of res.name ?? []) {
    if (n.family) parts.push(norm(n.family));
    for (const g of n.given ?? []) parts.push(norm(g));
    for (const p of n.prefix ?? []) parts.push(norm(p));
    for (const p of n.suffix ?? []) parts.push(norm(p));
    if (n.text) parts.push(...norm(n.text).split(/\s+/));
  }
  names.push({ family: (res.name?.[0]?.family ?? ''), parts });
}
// Name prefixes: the first 5 letters of each distinct family name, kept when
// a search for it matches between 1 and 50 patients (one default page).
const prefixMatches = new Map();
for (const { family } of names) {
  const p = norm(family).replace(/[^a-z]/g, '').slice(0, 5);
  if (p.length < 3 || prefixMatches.has(p)) continue;
  let n = 0;
  for (const { parts } of names) if (parts.some((x) => x.startsWith(p))) n++;
  prefixMatches.set(p, n);
}
const prefixes = [...prefixMatches].filter(([, n]) => n >= 1 && n <= 50).sort((a, b) => (a[0] < b[0] ? -1 : 1));
const namePaths = prefixes.map(([p]) => `/fhir/Patient?name=${encodeURIComponent(p)}`);
const meanNameMatches = prefixes.reduce((a, [, n]) => a + n, 0) / Math.max(1, prefixes.length);

const codePaths = [...codePairs].sort().map((pc) => {
  const [pid, code] = pc.split('\t');
  return `/fhir/Condition?patient=${encodeURIComponent(pid)}&code=${encodeURIComponent(`http://snomed.info/sct|${code}`)}`;
});

const writeList = (name, lines) => fs.writeFileSync(path.join(OUT, 'paths', name), lines.join('\n') + '\n');
writeList('read-patient.txt', patientPaths);
writeList('read-encounter.txt', encounterPaths);
writeList('search-code.txt', codePaths);
writeList('search-name.txt', namePaths);
writeList('create.txt', ['/fhir/Observation']);

const createPatient = patientPaths[0].replace('/fhir/', '');
fs.writeFileSync(path.join(OUT, 'create-observation.json'), JSON.stringify({
  resourceType: 'Observation',
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', display: 'Vital Signs' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }], text: 'Heart rate' },
  subject: { reference: createPatient },
  effectiveDateTime: '2024-05-01T10:30:00Z',
  valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
}));

// ---- transaction Bundles for ingest -----------------------------------------
//
// Each bundle is filled with fresh copies of synthea-10 patients: the Patient,
// then each Encounter (by date) followed by the resources recorded in it,
// then allergies and devices; ids become urn:uuid fullUrls (derived by
// hashing, so deterministic), literal references point at them, and a
// resource whose reference target did not fit in the bundle is left out.
const s10ById = new Map();
for (const [type, rows] of s10) {
  if (SHARED_TYPES.includes(type)) continue;
  for (const { res } of rows) s10ById.set(`${type}/${res.id}`, res);
}
const byPatient = new Map(); // patient id -> {patient, encounters: [...], byEnc: Map, rest: []}
for (const { res } of s10.get('Patient')) byPatient.set(res.id, { patient: res, encounters: [], byEnc: new Map(), rest: [] });
const patientOf = (res) => {
  for (const ref of literalRefs(res)) if (ref.startsWith('Patient/')) return ref.slice(8);
  return null;
};
for (const type of ORDER) {
  if (SHARED_TYPES.includes(type) || type === 'Patient') continue;
  for (const { res } of s10.get(type) ?? []) {
    const p = byPatient.get(patientOf(res));
    if (!p) continue;
    if (type === 'Encounter') { p.encounters.push(res); continue; }
    const enc = literalRefs(res).find((x) => x.startsWith('Encounter/'));
    if (enc) {
      const k = enc.slice(10);
      if (!p.byEnc.has(k)) p.byEnc.set(k, []);
      p.byEnc.get(k).push(res);
    } else {
      p.rest.push(res);
    }
  }
}
const kindRank = { Condition: 0, Procedure: 1, Immunization: 2, MedicationRequest: 3, DocumentReference: 4 };
function patientSequence(p) {
  const seq = [p.patient];
  const encs = [...p.encounters].sort((a, b) => (a.period?.start ?? '').localeCompare(b.period?.start ?? '') || a.id.localeCompare(b.id));
  for (const e of encs) {
    seq.push(e);
    const items = [...(p.byEnc.get(e.id) ?? [])].sort((a, b) => (kindRank[a.resourceType] ?? 9) - (kindRank[b.resourceType] ?? 9));
    seq.push(...items);
  }
  seq.push(...p.rest);
  return seq;
}
const patientIds = [...byPatient.keys()].sort();
let copy = 0;
let pIdx = 0;
const ingestFiles = [];
const ingestCounts = {};
for (let b = 1; b <= INGEST_BUNDLES; b++) {
  const entries = [];
  while (entries.length < INGEST_ENTRIES) {
    const pid = patientIds[pIdx % patientIds.length];
    const c = copy++;
    pIdx++;
    const idmap = new Map(); // "Type/oldid" -> urn
    for (const res of patientSequence(byPatient.get(pid))) {
      if (entries.length >= INGEST_ENTRIES) break;
      const refs = literalRefs(res).filter((x) => /^[A-Z][A-Za-z]+\/[^/?]+$/.test(x));
      if (refs.some((x) => !idmap.has(x))) continue; // target not in this bundle
      const urn = `urn:uuid:${uuidFrom('careweave-bench-ingest', c, res.resourceType, res.id)}`;
      idmap.set(`${res.resourceType}/${res.id}`, urn);
      let text = JSON.stringify(res);
      // references first, then any other occurrence of an old id (identifiers)
      text = text.replace(/"reference":"([A-Z][A-Za-z]+\/[^"/?]+)"/g, (m, ref) => `"reference":"${idmap.get(ref) ?? ref}"`);
      const copyRes = JSON.parse(text);
      delete copyRes.id;
      if (Array.isArray(copyRes.identifier)) {
        for (const idf of copyRes.identifier) {
          if (idf.system === 'https://github.com/synthetichealth/synthea') idf.value = urn.slice(9);
        }
      }
      entries.push({ fullUrl: urn, resource: copyRes, request: { method: 'POST', url: res.resourceType } });
      ingestCounts[res.resourceType] = (ingestCounts[res.resourceType] ?? 0) + 1;
    }
  }
  const f = path.join(OUT, 'ingest', `bundle-${String(b).padStart(2, '0')}.json`);
  fs.writeFileSync(f, JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: entries }));
  ingestFiles.push(path.relative(OUT, f));
}

const manifest = {
  replicas: REPLICAS,
  total,
  counts,
  skippedSharedDuplicates: skippedShared,
  conditionalReferences: condRefStats,
  datasetFiles,
  lists: {
    'read-patient': patientPaths.length,
    'read-encounter': encounterPaths.length,
    'search-code': codePaths.length,
    'search-name': namePaths.length,
    searchNameMeanMatches: Number(meanNameMatches.toFixed(1)),
  },
  ingest: { bundles: ingestFiles, entries: INGEST_BUNDLES * INGEST_ENTRIES, counts: ingestCounts },
};
fs.writeFileSync(path.join(OUT, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');

console.log(`dataset: ${total} resources (${REPLICAS} replicas of synthea-10 clinical data + synthea-1000) in ${path.relative(process.cwd(), path.join(OUT, 'dataset')) || '.'}`);
for (const t of order) console.log(`  ${t.padEnd(20)} ${String(counts[t]).padStart(7)}`);
console.log(`  conditional references: ${condRefStats.resolved} distinct resolve to one resource, ${condRefStats.none} to none, ${condRefStats.ambiguous} to several`);
console.log(`lists: ${patientPaths.length} patients, ${encounterPaths.length} encounters, ${codePaths.length} (patient, code) pairs, ${namePaths.length} name prefixes (mean ${meanNameMatches.toFixed(1)} matches)`);
console.log(`ingest: ${INGEST_BUNDLES} transaction bundles x ${INGEST_ENTRIES} entries: ${Object.entries(ingestCounts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
if (total < 100000) {
  console.error(`make-dataset: only ${total} resources; raise --replicas`);
  process.exit(1);
}

#!/usr/bin/env node
// bench/ingest.mjs: POSTs transaction Bundles to a FHIR base one after the
// other over one keep-alive connection and reports resources per second.
// With --conns N, N connections each take the next bundle not yet sent, so
// up to N bundles are in flight (a bulk loader overlapping the parsing of
// one bundle with the commit of another).
//
//   node bench/ingest.mjs [--conns N] BASE_URL bundle.json...
//
// Prints one JSON line: {bundles, conns, resources, seconds, perSecond, p50Ms,
// p99Ms, maxMs, errors: [...]}. A bundle counts only if the answer is 200
// with a transaction-response Bundle holding one entry per entry sent.
import fs from 'node:fs';
import http from 'node:http';

const argv = process.argv.slice(2);
let conns = 1;
if (argv[0] === '--conns') {
  conns = Number(argv[1]);
  argv.splice(0, 2);
}
const [base, ...files] = argv;
if (!base || files.length === 0 || !(Number.isInteger(conns) && conns >= 1)) {
  console.error('usage: node bench/ingest.mjs [--conns N] BASE_URL bundle.json...');
  process.exit(2);
}
const url = new URL(base.replace(/\/$/, ''));
const agent = new http.Agent({ keepAlive: true, maxSockets: conns });

function post(body) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent,
      headers: {
        'content-type': 'application/fhir+json', accept: 'application/fhir+json',
        'content-length': body.length,
        // run.sh signs in; every /fhir request needs the session
        ...(process.env.BENCH_TOKEN ? { authorization: `Bearer ${process.env.BENCH_TOKEN}` } : {}),
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(120000, () => req.destroy(new Error('timeout after 120 s')));
    req.end(body);
  });
}

const bodies = files.map((f) => fs.readFileSync(f));
const sent = bodies.map((b) => JSON.parse(b.toString('utf8')).entry.length);
const times = [];
const errors = [];
let resources = 0;
let next = 0;
async function worker() {
  for (let i = next++; i < bodies.length; i = next++) {
    const s = process.hrtime.bigint();
    let r;
    try {
      r = await post(bodies[i]);
    } catch (e) {
      errors.push(`${files[i]}: ${e.message}`);
      continue;
    }
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
    let ok = false;
    if (r.status === 200) {
      try {
        const j = JSON.parse(r.text);
        ok = j.resourceType === 'Bundle' && j.type === 'transaction-response' && (j.entry ?? []).length === sent[i];
        if (!ok) errors.push(`${files[i]}: 200 but ${j.resourceType}/${j.type} with ${(j.entry ?? []).length} entries for ${sent[i]} sent`);
      } catch (e) {
        errors.push(`${files[i]}: 200 but not JSON: ${r.text.slice(0, 200)}`);
      }
    } else {
      errors.push(`${files[i]}: HTTP ${r.status}: ${r.text.slice(0, 600)}`);
    }
    if (ok) resources += sent[i];
  }
}
const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: Math.min(conns, bodies.length) }, worker));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
agent.destroy();
const sorted = [...times].sort((a, b) => a - b);
const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : null);
const round = (x) => (x == null ? null : Number(x.toFixed(1)));
console.log(JSON.stringify({
  bundles: files.length,
  conns,
  resources,
  seconds: Number(seconds.toFixed(3)),
  perSecond: Math.round(resources / seconds),
  p50Ms: round(pct(50)),
  p99Ms: round(pct(99)),
  maxMs: round(sorted[sorted.length - 1] ?? null),
  errors,
}));

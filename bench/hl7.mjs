#!/usr/bin/env node
// bench/hl7.mjs: a stream of HL7 v2 messages over MLLP to a running
// careweave (serve --mllp-port), over several connections, each sending
// its next message when the previous one's ACK arrived (as a feed does).
// Three phases (below): new patients, known patients, results. Prints one
// JSON line per phase: {phase, conns, messages, seconds, perSecond, p50Ms,
// p99Ms, maxMs, notAA}; an ACK is timed from the write of the message to
// its end, and careweave commits a message before it answers.
//
//   node bench/hl7.mjs [--conns N] [--messages N] HOST:PORT
import net from 'node:net';

const argv = process.argv.slice(2);
let conns = 4, total = 4000;
while (argv[0]?.startsWith('--')) {
  const k = argv.shift(), v = Number(argv.shift());
  if (k === '--conns') conns = v;
  else if (k === '--messages') total = v;
}
const [host, port] = (argv[0] ?? '').split(':');
if (!host || !port) {
  console.error('usage: node bench/hl7.mjs [--conns N] [--messages N] HOST:PORT');
  process.exit(2);
}
const run = `${process.pid}${Date.now() % 100000}`;
const now = new Date();
const pad = (n) => String(n).padStart(2, '0');
const ts = `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}00`;

// family names as varied as a real feed's: a feed of one surname would
// make every new patient a candidate of the matcher for every other
const family = (i) => `FAM${(i * 7919 + Number(run)).toString(36).toUpperCase()}`;
const pid = (i) => `PID|1||B${run}-${i}^^^BENCH^MR||${family(i)}^PATIENT${i}^Q||19${40 + (i % 50)}0${1 + (i % 9)}1${i % 10}|${i % 2 ? 'M' : 'F'}|||${i} MAIN ST^^SPRINGFIELD^IL^627${pad(i % 100)}||(217)555-${String(i % 10000).padStart(4, '0')}`;
const adt = (ev, i, ctl) => [`MSH|^~\\&|BENCHADT|BENCHHOSP|CW|CW|${ts}||ADT^${ev}|${ctl}|P|2.5.1`, `EVN|${ev}|${ts}`, pid(i),
  `PV1|1|${ev === 'A01' ? 'I' : 'O'}|W${i % 9}^${i % 40}^A||||1234^DOC^ALICE|||MED||||1|||||V${run}-${i}^^^BENCH^VN`].join('\r');
const oru = (i, ctl) => [`MSH|^~\\&|BENCHLAB|BENCHHOSP|CW|CW|${ts}||ORU^R01|${ctl}|P|2.5.1`, pid(i),
  `OBR|1|P${run}-${i}|F${run}-${i}|24323-8^Comprehensive metabolic panel^LN|||${ts}||||||||||||||||||F`,
  `OBX|1|NM|2951-2^Sodium^LN||${130 + (i % 15)}|mmol/L|135-145|${i % 15 < 5 ? 'L' : 'N'}|||F`,
  `OBX|2|NM|2823-3^Potassium^LN||4.${i % 10}|mmol/L|3.5-5.1|N|||F`,
  `OBX|3|NM|2345-7^Glucose^LN||${90 + (i % 60)}|mg/dL|70-99|${i % 60 > 9 ? 'H' : 'N'}|||F`].join('\r');

function client() {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), host, () => resolve(s));
    s.once('error', reject);
  });
}

// sends msgs in order over s, each after the previous ACK; latencies out
function stream(s, msgs, lat, codes) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0), k = 0, t0 = 0;
    const next = () => {
      if (k === msgs.length) { s.off('data', onData); resolve(); return; }
      t0 = performance.now();
      s.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from(msgs[k], 'latin1'), Buffer.from([0x1c, 0x0d])]));
    };
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      let end;
      while ((end = buf.indexOf(Buffer.from([0x1c, 0x0d]))) >= 0) {
        const ack = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 2);
        lat.push(performance.now() - t0);
        codes.push(/MSA\|(A[AER])/.exec(ack)?.[1] ?? '??');
        k++;
        next();
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    next();
  });
}

async function phase(name, make) {
  const sockets = await Promise.all(Array.from({ length: conns }, client));
  const per = Array.from({ length: conns }, () => []);
  const all = make();
  all.forEach((m, i) => per[i % conns].push(m));
  const lat = [], codes = [];
  const t0 = performance.now();
  await Promise.all(sockets.map((s, i) => stream(s, per[i], lat, codes)));
  const secs = (performance.now() - t0) / 1000;
  sockets.forEach((s) => s.destroy());
  lat.sort((a, b) => a - b);
  const q = (p) => Number(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(2));
  console.log(JSON.stringify({ phase: name, conns, messages: all.length, seconds: Number(secs.toFixed(3)),
    perSecond: Math.round(all.length / secs), p50Ms: q(0.5), p99Ms: q(0.99), maxMs: q(1),
    notAA: codes.filter((c) => c !== 'AA').length }));
}

// 1. new patients (A04): no identifier known, so the patient matcher runs
// for each; 2. the same patients again (A01, A08, A03): found by their
// identifier, as most of a feed is; 3. results (ORU^R01, three values) and
// updates mixed, for known patients.
const n = Math.max(1, Math.floor(total / 4));
await phase('adt-new', () => Array.from({ length: n }, (_, i) => adt('A04', i, `N${run}-${i}`)));
await phase('adt-known', () => Array.from({ length: 2 * n }, (_, i) => adt(i % 2 ? 'A08' : 'A01', i % n, `K${run}-${i}`)));
await phase('adt+oru', () => Array.from({ length: n }, (_, i) => i % 2 ? adt('A08', i, `M${run}-${i}`) : oru(i, `O${run}-${i}`)));

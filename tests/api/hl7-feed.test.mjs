// tests/api/hl7-feed.test.mjs: a hospital feed over MLLP, end to end, as
// issue 5's tests ask: the reference messages and realistic variants (2.3
// to 2.8, escapes, repetitions, missing PV1-45, Z-segments, CRLF) through a
// real HL7 client (@medplum/hl7), malformed input over a raw socket (no
// MSH, wrong delimiters, truncated, binary garbage, 10 MB, a half message
// then a closed socket), and a scripted stay: admission, transfer, lab
// result, discharge, a readmission 20 days later, with every task, flag,
// notification, score and measure checked over FHIR.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Hl7Client } from '@medplum/hl7';
import { Hl7Message } from '@medplum/core';
import { startServer, raw } from '../support/server.mjs';

let srv;
let port;
const DAY = 86400000;
const pad = (n) => String(n).padStart(2, '0');
const dtm = (ms) => { const d = new Date(ms); return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}00`; };

async function send(text) {
  const client = new Hl7Client({ host: '127.0.0.1', port });
  try {
    const ack = await client.sendAndWait(Hl7Message.parse(text));
    return ack.getSegment('MSA').getField(1).toString();
  } finally {
    await client.close();
  }
}

async function fhir(url) {
  const r = await raw(srv.base, 'GET', url);
  assert.equal(r.status, 200, `${url}: ${r.text.slice(0, 300)}`);
  return r.json.resourceType === 'Bundle' ? (r.json.entry ?? []).map((e) => e.resource) : r.json;
}

// bytes over a raw socket; resolves with what came back before the peer
// closed or quiet ms passed
function rawSend(buf, { quiet = 1500, closeAfterWrite = false } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const got = [];
    let timer;
    const done = () => { clearTimeout(timer); s.destroy(); resolve(Buffer.concat(got)); };
    s.on('connect', () => {
      s.write(buf, () => { if (closeAfterWrite) s.end(); });
      timer = setTimeout(done, quiet);
    });
    s.on('data', (d) => { got.push(d); clearTimeout(timer); timer = setTimeout(done, 300); });
    s.on('close', done);
    s.on('error', done);
  });
}
const frame = (text) => Buffer.concat([Buffer.from([0x0b]), Buffer.from(text, 'latin1'), Buffer.from([0x1c, 0x0d])]);
const msaOf = (buf) => /MSA[^A-Za-z0-9](A[AER])/.exec(buf.toString('latin1'))?.[1] ?? null;

before(async () => {
  srv = await startServer({ args: ['--mllp-port', '0'] });
  port = Number(/careweave mllp listening on [^:]+:(\d+)/.exec(srv.stdout())[1]);
});
after(async () => {
  await srv?.stop();
});

describe('the reference messages and realistic variants', () => {
  const pid = (id, name) => `PID|1||${id}^^^VARIANT^MR||${name}||19700101|F`;
  const variants = [
    ['2.3 with CRLF', (c) => [`MSH|^~\\&|V|H|CW|CW|20240101||ADT^A04|${c}|P|2.3`, pid('V23', 'TWOTHREE^ANN'), 'PV1|1|O'].join('\r\n')],
    ['2.8 with a trailing segment terminator', (c) => [`MSH|^~\\&|V|H|CW|CW|20240101||ADT^A04^ADT_A01|${c}|P|2.8`, pid('V28', 'TWOEIGHT^BEA'), 'PV1|1|O', ''].join('\r')],
    ['escapes in a name', (c) => [`MSH|^~\\&|V|H|CW|CW|20240101||ADT^A04|${c}|P|2.5`, pid('VESC', 'O\\T\\BRIEN^CLAIRE\\S\\ANNE'), 'PV1|1|O'].join('\r')],
    ['repetitions of identifiers and phones', (c) => [`MSH|^~\\&|V|H|CW|CW|20240101||ADT^A04|${c}|P|2.5`, 'PID|1||VREP^^^VARIANT^MR~777^^^OTHER^MR||REPEAT^DORA||19700101|F|||||555-0100~555-0199', 'PV1|1|O'].join('\r')],
    ['a Z-segment and missing PV1-45', (c) => [`MSH|^~\\&|V|H|CW|CW|20240101||ADT^A03|${c}|P|2.5.1`, 'EVN|A03|20240101120000', pid('VZ', 'ZED^ELLA'), 'PV1|1|I|||||||||||||||||VZ1^^^VARIANT^VN', 'ZPV|custom|stuff'].join('\r')],
  ];
  for (const [name, make] of variants) {
    test(`${name}: AA, and the patient is there`, async () => {
      const ctl = `VAR-${name.length}-${name.charCodeAt(0)}`;
      assert.equal(await send(make(ctl)), 'AA');
    });
  }
  test('other delimiters (# * ~ \\ &): AA over a raw socket', async () => {
    const m = ['MSH#*~\\&#V#H#CW#CW#20240101##ADT*A04#VAR-DELIM#P#2.5', 'PID#1##VDEL***VARIANT*MR##DELIM*FAY##19700101#F', 'PV1#1#O'].join('\r');
    assert.equal(msaOf(await rawSend(frame(m))), 'AA');
  });
  test('what the variants made reads back right', async () => {
    const [esc] = await fhir('Patient?identifier=urn:careweave:hl7v2:id:VARIANT:MR|VESC');
    assert.equal(esc.name[0].family, "O&BRIEN");
    assert.equal(esc.name[0].given[0], 'CLAIRE^ANNE');
    const [rep] = await fhir('Patient?identifier=urn:careweave:hl7v2:id:VARIANT:MR|VREP');
    assert.equal(rep.identifier.length, 2);
    assert.equal(rep.telecom.length, 2);
    const [z] = await fhir('Encounter?identifier=urn:careweave:hl7v2:id:VARIANT:VN|VZ1');
    assert.equal(z.status, 'finished');
    assert.equal(z.period.end, '2024-01-01T12:00:00Z', 'no PV1-45: the event time');
    assert.equal((await fhir('Patient?identifier=urn:careweave:hl7v2:id:VARIANT:MR|VDEL')).length, 1);
    assert.equal((await fhir('Patient?identifier=urn:careweave:hl7v2:id:VARIANT:MR|V23')).length, 1);
  });
});

describe('malformed input: an answer or a closed connection, never a crash or half a record', () => {
  test('no MSH, binary garbage and wrong delimiters are rejected AR', async () => {
    assert.equal(msaOf(await rawSend(frame('PID|1||X^^^Y^MR\rPV1|1|I'))), 'AR');
    // garbage inside a frame (no framing bytes in it) is answered AR
    const junk = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) % 256).filter((b) => b !== 0x0b && b !== 0x1c));
    assert.equal(msaOf(await rawSend(frame(junk.toString('latin1')))), 'AR');
    // raw bytes with framing characters in them: no answer for a broken
    // frame, and the server goes on taking messages
    await rawSend(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)), { quiet: 300 });
    assert.equal(await send('MSH|^~\\&|G|H|CW|CW|20240101||ADT^A04|AFTER-JUNK|P|2.5\rPID|1||AJ^^^G^MR||AFTER^JUNK||19700101|F\rPV1|1|O'), 'AA');
    assert.equal(msaOf(await rawSend(frame('MSH|^^^^|X|Y|CW|CW|2024||ADT^A01|BAD1|P|2.5\rPID|1||1^^^X^MR'))), 'AR');
  });
  test('a truncated message is answered AE, nothing written', async () => {
    const ack = await rawSend(frame('MSH|^~\\&|T|H|CW|CW|20240101||ADT^A01|TRUNC1|P|2.5\rPID|1||TRUNC^^^T'));
    assert.equal(msaOf(ack), 'AE');
    assert.equal((await fhir('Patient?identifier=urn:careweave:hl7v2:id:T:MR|TRUNC')).length, 0);
  });
  test('a 10 MB message is rejected AR, nothing written', async () => {
    const big = 'MSH|^~\\&|B|H|CW|CW|20240101||ADT^A01|BIG1|P|2.5\rPID|1||BIG^^^B^MR\rNTE|1||' + 'x'.repeat(10 * 1024 * 1024);
    const ack = await rawSend(frame(big), { quiet: 5000 });
    assert.equal(msaOf(ack), 'AR');
    assert.equal((await fhir('Patient?identifier=urn:careweave:hl7v2:id:B:MR|BIG')).length, 0);
  });
  test('half a message, then the socket closes: nothing written, the server goes on', async () => {
    const half = frame('MSH|^~\\&|H|H|CW|CW|20240101||ADT^A01|HALF1|P|2.5\rPID|1||HALF^^^H^MR||HALF^HAL||1970\rPV1|1|I').subarray(0, 60);
    await rawSend(half, { closeAfterWrite: true, quiet: 500 });
    assert.equal((await fhir('Patient?identifier=urn:careweave:hl7v2:id:H:MR|HALF')).length, 0);
    assert.equal(await send('MSH|^~\\&|H|H|CW|CW|20240101||ADT^A04|HALF2|P|2.5\rPID|1||HALF^^^H^MR||HALF^HAL||19700101|M\rPV1|1|O'), 'AA');
  });
  test('a duplicate control id changes nothing', async () => {
    const m = 'MSH|^~\\&|D|H|CW|CW|20240101||ADT^A04|DUP1|P|2.5\rPID|1||DUP^^^D^MR||DUP^DAN||19700101|M\rPV1|1|O';
    assert.equal(await send(m), 'AA');
    const [p] = await fhir('Patient?identifier=urn:careweave:hl7v2:id:D:MR|DUP');
    assert.equal(await send(m.replace('DUP^DAN', 'DIFFERENT^NAME')), 'AA', 'the same control id: answered as before');
    const [again] = await fhir('Patient?identifier=urn:careweave:hl7v2:id:D:MR|DUP');
    assert.equal(again.meta.versionId, p.meta.versionId, 'not written again');
  });
});

test('a scripted stay: admission, transfer, result, discharge, readmission 20 days later', async () => {
  const now = Date.now();
  const adm = now - 27 * DAY, xfer = adm + DAY, dis = adm + 5 * DAY, res = adm + 3 * DAY, readm = dis + 20 * DAY;
  // the patient and their team, as the clinic holds them
  const pat = await raw(srv.base, 'POST', 'Patient', { body: { resourceType: 'Patient', identifier: [{ system: 'urn:careweave:hl7v2:id:STM:MR', value: 'S1' }], name: [{ family: 'Stay', given: ['Sam'] }], birthDate: '1950-05-05', gender: 'male' } });
  const pid = pat.json.id;
  const prac = async (f) => (await raw(srv.base, 'POST', 'Practitioner', { body: { resourceType: 'Practitioner', name: [{ family: f }] } })).json.id;
  const pcp = await prac('Pcp'), pharm = await prac('Pharm'), coord = await prac('Coord');
  await raw(srv.base, 'POST', 'CareTeam', { body: { resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${pid}` }, participant: [
    { role: [{ text: 'Primary care physician' }], member: { reference: `Practitioner/${pcp}` } },
    { role: [{ text: 'Pharmacist' }], member: { reference: `Practitioner/${pharm}` } },
    { role: [{ text: 'Care coordinator' }], member: { reference: `Practitioner/${coord}` } }] } });
  const p = 'PID|1||S1^^^STM^MR||STAY^SAM||19500505|M';
  const pv1 = (loc, vn, extra = '') => `PV1|1|I|${loc}||||||||||||||||${vn}^^^STM^VN${extra}`;
  const msg = (ev, ctl, at, ...segs) => [`MSH|^~\\&|ADT|STM|CW|CW|${dtm(at)}||ADT^${ev}|${ctl}|P|2.5.1`, `EVN|${ev}|${dtm(at)}`, p, ...segs].join('\r');
  assert.equal(await send(msg('A01', 'S-1', adm, pv1('W1^101^A', 'STAY1', `|||||||||||||||||||||||||${dtm(adm)}`))), 'AA');
  assert.equal(await send(msg('A02', 'S-2', xfer, pv1('W2^202^B', 'STAY1'))), 'AA');
  const oru = [`MSH|^~\\&|LAB|STM|CW|CW|${dtm(res)}||ORU^R01|S-3|P|2.5.1`, p,
    `OBR|1||LAB-S1|2951-2^Sodium^LN|||${dtm(res)}||||||||||||||||||F`,
    'OBX|1|NM|2951-2^Sodium^LN||128|mmol/L|135-145|L|||F'].join('\r');
  assert.equal(await send(oru), 'AA');
  assert.equal(await send(msg('A03', 'S-4', dis, pv1('W2^202^B', 'STAY1', `|||||||||||||||||01||||||||${dtm(adm)}|${dtm(dis)}`))), 'AA');
  assert.equal(await send(msg('A01', 'S-5', readm, pv1('W3^303^C', 'STAY2', `|||||||||||||||||||||||||${dtm(readm)}`))), 'AA');

  const [e1] = await fhir('Encounter?identifier=urn:careweave:hl7v2:id:STM:VN|STAY1');
  const [e2] = await fhir('Encounter?identifier=urn:careweave:hl7v2:id:STM:VN|STAY2');
  assert.equal(e1.status, 'finished');
  assert.equal(e1.location.length, 2, 'the transfer moved the patient');
  assert.equal(e1.location[0].status, 'completed');
  const tasks = await fhir(`Task?patient=Patient/${pid}&_count=100`);
  const kind = (t) => t.code.coding[0].code;
  const of = (enc, k) => tasks.find((t) => t.focus?.reference === `Encounter/${enc.id}` && kind(t) === k);
  assert.equal(of(e1, 'send-records')?.owner?.reference, `Practitioner/${coord}`);
  assert.equal(of(e1, 'contact')?.owner?.reference, `Practitioner/${coord}`);
  assert.equal(of(e1, 'medication-reconciliation')?.owner?.reference, `Practitioner/${pharm}`);
  assert.equal(of(e1, 'follow-up-visit')?.owner?.reference, `Practitioner/${pcp}`);
  assert.ok(of(e1, 'discharge-summary'));
  assert.ok(of(e2, 'send-records'), 'the readmission: the coordinator sends the records again');
  const review = tasks.filter((t) => kind(t) === 'review-result');
  assert.equal(review.length, 1, 'the sodium to the PCP (no ordering provider held)');
  assert.equal(review[0].priority, 'urgent', 'low sodium: abnormal');
  const flags = await fhir(`Flag?patient=Patient/${pid}`);
  assert.ok(flags.some((f) => f.code.coding[0].code === 'readmission' && f.status === 'active'));
  assert.ok(flags.some((f) => f.code.coding[0].code === 'admitted' && f.status === 'active' && f.encounter.reference === `Encounter/${e2.id}`));
  assert.ok(flags.some((f) => f.code.coding[0].code === 'admitted' && f.status === 'inactive' && f.encounter.reference === `Encounter/${e1.id}`));
  const notices = await fhir(`Communication?subject=Patient/${pid}&category=notification`);
  assert.equal(notices.length, 2);
  assert.ok(notices.some((c) => /readmission/.test(c.payload[0].contentString)));
  const risks = await fhir(`RiskAssessment?subject=Patient/${pid}`);
  const lace = risks.find((r) => r.method.coding[0].code === 'lace');
  assert.ok(lace, 'LACE at discharge');
  assert.match(lace.note[0].text, /length of stay/);
  const m = await fhir(`$transitions-measures?start=${new Date(adm - DAY).toISOString().slice(0, 10)}&end=${new Date(now).toISOString().slice(0, 10)}`);
  const val = (n) => m.parameter.find((x) => x.name === n)?.valueInteger;
  assert.ok(val('admissions') >= 2);
  assert.ok(val('readmissions-30-days') >= 1);
  assert.ok(val('results-unreviewed') >= 1);
});

// tests/api/hl7.test.mjs: hospital feeds over MLLP (issue 5), end to end
// with a real HL7 client (@medplum/hl7's Hl7Client, MLLP over TCP) against
// `careweave serve --mllp-port 0`: the ACK a sender gets, what the record
// then holds (read back over FHIR as a coordinator would), a message sent
// again, several senders at once, and the operator's `careweave hl7`.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Hl7Client } from '@medplum/hl7';
import { Hl7Message } from '@medplum/core';
import { startServer, raw, runCli } from '../support/server.mjs';

let srv;
let port;

const A01 = [
  'MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|GHH LAB, INC.|GOOD HEALTH HOSPITAL|198808181126|SECURITY|ADT^A01^ADT_A01|MSG00001|P|2.8||',
  'EVN|A01|200708181123||',
  'PID|1||PATID1234^5^M11^ADT1^MR^GOOD HEALTH HOSPITAL~123456789^^^USSSA^SS||EVERYMAN^ADAM^A^III||19610615|M||C|2222 HOME STREET^^GREENSBORO^NC^27401-1020|GL|(555) 555-2004|(555)555-2004||S||PATID12345001^2^M10^ADT1^AN^A|444333333|987654^NC|',
  'NK1|1|NUCLEAR^NELDA^W|SPO^SPOUSE||||NK^NEXT OF KIN',
  'PV1|1|I|2000^2012^01||||004777^ATTEND^AARON^A|||SUR||||ADM|A0||||VN4711^^^ADT1^VN',
].join('\r');

async function send(text) {
  const client = new Hl7Client({ host: '127.0.0.1', port });
  try {
    const ack = await client.sendAndWait(Hl7Message.parse(text));
    return { code: ack.getSegment('MSA').getField(1).toString(), ack };
  } finally {
    await client.close();
  }
}

async function fhir(url) {
  const r = await raw(srv.base, 'GET', url);
  assert.equal(r.status, 200, `${url}: ${r.text.slice(0, 300)}`);
  return (r.json.entry ?? []).map((e) => e.resource);
}

before(async () => {
  srv = await startServer({ args: ['--mllp-port', '0'] });
  const m = /careweave mllp listening on [^:]+:(\d+)/.exec(srv.stdout());
  assert.ok(m, `no mllp line in: ${srv.stdout()}`);
  port = Number(m[1]);
});
after(async () => {
  await srv?.stop();
});

describe('an admission from a hospital feed', () => {
  test('is acknowledged AA and becomes the Patient, the Encounter and the next of kin', async () => {
    const { code, ack } = await send(A01);
    assert.equal(code, 'AA');
    assert.equal(ack.getSegment('MSA').getField(2).toString(), 'MSG00001');
    assert.equal(ack.getSegment('MSH').getField(9).getComponent(1), 'ACK');
    const [p] = await fhir('Patient?identifier=urn:careweave:hl7v2:id:ADT1:MR|PATID1234');
    assert.ok(p, 'the Patient, by the hospital MRN');
    assert.equal(p.name[0].family, 'EVERYMAN');
    assert.equal(p.birthDate, '1961-06-15');
    const [enc] = await fhir(`Encounter?subject=Patient/${p.id}`);
    assert.equal(enc.status, 'in-progress');
    assert.equal(enc.class.code, 'IMP');
    assert.equal(enc.identifier[0].value, 'VN4711');
    const [nk] = await fhir(`RelatedPerson?patient=Patient/${p.id}`);
    assert.equal(nk.name[0].family, 'NUCLEAR');
  });

  test('sent again, it is acknowledged again and changes nothing', async () => {
    const { code } = await send(A01);
    assert.equal(code, 'AA');
    assert.equal((await fhir('Patient?identifier=urn:careweave:hl7v2:id:ADT1:MR|PATID1234')).length, 1);
    assert.equal((await fhir('Encounter?identifier=urn:careweave:hl7v2:id:ADT1:VN|VN4711')).length, 1);
  });

  test('the discharge finishes the visit', async () => {
    const a03 = [
      'MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|CW|CW|200708201400||ADT^A03|MSG00003|P|2.5',
      'EVN|A03|200708201400',
      'PID|1||PATID1234^^^ADT1^MR||EVERYMAN^ADAM||19610615|M',
      'PV1|1|I|2000^2012^01||||||||||||||||VN4711^^^ADT1^VN',
    ].join('\r');
    assert.equal((await send(a03)).code, 'AA');
    const [enc] = await fhir('Encounter?identifier=urn:careweave:hl7v2:id:ADT1:VN|VN4711');
    assert.equal(enc.status, 'finished');
    assert.equal(enc.period.end, '2007-08-20T14:00:00Z');
  });
});

describe('what careweave does not take', () => {
  test('a message type it does not take is rejected AR with an ERR segment', async () => {
    const { code, ack } = await send('MSH|^~\\&|LAB|GHH|CW|CW|20240101||ORM^O01|X1|P|2.5\rPID|1||1^^^LAB^MR');
    assert.equal(code, 'AR');
    assert.equal(ack.getSegment('ERR').getField(3).getComponent(1), '200');
  });

  test('a message it cannot apply is an error AE, logged for the operator to replay', async () => {
    const { code } = await send('MSH|^~\\&|ADT1|GHH|CW|CW|20240101||ADT^A01|X2|P|2.5\rPID|1||||DOE^JANE\rPV1|1|I');
    assert.equal(code, 'AE');
    const r = await runCli(['hl7', 'list', '--failed', '--db', srv.db]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /X2 +ADT\^A01 +error/);
    assert.match(r.stdout, /PID-3 holds no patient identifier/);
    assert.doesNotMatch(r.stdout, /DOE|JANE/, 'the list never shows the message itself');
  });
});

test('careweave hl7 show prints the message and is itself in the audit trail', async () => {
  const list = await runCli(['hl7', 'list', '--accepted', '--db', srv.db]);
  assert.equal(list.code, 0, list.stderr);
  // the discharge: it wrote the Encounter, not the Patient, and shows the PID
  const row = list.stdout.split('\n').find((l) => /MSG00003/.test(l));
  assert.ok(row, list.stdout);
  const seq = /^\s*(\d+)/.exec(row)[1];
  const [p] = await fhir('Patient?identifier=urn:careweave:hl7v2:id:ADT1:MR|PATID1234');

  // the server's own read records reach the trail within 100 ms (queued):
  // count the operator's reads only
  const operatorReads = (out) => out.split('\n').filter((l) => /\boperator\b/.test(l) && /\bread\b/.test(l)).length;
  const before = await runCli(['audit', 'report', '--patient', p.id, '--db', srv.db]);
  const show = await runCli(['hl7', 'show', seq, '--db', srv.db]);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /^\s+PID\|1\|\|PATID1234/m, 'the message, a segment a line');
  assert.match(show.stdout, /wrote: .*Encounter\//);

  const after = await runCli(['audit', 'report', '--patient', p.id, '--db', srv.db]);
  assert.equal(operatorReads(after.stdout), operatorReads(before.stdout) + 1,
    `one operator's read more in the patient's accounting: ${after.stdout}`);
  assert.doesNotMatch(after.stdout, /EVERYMAN/, 'the record names no one');

  const none = await runCli(['hl7', 'show', '999999', '--db', srv.db]);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /no message 999999/);
});

test('the audit trail names the feed that wrote', async () => {
  const r = await runCli(['audit', 'dump', '--db', srv.db]);
  assert.equal(r.code, 0, r.stderr);
  const recs = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const feed = recs.filter((e) => e.agent?.[0]?.role?.[0]?.coding?.[0]?.code === 'interface');
  assert.ok(feed.length >= 2, 'the admission and the discharge');
  assert.ok(feed.every((e) => e.agent[0].who?.identifier?.value === 'hl7v2:ADT1@GOOD HEALTH HOSPITAL'),
    JSON.stringify(feed[0]?.agent));
  assert.ok(feed.some((e) => (e.entity ?? []).some((x) => /^Encounter\//.test(x.what?.reference ?? ''))));
});

test('several senders at once, each answered in order', async () => {
  const msg = (i) => [
    `MSH|^~\\&|ADT${i}|HOSP${i}|CW|CW|20240101||ADT^A04|C${i}|P|2.5`,
    `PID|1||P${i}^^^HOSP${i}^MR||PATIENT^NUMBER${i}||19700101|F`,
    'PV1|1|O',
  ].join('\r');
  const codes = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => send(msg(i)).then((a) => a.code)));
  assert.deepEqual(codes, ['AA', 'AA', 'AA', 'AA', 'AA', 'AA']);
  for (const i of [1, 6])
    assert.equal((await fhir(`Patient?identifier=urn:careweave:hl7v2:id:HOSP${i}:MR|P${i}`)).length, 1);
});

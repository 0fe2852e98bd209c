// tests/support/rules.mjs: what the tests of the write path's rules share
// (medsafety.test.mjs, labdup.test.mjs): a checked request as the service
// user, a new patient, the DetectedIssues and alert Communications of a
// patient as the team would read them, and a care team with the roles the
// rules tell (primary care physician, pharmacist, coordinator) and one
// they do not (a physical therapist).
import assert from 'node:assert/strict';
import { raw } from './server.mjs';

const SCT = 'http://snomed.info/sct';
const NUCC = 'http://nucc.org/provider-taxonomy';

/** ctx.srv(): the running server; ctx.P: Practitioner ids by role (pcp, pharmacist, coordinator, other). */
export function ruleHelpers(ctx) {
  async function svc(method, url, body, headers) {
    const r = await raw(ctx.srv().base, method, url, { body, headers });
    assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${r.text.slice(0, 600)}`);
    return r;
  }
  async function patient(name) {
    return (await svc('POST', 'Patient', { resourceType: 'Patient', name: [{ family: name }] })).json.id;
  }
  async function issuesOf(pid) {
    const b = (await svc('GET', `DetectedIssue?patient=${pid}`)).json;
    return (b.entry ?? []).map((e) => e.resource);
  }
  async function alertsOf(pid) {
    const b = (await svc('GET', `Communication?subject=${pid}&category=alert`)).json;
    return (b.entry ?? []).map((e) => e.resource);
  }
  async function team(pid) {
    const { P } = ctx;
    await svc('POST', 'CareTeam', {
      resourceType: 'CareTeam', status: 'active', subject: { reference: `Patient/${pid}` },
      participant: [
        { role: [{ coding: [{ system: SCT, code: '446050000', display: 'Primary care physician' }] }], member: { reference: `Practitioner/${P.pcp}` } },
        { role: [{ coding: [{ system: NUCC, code: '183500000X', display: 'Pharmacist' }] }], member: { reference: `Practitioner/${P.pharmacist}` } },
        { role: [{ text: 'Nurse care coordinator' }], member: { reference: `Practitioner/${P.coordinator}` } },
        { role: [{ text: 'Physical therapist' }], member: { reference: `Practitioner/${P.other}` } },
      ],
    });
  }
  return { svc, patient, issuesOf, alertsOf, team };
}

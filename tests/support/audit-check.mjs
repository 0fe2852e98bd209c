// tests/support/audit-check.mjs: every request of the API test suite
// leaves exactly the audit records it should (issue 3), CDS Hooks calls
// (/cds-services) included.
//
// startServer() (server.mjs) opens a recorder for each server it starts.
// Every HTTP request this process makes to that server's origin is
// recorded here (method, path, status, and the bodies of the few requests
// whose records depend on them): fetch (which the FHIR client and raw()
// use) is wrapped once, and node:http / node:https requests are seen on
// node's diagnostics channels. When the server stops (SIGTERM: the read
// queue is flushed before the process exits), `careweave audit dump`
// lists the records it wrote, and compare() matches them one to one with
// the records the documented rules (src/audit/README.md, "Not recorded"
// and "Why one record per transaction Bundle") expect from those requests.
// Anything left over on either side fails the test, naming the request or
// the record.
//
// A match is on the interaction (AuditEvent.subtype) and the HTTP status
// (outcomeDesc), and on the resource type too where the request names one
// that the server serves. Records of operator tools (role `operator`: the
// CLI writing the same file), of interfaces (role `interface`: HL7 v2 feeds
// over MLLP) and records older than the server's start are not this
// server's HTTP requests and are left out. Requests whose answer never
// arrived (aborted, timed out) may or may not have a record: one record of
// the same interaction, whatever its status, is let through for each.
//
// A server started with opts.auditCheck = 'reason' (a string) skips the
// check: for tests that send requests this file cannot see (raw sockets)
// or kill the server. Keep those rare.
import dc from 'node:diagnostics_channel';

const recorders = new Map(); // origin -> recorder

/** Starts recording the requests to origin; returns the recorder. */
export function recordRequests(origin) {
  const rec = { origin, requests: [], pending: new Set(), startedAt: Date.now() };
  recorders.set(origin, rec);
  return rec;
}

/** Stops recording for rec (its requests are kept). */
export function stopRecording(rec) {
  if (recorders.get(rec.origin) === rec) recorders.delete(rec.origin);
}

function recorderOf(url) {
  try {
    return recorders.get(new URL(url).origin) ?? null;
  } catch {
    return null;
  }
}

// Only these requests need their bodies: what they record depends on them.
const needsBodies = (method, path) => method === 'POST' &&
  (/^\/fhir\/?$/.test(path) || /\/\$break-glass-end$/.test(path));

// ---- fetch -------------------------------------------------------------

const realFetch = globalThis.fetch;
globalThis.fetch = async function recordedFetch(input, init) {
  const url = typeof input === 'string' || input instanceof URL ? String(input) : input?.url;
  const rec = url ? recorderOf(url) : null;
  if (!rec) return realFetch(input, init);
  const u = new URL(url);
  const method = (init?.method ?? (typeof input === 'object' && !(input instanceof URL) ? input.method : 'GET')).toUpperCase();
  const entry = { method, path: u.pathname, query: u.search, status: null, via: 'fetch' };
  rec.requests.push(entry);
  const body = needsBodies(method, u.pathname);
  if (body) {
    if (init?.body !== undefined) entry.reqBody = typeof init.body === 'string' ? init.body : Buffer.from(init.body).toString();
    else if (input instanceof Request) entry.reqBodyPromise = input.clone().text().catch(() => null);
  }
  let res;
  try {
    res = await realFetch(input, init);
  } catch (e) {
    entry.status = null; // no answer: may or may not be recorded
    entry.error = e.message;
    throw e;
  }
  entry.status = res.status;
  // an error's outcome tells a refusal before the interaction from one in it
  if (body || res.status >= 400) {
    const p = res.clone().text().then((t) => { entry.resBody = t; }, () => {}).finally(() => rec.pending.delete(p));
    rec.pending.add(p);
  }
  return res;
};

// ---- node:http and node:https --------------------------------------------

const httpReqs = new WeakMap();
dc.subscribe('http.client.request.start', ({ request }) => {
  const host = request.getHeader('host');
  const proto = request.protocol ?? (request.agent?.protocol) ?? 'http:';
  const rec = host ? recorderOf(`${proto}//${host}`) : null;
  if (!rec) return;
  const u = new URL(request.path, `${proto}//${host}`);
  const entry = { method: request.method, path: u.pathname, query: u.search, status: null, via: 'http' };
  rec.requests.push(entry);
  httpReqs.set(request, entry);
});
dc.subscribe('http.client.response.finish', ({ request, response }) => {
  const entry = httpReqs.get(request);
  if (entry) entry.status = response.statusCode;
});

// ---- what each request should leave ----------------------------------------

const seg = (s) => s.split('/').filter(Boolean);

/** The interaction code and resource type a /fhir path records, as the
 * route table and api/trail.c name them; null: no route ("No such
 * endpoint", not recorded). */
function interactionOf(method, path) {
  const m = method === 'HEAD' ? 'GET' : method;
  // the server splits the decoded path (an encoded / is a separator)
  let p = path.replace(/^\/fhir/, '');
  try { p = decodeURIComponent(p); } catch { /* as sent */ }
  const s = seg(p);
  if (s.length > 6 || /\/\//.test(p.replace(/\/$/, ''))) return null; // no route
  // {type} and {id} match any segment not starting with _ or $: a type
  // the server does not serve is a recorded 404, an invalid id a 400
  const isType = (t) => !/^[_$]/.test(t);
  const isId = (x) => !/^[_$]/.test(x);
  if (s.length === 0) return { code: 'transaction', type: null };
  if (s.length === 1 && s[0] === '_history') return { code: 'history-system', type: null };
  // a system-level operation (GET $transitions-measures)
  if (s.length === 1 && s[0] === '$transitions-measures') return { code: 'operation', type: null, op: s[0] };
  if (!isType(s[0])) return null;
  const type = s[0];
  if (s.length === 1) {
    const code = { GET: 'search-type', POST: 'create', PUT: 'update', DELETE: 'delete' }[m];
    return code ? { code, type } : { code: null, type }; // 405: the route's record
  }
  if (s.length === 2 && s[1] === '_history') return { code: 'history-type', type };
  if (s.length === 2 && s[1] === '_search') return { code: 'search-type', type };
  // a type-level operation (POST MedicationRequest/$check)
  if (s.length === 2 && s[1].startsWith('$')) return { code: 'operation', type, op: s[1] };
  if (!isId(s[1])) return null;
  if (s.length === 2) {
    if (type === 'AuditEvent') return { code: { GET: 'read', DELETE: 'delete' }[m] ?? 'update', type };
    return { code: { PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[m] ?? 'read', type };
  }
  if (s.length === 3 && s[2] === '_history') return { code: 'history-instance', type };
  if (s.length === 4 && s[2] === '_history') return { code: 'vread', type };
  if (s.length === 3 && s[2].startsWith('$')) return { code: 'operation', type, op: s[2] };
  // a compartment search names its type; one of a type not served names
  // the compartment (Patient/X/Nope: Patient/X) instead
  if ((s.length === 3 || (s.length === 4 && s[3] === '_search')) && isType(s[2])) return { code: 'search-type', type: s[2], comp: type };
  return null;
}

// Answers that the server gives before a request is an interaction: the
// sign-in gate (401, an admin's 403, a CSRF refusal), content negotiation
// (406), no route, http/'s own limits (413, 414, 431, 408: issue code
// too-long or timeout); and a read refused because its record could not
// be kept. None is recorded. Without the answer's body (node:http), the
// limits' statuses count as http/'s own.
function unrecordedAnswer(r) {
  if (r.status === 401 || r.status === 406) return true;
  // the API's own 413 says too-costly; http/'s and libmicrohttpd's do not
  if ([408, 413, 414, 431].includes(r.status) && !/"code":"too-costly"/.test(r.resBody ?? '')) return true;
  if (r.resBody === undefined) return false;
  return /An admin account does not see clinical data|CSRF|No such endpoint|audit trail is busy|could not be recorded|must not contain NUL/.test(r.resBody);
}

/** The records r should leave: [{code, status, type}] (status null: any). */
function expectedOf(r) {
  const { method, path } = r;
  if (path.startsWith('/auth/')) {
    if (path === '/auth/login' && method === 'POST') return r.status === 400 ? [] : [{ code: '110122', status: r.status === 200 ? 200 : r.status }];
    // a sign-out refused before it knows who (401, a CSRF refusal) is not one
    if (path === '/auth/logout' && method === 'POST') return r.status === 401 || unrecordedAnswer(r) ? [] : [{ code: '110123', status: r.status }];
    return [];
  }
  // CDS Hooks (src/api/cds.c): discovery holds no health data and is not
  // recorded; a call of a service (POST /cds-services/{id}, one segment)
  // that passed the sign-in gate is one operation record, whatever its
  // answer, naming no resource type
  if (/^\/cds-services(\/|$)/.test(path)) {
    if (!/^\/cds-services\/[^/]+\/?$/.test(path)) return [];
    if (r.status !== null && unrecordedAnswer(r)) return [];
    return [{ code: 'operation', status: r.status, type: null }];
  }
  if (!/^\/fhir(\/|$)/.test(path)) return [];
  if ((method === 'GET' || method === 'HEAD') && /^\/fhir\/metadata\/?$/.test(path)) return [];
  const it = interactionOf(method, path);
  if (!it) return [];
  if (r.status !== null && unrecordedAnswer(r)) return [];
  if (it.code === 'transaction' && method === 'POST') return bundleExpected(r);
  if (it.op === '$break-glass' && r.status === 200) return [{ code: 'BTG', status: 200, type: 'Patient' }];
  if (it.op === '$break-glass-end' && r.status === 200) {
    let n = 1;
    try { n = JSON.parse(r.resBody).parameter.filter((p) => p.name === 'grant').length; } catch { /* one */ }
    return Array.from({ length: n }, () => ({ code: 'BTG', status: 200, type: 'Patient' }));
  }
  return [{ code: codeOf(it, method, r.status), status: r.status, type: it.type, comp: it.comp }];
}

// An update that created the resource (201: a conditional update with no
// match, an update of an id that did not exist) is recorded as a create.
function codeOf(it, method, status) {
  if (!it.code) return '*';
  if (it.code === 'update' && method === 'PUT' && status === 201) return ['update', 'create'];
  return it.code;
}

function bundleExpected(r) {
  let bundle = null;
  let answer = null;
  try { bundle = JSON.parse(r.reqBody); } catch { /* not a Bundle */ }
  try { answer = JSON.parse(r.resBody); } catch { /* an outcome, or none */ }
  const entries = Array.isArray(bundle?.entry) ? bundle.entry : [];
  const ok = r.status === 200 && answer?.resourceType === 'Bundle';
  const entryRecords = () => entries.flatMap((e, i) => {
    const m = String(e?.request?.method ?? '').toUpperCase();
    const url = String(e?.request?.url ?? '').split('?')[0];
    const st = parseInt(answer?.entry?.[i]?.response?.status ?? '', 10);
    const inner = { method: m, path: `/fhir/${url.replace(/^\//, '')}`, status: Number.isNaN(st) ? null : st,
      resBody: JSON.stringify(answer?.entry?.[i]?.response?.outcome ?? '') };
    if (!m || ((m === 'GET' || m === 'HEAD') && /^metadata\/?$/.test(url))) return [];
    const it = interactionOf(m, inner.path);
    if (!it || (inner.status !== null && unrecordedAnswer(inner))) return [];
    return [{ code: codeOf(it, m, inner.status), status: inner.status, type: it.type }];
  });
  if (bundle?.type === 'batch' && ok) return entryRecords();
  if (bundle?.type === 'transaction' && ok) {
    // one record for the writes; each GET entry its own
    const gets = entryRecords().filter((x) => ['read', 'vread', 'search-type', 'history-instance', 'history-type', 'history-system', 'operation'].includes(x.code));
    return [{ code: 'transaction', status: 200, type: null }, ...gets];
  }
  // a refused Bundle (not one, a failed transaction): the request's record
  return [{ code: 'transaction', status: r.status, type: null }];
}

// ---- the comparison ----------------------------------------------------------

const short = (s) => (s.length > 160 ? `${s.slice(0, 160)}...(${s.length} characters)` : s);
const subOf = (e) => e.subtype?.[0]?.code ?? '-';
const statusOf = (e) => parseInt(String(e.outcomeDesc ?? '').replace(/^HTTP /, ''), 10);
const typeOf = (e) => {
  const w = (e.entity ?? []).find((x) => !x.role)?.what;
  if (!w) return null;
  return (w.reference ?? w.type ?? '').split('/')[0] || null;
};
const show = (e) => `AuditEvent/${e.id} ${subOf(e)} ${e.action} HTTP ${statusOf(e)} ${(e.entity ?? []).filter((x) => !x.role).map((x) => x.what?.reference ?? x.what?.type).join(' ')} by ${e.agent?.[0]?.who?.identifier?.value ?? '-'}`;

/**
 * Compares the requests of rec with the records (AuditEvent JSON) the
 * server wrote. Returns a list of problems (empty: every request left
 * exactly its records).
 */
export async function compare(rec, records) {
  await Promise.all([...rec.pending]);
  for (const r of rec.requests) if (r.reqBodyPromise) r.reqBody = await r.reqBodyPromise;
  // the rules' own writes (role rules) follow from a change, not a request;
  // an interface's (role interface: an HL7 v2 feed) came over MLLP, not HTTP;
  // a Subscription's deliveries (DICOM 110106 Export) and the status
  // careweave sets on it (role notify) come from the delivery thread
  const actual = records.filter((e) => !['operator', 'rules', 'interface', 'notify'].includes(e.agent?.[0]?.role?.[0]?.coding?.[0]?.code) &&
    e.type?.code !== '110106' &&
    Date.parse(e.recorded) >= rec.startedAt - 5);
  const used = new Array(actual.length).fill(false);
  const problems = [];
  const take = (pred) => {
    const i = actual.findIndex((e, k) => !used[k] && pred(e));
    if (i >= 0) used[i] = true;
    return i >= 0;
  };
  const want = [];
  const maybe = [];
  for (const r of rec.requests) {
    if (r.status === null) {
      const it = r.path.startsWith('/fhir') ? interactionOf(r.method, r.path) : null;
      maybe.push({ r, code: r.path === '/auth/login' ? '110122' : r.path.startsWith('/cds-services/') ? 'operation' : it?.code ?? null });
      continue;
    }
    for (const x of expectedOf(r)) want.push({ r, ...x });
  }
  const codeOk = (w, e) => w.code === '*' || (Array.isArray(w.code) ? w.code.includes(subOf(e)) : subOf(e) === w.code);
  const statusOk = (w, e) => w.status === null || statusOf(e) === w.status;
  // first the exact matches (type included), then the rest: a record that
  // names no type (a type the server does not serve) matches on the
  // interaction and status alone
  // loose ones (either of two codes) last, so they take what is left
  want.sort((a, b) => Number(Array.isArray(a.code)) - Number(Array.isArray(b.code)));
  const left = want.filter((w) => !(w.type && take((e) => codeOk(w, e) && statusOk(w, e) && typeOf(e) === w.type)));
  for (const w of left) {
    const ok = take((e) => codeOk(w, e) && statusOk(w, e) &&
      (!w.type || typeOf(e) === w.type || typeOf(e) === null || (w.comp && typeOf(e) === w.comp)));
    if (!ok) problems.push(`${w.r.method} ${short(w.r.path + (w.r.query ?? ''))} -> ${w.r.status ?? 'no answer'}: no ${[w.code].flat().join(' or ')} record with HTTP ${w.status ?? 'any'}${w.type ? ` on ${w.type}` : ''}`);
  }
  for (const m of maybe) take((e) => !m.code || subOf(e) === m.code);
  actual.forEach((e, k) => { if (!used[k]) problems.push(`${show(e)}: a record no request of this test explains`); });
  return problems;
}

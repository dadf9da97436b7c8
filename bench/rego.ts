/**
 * Rego decision time, in-process.
 *   npx tsc -p . && node dist/bench/rego.js
 * 1. The examples/rego RBAC+ABAC policy: median per `data.ecommerce.authz.allow` decision
 *    (allowed and denied inputs), input given as Rego values (as a sidecar would after parsing).
 * 2. A 1,000-rule policy (`allow if { input.method == ..; input.path == ..; glob.match(..) }`),
 *    with and without the equality index, for the last rule's request and a non-matching one.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileModules, fromJSON, parseJSONExact } from '../src/rego/index.js';
import { nsPerCall } from './util.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** This benchmark's batch size and rounds where a row gives none (smaller batches than bench/util.ts's default). */
const BATCH = 2000;
const ROUNDS = 25;

function fmt(ns: number): string {
  return ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`;
}

// ---- 1. example policy ----
const ex = join(root, 'examples', 'rego', 'policy');
const reqs = join(root, 'examples', 'rego', 'requests');
const policy = compileModules({ 'policy.rego': readFileSync(join(ex, 'policy.rego'), 'utf8') });
const data = parseJSONExact(readFileSync(join(ex, 'data.json'), 'utf8'));
const allowInput = parseJSONExact(readFileSync(join(reqs, 'allowed.json'), 'utf8'));
const denyInput = parseJSONExact(readFileSync(join(reqs, 'denied-not-owner.json'), 'utf8'));
const path = ['ecommerce', 'authz', 'allow'];
if (policy.evalPath(path, { input: allowInput, data, raw: true }) !== true) throw new Error('example policy should allow');
if (policy.evalPath(path, { input: denyInput, data, raw: true }) !== false) throw new Error('example policy should deny');
const rows: string[][] = [];
rows.push(['example policy, allowed', fmt(nsPerCall(() => policy.evalPath(path, { input: allowInput, data, raw: true }), BATCH, ROUNDS))]);
rows.push(['example policy, denied', fmt(nsPerCall(() => policy.evalPath(path, { input: denyInput, data, raw: true }), BATCH, ROUNDS))]);
rows.push(['example policy, allowed (query string API)', fmt(nsPerCall(() => policy.evalRaw('data.ecommerce.authz.allow', { input: allowInput, data, raw: true }), BATCH, ROUNDS))]);

// ---- 2. 1,000 rules ----
const N = 1000;
let src = 'package big\n\nimport rego.v1\n\ndefault allow := false\n\n';
for (let i = 0; i < N; i++) {
  const m = i % 2 ? 'GET' : 'POST';
  src += `allow if {\n\tinput.path == "/api/v1/items/${i}"\n\tinput.method == "${m}"\n\tglob.match("spiffe://cluster.local/ns/prod/sa/client-*", ["/"], input.principal)\n}\n\n`;
}
const indexed = compileModules({ 'big.rego': src });
const plain = compileModules({ 'big.rego': src }, { indexing: false });
const hit = fromJSON({ path: `/api/v1/items/${N - 1}`, method: 'GET', principal: 'spiffe://cluster.local/ns/prod/sa/client-7' });
const miss = fromJSON({ path: '/api/v1/unknown', method: 'GET', principal: 'spiffe://cluster.local/ns/prod/sa/client-7' });
for (const p of [indexed, plain]) {
  if (p.evalPath(['big', 'allow'], { input: hit, raw: true }) !== true) throw new Error('1,000-rule policy should allow');
  if (p.evalPath(['big', 'allow'], { input: miss, raw: true }) !== false) throw new Error('1,000-rule policy should deny');
}
rows.push([`${N} rules, indexed, last rule matches`, fmt(nsPerCall(() => indexed.evalPath(['big', 'allow'], { input: hit, raw: true }), BATCH, ROUNDS))]);
rows.push([`${N} rules, indexed, no rule matches`, fmt(nsPerCall(() => indexed.evalPath(['big', 'allow'], { input: miss, raw: true }), BATCH, ROUNDS))]);
rows.push([`${N} rules, no index, last rule matches`, fmt(nsPerCall(() => plain.evalPath(['big', 'allow'], { input: hit, raw: true }), 50, 15))]);
rows.push([`${N} rules, no index, no rule matches`, fmt(nsPerCall(() => plain.evalPath(['big', 'allow'], { input: miss, raw: true }), 50, 15))]);

// ---- 3. 1,000 rules distinguished only by glob patterns (glob pre-filter) ----
let gsrc = 'package globs\n\nimport rego.v1\n\ndefault allow := false\n\n';
for (let i = 0; i < N; i++) gsrc += `allow if {\n\tglob.match("/api/v1/tenants/t${i}/**", ["/"], input.path)\n\tinput.method in {"GET", "HEAD"}\n}\n\n`;
const gIdx = compileModules({ 'g.rego': gsrc });
const gPlain = compileModules({ 'g.rego': gsrc }, { indexing: false });
const gHit = fromJSON({ path: `/api/v1/tenants/t${N - 1}/orders/7`, method: 'GET' });
for (const p of [gIdx, gPlain]) if (p.evalPath(['globs', 'allow'], { input: gHit, raw: true }) !== true) throw new Error('glob policy should allow');
rows.push([`${N} glob rules, pre-filtered, last rule matches`, fmt(nsPerCall(() => gIdx.evalPath(['globs', 'allow'], { input: gHit, raw: true }), 200, 15))]);
rows.push([`${N} glob rules, no index, last rule matches`, fmt(nsPerCall(() => gPlain.evalPath(['globs', 'allow'], { input: gHit, raw: true }), 50, 15))]);

const w = Math.max(...rows.map((r) => r[0].length));
console.log('Rego decision time (median per decision)');
for (const [a, b] of rows) console.log(`${a.padEnd(w)}  ${b}`);

/**
 * Authorization decision time and compile time.
 *   npm run build && node dist/bench/authz.js
 * Decision: median ns per `authorize` for a workload with 10, 100 and 1,000 ALLOW policies
 * (plus a deny-all), for a request the last policy allows and for one that none allows.
 * Compile: 10,000 policies over 1,000 workloads (validate YAML, compile, select per workload).
 */
import { parseConfigTexts } from '../src/config/load.js';
import { compile } from '../src/policy/snapshot.js';
import { authorize, authorizeFor } from '../src/policy/engine.js';
import type { AuthzInput } from '../src/policy/request.js';
import { nsPerCall, printTable, timeMs } from './util.js';

function policyYaml(i: number, ns: string, app: string): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: p${i}
  namespace: ${ns}
spec:
  selector:
    matchLabels:
      app: ${app}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/${ns}/sa/client-${i}"]
    to:
    - operation:
        methods: ["GET", "POST"]
        paths: ["/api/v1/items/${i}/*", "/api/v1/orders/${i}"]
    when:
    - key: request.headers[x-tenant]
      values: ["tenant-${i % 7}"]
`;
}

function decisionBench(n: number) {
  const docs = ['apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: prod}\nspec: {}\n'];
  for (let i = 0; i < n; i++) docs.push(policyYaml(i, 'prod', 'svc'));
  const res = parseConfigTexts([{ file: 'bench.yaml', text: docs.join('---\n') }]);
  if (!res.ok) throw new Error(res.errors[0].format());
  const snap = compile(res.config);
  const last = n - 1;
  const mk = (principal: string, path: string): AuthzInput => ({
    workload: { namespace: 'prod', labels: { app: 'svc', version: 'v1' } },
    port: 8080,
    source: { principal, ip: '10.0.0.1' },
    request: { method: 'GET', path, host: 'svc', headers: { 'x-tenant': `tenant-${last % 7}`, 'user-agent': 'bench' } },
  });
  const allowed = mk(`spiffe://cluster.local/ns/prod/sa/client-${last}`, `/api/v1/items/${last}/detail?x=1`);
  const denied = mk('spiffe://cluster.local/ns/prod/sa/stranger', '/api/v1/items/1/detail');
  const opts = { pathNormalization: snap.mesh.pathNormalization };
  if (authorize(snap.authz, allowed, opts).decision !== 'ALLOW') throw new Error('bench request should be allowed');
  if (authorize(snap.authz, denied, opts).decision !== 'DENY') throw new Error('bench request should be denied');
  const preNormalized = { ...opts, pathIsNormalized: true };
  const allowedNorm = { ...allowed, request: { ...allowed.request, path: `/api/v1/items/${last}/detail` } };
  const set = snap.authz.forWorkload(allowed.workload);
  return {
    sidecar: nsPerCall(() => authorizeFor(set, allowed, opts)),
    allow: nsPerCall(() => authorize(snap.authz, allowed, opts)),
    allowPre: nsPerCall(() => authorize(snap.authz, allowedNorm, preNormalized)),
    deny: nsPerCall(() => authorize(snap.authz, denied, opts), 2_000, 15),
  };
}

function compileBench() {
  const workloads = 1000;
  const perWorkload = 10;
  const docs: string[] = [];
  for (let w = 0; w < workloads; w++) for (let j = 0; j < perWorkload; j++) docs.push(policyYaml(w * perWorkload + j, `ns${w % 50}`, `app${w}`));
  const text = docs.join('---\n');
  let res!: ReturnType<typeof parseConfigTexts>;
  const parseMs = timeMs(() => (res = parseConfigTexts([{ file: 'big.yaml', text }])));
  if (!res.ok) throw new Error(res.errors[0].format());
  const config = res.config;
  let snap!: ReturnType<typeof compile>;
  const compileMs = timeMs(() => (snap = compile(config)));
  const selectMs = timeMs(() => {
    for (let w = 0; w < workloads; w++) snap.authz.forWorkload({ namespace: `ns${w % 50}`, labels: { app: `app${w}` } });
  });
  return { policies: workloads * perWorkload, workloads, parseMs, compileMs, selectMs };
}

const rows: (string | number)[][] = [];
const results: Record<string, ReturnType<typeof decisionBench>> = {};
for (const n of [10, 100, 1000]) {
  const r = decisionBench(n);
  results[n] = r;
  rows.push([n, (r.sidecar / 1000).toFixed(2), (r.allow / 1000).toFixed(2), (r.allowPre / 1000).toFixed(2), (r.deny / 1000).toFixed(2)]);
}
printTable('authorize(): median µs per decision (request allowed by the LAST policy; request denied with explanation)', ['policies', 'sidecar path µs', 'allow µs (with workload lookup)', 'allow (path pre-normalized) µs', 'deny+explain µs'], rows);
console.log(`ratio 100/10 policies (sidecar path): ${(results[100].sidecar / results[10].sidecar).toFixed(2)}x; 1000/10: ${(results[1000].sidecar / results[10].sidecar).toFixed(2)}x`);
const c = compileBench();
printTable('compile: 10,000 policies over 1,000 workloads', ['policies', 'workloads', 'parse+validate ms', 'compile ms', 'select all workloads ms', 'compile+select ms'], [
  [c.policies, c.workloads, c.parseMs.toFixed(0), c.compileMs.toFixed(0), c.selectMs.toFixed(0), (c.compileMs + c.selectMs).toFixed(0)],
]);

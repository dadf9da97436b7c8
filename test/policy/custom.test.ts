import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../../src/config/load.js';
import { compile } from '../../src/policy/snapshot.js';
import { authorize, authorizeAsync } from '../../src/policy/engine.js';
import { buildCustomProviders } from '../../src/policy/custom.js';
import type { AuthzInput } from '../../src/policy/request.js';
import { runCli } from '../helpers.js';

const ORDERS = ['-c', 'examples/rego/mesh/config', '-c', 'examples/ecommerce/policies', '--requests', 'examples/rego/mesh/requests.jsonl', '-o', 'json'];

test('Rego CUSTOM provider: the RBAC+ABAC example decides through authz check (business hours from --now)', () => {
  const day = runCli(['authz', 'check', ...ORDERS, '--now', '2026-03-02T10:30:00Z']);
  assert.equal(day.code, 0, day.stdout + day.stderr);
  const rows = day.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.length, 6);
  for (const r of rows) assert.equal(r.expectationHeld, true, JSON.stringify(r));
  const denied = rows.find((r) => r.name === "alice reads bob's order");
  assert.deepEqual([denied.action, denied.policy, denied.custom.provider, denied.custom.allowed], ['CUSTOM', 'production/order-service-rbac-abac', 'ecommerce-rbac', false]);
  const night = runCli(['authz', 'check', ...ORDERS, '--now', '2026-03-02T20:30:00Z']);
  assert.equal(night.code, 1);
  const first = JSON.parse(night.stdout.split('\n')[0]);
  assert.deepEqual([first.name, first.decision, first.action], ['alice reads her order', 'DENY', 'CUSTOM']);
});

function tempConfig(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ztm-custom-'));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}

const mesh = (provider: string) => `apiVersion: ztmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  extensionProviders:\n${provider}\n`;
const customPolicy = `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ext, namespace: app}\nspec:\n  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n`;
const input = (path: string, headers: Record<string, string> = {}): AuthzInput => ({ workload: { namespace: 'app', labels: {} }, source: { principal: 'cluster.local/ns/app/sa/client' }, request: { method: 'GET', path, headers } });

test('a Rego syntax error rejects the configuration with the module file, line and column', () => {
  const dir = tempConfig({
    'config/mesh.yaml': mesh('  - name: ext\n    rego: {modules: ["../rego/bad.rego"]}'),
    'config/p.yaml': customPolicy,
    'rego/bad.rego': 'package envoy.authz\n\nallow if {\n  input.x ==\n}\n',
  });
  const res = loadConfig([join(dir, 'config')]);
  assert.equal(res.ok, false);
  const e = res.errors[0];
  assert.equal(e.code, 'ZTM_REGO_PARSE');
  assert.match(String(e.position.file), /bad\.rego$/);
  assert.equal(e.position.line, 5);
});

test('Rego decisions as objects: status, headers and body of the denial; input has parsed_path and parsed_query', () => {
  const dir = tempConfig({
    'config/mesh.yaml': mesh('  - name: ext\n    rego: {modules: ["../rego/p.rego"], decision: "envoy/authz/result"}'),
    'config/p.yaml': customPolicy,
    'rego/p.rego': [
      'package envoy.authz',
      'import rego.v1',
      'default result := {"allowed": false, "http_status": 401, "headers": {"www-authenticate": "Bearer"}, "body": "who are you?"}',
      'result := {"allowed": true} if {',
      '  input.parsed_path == ["api", "items"]',
      '  input.parsed_query.page == ["2"]',
      '  input.attributes.source.principal == "spiffe://cluster.local/ns/app/sa/client"',
      '  input.attributes.request.http.headers["x-key"] == "k1"',
      '}',
    ].join('\n'),
  });
  const res = loadConfig([join(dir, 'config')]);
  assert.ok(res.ok, res.ok ? '' : res.errors.map((e) => e.format()).join('\n'));
  const snap = compile(res.config);
  const opts = { custom: snap.custom.sync };
  assert.equal(authorize(snap.authz, input('/api/items?page=2', { 'X-Key': 'k1' }), opts).decision, 'ALLOW');
  const d = authorize(snap.authz, input('/api/items?page=3', { 'X-Key': 'k1' }), opts);
  assert.deepEqual([d.decision, d.status, d.custom?.body, d.custom?.headers], ['DENY', 401, 'who are you?', { 'www-authenticate': 'Bearer' }]);
});

test('external OPA provider: REST Data API, timeout and failing closed (or open when configured)', async () => {
  let delay = 0;
  const seen: unknown[] = [];
  const opa = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ url: req.url, body: JSON.parse(body) });
      const allowed = JSON.parse(body).input.attributes.request.http.path.startsWith('/ok');
      setTimeout(() => res.end(JSON.stringify({ result: allowed })), delay);
    });
  });
  await new Promise<void>((r) => opa.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(opa.address() as AddressInfo).port}`;
  try {
    // Generous timeouts where the answer must arrive (a loaded CI machine), a short one to test the timeout.
    const build = (extra: string, timeout = '5s') => {
      const dir = tempConfig({ 'config/mesh.yaml': mesh(`  - name: ext\n    opa: {url: "${url}", path: "envoy/authz/allow", timeout: ${timeout}${extra}}`), 'config/p.yaml': customPolicy });
      const res = loadConfig([join(dir, 'config')]);
      assert.ok(res.ok);
      return compile(res.config);
    };
    const snap = build('');
    assert.equal(snap.custom.hasAsync, true);
    const set = snap.authz.forWorkload({ namespace: 'app', labels: {} });
    const run = (s: typeof snap, path: string) => authorizeAsync(s.authz.forWorkload({ namespace: 'app', labels: {} }), input(path), { custom: s.custom.async });
    assert.equal((await run(snap, '/ok')).decision, 'ALLOW');
    assert.equal((await run(snap, '/no')).decision, 'DENY');
    assert.equal((seen[0] as { url: string }).url, '/v1/data/envoy/authz/allow');
    delay = 1000;
    const slow = await run(build('', '100ms'), '/ok');
    assert.equal(slow.decision, 'DENY');
    assert.match(slow.reason, /failing closed/);
    const open = build(', failOpen: true', '100ms');
    assert.equal((await run(open, '/no')).decision, 'ALLOW', 'failOpen admits when OPA is unavailable');
    delay = 0;
    // The synchronous path refuses an external provider rather than guessing.
    assert.equal(authorize(snap.authz, input('/ok'), { custom: snap.custom.sync }).decision, 'DENY');
    assert.ok(set.custom.length === 1);
    // A provider name that MeshConfig does not define fails closed.
    const none = buildCustomProviders({ ...snap.mesh, extensionProviders: [] });
    assert.equal(authorize(snap.authz, input('/ok'), { custom: none.sync }).decision, 'DENY');
  } finally {
    await new Promise<void>((r) => opa.close(() => r()));
  }
});

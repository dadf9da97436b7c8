import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers.js';

test('ztmesh validate: the examples are valid (exit 0)', () => {
  const r = runCli(['validate', 'examples/ecommerce/policies', 'examples/ecommerce/edge', 'examples/bookinfo/policies']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /valid: .*AuthorizationPolicy/);
});

test('ztmesh validate: every error as file:line:col field: message, exit 1; json output', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ztm-val-'));
  const f = join(dir, 'bad.yaml');
  writeFileSync(
    f,
    'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: x}\nspec:\n  action: DENY\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: b, namespace: x}\nspec:\n  rules:\n  - to:\n    - operation: {methods: [get]}\n',
  );
  const r = runCli(['validate', dir], { cwd: dir });
  assert.equal(r.code, 1);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 2, r.stdout);
  assert.match(lines[0], /^bad\.yaml:5:3 spec\.rules: .*DENY action without `rules`/);
  assert.match(lines[1], /^bad\.yaml:13:29 spec\.rules\[0\]\.to\[0\]\.operation\.methods\[0\]: .*must be upper case/);
  const j = runCli(['validate', '--output', 'json', dir], { cwd: dir });
  assert.equal(j.code, 1);
  const parsed = JSON.parse(j.stdout);
  assert.equal(parsed.valid, false);
  assert.equal(parsed.errors.length, 2);
  assert.deepEqual([parsed.errors[1].line, parsed.errors[1].col, parsed.errors[1].field], [13, 29, 'spec.rules[0].to[0].operation.methods[0]']);
});

test('ztmesh authz check over the e-commerce and bookinfo examples: every expectation holds', () => {
  for (const ex of ['ecommerce', 'bookinfo']) {
    const r = runCli(['authz', 'check', '-c', `examples/${ex}/policies`, '--requests', `examples/${ex}/requests.jsonl`, '--output', 'json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(rows.length >= 7);
    for (const row of rows) assert.equal(row.expectationHeld, true, JSON.stringify(row));
  }
});

test('ztmesh authz check: one request by flags, with explanation and exit status', () => {
  const allow = runCli(['authz', 'check', '-c', 'examples/ecommerce/policies', '--workload-namespace', 'production', '--workload-labels', 'app=payment-service', '--source-principal', 'cluster.local/ns/production/sa/order-service', '--method', 'POST', '--path', '/api/v1/charges', '-o', 'json']);
  assert.equal(allow.code, 0, allow.stderr);
  const d = JSON.parse(allow.stdout);
  assert.deepEqual([d.decision, d.status, d.policy, d.rule, d.action, d.normalizedPath], ['ALLOW', 200, 'production/payment-service-allow-order-service', 0, 'ALLOW', '/api/v1/charges']);
  assert.deepEqual(d.dryRun, []);
  assert.deepEqual(d.audit, []);

  const deny = runCli(['authz', 'check', '-c', 'examples/ecommerce/policies', '--workload-namespace', 'production', '--workload-labels', 'app=user-service', '--source-principal', 'cluster.local/ns/production/sa/order-service', '--path', '/api/v1/users']);
  assert.equal(deny.code, 1);
  assert.match(deny.stdout, /DENY/);
  assert.match(deny.stdout, /no ALLOW policy matched/);
  assert.match(deny.stdout, /production\/allow-nothing: it has no rules/);

  const bad = runCli(['authz', 'check', '-c', 'examples/ecommerce/policies', '--workload-namespace', 'production', '--path', '/x%00', '-o', 'json']);
  assert.equal(bad.code, 1);
  assert.equal(JSON.parse(bad.stdout).status, 400);

  const usage = runCli(['authz', 'check', '-c', 'examples/ecommerce/policies', '--path', '/x']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--workload-namespace is required/);
});

test('ztmesh authz check: malformed JSONL lines and failed expectations fail the run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ztm-req-'));
  const f = join(dir, 'r.jsonl');
  writeFileSync(
    f,
    [
      '{"expect":"ALLOW","workload":{"namespace":"production","labels":{"app":"user-service"}},"request":{"method":"GET","path":"/"}}',
      '{"workload":{"namespace":"production"},"request":{"method":"GET"}}',
      'not json',
    ].join('\n'),
  );
  const r = runCli(['authz', 'check', '-c', 'examples/ecommerce/policies', '--requests', f, '-o', 'json']);
  assert.equal(r.code, 1);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows[0].expectationHeld, false);
  assert.match(rows[1].error.message, /r\.jsonl:2: request\.path: is required/);
  assert.match(rows[2].error.message, /r\.jsonl:3: not valid JSON/);
});

test('ztmesh authz check refuses an invalid config with exit 4', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ztm-badcfg-'));
  writeFileSync(join(dir, 'p.yaml'), 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {action: DENY}\n');
  const r = runCli(['authz', 'check', '-c', dir, '--workload-namespace', 'default', '--path', '/']);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /p\.yaml:4:7 spec\.rules: .*DENY action without/);
});

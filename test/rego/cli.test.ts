import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(repo, 'bin', 'ztmesh.js'), ...args], { cwd: repo, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('rego eval prints opa eval JSON', () => {
  const r = cli(['rego', 'eval', '-d', 'examples/rego/policy', '-i', 'examples/rego/requests/allowed.json', 'data.ecommerce.authz.allow']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.result[0].expressions[0].value, true);
  assert.equal(out.result[0].expressions[0].text, 'data.ecommerce.authz.allow');
  assert.deepEqual(out.result[0].expressions[0].location, { row: 1, col: 1 });
  const d = cli(['rego', 'eval', '-d', 'examples/rego/policy', '-i', 'examples/rego/requests/denied-not-owner.json', 'data.ecommerce.authz.decision']);
  const dv = JSON.parse(d.stdout).result[0].expressions[0].value;
  assert.equal(dv.allow, false);
  assert.deepEqual(dv.reasons, ['caller does not own the resource']);
});

test('rego eval with bindings and undefined results', () => {
  const r = cli(['rego', 'eval', 'x := [1, 2][_]; x > 1']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.result.length, 1);
  assert.deepEqual(out.result[0].bindings, { x: 2 });
  const u = cli(['rego', 'eval', 'input.nope']);
  assert.equal(u.stdout.trim(), '{}');
});

test('rego eval reports parse errors with position', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rego-cli-'));
  writeFileSync(join(dir, 'bad.rego'), 'package bad\n\np := [1,\n');
  const r = cli(['rego', 'eval', '-d', dir, 'data.bad.p']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /ZTM_REGO_PARSE: .*bad\.rego:4:1: rego_parse_error/);
});

test('rego test runs the example tests green', () => {
  const r = cli(['rego', 'test', 'examples/rego']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /test_owner_with_user_role_in_hours_allowed: PASS/);
  assert.match(r.stdout, /PASS: \d+\/\d+/);
});

test('rego test exits 1 and prints FAIL on failing tests', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rego-cli-'));
  writeFileSync(join(dir, 'x_test.rego'), 'package x\nimport rego.v1\ntest_ok if true\ntest_bad if 1 == 2\n');
  const r = cli(['rego', 'test', dir]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /data\.x\.test_ok: PASS/);
  assert.match(r.stdout, /data\.x\.test_bad: FAIL/);
  assert.match(r.stdout, /FAIL: 1\/2/);
});

test('rego eval reports evaluation errors in opa eval shape', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rego-cli-'));
  writeFileSync(join(dir, 'c.rego'), 'package c\np := 1\np := 2 if true\n');
  const r = cli(['rego', 'eval', '-d', dir, 'data.c.p']);
  assert.equal(r.code, 1);
  const out = JSON.parse(r.stdout);
  assert.equal(out.errors[0].code, 'eval_conflict_error');
  assert.match(out.errors[0].message, /complete rules must not produce multiple outputs/);
  assert.equal(out.errors[0].location.row, 2);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { runAll } from '../../src/rego/conformance/runner.js';
import { repoRoot } from '../helpers.js';

// The conformance data lives in shared/, beside the checkout (as in CI); ZTMESH_CONFORMANCE_DIR overrides.
const OPA = process.env.ZTMESH_CONFORMANCE_DIR ?? join(repoRoot, '..', 'shared', 'conformance', 'opa');
const TIER1 = join(OPA, 'tier1');
const TIER2 = join(OPA, 'tier2');
test('the OPA conformance cases are present', () => {
  assert.ok(existsSync(TIER1) && existsSync(TIER2), `OPA conformance cases not found at ${OPA} (set ZTMESH_CONFORMANCE_DIR)`);
});

test('OPA conformance tier1 pass rate is at least 99%', () => {
  const r = runAll([TIER1]);
  const rate = r.passed / (r.passed + r.failed);
  const failing = r.outcomes.filter((o) => !o.pass).map((o) => o.c.note);
  assert.ok(r.passed + r.failed > 800, 'tier1 cases were loaded');
  assert.ok(rate >= 0.99, `tier1 pass rate ${(rate * 100).toFixed(2)}%; failing: ${failing.join(', ')}`);
});

test('OPA conformance tier2 pass rate is at least 90%', () => {
  const r = runAll([TIER2]);
  const rate = r.passed / (r.passed + r.failed);
  assert.ok(rate >= 0.9, `tier2 pass rate ${(rate * 100).toFixed(2)}%`);
});

test('runner judges YAML cases like OPA (want_result sets, sort_bindings, errors, strict)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rego-conf-'));
  mkdirSync(join(dir, 'demo'));
  writeFileSync(
    join(dir, 'demo', 'cases.yaml'),
    `cases:
- note: demo/complete
  query: data.t.p = x
  modules:
  - |
    package t
    p := 1.0
  want_result:
  - x: 1
- note: demo/set as sorted array
  query: data.t.s = x
  modules:
  - |
    package t
    s contains v if some v in [3, 1, 2]
  sort_bindings: true
  want_result:
  - x: [1, 2, 3]
- note: demo/undefined
  query: data.t.nope = x
  modules: ["package t"]
  want_result: []
- note: demo/strict error
  query: data.t.d = x
  modules:
  - |
    package t
    d := 1 / 0
  strict_error: true
  want_error_code: eval_builtin_error
  want_error: divide by zero
- note: demo/wrong expectation
  query: data.t.p = x
  modules:
  - |
    package t
    p := 2
  want_result:
  - x: 3
- note: demo/big integers
  query: x = 18446744073709551616 + 1
  modules: ["package t"]
  want_result:
  - x: 18446744073709551617
`,
  );
  const r = runAll([dir]);
  const byNote = new Map(r.outcomes.map((o) => [o.c.note, o]));
  assert.equal(r.outcomes.length, 6);
  assert.equal(byNote.get('demo/complete')?.pass, true, byNote.get('demo/complete')?.reason);
  assert.equal(byNote.get('demo/set as sorted array')?.pass, true, byNote.get('demo/set as sorted array')?.reason);
  assert.equal(byNote.get('demo/undefined')?.pass, true);
  assert.equal(byNote.get('demo/strict error')?.pass, true, byNote.get('demo/strict error')?.reason);
  assert.equal(byNote.get('demo/wrong expectation')?.pass, false);
  assert.match(byNote.get('demo/wrong expectation')?.reason ?? '', /unexpected result/);
  assert.equal(byNote.get('demo/big integers')?.pass, true, byNote.get('demo/big integers')?.reason);
  assert.equal(r.outcomes[0].c.folder, 'demo');
});

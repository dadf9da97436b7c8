import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runAll } from '../../src/rego/conformance/runner.js';

const TIER1 = '/work/shared/conformance/opa/tier1';
const TIER2 = '/work/shared/conformance/opa/tier2';

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

/**
 * Validation of the gateway's kinds (file:line field path on every error): RateLimitPolicy
 * windows up to month and year (Kong's ordering rule), and `path` for limitBy: path;
 * RequestAuthentication jwtRules[].timeout (Istio's Duration rule: valid and at least 1ms).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorsOf, snapshotOf } from '../helpers.js';

const rl = (spec: string) => `apiVersion: ztmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: r, namespace: istio-system}
spec:
${spec}`;

test('RateLimitPolicy: month and year windows are accepted', () => {
  const s = snapshotOf(rl('  limits: {second: 1, minute: 10, hour: 100, day: 1000, month: 10000, year: 100000}'));
  assert.ok(s);
  assert.deepEqual(errorsOf(rl('  limits: {year: 5}')), []);
});

test('RateLimitPolicy: a longer window may not allow fewer requests (Kong), month and year included', () => {
  assert.match(errorsOf(rl('  limits: {day: 100, month: 50}')).join('\n'), /bad\.yaml:5:\d+ spec\.limits\.month: .*limit for month \(50\) must not be smaller than the limit for day \(100\)/);
  assert.match(errorsOf(rl('  limits: {minute: 100, year: 50}')).join('\n'), /spec\.limits\.year: .*limit for year \(50\) must not be smaller than the limit for minute \(100\)/);
  assert.match(errorsOf(rl('  limits: {month: 0}')).join('\n'), /spec\.limits\.month/);
  assert.match(errorsOf(rl('  limits: {week: 1}')).join('\n'), /spec\.limits\.week/);
  assert.match(errorsOf(rl('  limits: {}')).join('\n'), /at least one of second, minute, hour, day, month, year must be set/);
});

test('RateLimitPolicy limitBy: path needs `path`, which must start with "/" (Kong)', () => {
  assert.deepEqual(errorsOf(rl('  limits: {minute: 5}\n  limitBy: path\n  path: /api/login')), []);
  assert.match(errorsOf(rl('  limits: {minute: 5}\n  limitBy: path')).join('\n'), /^bad\.yaml:5:3 spec\.path: .*path is required when limitBy is path/m);
  assert.match(errorsOf(rl('  limits: {minute: 5}\n  limitBy: path\n  path: api/login')).join('\n'), /^bad\.yaml:7:9 spec\.path: .*path "api\/login" must start with "\/"/m);
  assert.match(errorsOf(rl('  limits: {minute: 5}\n  limitBy: path\n  path: [/a]')).join('\n'), /bad\.yaml:7:\d+ spec\.path/);
});

test('RequestAuthentication jwtRules[].timeout: a duration of at least 1ms (Istio: duration(self) >= duration(\'1ms\'))', () => {
  const ra = (timeout: string) => `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ra, namespace: istio-system}
spec:
  jwtRules:
  - issuer: https://idp.test
    jwksUri: https://idp.test/jwks.json
    timeout: ${timeout}
`;
  for (const ok of ['5s', '300ms', '1.5s', '1m30s', '"1ms"']) assert.deepEqual(errorsOf(ra(ok)), [], ok);
  for (const bad of ['0s', '500us', '"5"', '5 s', 'soon', '-1s']) {
    assert.match(errorsOf(ra(bad)).join('\n'), /^bad\.yaml:8:14 spec\.jwtRules\[0\]\.timeout: .*must be a valid duration greater than 1ms/m, bad);
  }
});

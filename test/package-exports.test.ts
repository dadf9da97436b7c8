import { test } from 'node:test';
import assert from 'node:assert/strict';

// The libraries are importable by package name, as a user of the npm package would.
const load = (spec: string) => import(spec) as Promise<Record<string, unknown>>;

test('ztmesh/policy, ztmesh/identity, ztmesh/rego and ztmesh/config export their documented API', async () => {
  const policy = await load('ztmesh/policy');
  for (const name of ['loadConfig', 'compile', 'authorize', 'authorizeFor', 'authorizeAsync', 'normalizePath']) assert.equal(typeof policy[name], 'function', `ztmesh/policy.${name}`);
  const identity = await load('ztmesh/identity');
  for (const name of ['parseSpiffeId', 'verifySvidChain', 'initCa', 'SvidRotator', 'peerIdentity', 'issueJwtSvid', 'verifyJwtSvid']) assert.equal(typeof identity[name], 'function', `ztmesh/identity.${name}`);
  const rego = await load('ztmesh/rego');
  assert.equal(typeof rego.compileModules, 'function');
  const config = await load('ztmesh/config');
  assert.equal(typeof config.loadConfig, 'function');

  // And they work together: one decision end to end through the public API.
  const { parseConfigTexts } = (await load('ztmesh/config')) as { parseConfigTexts: (i: { file: string; text: string }[]) => { ok: boolean; config: unknown } };
  const res = parseConfigTexts([{ file: 'p.yaml', text: 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  rules:\n  - to: [{operation: {methods: ["GET"]}}]\n' }]);
  assert.ok(res.ok);
  const snap = (policy.compile as (c: unknown) => { authz: unknown })(res.config);
  const decide = policy.authorize as (i: unknown, r: unknown) => { decision: string };
  assert.equal(decide(snap.authz, { workload: { namespace: 'ns', labels: {} }, request: { method: 'GET', path: '/' } }).decision, 'ALLOW');
  assert.equal(decide(snap.authz, { workload: { namespace: 'ns', labels: {} }, request: { method: 'POST', path: '/' } }).decision, 'DENY');
});

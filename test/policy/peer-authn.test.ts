import { test } from 'node:test';
import assert from 'node:assert/strict';
import { snapshotOf } from '../helpers.js';

const pa = (name: string, ns: string, spec: string, ts?: string) =>
  `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: ${name}\n  namespace: ${ns}\n${ts ? `  creationTimestamp: "${ts}"\n` : ''}spec:\n${spec.replace(/^/gm, '  ')}\n---\n`;

const W = { namespace: 'foo', labels: { app: 'web' } };

test('default is PERMISSIVE', () => {
  assert.deepEqual(snapshotOf('').peerAuthn.effective(W, 8080), { mode: 'PERMISSIVE', policy: null, level: 'default' });
});

test('workload > namespace > mesh; UNSET inherits; port level overrides', () => {
  const yaml =
    pa('mesh', 'istio-system', 'mtls: {mode: STRICT}') +
    pa('ns', 'foo', 'mtls: {mode: UNSET}') +
    pa('web', 'foo', 'selector: {matchLabels: {app: web}}\nmtls: {mode: PERMISSIVE}\nportLevelMtls:\n  9000: {mode: DISABLE}\n  9001: {mode: UNSET}');
  const s = snapshotOf(yaml);
  assert.deepEqual(s.peerAuthn.effective({ namespace: 'bar', labels: {} }), { mode: 'STRICT', policy: 'istio-system/mesh', level: 'mesh' });
  assert.deepEqual(s.peerAuthn.effective({ namespace: 'foo', labels: { app: 'api' } }), { mode: 'STRICT', policy: 'istio-system/mesh', level: 'mesh' }, 'namespace UNSET inherits mesh');
  assert.deepEqual(s.peerAuthn.effective(W, 8080), { mode: 'PERMISSIVE', policy: 'foo/web', level: 'workload' });
  assert.deepEqual(s.peerAuthn.effective(W, 9000), { mode: 'DISABLE', policy: 'foo/web', level: 'port' });
  assert.deepEqual(s.peerAuthn.effective(W, 9001), { mode: 'PERMISSIVE', policy: 'foo/web', level: 'workload' }, 'port UNSET inherits the workload mode');
  const nsStrict = snapshotOf(pa('ns', 'foo', 'mtls: {mode: DISABLE}') + pa('mesh', 'istio-system', 'mtls: {mode: STRICT}'));
  assert.equal(nsStrict.peerAuthn.effective(W).mode, 'DISABLE', 'namespace beats mesh');
});

test('oldest wins when two policies tie at the same level', () => {
  const yaml = pa('b', 'foo', 'mtls: {mode: DISABLE}', '2024-03-01T00:00:00Z') + pa('a', 'foo', 'mtls: {mode: STRICT}', '2024-01-01T00:00:00Z');
  assert.deepEqual(snapshotOf(yaml).peerAuthn.effective(W), { mode: 'STRICT', policy: 'foo/a', level: 'namespace' });
  const sel = pa('w2', 'foo', 'selector: {matchLabels: {app: web}}\nmtls: {mode: DISABLE}', '2024-05-01T00:00:00Z') + pa('w1', 'foo', 'selector: {matchLabels: {app: web}}\nmtls: {mode: STRICT}', '2024-04-01T00:00:00Z');
  assert.equal(snapshotOf(sel).peerAuthn.effective(W).policy, 'foo/w1');
});

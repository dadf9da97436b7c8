import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfigTexts } from '../../src/config/load.js';
import { errorsOf } from '../helpers.js';

const ap = (spec: string, ns = 'foo', name = 'p') => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ${name}
  namespace: ${ns}
spec:
${spec}`;

test('valid multi-document file: kinds read, other kinds skipped with a notice', () => {
  const text = `${ap('  action: ALLOW\n  rules:\n  - {}')}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 1}
---
# only a comment
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: ext, namespace: foo}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, protocol: HTTPS, name: https}]
  resolution: DNS
`;
  const res = parseConfigTexts([{ file: 'a.yaml', text }]);
  assert.ok(res.ok, JSON.stringify(res.errors));
  assert.deepEqual(res.config.resources.map((r) => r.kind), ['AuthorizationPolicy', 'ServiceEntry']);
  assert.equal(res.notices.length, 1);
  assert.match(res.notices[0].message, /skipped Deployment \(apps\/v1\)/);
  assert.equal(res.notices[0].line, 11);
});

// Each row: spec body, the expected error's `line:col field` and a fragment of the message.
const invalid: [string, string, RegExp][] = [
  ['  action: DENY', '7:3 spec.rules', /DENY action without `rules` is meaningless/],
  ['  action: CUSTOM', '7:3 spec.rules', /CUSTOM action without `rules`/],
  ['  action: CUSTOM\n  rules: [{}]', '7:3 spec.provider.name', /provider.name/],
  ['  action: ALLOW\n  provider: {name: x}\n  rules: [{}]', '8:13 spec.provider', /must not be used with a non-CUSTOM action/],
  ['  action: allow', '7:11 spec.action', /"allow" is not one of ALLOW, DENY, AUDIT, CUSTOM/],
  ['  rules:\n  - to:\n    - operation:\n        methods: ["get"]', '10:19 spec.rules[0].to[0].operation.methods[0]', /must be upper case/],
  ['  rules:\n  - from:\n    - source:\n        serviceAccounts: ["ns/sa"]\n        principals: ["a"]', '10:9 spec.rules[0].from[0].source', /cannot set serviceAccounts with namespaces or principals/],
  ['  rules:\n  - from:\n    - source:\n        serviceAccounts: ["a/b/c"]', '10:27 spec.rules[0].from[0].source.serviceAccounts[0]', /expected format/],
  ['  rules:\n  - when:\n    - key: request.foo\n      values: ["x"]', '9:12 spec.rules[0].when[0].key', /unknown attribute: request.foo/],
  ['  rules:\n  - when:\n    - key: request.headers\n      values: ["x"]', '9:12 spec.rules[0].when[0].key', /request.headers\[name\]/],
  ['  rules:\n  - when:\n    - key: source.ip\n      values: ["10.0.0.256"]', '10:16 spec.rules[0].when[0].values[0]', /bad IP address/],
  ['  rules:\n  - when:\n    - key: destination.port\n      values: ["99999"]', '10:16 spec.rules[0].when[0].values[0]', /bad port/],
  ['  rules:\n  - when:\n    - key: source.ip', '9:7 spec.rules[0].when[0]', /at least one of `values` or `notValues`/],
  ['  rules:\n  - from: []', '8:11 spec.rules[0].from', /`from` must not be empty/],
  ['  rules:\n  - from:\n    - source: {}', '9:15 spec.rules[0].from[0].source', /`from.source` must not be empty/],
  ['  rules:\n  - to:\n    - operation:\n        paths: ["/a/{**}/b/{*}"]', '10:17 spec.rules[0].to[0].operation.paths[0]', /not the last operator/],
  ['  rules:\n  - to:\n    - operation:\n        paths: ["/a/x{*}"]', '10:17 spec.rules[0].to[0].operation.paths[0]', /beyond a supported path template/],
  ['  rules:\n  - to:\n    - operation:\n        ports: [8080]', '10:17 spec.rules[0].to[0].operation.ports[0]', /must be a string.*quote it/],
  ['  rules:\n  - from:\n    - source:\n        ipBlocks: ["10.0.0.0/33"]', '10:20 spec.rules[0].from[0].source.ipBlocks[0]', /bad CIDR/],
  ['  rules:\n  - from:\n    - source:\n        principal: ["a"]', '10:9 spec.rules[0].from[0].source.principal', /unknown field "principal" \(did you mean "principals"\?\)/],
  ['  selector:\n    matchLabels:\n      app: "web*"', '9:12 spec.selector.matchLabels.app', /wildcard is not supported/],
  ['  rules:\n  - from:\n    - source:\n        principals: [""]', '10:22 spec.rules[0].from[0].source.principals[0]', /empty value not allowed/],
];

for (const [spec, where, msg] of invalid) {
  test(`invalid AuthorizationPolicy → ${where}: ${msg.source}`, () => {
    const errs = errorsOf(ap(spec));
    assert.ok(errs.length >= 1, 'expected an error');
    const hit = errs.find((e) => e.startsWith(`bad.yaml:${where}: `) && msg.test(e));
    assert.ok(hit, `no error at ${where} matching ${msg}; got:\n${errs.join('\n')}`);
  });
}

test('PeerAuthentication rules: portLevelMtls needs a selector; ports in range; mode enum', () => {
  const pa = (spec: string) => `apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: foo}\nspec:\n${spec}`;
  assert.match(errorsOf(pa('  portLevelMtls:\n    8080: {mode: DISABLE}')).join('\n'), /bad.yaml:6:5 spec.portLevelMtls: .*cannot have port level mTLS/);
  assert.match(errorsOf(pa('  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    0: {mode: DISABLE}')).join('\n'), /spec.portLevelMtls\["0"\]: .*1..65535/);
  assert.match(errorsOf(pa('  mtls: {mode: strict}')).join('\n'), /spec.mtls.mode: .*not one of/);
  assert.deepEqual(errorsOf(pa('  selector: {matchLabels: {app: a}}\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: DISABLE}')), []);
});

test('YAML syntax errors and duplicate keys name file, line and column', () => {
  const errs = errorsOf('apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\n  name: b\n');
  assert.equal(errs.length, 1);
  assert.match(errs[0], /^bad.yaml:5:3: .*[Mm]ap keys must be unique/);
  const errs2 = errorsOf('a: [1, 2\n');
  assert.match(errs2[0], /^bad.yaml:\d+:\d+: /);
});

test('unknown kinds in security.istio.io and wrong apiVersions are errors, not skips', () => {
  assert.match(errorsOf('apiVersion: security.istio.io/v1\nkind: AuthPolicy\nmetadata: {name: a}\n')[0], /bad.yaml:2:7 kind: unknown kind "AuthPolicy"/);
  assert.match(errorsOf('apiVersion: security.istio.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n')[0], /apiVersion "security.istio.io\/v1alpha1" is not supported/);
});

test('one invalid document rejects the whole set; duplicates and two MeshConfigs are errors', () => {
  const good = ap('  rules: [{}]', 'foo', 'good');
  const res = parseConfigTexts([
    { file: 'good.yaml', text: good },
    { file: 'bad.yaml', text: ap('  action: DENY', 'foo', 'bad') },
  ]);
  assert.equal(res.ok, false);
  const dup = parseConfigTexts([{ file: 'x.yaml', text: `${good}\n---\n${good}` }]);
  assert.equal(dup.ok, false);
  assert.match(dup.errors[0].format(), /x.yaml:9:1 metadata.name: .*defined twice \(first at x.yaml:1\)/);
  const mc = 'apiVersion: ztmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {trustDomain: example.org}\n';
  const two = parseConfigTexts([{ file: 'm.yaml', text: `${mc}---\n${mc.replace('name: m', 'name: n')}` }]);
  assert.equal(two.ok, false);
  assert.match(two.errors[0].message, /only one MeshConfig/);
});

test('MeshConfig: defaults, validation of trust domain and providers', () => {
  const res = parseConfigTexts([{ file: 'm.yaml', text: 'apiVersion: ztmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  trustDomain: example.org\n  pathNormalization: {normalization: MERGE_SLASHES}\n' }]);
  assert.ok(res.ok);
  assert.equal(res.config.mesh.trustDomain, 'example.org');
  assert.equal(res.config.mesh.rootNamespace, 'istio-system');
  assert.equal(res.config.mesh.pathNormalization, 'MERGE_SLASHES');
  assert.equal(res.config.mesh.outboundTrafficPolicy, 'REGISTRY_ONLY');
  const bad = errorsOf('apiVersion: ztmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  trustDomain: Example.ORG\n  extensionProviders:\n  - name: a\n');
  assert.ok(bad.some((e) => /spec.trustDomain: .*lower-case/.test(e)), bad.join('\n'));
  assert.ok(bad.some((e) => /spec.extensionProviders\[0\]: .*exactly one of rego, opa/.test(e)), bad.join('\n'));
});

test('loadConfig reads directories recursively and reports unreadable paths', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ztm-cfg-'));
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'a.yaml'), ap('  rules: [{}]', 'foo', 'a'));
  writeFileSync(join(dir, 'sub', 'b.yml'), ap('  rules: [{}]', 'foo', 'b'));
  writeFileSync(join(dir, 'notes.txt'), 'not config');
  const res = loadConfig([dir]);
  assert.ok(res.ok);
  assert.deepEqual(res.config.resources.map((r) => r.metadata.name), ['a', 'b']);
  const missing = loadConfig([join(dir, 'nope')]);
  assert.equal(missing.ok, false);
  assert.equal(missing.errors[0].code, 'ZTM_CONFIG_IO');
});

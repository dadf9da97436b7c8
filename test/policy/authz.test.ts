import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authorize } from '../../src/policy/engine.js';
import type { AuthorizeOptions } from '../../src/policy/engine.js';
import type { AuthzInput } from '../../src/policy/request.js';
import { snapshotOf } from '../helpers.js';

const ORDER = 'cluster.local/ns/production/sa/order-service';

function pol(name: string, spec: string, ns = 'production', extraMeta = ''): string {
  return `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ${name}\n  namespace: ${ns}\n${extraMeta}spec:\n${spec.replace(/^/gm, '  ')}\n`;
}

function req(over: Partial<AuthzInput> & { path?: string; method?: string; host?: string; headers?: Record<string, string> } = {}): AuthzInput {
  const { path = '/', method = 'GET', host, headers, ...rest } = over;
  return {
    workload: { namespace: 'production', labels: { app: 'payment-service' } },
    port: 8080,
    source: { principal: ORDER },
    request: { method, path, host, headers },
    ...rest,
  };
}

function decide(yaml: string, input: AuthzInput, opts: AuthorizeOptions = {}) {
  const snap = snapshotOf(yaml);
  return authorize(snap.authz, input, { pathNormalization: snap.mesh.pathNormalization, ...opts });
}

const allowIf = (rule: string) => pol('allow', `action: ALLOW\nrules:\n${rule}`);
const denyIf = (rule: string) => pol('deny', `action: DENY\nrules:\n${rule}`);

test('no policy → ALLOW; spec: {} → DENY; rules: [{}] → ALLOW everything', () => {
  assert.equal(decide('', req()).decision, 'ALLOW');
  // An empty (null) spec is the same as `spec: {}`: an ALLOW policy with no rules.
  assert.equal(decide(pol('deny-all', ''), req()).decision, 'DENY');
  const denyAll = decide(`apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: production}\nspec: {}\n`, req());
  assert.equal(denyAll.decision, 'DENY');
  assert.equal(denyAll.status, 403);
  assert.match(denyAll.reason, /production\/allow-nothing: it has no rules/);
  const allowAll = decide(allowIf('- {}'), req({ source: { mtls: false } }));
  assert.equal(allowAll.decision, 'ALLOW');
  assert.equal(allowAll.policy, 'production/allow');
  assert.equal(allowAll.rule, 0);
});

test('DENY beats ALLOW; CUSTOM is consulted first and fails closed without a provider', () => {
  const yaml = allowIf('- {}') + '---\n' + denyIf('- to:\n  - operation:\n      paths: ["/admin*"]');
  const d = decide(yaml, req({ path: '/admin/x' }));
  assert.deepEqual([d.decision, d.policy, d.action, d.rule], ['DENY', 'production/deny', 'DENY', 0]);
  assert.equal(decide(yaml, req({ path: '/ok' })).decision, 'ALLOW');

  const custom = yaml + '---\n' + pol('ext', 'action: CUSTOM\nprovider: {name: opa}\nrules:\n- to:\n  - operation:\n      paths: ["/ext*"]');
  const failClosed = decide(custom, req({ path: '/ext' }));
  assert.deepEqual([failClosed.decision, failClosed.action, failClosed.policy], ['DENY', 'CUSTOM', 'production/ext']);
  assert.match(failClosed.reason, /failing closed/);
  const allowedByProvider = decide(custom, req({ path: '/ext' }), { custom: () => ({ allowed: true }) });
  assert.equal(allowedByProvider.decision, 'ALLOW');
  const deniedByProvider = decide(custom, req({ path: '/ext' }), { custom: (p) => ({ allowed: false, status: 401, reason: `${p} says no` }) });
  assert.deepEqual([deniedByProvider.decision, deniedByProvider.status], ['DENY', 401]);
  assert.match(deniedByProvider.reason, /opa says no/);
  // A CUSTOM allow does not override a DENY policy.
  const denyAfterCustom = decide(custom + '---\n' + pol('deny-ext', 'action: DENY\nrules:\n- to:\n  - operation:\n      paths: ["/ext"]'), req({ path: '/ext' }), { custom: () => ({ allowed: true }) });
  assert.equal(denyAfterCustom.policy, 'production/deny-ext');
  // A provider that throws is a denial.
  assert.equal(decide(custom, req({ path: '/ext' }), { custom: () => { throw new Error('boom'); } }).decision, 'DENY');
});

test('AUDIT never decides but is reported; dry-run policies are shadow-evaluated only', () => {
  const yaml =
    pol('audit', 'action: AUDIT\nrules:\n- to:\n  - operation:\n      methods: ["POST"]') +
    '---\n' +
    pol('shadow-deny', 'action: DENY\nrules:\n- {}', 'production', '  annotations:\n    istio.io/dry-run: "true"\n');
  const d = decide(yaml, req({ method: 'POST' }));
  assert.equal(d.decision, 'ALLOW');
  assert.deepEqual(d.audit, [{ policy: 'production/audit', rule: 0 }]);
  assert.deepEqual(d.dryRun, [{ policy: 'production/shadow-deny', action: 'DENY', matched: true, rule: 0, wouldBe: 'DENY' }]);
  assert.deepEqual(decide(yaml, req({ method: 'GET' })).audit, []);
});

test('rules are OR-ed; from, to and when are AND-ed; list values are OR-ed', () => {
  const yaml = allowIf(
    [
      '- from:',
      '  - source: {principals: ["cluster.local/ns/a/sa/x"]}',
      '  - source: {namespaces: ["b"]}',
      '  to:',
      '  - operation: {methods: ["GET", "HEAD"], paths: ["/r"]}',
      '  when:',
      '  - key: request.headers[x-tenant]',
      '    values: ["t1", "t2"]',
      '- to:',
      '  - operation: {paths: ["/public"]}',
    ].join('\n'),
  );
  const base = { path: '/r', headers: { 'X-Tenant': 't2' } };
  assert.equal(decide(yaml, req({ ...base, source: { principal: 'cluster.local/ns/a/sa/x' } })).decision, 'ALLOW');
  assert.equal(decide(yaml, req({ ...base, method: 'HEAD', source: { principal: 'cluster.local/ns/b/sa/y' } })).decision, 'ALLOW');
  assert.equal(decide(yaml, req({ ...base, method: 'POST', source: { principal: 'cluster.local/ns/b/sa/y' } })).decision, 'DENY');
  assert.equal(decide(yaml, req({ path: '/r', headers: { 'x-tenant': 't3' }, source: { principal: 'cluster.local/ns/b/sa/y' } })).decision, 'DENY');
  assert.equal(decide(yaml, req({ ...base, source: { principal: 'cluster.local/ns/c/sa/y' } })).decision, 'DENY');
  const pub = decide(yaml, req({ path: '/public', source: { mtls: false } }));
  assert.deepEqual([pub.decision, pub.rule], ['ALLOW', 1]);
  const miss = decide(yaml, req({ path: '/r', source: { principal: 'cluster.local/ns/c/sa/y' } }));
  assert.match(miss.reason, /rules\[0\]\.from\[0\]\.source\.principals \/ rules\[0\]\.from\[1\]\.source\.namespaces did not match/);
});

test('exact, prefix*, *suffix and * (presence) — presence is not the same as omitted', () => {
  const cases: [string, string, boolean][] = [
    ['/api/v1/charges', '/api/v1/charges', true],
    ['/api/v1/charges', '/api/v1/charges/1', false],
    ['/api/*', '/api/v1/charges', true],
    ['/api/*', '/apix', false],
    ['*.json', '/a/b.json', true],
    ['*.json', '/a/b.jsonx', false],
    ['*', '/anything', true],
  ];
  for (const [pattern, path, ok] of cases) {
    assert.equal(decide(allowIf(`- to:\n  - operation: {paths: ["${pattern}"]}`), req({ path })).decision, ok ? 'ALLOW' : 'DENY', `${pattern} vs ${path}`);
  }
  const presence = allowIf('- from:\n  - source: {principals: ["*"]}');
  assert.equal(decide(presence, req()).decision, 'ALLOW');
  assert.equal(decide(presence, req({ source: { ip: '10.0.0.1', mtls: false } })).decision, 'DENY', 'plaintext has no principal');
  const omitted = allowIf('- to:\n  - operation: {methods: ["GET"]}');
  assert.equal(decide(omitted, req({ source: { mtls: false } })).decision, 'ALLOW', 'omitted principals do not require one');
  const reqPresence = allowIf('- from:\n  - source: {requestPrincipals: ["*"]}');
  assert.equal(decide(reqPresence, req()).decision, 'DENY');
  assert.equal(decide(reqPresence, req({ auth: { claims: { iss: 'https://idp', sub: 'alice' } } })).decision, 'ALLOW');
  // A header with presence `*` matches even an empty value; a missing header does not.
  const hdr = allowIf('- when:\n  - key: request.headers[x-debug]\n    values: ["*"]');
  assert.equal(decide(hdr, req({ headers: { 'x-debug': '' } })).decision, 'ALLOW');
  assert.equal(decide(hdr, req()).decision, 'DENY');
});

test('plaintext peers: principals never match, notPrincipals always match, no namespace', () => {
  const plain = req({ source: { ip: '10.0.0.9', mtls: false, principal: ORDER } });
  assert.equal(decide(allowIf(`- from:\n  - source: {principals: ["${ORDER}"]}`), plain).decision, 'DENY');
  assert.equal(decide(allowIf('- from:\n  - source: {notPrincipals: ["*"]}'), plain).decision, 'ALLOW');
  assert.equal(decide(allowIf('- from:\n  - source: {namespaces: ["production"]}'), plain).decision, 'DENY');
  assert.equal(decide(allowIf('- from:\n  - source: {notNamespaces: ["production"]}'), plain).decision, 'ALLOW');
  assert.equal(decide(denyIf('- from:\n  - source: {notPrincipals: ["*"]}'), plain).decision, 'DENY', 'the Istio "deny plaintext" idiom');
  assert.equal(decide(denyIf('- from:\n  - source: {notPrincipals: ["*"]}'), req()).decision, 'ALLOW');
});

test('not* fields, serviceAccounts and source.serviceAccount', () => {
  assert.equal(decide(allowIf('- to:\n  - operation: {notMethods: ["DELETE"]}'), req({ method: 'DELETE' })).decision, 'DENY');
  assert.equal(decide(allowIf('- to:\n  - operation: {notPaths: ["/admin*"]}'), req({ path: '/x' })).decision, 'ALLOW');
  assert.equal(decide(allowIf('- to:\n  - operation: {notPorts: ["8080"]}'), req()).decision, 'DENY');
  assert.equal(decide(allowIf('- to:\n  - operation: {ports: ["8080"]}'), req()).decision, 'ALLOW');
  assert.equal(decide(allowIf('- from:\n  - source: {serviceAccounts: ["production/order-service"]}'), req()).decision, 'ALLOW');
  assert.equal(decide(allowIf('- from:\n  - source: {serviceAccounts: ["order-service"]}'), req()).decision, 'ALLOW', 'bare name: the policy namespace');
  assert.equal(decide(allowIf('- from:\n  - source: {notServiceAccounts: ["order-service"]}'), req()).decision, 'DENY');
  assert.equal(decide(allowIf('- when:\n  - key: source.serviceAccount\n    values: ["production/order-service"]'), req()).decision, 'ALLOW');
  assert.equal(decide(allowIf('- when:\n  - key: source.namespace\n    notValues: ["production"]'), req()).decision, 'DENY');
  assert.equal(decide(allowIf(`- when:\n  - key: source.principal\n    values: ["cluster.local/ns/production/*"]`), req()).decision, 'ALLOW');
});

test('hosts: case-insensitive, with or without port, wildcards', () => {
  const yaml = allowIf('- to:\n  - operation: {hosts: ["Payment-Service", "*.example.com"]}');
  for (const [host, ok] of [
    ['payment-service', true],
    ['PAYMENT-SERVICE:8080', true],
    ['api.example.com', true],
    ['API.Example.COM:443', true],
    ['payment-service.evil', false],
    ['example.com', false],
  ] as const) {
    assert.equal(decide(yaml, req({ host })).decision, ok ? 'ALLOW' : 'DENY', host);
  }
  const withPort = allowIf('- to:\n  - operation: {hosts: ["svc:8080"]}');
  assert.equal(decide(withPort, req({ host: 'svc:8080' })).decision, 'ALLOW');
  assert.equal(decide(withPort, req({ host: 'svc:9090' })).decision, 'DENY');
  assert.equal(decide(withPort, req({ host: 'svc' })).decision, 'DENY');
});

test('path templates {*} and {**}; query string stripped before matching', () => {
  const yaml = allowIf('- to:\n  - operation: {paths: ["/users/{*}/orders", "/files/{**}"]}');
  for (const [path, ok] of [
    ['/users/42/orders', true],
    ['/users/42/orders?limit=5', true],
    ['/users//orders', false],
    ['/users/4/2/orders', false],
    ['/files/a/b/c.txt', true],
    ['/files/', true],
    ['/filesx', false],
  ] as const) {
    assert.equal(decide(yaml, req({ path })).decision, ok ? 'ALLOW' : 'DENY', path);
  }
  assert.equal(decide(allowIf('- to:\n  - operation: {paths: ["/a"]}'), req({ path: '/a?x=/b' })).normalizedPath, '/a');
});

test('when keys: request.auth.* (list-aware, nested claims), IPs, ports, SNI', () => {
  const claims = { iss: 'https://idp', sub: 'alice', aud: ['a', 'b'], azp: 'web', groups: ['eng', 'marketing'], org: { team: 'pay', tags: ['x'] }, level: 3 };
  const auth = { claims };
  const checks: [string, string, boolean][] = [
    ['request.auth.principal', 'https://idp/alice', true],
    ['request.auth.principal', 'https://idp/bob', false],
    ['request.auth.audiences', 'b', true],
    ['request.auth.audiences', 'c', false],
    ['request.auth.presenter', 'web', true],
    ['request.auth.claims[groups]', 'marketing', true],
    ['request.auth.claims[groups]', 'sales', false],
    ['request.auth.claims[org][team]', 'pay', true],
    ['request.auth.claims[org][tags]', 'x', true],
    ['request.auth.claims[org][missing]', 'x', false],
    ['request.auth.claims[level]', '3', true],
    ['source.ip', '10.1.0.0/16', true],
    ['source.ip', '10.2.0.0/16', false],
    ['remote.ip', '203.0.113.9', true],
    ['destination.ip', '2001:db8::/32', true],
    ['destination.port', '8080', true],
    ['destination.port', '9090', false],
    ['connection.sni', 'outbound_.8080_._.payment-service', true],
  ];
  for (const [key, value, ok] of checks) {
    const d = decide(allowIf(`- when:\n  - key: "${key}"\n    values: ["${value}"]`), req({ auth, source: { principal: ORDER, ip: '10.1.2.3' }, remoteIp: '203.0.113.9', destination: { ip: '2001:db8::7' }, sni: 'outbound_.8080_._.payment-service' }));
    assert.equal(d.decision, ok ? 'ALLOW' : 'DENY', `${key}=${value}`);
  }
});

test('ipBlocks (direct peer) vs remoteIpBlocks (original client); IPv6 and IPv4-mapped addresses', () => {
  const yaml = allowIf('- from:\n  - source: {ipBlocks: ["10.0.0.0/8", "2001:db8::/32"], notRemoteIpBlocks: ["203.0.113.0/24"]}');
  assert.equal(decide(yaml, req({ source: { ip: '10.1.2.3', principal: ORDER } })).decision, 'ALLOW');
  assert.equal(decide(yaml, req({ source: { ip: '::ffff:10.1.2.3', principal: ORDER } })).decision, 'ALLOW');
  assert.equal(decide(yaml, req({ source: { ip: '2001:db8:1::1', principal: ORDER } })).decision, 'ALLOW');
  assert.equal(decide(yaml, req({ source: { ip: '192.168.1.1', principal: ORDER } })).decision, 'DENY');
  assert.equal(decide(yaml, req({ source: { ip: '10.1.2.3', principal: ORDER }, remoteIp: '203.0.113.7' })).decision, 'DENY');
});

test('selector scope: namespace policies, workload selectors and the root namespace', () => {
  const yaml =
    pol('mesh-deny-debug', 'action: DENY\nrules:\n- to:\n  - operation: {paths: ["/debug*"]}', 'istio-system') +
    '---\n' +
    pol('only-payment', 'selector:\n  matchLabels: {app: payment-service}\naction: ALLOW\nrules:\n- to:\n  - operation: {methods: ["POST"]}') +
    '---\n' +
    pol('other-ns', 'action: ALLOW\nrules: []', 'staging');
  assert.equal(decide(yaml, req({ method: 'POST' })).decision, 'ALLOW');
  assert.equal(decide(yaml, req({ method: 'GET' })).decision, 'DENY');
  const d = decide(yaml, req({ method: 'POST', path: '/debug/vars' }));
  assert.deepEqual([d.decision, d.policy], ['DENY', 'istio-system/mesh-deny-debug']);
  const other = { ...req({ method: 'GET' }), workload: { namespace: 'production', labels: { app: 'user-service' } } };
  assert.equal(decide(yaml, other).decision, 'ALLOW', 'the payment selector does not select user-service');
  const staging = { ...req({ method: 'GET' }), workload: { namespace: 'staging', labels: {} } };
  assert.equal(decide(yaml, staging).decision, 'DENY');
  // A mesh config can move the root namespace.
  const mesh = 'apiVersion: ztmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {rootNamespace: mesh-root}\n---\n';
  assert.equal(decide(mesh + yaml, req({ method: 'POST', path: '/debug/vars' })).decision, 'ALLOW');
});

test('Istio advisory bypass strings are normalized before matching', () => {
  const deny = denyIf('- to:\n  - operation: {paths: ["/admin", "/admin/*"]}');
  const mode = (m: string) => `apiVersion: ztmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {pathNormalization: {normalization: ${m}}}\n---\n`;
  const rows: [string, string, 'ALLOW' | 'DENY', number, string | null][] = [
    // [mode, path, decision, status, normalized]
    ['BASE', '/public/../admin', 'DENY', 403, '/admin'],
    ['BASE', '/public/%2e%2e/admin', 'DENY', 403, '/admin'],
    ['BASE', '/./admin', 'DENY', 403, '/admin'],
    ['BASE', '/admin#fragment', 'DENY', 403, '/admin'],
    ['BASE', '/%61dmin', 'DENY', 403, '/admin'],
    ['BASE', '/admin?x=1', 'DENY', 403, '/admin'],
    ['BASE', '\\admin', 'ALLOW', 400, null], // not origin-form → 400 (decision DENY)
    ['BASE', '/public\\..\\admin', 'DENY', 403, '/admin'],
    ['BASE', '/admin%00', 'DENY', 400, null],
    ['BASE', '//admin', 'ALLOW', 200, '//admin'], // Istio BASE keeps double slashes: use MERGE_SLASHES
    ['MERGE_SLASHES', '//admin', 'DENY', 403, '/admin'],
    ['MERGE_SLASHES', '/admin%2Fx', 'ALLOW', 200, '/admin%2Fx'],
    ['DECODE_AND_MERGE_SLASHES', '/admin%2Fx', 'DENY', 403, '/admin/x'],
    ['DECODE_AND_MERGE_SLASHES', '/admin%5Cx', 'DENY', 403, '/admin/x'],
    ['BASE', '/ADMIN', 'ALLOW', 200, '/ADMIN'], // case is never changed
  ];
  for (const [m, path, decision, status, normalized] of rows) {
    const d = decide(mode(m) + deny, req({ path }));
    if (status === 400) {
      assert.deepEqual([d.decision, d.status, d.normalizedPath], ['DENY', 400, null], `${m} ${path}`);
    } else {
      assert.deepEqual([d.decision, d.status, d.normalizedPath], [decision, status, normalized], `${m} ${path}`);
    }
  }
});

test('oldest policy is reported first when several match (creationTimestamp, then load order)', () => {
  const a = pol('newer', 'action: DENY\nrules:\n- {}', 'production', '  creationTimestamp: "2024-02-01T00:00:00Z"\n');
  const b = pol('older', 'action: DENY\nrules:\n- {}', 'production', '  creationTimestamp: "2024-01-01T00:00:00Z"\n');
  assert.equal(decide(a + '---\n' + b, req()).policy, 'production/older');
});

test('principal index: indexed and generic policies keep their order; other principals skip indexed ones', () => {
  const a = pol('a-generic', 'action: ALLOW\nrules:\n- to:\n  - operation: {paths: ["/shared"]}', 'production', '  creationTimestamp: "2024-01-01T00:00:00Z"\n');
  const b = pol('b-order', `action: ALLOW\nrules:\n- from:\n  - source: {principals: ["${ORDER}"]}`, 'production', '  creationTimestamp: "2024-02-01T00:00:00Z"\n');
  const c = pol('c-generic', 'action: ALLOW\nrules:\n- to:\n  - operation: {paths: ["/late"]}', 'production', '  creationTimestamp: "2024-03-01T00:00:00Z"\n');
  const yaml = [a, b, c].join('---\n');
  assert.equal(decide(yaml, req({ path: '/shared' })).policy, 'production/a-generic', 'older generic policy first');
  assert.equal(decide(yaml, req({ path: '/other' })).policy, 'production/b-order');
  assert.equal(decide(yaml, req({ path: '/late', source: { principal: 'cluster.local/ns/x/sa/y' } })).policy, 'production/c-generic');
  assert.equal(decide(yaml, req({ path: '/other', source: { principal: 'cluster.local/ns/x/sa/y' } })).decision, 'DENY');
  // The same principal through a SPIFFE ID reaches the index.
  assert.equal(decide(yaml, req({ path: '/other', source: { principal: `spiffe://${ORDER}` } })).policy, 'production/b-order');
});

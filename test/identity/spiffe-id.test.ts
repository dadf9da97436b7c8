import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseSpiffeId,
  isValidSpiffeId,
  workloadSpiffeId,
  parseWorkloadId,
  spiffeIdToPrincipal,
  principalToSpiffeId,
  parseTrustDomain,
} from '../../src/identity/spiffe-id.js';
import { ZtmError } from '../../src/errors.js';

function ruleOf(s: string): string | undefined {
  try {
    parseSpiffeId(s);
    return undefined;
  } catch (e) {
    assert.ok(e instanceof ZtmError, 'throws ZtmError');
    assert.equal(e.code, 'ZTM_SPIFFE_ID_INVALID');
    return (e.details as { rule: string }).rule;
  }
}

test('valid SPIFFE IDs parse into trust domain and path', () => {
  const cases: [string, string, string][] = [
    ['spiffe://cluster.local', 'cluster.local', ''],
    ['spiffe://cluster.local/ns/default/sa/web', 'cluster.local', '/ns/default/sa/web'],
    ['spiffe://a', 'a', ''],
    ['spiffe://td-with_all.chars-0123456789/p', 'td-with_all.chars-0123456789', '/p'],
    ['spiffe://example.org/UPPER/lower/MiXeD', 'example.org', '/UPPER/lower/MiXeD'],
    ['spiffe://example.org/a.b/c-d/e_f/0123', 'example.org', '/a.b/c-d/e_f/0123'],
    ['spiffe://example.org/...', 'example.org', '/...'],
    ['spiffe://example.org/.a/..b', 'example.org', '/.a/..b'],
    ['spiffe://1.2.3.4/x', '1.2.3.4', '/x'],
  ];
  for (const [s, td, path] of cases) {
    const id = parseSpiffeId(s);
    assert.equal(id.trustDomain, td, s);
    assert.equal(id.path, path, s);
    assert.equal(id.toString(), s);
    assert.ok(isValidSpiffeId(s));
  }
});

test('every trust-domain character class: only [a-z0-9.-_] is allowed', () => {
  const allowed = 'abcdefghijklmnopqrstuvwxyz0123456789.-_';
  for (const c of allowed) assert.equal(ruleOf(`spiffe://x${c}y/p`), undefined, `td char ${c}`);
  for (let code = 0x20; code < 0x7f; code++) {
    const c = String.fromCharCode(code);
    if (allowed.includes(c) || '/?#%@:'.includes(c)) continue;
    assert.equal(ruleOf(`spiffe://x${c}y/p`), 'trust_domain_chars', `td char ${JSON.stringify(c)}`);
  }
  assert.equal(ruleOf('spiffe://Example.org/p'), 'trust_domain_chars', 'upper case trust domain');
  assert.equal(ruleOf('spiffe://exämple.org'), 'trust_domain_chars', 'non-ASCII trust domain');
});

test('every path character class: only [a-zA-Z0-9.-_] is allowed', () => {
  const allowed = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_';
  for (const c of allowed) assert.equal(ruleOf(`spiffe://td/a${c}b`), undefined, `path char ${c}`);
  for (let code = 0x20; code < 0x7f; code++) {
    const c = String.fromCharCode(code);
    if (allowed.includes(c) || '/?#%'.includes(c)) continue;
    assert.equal(ruleOf(`spiffe://td/a${c}b`), 'path_chars', `path char ${JSON.stringify(c)}`);
  }
  assert.equal(ruleOf('spiffe://td/caf\u00e9'), 'path_chars');
  assert.equal(ruleOf('spiffe://td/a\u0000b'), 'path_chars');
});

test('every structural rule has its own rule name', () => {
  const cases: [string, string][] = [
    ['', 'empty'],
    ['SPIFFE://td/p', 'scheme'],
    ['Spiffe://td/p', 'scheme'],
    ['https://td/p', 'scheme'],
    ['spiffe:/td/p', 'scheme'],
    ['spiffe:td', 'scheme'],
    ['td/ns/x', 'scheme'],
    ['spiffe://', 'trust_domain_empty'],
    ['spiffe:///path', 'trust_domain_empty'],
    ['spiffe://td:8080/p', 'port'],
    ['spiffe://td:/p', 'port'],
    ['spiffe://user@td/p', 'userinfo'],
    ['spiffe://user:pw@td/p', 'userinfo'],
    ['spiffe://td/p?x=1', 'query'],
    ['spiffe://td?x', 'query'],
    ['spiffe://td/p#frag', 'fragment'],
    ['spiffe://td#', 'fragment'],
    ['spiffe://td/p%20q', 'percent_encoding'],
    ['spiffe://t%64/p', 'percent_encoding'],
    ['spiffe://td/', 'path_trailing_slash'],
    ['spiffe://td/a/', 'path_trailing_slash'],
    ['spiffe://td//a', 'path_empty_segment'],
    ['spiffe://td/a//b', 'path_empty_segment'],
    ['spiffe://td/.', 'path_dot_segment'],
    ['spiffe://td/..', 'path_dot_segment'],
    ['spiffe://td/a/./b', 'path_dot_segment'],
    ['spiffe://td/a/../b', 'path_dot_segment'],
    ['spiffe://' + 'a'.repeat(256), 'trust_domain_too_long'],
    ['spiffe://td/' + 'a'.repeat(2048), 'too_long'],
  ];
  for (const [s, rule] of cases) assert.equal(ruleOf(s), rule, JSON.stringify(s.slice(0, 40)));
});

test('length limit is 2048 bytes, counted in bytes', () => {
  const base = 'spiffe://td/';
  assert.equal(ruleOf(base + 'a'.repeat(2048 - base.length)), undefined);
  assert.equal(ruleOf(base + 'a'.repeat(2049 - base.length)), 'too_long');
  assert.equal(ruleOf('spiffe://' + 'a'.repeat(255)), undefined);
});

test('non-string input is rejected with a typed error', () => {
  assert.equal(ruleOf(undefined as unknown as string), 'not_string');
  assert.equal(ruleOf(42 as unknown as string), 'not_string');
});

test('mesh convention and Istio principal helpers', () => {
  const id = workloadSpiffeId('cluster.local', 'production', 'order-service');
  assert.equal(id.toString(), 'spiffe://cluster.local/ns/production/sa/order-service');
  assert.deepEqual(parseWorkloadId(id), { trustDomain: 'cluster.local', namespace: 'production', serviceAccount: 'order-service' });
  assert.equal(parseWorkloadId('spiffe://cluster.local/other/x'), undefined);
  assert.equal(parseWorkloadId('spiffe://cluster.local/ns/a/sa/b/extra'), undefined);
  assert.equal(spiffeIdToPrincipal(id), 'cluster.local/ns/production/sa/order-service');
  assert.equal(principalToSpiffeId('cluster.local/ns/production/sa/order-service').toString(), id.toString());
  assert.throws(() => principalToSpiffeId('spiffe://cluster.local/ns/a/sa/b'), { code: 'ZTM_SPIFFE_ID_INVALID' });
  assert.throws(() => workloadSpiffeId('cluster.local', 'a/b', 'c'), { code: 'ZTM_SPIFFE_ID_INVALID' });
  assert.throws(() => workloadSpiffeId('cluster.local', '..', 'c'), { code: 'ZTM_SPIFFE_ID_INVALID' });
  assert.throws(() => workloadSpiffeId('Cluster.local', 'a', 'c'), { code: 'ZTM_SPIFFE_ID_INVALID' });
  assert.equal(parseTrustDomain('example.org'), 'example.org');
  assert.throws(() => parseTrustDomain(''), (e: ZtmError) => (e.details as { rule: string }).rule === 'trust_domain_empty');
});

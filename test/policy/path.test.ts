import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizePath, type NormalizeResult, type PathNormalizationMode } from '../../src/policy/path.js';

/**
 * Expected outcome in one mode: a path (query ''), a [path, query] pair, or
 * 400 for a rejected request.
 */
type Expect = string | readonly [path: string, query: string] | 400;

/** Expected outcome per mode, in the order NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES. */
type PerMode = readonly [none: Expect, base: Expect, merge: Expect, decode: Expect];

interface Row {
  readonly name: string;
  readonly input: string;
  readonly expect: PerMode;
}

const MODES: readonly PathNormalizationMode[] = ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'];

// Rows marked "Istio e2e" are taken from the expectations of Istio's
// tests/integration/security/normalization_test.go (TestNormalization).
const ROWS: readonly Row[] = [
  // --- basics -------------------------------------------------------------
  { name: 'root', input: '/', expect: ['/', '/', '/', '/'] },
  { name: 'plain path', input: '/admin', expect: ['/admin', '/admin', '/admin', '/admin'] },
  { name: 'dot inside a segment is not a dot segment', input: '/index.html', expect: ['/index.html', '/index.html', '/index.html', '/index.html'] },
  { name: 'case never changed', input: '/ADMIN', expect: ['/ADMIN', '/ADMIN', '/ADMIN', '/ADMIN'] },
  { name: 'mixed case kept', input: '/Admin/Panel', expect: ['/Admin/Panel', '/Admin/Panel', '/Admin/Panel', '/Admin/Panel'] },
  { name: 'trailing slash kept', input: '/admin/', expect: ['/admin/', '/admin/', '/admin/', '/admin/'] },

  // --- repeated slashes (CVE-2021-31920 class) ---------------------------
  { name: 'leading double slash', input: '//admin', expect: ['//admin', '//admin', '/admin', '/admin'] },
  { name: 'double slash in the middle', input: '/public//admin', expect: ['/public//admin', '/public//admin', '/public/admin', '/public/admin'] },
  { name: 'trailing double slash (Istio e2e)', input: '/app//', expect: ['/app//', '/app//', '/app/', '/app/'] },
  { name: 'many slashes', input: '/a////b///', expect: ['/a////b///', '/a////b///', '/a/b/', '/a/b/'] },
  // Envoy's merge_slashes rebuilds "prefix + segments + suffix": only-slash paths become "//".
  { name: 'only slashes "//" (Envoy merge quirk)', input: '//', expect: ['//', '//', '//', '//'] },
  { name: 'only slashes "///" (Envoy merge quirk)', input: '///', expect: ['///', '///', '//', '//'] },
  { name: 'slashes in the query are not merged', input: '//a//b?x=//y', expect: [['//a//b', '?x=//y'], ['//a//b', '?x=//y'], ['/a/b', '?x=//y'], ['/a/b', '?x=//y']] },

  // --- percent-encoded slash and backslash --------------------------------
  { name: '%2F kept except in DECODE', input: '/admin%2Fsecret', expect: ['/admin%2Fsecret', '/admin%2Fsecret', '/admin%2Fsecret', '/admin/secret'] },
  { name: '%2f kept (case preserved) except in DECODE', input: '/admin%2fsecret', expect: ['/admin%2fsecret', '/admin%2fsecret', '/admin%2fsecret', '/admin/secret'] },
  { name: '%2f at the end (Istio e2e)', input: '/app/%2f', expect: ['/app/%2f', '/app/%2f', '/app/%2f', '/app/'] },
  { name: '%2f then slash (Istio e2e)', input: '/app%2f/', expect: ['/app%2f/', '/app%2f/', '/app%2f/', '/app/'] },
  { name: 'encoded slashes are merged after decoding', input: '/a%2F%2f/b', expect: ['/a%2F%2f/b', '/a%2F%2f/b', '/a%2F%2f/b', '/a/b'] },
  { name: '%5C kept except in DECODE (decoded to \\ then to /)', input: '/admin%5Csecret', expect: ['/admin%5Csecret', '/admin%5Csecret', '/admin%5Csecret', '/admin/secret'] },
  { name: '%5c lower case', input: '/admin%5csecret', expect: ['/admin%5csecret', '/admin%5csecret', '/admin%5csecret', '/admin/secret'] },
  { name: 'traversal through %2F', input: '/public/..%2Fadmin', expect: ['/public/..%2Fadmin', '/public/..%2Fadmin', '/public/..%2Fadmin', '/admin'] },
  { name: 'traversal through %2f on both sides', input: '/public%2f..%2fadmin', expect: ['/public%2f..%2fadmin', '/public%2f..%2fadmin', '/public%2f..%2fadmin', '/admin'] },
  { name: 'traversal through %5C', input: '/public/..%5Cadmin', expect: ['/public/..%5Cadmin', '/public/..%5Cadmin', '/public/..%5Cadmin', '/admin'] },
  { name: 'mixed encoded separators (Istio e2e)', input: '/%2Fapp%5cadmin%5Cabc', expect: ['/%2Fapp%5cadmin%5Cabc', '/%2Fapp%5cadmin%5Cabc', '/%2Fapp%5cadmin%5Cabc', '/app/admin/abc'] },
  {
    name: 'encoded separators and dots (Istio e2e)',
    input: '/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\\abc',
    expect: ['/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\\abc', '/%5Capp%2f%5c%2F..%2fadmin%5c/abc', '/%5Capp%2f%5c%2F..%2fadmin%5c/abc', '/app/admin/abc'],
  },
  { name: 'overlong UTF-8 byte kept, %2e and %2f decoded (Istio e2e)', input: '/%c0%2e%c0%2e/admin', expect: ['/%c0%2e%c0%2e/admin', '/%c0.%c0./admin', '/%c0.%c0./admin', '/%c0.%c0./admin'] },
  { name: 'overlong byte then %2f (Istio e2e)', input: '/%c0%2fadmin', expect: ['/%c0%2fadmin', '/%c0%2fadmin', '/%c0%2fadmin', '/%c0/admin'] },

  // --- raw backslash ------------------------------------------------------
  { name: 'backslash is a separator', input: '/app\\admin', expect: ['/app\\admin', '/app/admin', '/app/admin', '/app/admin'] },
  { name: 'slash-backslash prefix', input: '/\\admin', expect: ['/\\admin', '//admin', '/admin', '/admin'] },
  { name: 'alternating separators (Istio e2e)', input: '/app/\\/\\/\\admin', expect: ['/app/\\/\\/\\admin', '/app//////admin', '/app/admin', '/app/admin'] },
  { name: 'traversal with backslashes', input: '/public\\..\\admin', expect: ['/public\\..\\admin', '/admin', '/admin', '/admin'] },
  { name: 'backslash first is not origin-form', input: '\\admin', expect: [400, 400, 400, 400] },

  // --- dot segments (CVE-2019-9901 class) ----------------------------------
  { name: 'parent segment', input: '/public/../admin', expect: ['/public/../admin', '/admin', '/admin', '/admin'] },
  { name: 'encoded parent segment %2e%2e', input: '/public/%2e%2e/admin', expect: ['/public/%2e%2e/admin', '/admin', '/admin', '/admin'] },
  { name: 'encoded parent segment %2E%2e', input: '/public/%2E%2e/admin', expect: ['/public/%2E%2e/admin', '/admin', '/admin', '/admin'] },
  { name: 'half-encoded parent .%2e', input: '/public/.%2e/admin', expect: ['/public/.%2e/admin', '/admin', '/admin', '/admin'] },
  { name: 'half-encoded parent %2E. (Istio e2e)', input: '/app/%2E./admin', expect: ['/app/%2E./admin', '/admin', '/admin', '/admin'] },
  { name: 'current segment', input: '/./admin', expect: ['/./admin', '/admin', '/admin', '/admin'] },
  { name: 'encoded current segment', input: '/%2e/admin', expect: ['/%2e/admin', '/admin', '/admin', '/admin'] },
  { name: 'parent above root is dropped', input: '/../admin', expect: ['/../admin', '/admin', '/admin', '/admin'] },
  { name: 'too many parents', input: '/a/b/../../../../c', expect: ['/a/b/../../../../c', '/c', '/c', '/c'] },
  { name: 'trailing /..', input: '/admin/..', expect: ['/admin/..', '/', '/', '/'] },
  { name: 'trailing /.. keeps parent slash', input: '/a/b/..', expect: ['/a/b/..', '/a/', '/a/', '/a/'] },
  { name: 'bare /..', input: '/..', expect: ['/..', '/', '/', '/'] },
  { name: 'trailing /.', input: '/admin/.', expect: ['/admin/.', '/admin/', '/admin/', '/admin/'] },
  { name: 'trailing encoded /%2E%2E', input: '/a/%2E%2E', expect: ['/a/%2E%2E', '/', '/', '/'] },
  { name: 'three dots is a normal segment', input: '/.../admin', expect: ['/.../admin', '/.../admin', '/.../admin', '/.../admin'] },
  { name: 'four dots is a normal segment', input: '/a/..../b', expect: ['/a/..../b', '/a/..../b', '/a/..../b', '/a/..../b'] },
  { name: 'trailing three dots', input: '/a/...', expect: ['/a/...', '/a/...', '/a/...', '/a/...'] },
  { name: 'dots with parameters are not dot segments (Istio e2e)', input: '/..;/admin', expect: ['/..;/admin', '/..;/admin', '/..;/admin', '/..;/admin'] },
  { name: 'dotted segment suffix', input: '/a/..b/c', expect: ['/a/..b/c', '/a/..b/c', '/a/..b/c', '/a/..b/c'] },
  { name: 'dots inside a segment (Istio e2e)', input: '/xyz%30..//abc', expect: ['/xyz%30..//abc', '/xyz0..//abc', '/xyz0../abc', '/xyz0../abc'] },
  { name: 'double slash then parent (Istio e2e)', input: '/app//../admin', expect: ['/app//../admin', '/app/admin', '/app/admin', '/app/admin'] },
  { name: 'double slash then two parents (Istio e2e)', input: '/app//../../admin', expect: ['/app//../../admin', '/admin', '/admin', '/admin'] },

  // --- fragment and query --------------------------------------------------
  { name: 'fragment stripped in every mode', input: '/admin#fragment', expect: ['/admin', '/admin', '/admin', '/admin'] },
  { name: 'empty fragment', input: '/admin#', expect: ['/admin', '/admin', '/admin', '/admin'] },
  { name: 'fragment before ? swallows it', input: '/admin#frag?x=1', expect: ['/admin', '/admin', '/admin', '/admin'] },
  { name: 'query then fragment', input: '/admin?x=1#frag', expect: [['/admin', '?x=1'], ['/admin', '?x=1'], ['/admin', '?x=1'], ['/admin', '?x=1']] },
  { name: 'query split off', input: '/admin?query', expect: [['/admin', '?query'], ['/admin', '?query'], ['/admin', '?query'], ['/admin', '?query']] },
  { name: 'empty query keeps ?', input: '/admin?', expect: [['/admin', '?'], ['/admin', '?'], ['/admin', '?'], ['/admin', '?']] },
  { name: 'second ? belongs to the query', input: '/a??b', expect: [['/a', '??b'], ['/a', '??b'], ['/a', '??b'], ['/a', '??b']] },
  {
    name: 'query is never normalized',
    input: '/public/../admin?next=/a/../b//c%2F%41%2e%2e',
    expect: [
      ['/public/../admin', '?next=/a/../b//c%2F%41%2e%2e'],
      ['/admin', '?next=/a/../b//c%2F%41%2e%2e'],
      ['/admin', '?next=/a/../b//c%2F%41%2e%2e'],
      ['/admin', '?next=/a/../b//c%2F%41%2e%2e'],
    ],
  },
  { name: 'dot segment right before the query', input: '/a/b/..?x', expect: [['/a/b/..', '?x'], ['/a/', '?x'], ['/a/', '?x'], ['/a/', '?x']] },

  // --- NUL ------------------------------------------------------------------
  { name: '%00 rejected', input: '/admin%00', expect: [400, 400, 400, 400] },
  { name: '%00 inside a dot segment rejected (Envoy unit test)', input: '/xyz/.%00../abc', expect: [400, 400, 400, 400] },
  { name: '%00 after invalid escape rejected (Envoy unit test)', input: '/xyz/AAAAA%%0000/abc', expect: [400, 400, 400, 400] },
  { name: '%00 in the query is not checked', input: '/admin?x=%00', expect: [['/admin', '?x=%00'], ['/admin', '?x=%00'], ['/admin', '?x=%00'], ['/admin', '?x=%00']] },
  { name: '%00 in the fragment is dropped', input: '/admin#%00', expect: ['/admin', '/admin', '/admin', '/admin'] },
  { name: '%2500 is not NUL', input: '/a%2500', expect: ['/a%2500', '/a%2500', '/a%2500', '/a%2500'] },

  // --- percent-encoded unreserved characters -----------------------------
  { name: '%41dmin decodes to Admin', input: '/%41dmin', expect: ['/%41dmin', '/Admin', '/Admin', '/Admin'] },
  { name: '%61dmin decodes to admin', input: '/%61dmin', expect: ['/%61dmin', '/admin', '/admin', '/admin'] },
  { name: 'all-encoded admin', input: '/%61%64%6D%69%6e', expect: ['/%61%64%6D%69%6e', '/admin', '/admin', '/admin'] },
  { name: 'digit, dash, underscore, tilde', input: '/%30%2D%5f%7E%7e', expect: ['/%30%2D%5f%7E%7e', '/0-_~~', '/0-_~~', '/0-_~~'] },
  { name: '%2e inside a segment becomes a dot', input: '/a%2eb', expect: ['/a%2eb', '/a.b', '/a.b', '/a.b'] },
  { name: 'reserved escapes kept with their case', input: '/a%2a%3A%3b%40%25%20%3F%23', expect: ['/a%2a%3A%3b%40%25%20%3F%23', '/a%2a%3A%3b%40%25%20%3F%23', '/a%2a%3A%3b%40%25%20%3F%23', '/a%2a%3A%3b%40%25%20%3F%23'] },
  { name: 'UTF-8 escapes kept with their case', input: '/caf%c3%A9', expect: ['/caf%c3%A9', '/caf%c3%A9', '/caf%c3%A9', '/caf%c3%A9'] },
  { name: 'decoding happens once (double encoding kept)', input: '/%252e%252e/admin', expect: ['/%252e%252e/admin', '/%252e%252e/admin', '/%252e%252e/admin', '/%252e%252e/admin'] },
  { name: 'double-encoded slash kept (Istio e2e)', input: '/%252e%252e%252fadmin', expect: ['/%252e%252e%252fadmin', '/%252e%252e%252fadmin', '/%252e%252e%252fadmin', '/%252e%252e%252fadmin'] },

  // --- invalid percent-encodings: passed through, never 400 ---------------
  { name: 'invalid hex digits', input: '/%zz/admin', expect: ['/%zz/admin', '/%zz/admin', '/%zz/admin', '/%zz/admin'] },
  { name: 'one invalid hex digit', input: '/a%4g', expect: ['/a%4g', '/a%4g', '/a%4g', '/a%4g'] },
  { name: 'truncated %4', input: '/admin%4', expect: ['/admin%4', '/admin%4', '/admin%4', '/admin%4'] },
  { name: 'lone % at the end', input: '/admin%', expect: ['/admin%', '/admin%', '/admin%', '/admin%'] },
  { name: 'truncated escape before the query', input: '/a%2?x', expect: [['/a%2', '?x'], ['/a%2', '?x'], ['/a%2', '?x'], ['/a%2', '?x']] },
  // Chromium's nested-escape guard: decoding must not create a new valid escape.
  { name: 'nested escape %%30%30 must not become %00', input: '/%%30%30', expect: ['/%%30%30', '/%2500', '/%2500', '/%2500'] },
  { name: 'nested escape %%414', input: '/%%414', expect: ['/%%414', '/%25A4', '/%25A4', '/%25A4'] },
  { name: 'nested escape %%41 at the end', input: '/%%41', expect: ['/%%41', '/%A', '/%A', '/%A'] },
  { name: 'invalid escape followed by unrelated decode', input: '/%x%41bc', expect: ['/%x%41bc', '/%xAbc', '/%xAbc', '/%xAbc'] },

  // --- characters the canonicalizer percent-encodes ------------------------
  { name: 'unsafe ASCII escaped (upper-case hex)', input: '/a"b<c>d`e{f|g}h^i', expect: ['/a"b<c>d`e{f|g}h^i', '/a%22b%3Cc%3Ed%60e%7Bf%7Cg%7Dh%5Ei', '/a%22b%3Cc%3Ed%60e%7Bf%7Cg%7Dh%5Ei', '/a%22b%3Cc%3Ed%60e%7Bf%7Cg%7Dh%5Ei'] },
  { name: 'sub-delims and : @ [ ] pass through', input: "/!$&'()*+,;=:@[]", expect: ["/!$&'()*+,;=:@[]", "/!$&'()*+,;=:@[]", "/!$&'()*+,;=:@[]", "/!$&'()*+,;=:@[]"] },
  { name: 'raw octets (latin1 string) escaped', input: '/caf\u00c3\u00a9', expect: ['/caf\u00c3\u00a9', '/caf%C3%A9', '/caf%C3%A9', '/caf%C3%A9'] },
  { name: 'non-latin1 text escaped as UTF-8', input: '/\u65e5/\u{1F600}', expect: ['/\u65e5/\u{1F600}', '/%E6%97%A5/%F0%9F%98%80', '/%E6%97%A5/%F0%9F%98%80', '/%E6%97%A5/%F0%9F%98%80'] },
  { name: 'lone surrogate rejected', input: '/a\ud800b', expect: [400, 400, 400, 400] },

  // --- request-target form and codec-level rejections ----------------------
  { name: 'empty target', input: '', expect: [400, 400, 400, 400] },
  { name: 'asterisk-form', input: '*', expect: [400, 400, 400, 400] },
  { name: 'absolute-form', input: 'http://example.com/admin', expect: [400, 400, 400, 400] },
  { name: 'relative path', input: 'admin', expect: [400, 400, 400, 400] },
  { name: 'query only', input: '?x=1', expect: [400, 400, 400, 400] },
  { name: 'space', input: '/a b', expect: [400, 400, 400, 400] },
  { name: 'tab', input: '/a\tb', expect: [400, 400, 400, 400] },
  { name: 'CR LF', input: '/a\r\nb', expect: [400, 400, 400, 400] },
  { name: 'raw NUL', input: '/a\u0000b', expect: [400, 400, 400, 400] },
  { name: 'DEL', input: '/a\u007fb', expect: [400, 400, 400, 400] },
  { name: 'control character in the query', input: '/a?b\u0001', expect: [400, 400, 400, 400] },
];

function describe(r: NormalizeResult): string {
  return r.ok ? `ok path=${JSON.stringify(r.path)} query=${JSON.stringify(r.query)}` : `${r.status} (${r.reason})`;
}

for (const row of ROWS) {
  MODES.forEach((mode, idx) => {
    const expected = row.expect[idx]!;
    test(`${mode}: ${row.name} ${JSON.stringify(row.input)}`, () => {
      const got = normalizePath(row.input, mode);
      if (expected === 400) {
        assert.equal(got.ok, false, `expected 400, got ${describe(got)}`);
        if (!got.ok) {
          assert.equal(got.status, 400);
          assert.ok(got.reason.length > 0);
        }
        return;
      }
      const [path, query] = typeof expected === 'string' ? [expected, ''] : expected;
      assert.deepEqual(got, { ok: true, path, query }, `got ${describe(got)}`);
    });
  });
}

test('default mode is BASE', () => {
  assert.deepEqual(normalizePath('/public/%2e%2e/%41dmin//x?q'), { ok: true, path: '/Admin//x', query: '?q' });
  for (const row of ROWS) {
    assert.deepEqual(normalizePath(row.input), normalizePath(row.input, 'BASE'), row.name);
  }
});

test('normalized output is stable under a second pass (no double decoding surprises)', () => {
  // Applying the same mode to its own output must not change it, except for
  // rows whose output still contains an escape that the first pass kept on
  // purpose; %25-prefixed results are excluded from that rule.
  for (const row of ROWS) {
    for (const mode of MODES) {
      const first = normalizePath(row.input, mode);
      if (!first.ok) continue;
      const second = normalizePath(first.path + first.query, mode);
      assert.ok(second.ok, `${mode} ${row.name}: second pass rejected`);
      if (second.ok && mode !== 'NONE' && !first.path.includes('%25')) {
        assert.equal(second.path, first.path, `${mode} ${row.name}`);
        assert.equal(second.query, first.query, `${mode} ${row.name}`);
      }
    }
  }
});

test('Istio e2e: every single %XX escape in DECODE_AND_MERGE_SLASHES', () => {
  // Mirrors the PercentEncoded group of Istio's normalization integration
  // test: /admin%XX for XX in 01..ff (lower-case hex) is forwarded unchanged
  // unless XX is an unreserved character, '/' or '\'.
  for (let i = 1; i <= 0xff; i++) {
    const hex = i.toString(16).padStart(2, '0');
    const input = `/admin%${hex}`;
    const ch = String.fromCharCode(i);
    let expected = input;
    if (/[A-Za-z0-9\-._~]/.test(ch)) expected = `/admin${ch}`;
    else if (ch === '/' || ch === '\\') expected = '/admin/';
    assert.deepEqual(normalizePath(input, 'DECODE_AND_MERGE_SLASHES'), { ok: true, path: expected, query: '' }, input);
  }
});

test('long paths normalize correctly (buffer growth)', () => {
  const seg = 'abcdefgh/';
  const input = '/' + seg.repeat(2000) + '%41/../' + '\\x'.repeat(1000);
  const got = normalizePath(input, 'BASE');
  assert.ok(got.ok);
  if (got.ok) {
    assert.equal(got.path, '/' + seg.repeat(2000) + '/x'.repeat(1000));
  }
  // A short call afterwards is unaffected by the earlier long one.
  assert.deepEqual(normalizePath('/a/./b', 'BASE'), { ok: true, path: '/a/b', query: '' });
});

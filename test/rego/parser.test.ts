import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileModules, parseModule, parseQuery, RegoParseError } from '../../src/rego/index.js';

function parseErr(src: string): RegoParseError {
  try {
    parseModule(src, 'bad.rego');
  } catch (e) {
    assert.ok(e instanceof RegoParseError, String(e));
    return e;
  }
  assert.fail('expected a parse error');
}

test('parse errors carry file, line and column', () => {
  const e = parseErr('package a\n\nallow if {\n  input.x ==\n}\n');
  assert.equal(e.code, 'ZTM_REGO_PARSE');
  assert.equal(e.position.file, 'bad.rego');
  assert.equal(e.position.line, 5);
  assert.equal(e.position.col, 1);
  assert.match(e.format(), /^bad\.rego:5:1: rego_parse_error: /);
});

test('unterminated string reports where it starts', () => {
  const e = parseErr('package a\np := "abc\n');
  assert.equal(e.position.line, 2);
  assert.equal(e.position.col, 6);
});

test('missing package and illegal tokens', () => {
  assert.equal(parseErr('allow := true').position.line, 1);
  const e = parseErr('package a\n\np := 1 ~ 2\n');
  assert.equal(e.position.line, 3);
  assert.equal(e.position.col, 8);
});

test('two expressions on one line need a separator', () => {
  const e = parseErr('package a\np if { input.a input.b }\n');
  assert.equal(e.position.line, 2);
});

test('parses rule forms, imports and keywords', () => {
  const [m] = parseModule(
    `package x.y
import rego.v1
import data.lib as l
default allow := false
allow if input.user == "a"
p contains v if some v in input.xs
o[k] := v if some k, v in input.obj
f(a, b) := a + b
g(x) := 1 if x > 0 else := -1
a.b.c := 3
every_ok if every x in [1, 2] { x > 0 }
t := $"hi {input.name}!"
`,
    'm.rego',
  );
  assert.deepEqual(m.pkg, ['data', 'x', 'y']);
  assert.equal(m.imports.length, 1);
  assert.deepEqual(
    m.rules.map((r) => r.kind),
    ['complete', 'complete', 'set', 'complete', 'func', 'func', 'complete', 'complete', 'complete'],
  );
  assert.equal(m.rules[5].elses.length, 1);
});

test('queries: several expressions, with, not', () => {
  const body = parseQuery('x := 1; not y with input as {"a": 1}\nz = x + 2');
  assert.equal(body.length, 3);
  assert.equal(body[1].negated, true);
  assert.equal(body[1].with.length, 1);
});

test('compileModules surfaces parse errors as ZTM_REGO_PARSE', () => {
  assert.throws(() => compileModules({ 'x.rego': 'package p\nq := [1, 2' }), (e: unknown) => e instanceof RegoParseError && e.position.line === 2);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileModules, RegoCompileError, RegoEvalError, toJSON, type CompiledPolicy } from '../../src/rego/index.js';

function pol(src: string): CompiledPolicy {
  return compileModules({ 'p.rego': src });
}
function val(p: CompiledPolicy, path: string, opts: { input?: unknown; data?: unknown; strictBuiltinErrors?: boolean } = {}): unknown {
  const v = p.evalPath(path, opts);
  return v === undefined ? undefined : toJSON(v);
}

test('complete rules, defaults and undefined', () => {
  const p = pol(`package t
default allow := false
allow if input.role == "admin"
name := input.user
`);
  assert.equal(val(p, 't.allow', { input: { role: 'admin' } }), true);
  assert.equal(val(p, 't.allow', { input: { role: 'dev' } }), false);
  assert.equal(val(p, 't.name', { input: {} }), undefined);
});

test('partial sets, objects, ref heads', () => {
  const p = pol(`package t
s contains x if { some x in input.xs; x > 1 }
o[k] := v if {
  some k, v in input.m
  v != 0
}
a.b.c := 1
a.b.d := 2
`);
  assert.deepEqual(val(p, 't.s', { input: { xs: [1, 2, 3, 2] } }), [2, 3]);
  assert.deepEqual(val(p, 't.o', { input: { m: { x: 1, y: 0 } } }), { x: 1 });
  assert.deepEqual(val(p, 't.a'), { b: { c: 1, d: 2 } });
});

test('functions, else and every', () => {
  const p = pol(`package t
grade(n) := "high" if n > 10 else := "low"
all_pos if every x in input.xs { x > 0 }
double(x) := y if y := x * 2
r := [grade(11), grade(1), double(4)]
`);
  assert.deepEqual(val(p, 't.r'), ['high', 'low', 8]);
  assert.equal(val(p, 't.all_pos', { input: { xs: [1, 2] } }), true);
  assert.equal(val(p, 't.all_pos', { input: { xs: [1, -2] } }), undefined);
});

test('negation, comprehensions and unification', () => {
  const p = pol(`package t
names := {n | some u in input.users; n := u.name}
by_id := {u.id: u.name | some u in input.users}
firsts := [x | [x, _] := input.pairs[_]]
no_root if not "root" in names
`);
  const input = { users: [{ id: 1, name: 'a' }, { id: 2, name: 'b' }], pairs: [[1, 2], [3, 4]] };
  assert.deepEqual(val(p, 't.names', { input }), ['a', 'b']);
  assert.deepEqual(val(p, 't.firsts', { input }), [1, 3]);
  assert.equal(val(p, 't.no_root', { input }), true);
  const rs = p.evalRaw('data.t.by_id[1] = n', { input });
  assert.equal(rs.length, 1);
  assert.equal(rs[0].bindings.get('n'), 'a');
});

test('with replaces input, data and built-in functions', () => {
  const p = pol(`package t
allow if input.x == data.cfg.x
mocked if count([1, 2, 3]) == 7
a if allow with input as {"x": 1} with data.cfg.x as 1
b if mocked with count as 7
c if mocked with count as fake
fake(_) := 7
`);
  assert.equal(val(p, 't.a'), true);
  assert.equal(val(p, 't.b'), true);
  assert.equal(val(p, 't.c'), true);
  assert.equal(val(p, 't.mocked'), undefined);
});

test('conflicts raise eval_conflict_error', () => {
  const p = pol(`package t
p := 1
p := 2 if true
f(x) := 1
f(x) := 2
q := f(1)
`);
  assert.throws(() => p.evalPath('t.p'), (e: unknown) => e instanceof RegoEvalError && e.regoCode === 'eval_conflict_error' && /complete rules must not produce multiple outputs/.test(e.message));
  assert.throws(() => p.evalPath('t.q'), (e: unknown) => e instanceof RegoEvalError && e.regoCode === 'eval_conflict_error');
});

test('built-in errors: undefined by default, raised in strict mode', () => {
  const p = pol(`package t
x := 1 / 0
y := to_number("abc")
`);
  assert.equal(val(p, 't.x'), undefined);
  assert.throws(() => p.evalPath('t.x', { strictBuiltinErrors: true }), (e: unknown) => e instanceof RegoEvalError && e.regoCode === 'eval_builtin_error' && /divide by zero/.test(e.message));
  assert.equal(val(p, 't.y'), undefined);
});

test('type errors from built-ins', () => {
  const p = pol('package t\nx := count(1)\n');
  assert.throws(() => p.evalPath('t.x', { strictBuiltinErrors: true }), (e: unknown) => e instanceof RegoEvalError && e.regoCode === 'eval_type_error' && /p\.rego:2: eval_type_error: count: operand 1/.test(e.message));
});

test('big integers stay exact', () => {
  const p = pol(`package t
big := 9007199254740993 + 2
cmp if 18446744073709551616 > 18446744073709551615
`);
  assert.equal(p.evalPath('t.big'), 9007199254740995n);
  assert.equal(val(p, 't.cmp'), true);
  assert.equal(p.evalRaw('x := 12345678901234567890 * 10')[0].bindings.get('x'), 123456789012345678900n);
});

test('string interpolation, regex (RE2), glob with delimiters', () => {
  const p = pol(`package t
msg := $"user {input.u} has {count(input.r)} roles"
re if regex.match("^[a-z]+\\\\d{2}$", "abc12")
g1 if glob.match("*.example.com", ["."], "api.example.com")
g2 if glob.match("*.example.com", ["."], "a.b.example.com")
g3 if glob.match("**.example.com", ["."], "a.b.example.com")
`);
  assert.equal(val(p, 't.msg', { input: { u: 'ann', r: [1, 2] } }), 'user ann has 2 roles');
  assert.equal(val(p, 't.re'), true);
  assert.equal(val(p, 't.g1'), true);
  assert.equal(val(p, 't.g2'), undefined);
  assert.equal(val(p, 't.g3'), true);
});

test('time, net, units, semver, jwt built-ins', () => {
  const p = pol(`package t
clock := time.clock([1517832000000000000, "America/New_York"])
cidr if net.cidr_contains("10.0.0.0/8", "10.1.2.3")
mem := units.parse_bytes("2KiB")
sv := semver.compare("1.2.3", "1.10.0")
tok := io.jwt.encode_sign({"alg": "HS256"}, {"sub": "x"}, {"kty": "oct", "k": "c2VjcmV0"})
ok if io.jwt.verify_hs256(tok, "secret")
claims := io.jwt.decode(tok)[1]
`);
  assert.deepEqual(val(p, 't.clock'), [7, 0, 0]);
  assert.equal(val(p, 't.cidr'), true);
  assert.equal(val(p, 't.mem'), 2048);
  assert.equal(val(p, 't.sv'), -1);
  assert.equal(val(p, 't.ok'), true);
  assert.deepEqual(val(p, 't.claims'), { sub: 'x' });
});

test('query API returns opa eval shaped results', () => {
  const p = pol('package t\nxs := [1, 2]\n');
  const rs = p.eval('x := data.t.xs[_]');
  assert.deepEqual(
    rs.map((r) => r.bindings),
    [{ x: 1 }, { x: 2 }],
  );
  assert.equal(rs[0].expressions[0].text, 'x := data.t.xs[_]');
  assert.deepEqual(p.eval('data.t.nope'), []);
});

test('indexed and unindexed rule sets agree', () => {
  let src = 'package big\ndefault allow := false\n';
  for (let i = 0; i < 50; i++) src += `allow if { input.path == "/p/${i}"; input.method == "${i % 2 ? 'GET' : 'POST'}" }\n`;
  src += 'allow if input.admin\n';
  const a = compileModules({ 'b.rego': src });
  const b = compileModules({ 'b.rego': src }, { indexing: false });
  for (const input of [{ path: '/p/7', method: 'GET' }, { path: '/p/7', method: 'POST' }, { path: '/x', admin: true }, { path: '/x' }]) {
    assert.equal(a.evalPath('big.allow', { input }), b.evalPath('big.allow', { input }), JSON.stringify(input));
  }
  assert.equal(a.evalPath('big.allow', { input: { path: '/p/7', method: 'GET' } }), true);
});

function compileIssue(src: string, strict = false): string {
  try {
    compileModules({ 'm.rego': src }, { strict });
  } catch (e) {
    assert.ok(e instanceof RegoCompileError, String(e));
    assert.equal(e.code, 'ZTM_REGO_COMPILE');
    return e.message;
  }
  return '';
}

test('compile checks: undefined functions, arity, unsafe vars, recursion', () => {
  assert.equal(compileIssue('package a\np if foo(1)\n'), 'm.rego:2: rego_type_error: undefined function foo');
  assert.match(compileIssue('package a\np if count(1, 2, 3)\n'), /rego_type_error: count: too many arguments/);
  assert.equal(compileIssue('package a\np if { x > 1 }\n'), 'm.rego:2: rego_unsafe_var_error: var x is unsafe');
  assert.equal(compileIssue('package a\np := y if { input.x }\n'), 'm.rego:2: rego_unsafe_var_error: var y is unsafe');
  assert.match(compileIssue('package a\np if q\nq if p\n'), /rego_recursion_error: rule data\.a\.p is recursive: data\.a\.p -> data\.a\.q -> data\.a\.p/);
  assert.equal(compileIssue('package a\nimport rego.v1\np if { some x in input.xs; x > 1 }\n'), '');
  assert.equal(compileIssue('package a\np if { x := 1; x := 2 }\n'), 'm.rego:2: rego_compile_error: var x assigned above');
});

test('strict mode: unused imports and assignments, deprecated built-ins', () => {
  assert.equal(compileIssue('package a\nimport data.foo\np := 1\n'), '');
  assert.equal(compileIssue('package a\nimport data.foo\np := 1\n', true), 'm.rego:2: rego_compile_error: import data.foo unused');
  assert.equal(compileIssue('package a\np if { x := 1; true }\n', true), 'm.rego:2: rego_compile_error: assigned var x unused');
  assert.match(compileIssue('package a\np if re_match("a", "a")\n', true), /deprecated built-in function calls in expression: re_match/);
});

test('glob-indexed rule sets agree with unindexed evaluation', () => {
  let src = 'package g\nimport rego.v1\ndefault allow := false\n';
  for (let i = 0; i < 40; i++) src += `allow if { glob.match("/api/t${i}/*", ["/"], input.path); input.method == "GET" }\n`;
  src += 'allow if { glob.match("**/public/**", [], input.path) }\nallow if input.admin\n';
  const a = compileModules({ 'g.rego': src });
  const b = compileModules({ 'g.rego': src }, { indexing: false });
  const inputs = [
    { path: '/api/t7/x', method: 'GET' },
    { path: '/api/t7/x/y', method: 'GET' },
    { path: '/api/t7', method: 'GET' },
    { path: '/a/public/b', method: 'POST' },
    { path: 42, method: 'GET' },
    { path: '/nope', admin: true },
    {},
  ];
  for (const input of inputs) assert.equal(a.evalPath('g.allow', { input }), b.evalPath('g.allow', { input }), JSON.stringify(input));
  assert.equal(a.evalPath('g.allow', { input: inputs[0] }), true);
  assert.equal(a.evalPath('g.allow', { input: inputs[1] }), false);
});

test('decimal literals beyond double precision compare as the numbers they denote', () => {
  const p = pol(`package t
a if 0.1234567890123456789 > 0.1234567890123456788
b if 1e-400 > 0
c if 1e400 > 1e399
d if 3.50 == 3.5
e := count({3.5, 3.50, 35e-1})
`);
  for (const k of ['a', 'b', 'c', 'd']) assert.equal(val(p, `t.${k}`), true, k);
  assert.equal(val(p, 't.e'), 1);
});

test('with can replace a path inside a rule value', () => {
  const p = pol(`package t
p := {"a": {"b": 1}, "c": 2}
q := x if x := p.a.b with data.t.p.a.b as 5
r := y if y := p with data.t.p.c as 3
`);
  assert.equal(val(p, 't.q'), 5);
  assert.deepEqual(val(p, 't.r'), { a: { b: 1 }, c: 3 });
  assert.deepEqual(val(p, 't.p'), { a: { b: 1 }, c: 2 });
});

test('json.match_schema and json.verify_schema', () => {
  const p = pol(`package t
import rego.v1
schema := {
  "type": "object",
  "required": ["id", "roles"],
  "additionalProperties": false,
  "properties": {
    "id": {"type": "string", "pattern": "^[a-z]+$"},
    "roles": {"type": "array", "items": {"enum": ["admin", "user"]}, "minItems": 1},
    "level": {"type": "integer", "minimum": 0, "maximum": 5}
  }
}
good := json.match_schema({"id": "alice", "roles": ["user"], "level": 3}, schema)
bad := json.match_schema({"id": "Alice", "roles": ["root"], "extra": 1}, schema)
valid := json.verify_schema(schema)
invalid := json.verify_schema({"type": "strin"})
`);
  assert.deepEqual(val(p, 't.good'), [true, []]);
  const [ok, errs] = val(p, 't.bad') as [boolean, { field: string; type: string; error: string }[]];
  assert.equal(ok, false);
  assert.deepEqual(
    errs.map((e) => `${e.field} ${e.type}`),
    ['(root) additional_property_not_allowed', 'id pattern', 'roles.0 enum'],
  );
  assert.equal(errs[1].error, "id: Does not match pattern '^[a-z]+$'");
  assert.deepEqual(val(p, 't.valid'), [true, null]);
  assert.equal((val(p, 't.invalid') as unknown[])[0], false);
});

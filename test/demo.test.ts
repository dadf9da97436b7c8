import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './helpers.js';

test('ztmesh demo --once: every expectation of the e-commerce script holds (real processes on loopback)', () => {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'ztmesh.js'), 'demo', '--once'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 });
  assert.equal(r.status, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  assert.match(r.stdout, /^16 passed, 0 failed$/m);
  // The table shows both sides of zero trust: allowed calls and refused ones.
  assert.match(r.stdout, /order-service → payment-service\s+POST \/api\/v1\/charges\s+allowed 201/);
  assert.match(r.stdout, /order-service → user-service\s+GET \/api\/v1\/users\s+denied 403/);
  assert.match(r.stdout, /plaintext client → payment-service .* refused/);
  assert.match(r.stdout, /quarantined: denied after \d+ ms/);
});

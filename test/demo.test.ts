import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './helpers.js';

test('ztmesh demo --once: every expectation of the e-commerce script holds, mesh and edge (real processes on loopback)', () => {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'ztmesh.js'), 'demo', '--once'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 });
  assert.equal(r.status, 0, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  assert.match(r.stdout, /^24 passed, 0 failed$/m);
  // The table shows both sides of zero trust: allowed calls and refused ones.
  assert.match(r.stdout, /order-service → payment-service\s+POST \/api\/v1\/charges\s+allowed 201/);
  assert.match(r.stdout, /order-service → user-service\s+GET \/api\/v1\/users\s+denied 403/);
  assert.match(r.stdout, /plaintext client → payment-service .* refused/);
  assert.match(r.stdout, /quarantined: denied after \d+ ms/);
  // The edge: the gateway with the demo's identity provider in front of the platform.
  assert.match(r.stdout, /internet → gateway → product-catalog\s+GET \/api\/v1\/products\/7\s+allowed 200/);
  assert.match(r.stdout, /alice → gateway → order-service\s+POST \/api\/v1\/orders\s+allowed 201 .* exchanged: aud order-service\.production/);
  assert.match(r.stdout, /anonymous → gateway → order-service\s+POST \/api\/v1\/orders\s+denied 403/);
  assert.match(r.stdout, /forged token → gateway → order-service .* denied 401/);
  assert.match(r.stdout, /expired token → gateway → order-service .* denied 401/);
  assert.match(r.stdout, /POST \/api\/v1\/orders 64K\s+denied 413/);
  assert.match(r.stdout, /gateway → product-catalog .* denied 429 .* Retry-After \d+/);
  assert.match(r.stdout, /order-service → payment-service\s+POST \/api\/v1\/charges\s+denied 401 .* replays a token minted for order/);
});

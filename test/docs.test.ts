import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderCliReference } from '../src/cli/reference.js';
import { ErrorCodes } from '../src/errors.js';
import { repoRoot } from './helpers.js';

test('docs/cli.md is generated from the current commands (run `npm run docs:cli` after changing a command)', async () => {
  const onDisk = readFileSync(join(repoRoot, 'docs', 'cli.md'), 'utf8');
  assert.equal(onDisk, await renderCliReference());
});

test('every error code is documented in docs/errors.md', () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'errors.md'), 'utf8');
  for (const code of Object.keys(ErrorCodes)) assert.ok(doc.includes(`\`${code}\``), `${code} is missing from docs/errors.md`);
});

test('the README quick start has exactly the two commands, and they exist', () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const block = /## Quick start\s+```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has a Quick start shell block');
  const lines = block[1].trim().split('\n');
  assert.deepEqual(lines, ['npm install && npx ztmesh demo', 'npm test']);
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
  assert.equal(pkg.bin.ztmesh, 'bin/ztmesh.js');
  assert.ok(pkg.scripts.test);
});

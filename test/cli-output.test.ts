import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderTable, visibleLength } from '../src/cli/output.js';

test('renderTable fits the width and keeps one row per line', () => {
  const out = renderTable(['name', 'value'], [['a', 'x'.repeat(200)], ['bb', 'short']], 40);
  const lines = out.trimEnd().split('\n');
  assert.equal(lines.length, 3);
  for (const l of lines) assert.ok(visibleLength(l) <= 40, l);
  assert.match(lines[1], /…$/);
  assert.match(lines[0], /^NAME\s+VALUE$/);
});

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { parseConfigTexts } from '../src/config/load.js';
import { compile } from '../src/policy/snapshot.js';
import type { PolicySnapshot } from '../src/policy/snapshot.js';

/** The repository root (tests run from dist/test/...). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function runCli(args: string[], opts: { input?: string; cwd?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'ztmesh.js'), ...args], {
    cwd: opts.cwd ?? repoRoot,
    input: opts.input,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Compile YAML text (one or more documents) into a snapshot; throws with the errors when invalid. */
export function snapshotOf(yaml: string, file = 'test.yaml'): PolicySnapshot {
  const res = parseConfigTexts([{ file, text: yaml }]);
  if (!res.ok) throw new Error(res.errors.map((e) => e.format()).join('\n'));
  return compile(res.config);
}

/** The formatted errors for YAML text that should be invalid. */
export function errorsOf(yaml: string, file = 'bad.yaml'): string[] {
  const res = parseConfigTexts([{ file, text: yaml }]);
  return res.ok ? [] : res.errors.map((e) => e.format());
}

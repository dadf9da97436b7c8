/**
 * `npm run conformance:opa -- <dir>... [--known-failures file] [--verbose] [--filter substr]`
 * Prints per-folder results and a final line `N passed, M failed`; exits 1 when a case
 * fails that is not listed in the known-failures file.
 */
import { readFileSync } from 'node:fs';
import { runAll } from './runner.js';

function main(argv: string[]): number {
  const dirs: string[] = [];
  let known: string | undefined;
  let verbose = false;
  let filter: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--known-failures') known = argv[++i];
    else if (a === '--verbose' || a === '-v') verbose = true;
    else if (a === '--filter') filter = argv[++i];
    else dirs.push(a);
  }
  if (!dirs.length) {
    process.stderr.write('usage: conformance:opa -- <dir>... [--known-failures file] [--verbose] [--filter text]\n');
    return 2;
  }
  const knownSet = new Set<string>();
  if (known) {
    for (const line of readFileSync(known, 'utf8').split('\n')) {
      const l = line.replace(/\s+#.*$/, '').trim();
      if (l && !l.startsWith('#')) knownSet.add(l);
    }
  }
  const sum = runAll(dirs, filter ? (c) => c.note.includes(filter!) || c.folder.includes(filter!) : undefined);
  const byFolder = new Map<string, { p: number; n: number }>();
  for (const o of sum.outcomes) {
    const key = o.c.folder;
    const e = byFolder.get(key) ?? { p: 0, n: 0 };
    e.n++;
    if (o.pass) e.p++;
    byFolder.set(key, e);
  }
  for (const [folder, e] of [...byFolder].sort((a, b) => a[0].localeCompare(b[0]))) {
    process.stdout.write(`${e.p === e.n ? 'ok  ' : 'FAIL'} ${folder}: ${e.p}/${e.n} passed\n`);
  }
  const notes = new Set(sum.outcomes.map((o) => o.c.note));
  let unexpected = 0;
  for (const o of sum.outcomes) {
    if (o.pass) continue;
    const isKnown = knownSet.has(o.c.note);
    if (!isKnown) unexpected++;
    if (verbose || !isKnown) process.stdout.write(`  ${isKnown ? 'known ' : ''}failure: ${o.c.note} (${o.c.file})\n    ${(o.reason ?? '').replace(/\n/g, '\n    ')}\n`);
  }
  const nowPassing = [...knownSet].filter((n) => notes.has(n) && sum.outcomes.some((o) => o.c.note === n && o.pass) && !sum.outcomes.some((o) => o.c.note === n && !o.pass));
  const missing = [...knownSet].filter((n) => !notes.has(n));
  if (known) {
    for (const n of nowPassing) process.stdout.write(`  listed as known failure but now passes: ${n}\n`);
    if (!filter) for (const n of missing) process.stdout.write(`  listed as known failure but no such case: ${n}\n`);
    process.stdout.write(`${sum.failed - unexpected} known failures, ${unexpected} unexpected\n`);
  }
  process.stdout.write(`${sum.passed} passed, ${sum.failed} failed\n`);
  if (known) return unexpected > 0 || (!filter && missing.length > 0) ? 1 : 0;
  return sum.failed > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));

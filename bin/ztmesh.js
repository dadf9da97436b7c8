#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript under dist/ (built by `npm install` via the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('ztmesh: dist/ is missing; run `npm install` (or `npm run build`) in the package directory first.\n');
  process.exit(70);
}
// A closed pipe (`ztmesh ... | head`) ends the output quietly, as other CLI tools do.
for (const s of [process.stdout, process.stderr]) s.on('error', (e) => { if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0); throw e; });
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);

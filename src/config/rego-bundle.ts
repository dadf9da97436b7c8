/**
 * Rego providers' modules and data, read from files when the configuration is loaded
 * (relative to the MeshConfig file) and compiled then, so a Rego error rejects the set
 * with its file, line and column. The sources travel with the configuration.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ZtmError } from '../errors.js';
import type { ExtensionProvider } from './types.js';
import * as regoEngine from '../rego/index.js';
import { provideRegoEngine } from '../policy/custom.js';

const { compileModules } = regoEngine;
// Whoever reads configuration files evaluates it too: hand the engine over now.
provideRegoEngine(regoEngine);

/** Rego module sources and data, read from files when the config is loaded and shipped with it. */
export interface RegoBundle {
  modules: Record<string, string>;
  data?: unknown;
}

/**
 * Read a rego provider's module files (files or directories of `.rego`, `_test.rego`
 * excluded) and data file, relative to the MeshConfig file; compile them to report
 * Rego errors at load time with their file, line and column.
 */
export function loadRegoBundle(p: ExtensionProvider, meshConfigFile: string, field: string): RegoBundle {
  const base = dirname(resolve(meshConfigFile));
  const modules: Record<string, string> = {};
  const addFile = (f: string) => {
    modules[relative(process.cwd(), f) || f] = readFileSync(f, 'utf8');
  };
  for (const m of p.rego?.modules ?? []) {
    const full = resolve(base, m);
    let st;
    try {
      st = statSync(full);
    } catch {
      throw new ZtmError('ZTM_CONFIG_INVALID', `rego module ${m} not found (resolved to ${full})`, { file: meshConfigFile, field: `${field}.rego.modules` });
    }
    if (st.isDirectory()) {
      for (const f of readdirSync(full).sort()) if (f.endsWith('.rego') && !f.endsWith('_test.rego')) addFile(join(full, f));
    } else addFile(full);
  }
  if (Object.keys(modules).length === 0) throw new ZtmError('ZTM_CONFIG_INVALID', 'the rego provider found no .rego modules', { file: meshConfigFile, field: `${field}.rego.modules` });
  let data: unknown;
  if (p.rego?.data) {
    const df = resolve(base, p.rego.data);
    try {
      data = parseYaml(readFileSync(df, 'utf8'));
    } catch (e) {
      throw new ZtmError('ZTM_CONFIG_INVALID', `cannot read rego data ${p.rego.data}: ${(e as Error).message}`, { file: meshConfigFile, field: `${field}.rego.data` });
    }
  }
  // Compile now: a Rego error rejects the configuration like any other invalid document.
  compileModules(modules);
  return { modules, data };
}


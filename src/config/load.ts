/**
 * Load files and directories of multi-document YAML into typed resources.
 * Validation is whole-set: any error rejects the set, and every error names
 * file, line, column and field path.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { LineCounter, parseAllDocuments, isMap, isSeq, isPair, isScalar } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { ZtmError } from '../errors.js';
import type { PathSeg } from './schema.js';
import type { MeshConfig } from './types.js';
import { loadRegoBundle } from './rego-bundle.js';
import { addDocument, finishSet } from './validate.js';
import type { LoadResult, PosOf, SetBuilder } from './validate.js';

// The YAML-free half (what sidecars need) lives in validate.ts; re-exported for callers of this module.
export { KINDS, meshSettings, validateObjects } from './validate.js';
export type { ConfigNotice, ConfigSet, LoadResult } from './validate.js';

const CONFIG_EXT = /\.(ya?ml|json)$/i;

/** Expand files and directories (recursively, sorted) into the config files they hold. */
export function expandPaths(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch (e) {
      throw new ZtmError('ZTM_CONFIG_IO', `cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: p });
    }
    if (st.isDirectory()) {
      const walk = (dir: string) => {
        for (const ent of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
          if (ent.name.startsWith('.')) continue;
          const full = join(dir, ent.name);
          if (ent.isDirectory()) walk(full);
          else if (CONFIG_EXT.test(ent.name)) out.push(full);
        }
      };
      walk(p);
    } else out.push(p);
  }
  return out;
}

export function displayPath(file: string): string {
  const rel = relative(process.cwd(), resolve(file));
  return rel && !rel.startsWith('..') ? rel : file;
}

/** Read and validate config from files and directories. */
export function loadConfig(paths: string[]): LoadResult {
  let files: string[];
  try {
    files = expandPaths(paths);
  } catch (e) {
    return { ok: false, errors: [e as ZtmError], notices: [] };
  }
  const inputs: { file: string; text: string }[] = [];
  const errors: ZtmError[] = [];
  for (const f of files) {
    try {
      inputs.push({ file: displayPath(f), text: readFileSync(f, 'utf8') });
    } catch (e) {
      errors.push(new ZtmError('ZTM_CONFIG_IO', `cannot read file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: displayPath(f) }));
    }
  }
  const res = parseConfigTexts(inputs);
  if (errors.length) return { ok: false, errors: [...errors, ...res.errors], notices: res.notices };
  if (res.ok) {
    // Rego providers: read and compile their modules now, so a Rego error rejects the set.
    const mc = res.config.resources.find((r): r is MeshConfig => r.kind === 'MeshConfig');
    mc?.spec.extensionProviders?.forEach((p, i) => {
      if (!p.rego) return;
      try {
        p.rego.bundle = loadRegoBundle(p, mc.source.file, `spec.extensionProviders[${i}]`);
      } catch (e) {
        errors.push(e instanceof ZtmError ? e : new ZtmError('ZTM_CONFIG_INVALID', (e as Error).message, { file: mc.source.file, field: `spec.extensionProviders[${i}].rego` }));
      }
    });
    if (errors.length) return { ok: false, errors, notices: res.notices };
  }
  return res;
}

/** Parse and validate in-memory YAML documents (used by loadConfig, the control plane and tests). */
export function parseConfigTexts(inputs: { file: string; text: string }[]): LoadResult {
  const b: SetBuilder = { errors: [], notices: [], resources: [], seq: 0 };
  for (const { file, text } of inputs) {
    const lc = new LineCounter();
    const docs = parseAllDocuments(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, strict: true });
    const list = Array.isArray(docs) ? docs : [docs];
    list.forEach((doc, docIndex) => {
      const posOf: PosOf = (path, atKey = false) => locate(doc, lc, path, atKey);
      if (doc.errors.length) {
        for (const e of doc.errors) {
          const lp = e.linePos?.[0] ?? (e.pos ? lc.linePos(e.pos[0]) : undefined);
          b.errors.push(new ZtmError('ZTM_CONFIG_PARSE', e.message.split('\n')[0], { file, line: lp?.line, col: lp?.col }));
        }
        return;
      }
      if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) return; // an empty document (comments only)
      let value: unknown;
      try {
        value = doc.toJS({ maxAliasCount: 100 });
      } catch (e) {
        b.errors.push(new ZtmError('ZTM_CONFIG_PARSE', (e as Error).message, { file, ...posOf([]) }));
        return;
      }
      addDocument(b, value, file, docIndex, posOf);
    });
  }
  return finishSet(b, inputs.map((i) => i.file));
}

/** Position (1-based line and column) of the node at `path`, or of its nearest existing ancestor. */
function locate(doc: Document, lc: LineCounter, path: PathSeg[], atKey: boolean): { line?: number; col?: number } {
  let node: unknown = doc.contents;
  let best: YamlNode | null = (doc.contents as YamlNode | null) ?? null;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      const keyNode = pair.key as YamlNode;
      if (last && (atKey || pair.value === null)) {
        best = keyNode;
        break;
      }
      node = pair.value;
      best = (pair.value as YamlNode | null) ?? keyNode;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (!item) break;
      node = item;
      best = item as YamlNode;
    } else break;
  }
  const off = best?.range?.[0];
  if (off === undefined) return { line: 1, col: 1 };
  return lc.linePos(off);
}

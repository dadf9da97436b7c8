/**
 * Validation of resource documents, independent of how they were read: structural
 * schema, Istio's rules, whole-set rules. `load.ts` feeds it YAML with positions;
 * sidecars feed it the objects of a slice (no YAML parser loaded).
 */
import { ZtmError } from '../errors.js';
import { checkSchema, formatPath, map, obj, str } from './schema.js';
import type { PathSeg, SchemaIssue } from './schema.js';
import type { KindDef } from './kinds/common.js';
import { authorizationPolicyKind, peerAuthenticationKind, requestAuthenticationKind } from './kinds/security.js';
import { destinationRuleKind, gatewayKind, serviceEntryKind, virtualServiceKind } from './kinds/networking.js';
import { meshConfigKind } from './kinds/mesh.js';
import { gatewayPolicyKind, rateLimitPolicyKind } from './kinds/gateway.js';
import type { AnyResource, MeshConfig, MeshSettings } from './types.js';
import { DEFAULT_MESH } from './types.js';

export const KINDS: readonly KindDef[] = [
  authorizationPolicyKind,
  peerAuthenticationKind,
  requestAuthenticationKind,
  serviceEntryKind,
  destinationRuleKind,
  virtualServiceKind,
  gatewayKind,
  meshConfigKind,
  rateLimitPolicyKind,
  gatewayPolicyKind,
];
const KIND_BY_NAME = new Map(KINDS.map((k) => [k.kind, k]));
/** API groups ztmesh owns completely: an unknown kind there is an error, not a skip. */
const STRICT_GROUPS = new Set(['security.istio.io', 'ztmesh.io']);

export interface ConfigNotice {
  file: string;
  line: number;
  message: string;
}

export interface ConfigSet {
  resources: AnyResource[];
  mesh: MeshSettings;
  notices: ConfigNotice[];
  files: string[];
}

export type LoadResult =
  | { ok: true; config: ConfigSet; errors: []; notices: ConfigNotice[] }
  | { ok: false; errors: ZtmError[]; notices: ConfigNotice[] };

const metadataSchema = obj(
  {
    name: str(),
    namespace: str(),
    labels: map(str()),
    annotations: map(str()),
    creationTimestamp: str(),
    uid: str(),
    resourceVersion: str(),
    generation: { t: 'int' },
    managedFields: { t: 'any' },
    generateName: str(),
    finalizers: { t: 'any' },
    ownerReferences: { t: 'any' },
  },
  ['name'],
);

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export type PosOf = (path: PathSeg[], atKey?: boolean) => { line?: number; col?: number };

/** What validation accumulates across the documents of one set. */
export interface SetBuilder {
  errors: ZtmError[];
  notices: ConfigNotice[];
  resources: AnyResource[];
  seq: number;
}

/**
 * Validate documents that are already objects (a slice from the control plane): the same
 * rules as parseConfigTexts, without a YAML round trip; errors name the document and field path.
 */
export function validateObjects(file: string, values: unknown[]): LoadResult {
  const b: SetBuilder = { errors: [], notices: [], resources: [], seq: 0 };
  values.forEach((v, i) => addDocument(b, v, file, i, () => ({})));
  return finishSet(b, [file]);
}

/** Validate one document and, when sound, add it as a typed resource. */
export function addDocument(b: SetBuilder, value: unknown, file: string, docIndex: number, posOf: PosOf): void {
  const { errors, notices } = b;
  const rootPos = posOf([]);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    errors.push(new ZtmError('ZTM_CONFIG_INVALID', 'a document must be a mapping with apiVersion, kind, metadata and spec', { file, ...rootPos }));
    return;
  }
  const rec = value as Record<string, unknown>;
  const { apiVersion, kind } = rec;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    const missing = typeof apiVersion !== 'string' ? 'apiVersion' : 'kind';
    errors.push(new ZtmError('ZTM_CONFIG_INVALID', `${missing} is required and must be a string`, { file, ...posOf([missing]), field: missing }));
    return;
  }
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  const def = KIND_BY_NAME.get(kind);
  if (!def || !(def.apiVersions as readonly string[]).includes(apiVersion)) {
    const known = def && (def.apiVersions as readonly string[]).some((v) => v.startsWith(group + '/'));
    if (known || STRICT_GROUPS.has(group)) {
      const msg = def
        ? `apiVersion "${apiVersion}" is not supported for ${kind} (supported: ${def.apiVersions.join(', ')})`
        : `unknown kind "${kind}" in ${group}`;
      errors.push(new ZtmError('ZTM_CONFIG_INVALID', msg, { file, ...posOf([def ? 'apiVersion' : 'kind']), field: def ? 'apiVersion' : 'kind' }));
    } else {
      notices.push({ file, line: rootPos.line ?? 1, message: `skipped ${kind} (${apiVersion}): not a kind ztmesh reads` });
    }
    return;
  }
  const issues: SchemaIssue[] = [];
  for (const k of Object.keys(rec)) {
    if (!['apiVersion', 'kind', 'metadata', 'spec', 'status'].includes(k)) issues.push({ path: [k], message: `unknown field "${k}"`, atKey: true });
  }
  if (rec.metadata === undefined || rec.metadata === null) issues.push({ path: ['metadata'], message: 'is required' });
  else checkSchema(rec.metadata, metadataSchema, ['metadata'], issues);
  if (rec.spec === undefined || rec.spec === null) {
    if (!def.specOptional) issues.push({ path: ['spec'], message: 'is required' });
  } else checkSchema(rec.spec, def.spec, ['spec'], issues);

  const md = (rec.metadata ?? {}) as Record<string, unknown>;
  const name = typeof md.name === 'string' ? md.name : '';
  const namespace = typeof md.namespace === 'string' ? md.namespace : 'default';
  if (name && !DNS1123_SUBDOMAIN.test(name)) issues.push({ path: ['metadata', 'name'], message: `"${name}" is not a valid name (lower-case RFC 1123 subdomain)` });
  if (typeof md.namespace === 'string' && !DNS1123_LABEL.test(md.namespace))
    issues.push({ path: ['metadata', 'namespace'], message: `"${md.namespace}" is not a valid namespace (lower-case RFC 1123 label)` });
  if (typeof md.creationTimestamp === 'string' && Number.isNaN(Date.parse(md.creationTimestamp)))
    issues.push({ path: ['metadata', 'creationTimestamp'], message: `"${md.creationTimestamp}" is not an RFC 3339 time` });

  // Semantic rules only on a structurally sound document, so they can trust types.
  if (issues.length === 0 && def.validate) def.validate(rec.spec ?? {}, (path, message) => issues.push({ path, message }), { name, namespace });
  for (const is of issues) {
    errors.push(new ZtmError('ZTM_CONFIG_INVALID', `${kind} ${namespace}/${name || '?'}: ${is.message}`, { file, ...posOf(is.path, is.atKey), field: formatPath(is.path) }));
  }
  if (issues.length) return;
  b.resources.push({
    apiVersion,
    kind,
    metadata: {
      name,
      namespace,
      labels: (md.labels as Record<string, string>) ?? {},
      annotations: (md.annotations as Record<string, string>) ?? {},
      creationTimestamp: md.creationTimestamp as string | undefined,
    },
    spec: (rec.spec ?? {}) as never,
    source: { file, line: rootPos.line ?? 1, col: rootPos.col ?? 1, doc: docIndex },
    seq: b.seq++,
  } as AnyResource);
}

/** Whole-set rules: unique names per kind and namespace; at most one MeshConfig. */
export function finishSet(b: SetBuilder, files: string[]): LoadResult {
  const { errors, notices, resources } = b;
  const seen = new Map<string, AnyResource>();
  for (const r of resources) {
    const key = `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
    const prev = seen.get(key);
    if (prev) {
      errors.push(
        new ZtmError('ZTM_CONFIG_INVALID', `${r.kind} ${r.metadata.namespace}/${r.metadata.name} is defined twice (first at ${prev.source.file}:${prev.source.line})`, {
          file: r.source.file,
          line: r.source.line,
          col: r.source.col,
          field: 'metadata.name',
        }),
      );
    } else seen.set(key, r);
  }
  const meshes = resources.filter((r): r is MeshConfig => r.kind === 'MeshConfig');
  if (meshes.length > 1) {
    const [first, ...rest] = meshes;
    for (const m of rest)
      errors.push(
        new ZtmError('ZTM_CONFIG_INVALID', `only one MeshConfig is allowed (another is at ${first.source.file}:${first.source.line})`, {
          file: m.source.file,
          line: m.source.line,
          col: m.source.col,
          field: 'kind',
        }),
      );
  }
  if (errors.length) return { ok: false, errors, notices };
  return { ok: true, config: { resources, mesh: meshSettings(meshes[0]), notices, files }, errors: [], notices };
}


export function meshSettings(m: MeshConfig | undefined): MeshSettings {
  const s = m?.spec ?? {};
  return {
    trustDomain: s.trustDomain ?? DEFAULT_MESH.trustDomain,
    rootNamespace: s.rootNamespace ?? DEFAULT_MESH.rootNamespace,
    pathNormalization: s.pathNormalization?.normalization ?? DEFAULT_MESH.pathNormalization,
    outboundTrafficPolicy: s.outboundTrafficPolicy?.mode ?? DEFAULT_MESH.outboundTrafficPolicy,
    extensionProviders: s.extensionProviders ?? [],
    numTrustedProxies: s.numTrustedProxies ?? DEFAULT_MESH.numTrustedProxies,
  };
}


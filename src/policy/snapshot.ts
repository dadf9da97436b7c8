/**
 * Compile a validated ConfigSet into an immutable, versioned policy snapshot:
 * everything the request path needs, indexed once.
 */
import { createHash } from 'node:crypto';
import type { ConfigSet } from '../config/load.js';
import type { AuthorizationPolicy, MeshSettings, PeerAuthentication, RequestAuthentication } from '../config/types.js';
import { PolicyIndex } from './engine.js';
import { compilePeerAuthn } from './peer-authn.js';
import { buildCustomProviders } from './custom.js';
import type { CustomProviders } from './custom.js';
import type { PeerAuthnIndex } from './peer-authn.js';

export interface PolicySnapshot {
  /** Content hash of the resources: equal configs give equal versions. */
  readonly version: string;
  readonly mesh: MeshSettings;
  readonly config: ConfigSet;
  readonly authz: PolicyIndex;
  readonly peerAuthn: PeerAuthnIndex;
  readonly requestAuthn: readonly RequestAuthentication[];
  /** CUSTOM providers of MeshConfig, compiled (Rego) or configured (OPA). */
  readonly custom: CustomProviders;
}

export function configVersion(config: ConfigSet): string {
  const h = createHash('sha256');
  const docs = config.resources
    .map((r) => JSON.stringify([r.apiVersion, r.kind, r.metadata.namespace, r.metadata.name, r.metadata.labels, r.metadata.annotations, r.metadata.creationTimestamp ?? null, r.spec]))
    .sort();
  for (const d of docs) h.update(d).update('\n');
  return h.digest('hex').slice(0, 16);
}

export function compile(config: ConfigSet): PolicySnapshot {
  const of = <T>(kind: string) => config.resources.filter((r) => r.kind === kind) as unknown as T[];
  return Object.freeze({
    version: configVersion(config),
    mesh: config.mesh,
    config,
    authz: new PolicyIndex(of<AuthorizationPolicy>('AuthorizationPolicy'), config.mesh.rootNamespace),
    peerAuthn: compilePeerAuthn(of<PeerAuthentication>('PeerAuthentication'), config.mesh.rootNamespace),
    requestAuthn: of<RequestAuthentication>('RequestAuthentication'),
    custom: buildCustomProviders(config.mesh),
  });
}

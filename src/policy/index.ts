/**
 * `ztmesh/policy`: load Istio security resources, compile them, and decide.
 *
 *   const res = loadConfig(['policies/']);             // validate the whole set
 *   if (!res.ok) for (const e of res.errors) console.error(e.format());
 *   const snap = compile(res.config);                   // index once
 *   const d = authorize(snap.authz, input, { pathNormalization: snap.mesh.pathNormalization });
 */
export { loadConfig, parseConfigTexts } from '../config/load.js';
export type { ConfigSet, LoadResult } from '../config/load.js';
export { compile, configVersion } from './snapshot.js';
export type { PolicySnapshot } from './snapshot.js';
export { authorize, authorizeFor, authorizeAsync, PolicyIndex, PrincipalIndex, requestContext } from './engine.js';
export type { Decision, DryRunResult, CustomResult, CustomAuthorizer, AsyncCustomAuthorizer, AuthorizeOptions, WorkloadPolicies } from './engine.js';
export { compilePeerAuthn } from './peer-authn.js';
export type { EffectiveMtls, MtlsExplanation, PeerAuthnIndex } from './peer-authn.js';
export { normalizePath } from './path.js';
export type { NormalizeResult } from './path.js';
export type { AuthzInput, RequestContext, WorkloadRef } from './request.js';
export { toIstioPrincipal } from './request.js';

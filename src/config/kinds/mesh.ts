/** ztmesh.io/v1alpha1 MeshConfig: the mesh-wide settings (one per config set). */
import { arr, bool, int, obj, str, strs, any } from '../schema.js';
import type { PathSeg } from '../schema.js';
import type { KindDef, Report } from './common.js';
import type { MeshConfigSpec } from '../types.js';

export const PATH_NORMALIZATION_MODES = ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'] as const;

export const meshConfigKind: KindDef = {
  kind: 'MeshConfig',
  apiVersions: ['ztmesh.io/v1alpha1'],
  specOptional: true,
  spec: obj({
    trustDomain: str(),
    rootNamespace: str(),
    pathNormalization: obj({ normalization: str({ enum: PATH_NORMALIZATION_MODES }) }),
    outboundTrafficPolicy: obj({ mode: str({ enum: ['REGISTRY_ONLY', 'ALLOW_ANY'] }) }),
    numTrustedProxies: int(0, 32),
    extensionProviders: arr(
      obj(
        {
          name: str(),
          rego: obj({ modules: strs, decision: str(), data: str() }, ['modules']),
          opa: obj({ url: str(), path: str(), timeout: str(), failOpen: bool }, ['url']),
          envoyExtAuthzHttp: any,
          envoyExtAuthzGrpc: any,
        },
        ['name'],
      ),
    ),
  }),
  validate(spec: MeshConfigSpec, report: Report) {
    const S: PathSeg[] = ['spec'];
    if (spec.trustDomain !== undefined && !/^[a-z0-9._-]+$/.test(spec.trustDomain))
      report([...S, 'trustDomain'], `trust domain "${spec.trustDomain}" may contain only lower-case letters, digits, ".", "-" and "_"`);
    if (spec.rootNamespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(spec.rootNamespace))
      report([...S, 'rootNamespace'], `"${spec.rootNamespace}" is not a valid namespace name`);
    const names = new Set<string>();
    spec.extensionProviders?.forEach((p, i) => {
      const P: PathSeg[] = [...S, 'extensionProviders', i];
      if (names.has(p.name)) report([...P, 'name'], `extension provider name "${p.name}" is used twice`);
      names.add(p.name);
      const kinds = (['rego', 'opa', 'envoyExtAuthzHttp', 'envoyExtAuthzGrpc'] as const).filter((k) => p[k] !== undefined && p[k] !== null);
      if (kinds.length !== 1) report(P, `an extension provider must set exactly one of rego, opa, envoyExtAuthzHttp, envoyExtAuthzGrpc (found ${kinds.length ? kinds.join(', ') : 'none'})`);
      if (p.rego && !p.rego.modules?.length) report([...P, 'rego', 'modules'], 'rego provider needs at least one module file');
      if (p.opa?.url) {
        try {
          const u = new URL(p.opa.url);
          if (u.protocol !== 'http:' && u.protocol !== 'https:') report([...P, 'opa', 'url'], 'OPA url must be http or https');
        } catch {
          report([...P, 'opa', 'url'], `"${p.opa.url}" is not a valid URL`);
        }
      }
    });
  },
};

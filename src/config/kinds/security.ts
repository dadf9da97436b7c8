/** security.istio.io: AuthorizationPolicy, PeerAuthentication, RequestAuthentication, with Istio's validation rules. */
import { arr, bool, map, obj, str, strs } from '../schema.js';
import type { PathSeg } from '../schema.js';
import type { KindDef, Report } from './common.js';
import { ipOrCidrError, portError, selectorSchema, validateSelector } from './common.js';
import type { AuthorizationPolicySpec, IstioCondition, IstioOperation, IstioSource, JwtRule, PeerAuthenticationSpec, RequestAuthenticationSpec } from '../types.js';
import { istioDurationError } from '../duration.js';

const SECURITY_VERSIONS = ['security.istio.io/v1', 'security.istio.io/v1beta1'] as const;

const targetRef = obj({ group: str(), kind: str(), name: str(), namespace: str() });

const sourceSchema = obj({
  principals: strs,
  notPrincipals: strs,
  requestPrincipals: strs,
  notRequestPrincipals: strs,
  namespaces: strs,
  notNamespaces: strs,
  serviceAccounts: strs,
  notServiceAccounts: strs,
  ipBlocks: strs,
  notIpBlocks: strs,
  remoteIpBlocks: strs,
  notRemoteIpBlocks: strs,
});

const operationSchema = obj({
  hosts: strs,
  notHosts: strs,
  ports: strs,
  notPorts: strs,
  methods: strs,
  notMethods: strs,
  paths: strs,
  notPaths: strs,
});

const ruleSchema = obj({
  from: arr(obj({ source: sourceSchema })),
  to: arr(obj({ operation: operationSchema })),
  when: arr(obj({ key: str(), values: strs, notValues: strs })),
});

export const AUTHZ_ACTIONS = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const;

/** The `when` keys Istio documents, with the check their values must pass. */
export function conditionKeyError(key: string): string | undefined {
  const mapKey = (prefix: string) => {
    const rest = key.slice(prefix.length);
    return /^\[[^\[\]]+\](\[[^\[\]]+\])*$/.test(rest) ? undefined : `bad key (${key}): should have format ${prefix}[name]`;
  };
  if (key.startsWith('request.headers')) return /^request\.headers\[[^\[\]]+\]$/.test(key) ? undefined : `bad key (${key}): should have format request.headers[name]`;
  if (key.startsWith('request.auth.claims')) return mapKey('request.auth.claims');
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
    case 'source.namespace':
    case 'source.serviceAccount':
    case 'source.principal':
    case 'request.auth.principal':
    case 'request.auth.audiences':
    case 'request.auth.presenter':
    case 'destination.ip':
    case 'destination.port':
    case 'connection.sni':
      return undefined;
    case 'destination.namespace':
      return `attribute ${key} is replaced by the metadata.namespace`;
    case 'destination.name':
    case 'destination.user':
      return `deprecated attribute ${key}: only supported in v1alpha1`;
  }
  if (key.startsWith('destination.labels')) return `attribute ${key} is replaced by the workload selector`;
  if (key.startsWith('experimental.envoy.filters.')) return `attribute ${key} is not supported by ztmesh`;
  return `unknown attribute: ${key}`;
}

function conditionValueError(key: string, v: string): string | undefined {
  if (v === '') return `empty value not allowed, found in ${key}`;
  if (key === 'source.ip' || key === 'remote.ip' || key === 'destination.ip') return ipOrCidrError(v);
  if (key === 'destination.port') return portError(v);
  if (key === 'source.serviceAccount') return serviceAccountError(v, key);
  return undefined;
}

function serviceAccountError(v: string, field: string): string | undefined {
  if (v === '') return `empty value not allowed, found in ${field}`;
  if (v.includes('*')) return `wildcard not allowed, found in ${field}`;
  const slashes = v.split('/').length - 1;
  if (slashes > 1) return `expected format 'serviceAccount' or 'namespace/serviceAccount', found "${v}" in ${field}`;
  if (v.length > 320) return `value cannot exceed 320 characters, found in ${field}`;
  if (slashes === 1) {
    const [ns, sa] = v.split('/');
    if (!ns) return `expected format 'serviceAccount' or 'namespace/serviceAccount', found empty namespace "${v}" in ${field}`;
    if (!sa) return `expected format 'serviceAccount' or 'namespace/serviceAccount', found empty serviceAccount "${v}" in ${field}`;
  }
  return undefined;
}

const PCHAR_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

/** Istio's CheckValidPathTemplate: `{*}`/`{**}` are whole segments, `{**}` is last, no stray braces. */
export function pathTemplateError(path: string): string | undefined {
  const hasTemplate = path.includes('{*}') || path.includes('{**}');
  let sawAny = false;
  for (const seg of path.replace(/^\/+|\/+$/g, '').split('/')) {
    if ((seg === '{*}' || seg === '{**}') && sawAny) return `invalid or unsupported path ${path}: {**} is not the last operator`;
    if (seg === '{*}') continue;
    if (seg === '{**}') {
      sawAny = true;
      continue;
    }
    if (/[{}]/.test(seg)) return `invalid or unsupported path ${path}: contains '{' or '}' beyond a supported path template`;
    if (hasTemplate && !PCHAR_LITERAL.test(seg)) return `invalid or unsupported path ${path}: segment "${seg}" is not a valid literal`;
  }
  return undefined;
}

const HTTP_METHOD = /^[A-Z][A-Z_-]*$/;

function checkValues(values: string[] | undefined, path: PathSeg[], field: string, report: Report, extra?: (v: string) => string | undefined) {
  values?.forEach((v, i) => {
    if (v === '') report([...path, i], `empty value not allowed, found in ${field}`);
    else {
      const e = extra?.(v);
      if (e) report([...path, i], e);
    }
  });
}

const SOURCE_FIELDS: (keyof IstioSource)[] = [
  'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces',
  'serviceAccounts', 'notServiceAccounts', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks',
];
const OPERATION_FIELDS: (keyof IstioOperation)[] = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'];

export const authorizationPolicyKind: KindDef = {
  kind: 'AuthorizationPolicy',
  apiVersions: SECURITY_VERSIONS,
  specOptional: true,
  spec: obj({
    selector: selectorSchema,
    targetRef,
    targetRefs: arr(targetRef),
    rules: arr(ruleSchema),
    action: str({ enum: AUTHZ_ACTIONS }),
    provider: obj({ name: str() }),
  }),
  validate(spec: AuthorizationPolicySpec & { targetRef?: unknown; targetRefs?: unknown }, report) {
    const S: PathSeg[] = ['spec'];
    if (spec.targetRef || spec.targetRefs) report([...S, spec.targetRef ? 'targetRef' : 'targetRefs'], 'targetRef/targetRefs (waypoint and gateway attachment) is not supported by ztmesh; use selector');
    validateSelector(spec.selector, [...S, 'selector'], report);
    const action = spec.action ?? 'ALLOW';
    if (action === 'CUSTOM') {
      if (spec.rules === undefined || spec.rules === null)
        report([...S, 'rules'], 'CUSTOM action without `rules` is meaningless as it will never be triggered; add an empty rule `{}` if you want it triggered for every request');
      else if (!spec.provider?.name) report([...S, 'provider', 'name'], '`provider.name` must not be empty with the CUSTOM action');
      spec.rules?.forEach((rule, i) => {
        rule?.from?.forEach((f, j) => {
          for (const fld of ['namespaces', 'notNamespaces', 'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'serviceAccounts', 'notServiceAccounts'] as const)
            if (f?.source?.[fld]?.length) report([...S, 'rules', i, 'from', j, 'source', fld], `from.${fld} is currently not supported with CUSTOM action`);
        });
        rule?.when?.forEach((c, j) => {
          if (c && (c.key === 'source.namespace' || c.key === 'source.principal' || c.key === 'source.serviceAccount' || c.key?.startsWith('request.auth.')))
            report([...S, 'rules', i, 'when', j, 'key'], `${c.key} is currently not supported with CUSTOM action`);
        });
      });
    }
    if (spec.provider && action !== 'CUSTOM') report([...S, 'provider'], `\`provider\` must not be used with a non-CUSTOM action, found ${action}`);
    if (action === 'DENY' && (spec.rules === undefined || spec.rules === null))
      report([...S, 'rules'], 'DENY action without `rules` is meaningless as it will never be triggered; add an empty rule `{}` if you want it triggered for every request');

    spec.rules?.forEach((rule, i) => {
      const R: PathSeg[] = [...S, 'rules', i];
      if (rule.from && rule.from.length === 0) report([...R, 'from'], '`from` must not be empty');
      rule.from?.forEach((f, j) => {
        const F: PathSeg[] = [...R, 'from', j];
        if (!f.source) return report([...F, 'source'], '`from.source` must not be nil');
        const src = f.source;
        const P: PathSeg[] = [...F, 'source'];
        if (!SOURCE_FIELDS.some((k) => src[k]?.length)) report(P, '`from.source` must not be empty');
        if ((src.principals?.length || src.notPrincipals?.length || src.namespaces?.length || src.notNamespaces?.length) && (src.serviceAccounts?.length || src.notServiceAccounts?.length))
          report(P, 'cannot set serviceAccounts with namespaces or principals');
        for (const k of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const) checkValues(src[k], [...P, k], k, report, ipOrCidrError);
        for (const k of ['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces'] as const) checkValues(src[k], [...P, k], k, report);
        for (const k of ['serviceAccounts', 'notServiceAccounts'] as const) {
          if ((src[k]?.length ?? 0) > 16) report([...P, k], 'may not have more than 16 values');
          checkValues(src[k], [...P, k], k, report, (v) => serviceAccountError(v, k));
        }
      });
      if (rule.to && rule.to.length === 0) report([...R, 'to'], '`to` must not be empty');
      rule.to?.forEach((t, j) => {
        const T: PathSeg[] = [...R, 'to', j];
        if (!t.operation) return report([...T, 'operation'], '`to.operation` must not be nil');
        const op = t.operation;
        const O: PathSeg[] = [...T, 'operation'];
        if (!OPERATION_FIELDS.some((k) => op[k]?.length)) report(O, '`to.operation` must not be empty');
        for (const k of ['ports', 'notPorts'] as const) checkValues(op[k], [...O, k], k, report, portError);
        for (const k of ['methods', 'notMethods'] as const)
          checkValues(op[k], [...O, k], k, report, (m) =>
            /[a-z]/.test(m)
              ? `method "${m}" must be upper case (HTTP methods are case-sensitive; "${m}" would never match)`
              : m === '*' || m.startsWith('*') || m.endsWith('*') || HTTP_METHOD.test(m)
                ? undefined
                : `method "${m}" is not a valid HTTP method token (e.g. GET)`,
          );
        for (const k of ['hosts', 'notHosts'] as const) checkValues(op[k], [...O, k], k, report);
        for (const k of ['paths', 'notPaths'] as const) checkValues(op[k], [...O, k], k, report, pathTemplateError);
      });
      rule.when?.forEach((c: IstioCondition, j) => {
        const W: PathSeg[] = [...R, 'when', j];
        if (!c.key) return report([...W, 'key'], '`key` must not be empty');
        if (!c.values?.length && !c.notValues?.length) return report(W, `at least one of \`values\` or \`notValues\` must be set for key ${c.key}`);
        const ke = conditionKeyError(c.key);
        if (ke) return report([...W, 'key'], ke);
        for (const k of ['values', 'notValues'] as const) checkValues(c[k], [...W, k], k, report, (v) => conditionValueError(c.key, v));
      });
    });
  },
};

const MTLS_MODES = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] as const;

export const peerAuthenticationKind: KindDef = {
  kind: 'PeerAuthentication',
  apiVersions: SECURITY_VERSIONS,
  specOptional: true,
  spec: obj({
    selector: selectorSchema,
    mtls: obj({ mode: str({ enum: MTLS_MODES }) }),
    portLevelMtls: map(obj({ mode: str({ enum: MTLS_MODES }) }), 'port'),
  }),
  validate(spec: PeerAuthenticationSpec, report) {
    const S: PathSeg[] = ['spec'];
    const emptySelector = !spec.selector?.matchLabels || Object.keys(spec.selector.matchLabels).length === 0;
    if (spec.portLevelMtls) {
      const ports = Object.keys(spec.portLevelMtls);
      if (ports.length === 0) report([...S, 'portLevelMtls'], 'port level mTLS, if defined, must have at least one element');
      else if (emptySelector) report([...S, 'portLevelMtls'], 'mesh/namespace peer authentication cannot have port level mTLS (portLevelMtls needs a selector)');
      for (const p of ports) if (!/^[0-9]+$/.test(p) || Number(p) < 1 || Number(p) > 65535) report([...S, 'portLevelMtls', p], 'port must be in range 1..65535');
    }
    validateSelector(spec.selector, [...S, 'selector'], report);
  },
};

export const requestAuthenticationKind: KindDef = {
  kind: 'RequestAuthentication',
  apiVersions: SECURITY_VERSIONS,
  specOptional: true,
  spec: obj({
    selector: selectorSchema,
    targetRef,
    targetRefs: arr(targetRef),
    jwtRules: arr(
      obj({
        issuer: str(),
        audiences: strs,
        jwksUri: str(),
        jwks: str(),
        fromHeaders: arr(obj({ name: str(), prefix: str() }, ['name'])),
        fromParams: strs,
        fromCookies: strs,
        outputPayloadToHeader: str(),
        outputClaimToHeaders: arr(obj({ header: str(), claim: str() })),
        forwardOriginalToken: bool,
        timeout: str(),
      }),
    ),
  }),
  validate(spec: RequestAuthenticationSpec & { targetRef?: unknown; targetRefs?: unknown }, report) {
    const S: PathSeg[] = ['spec'];
    if (spec.targetRef || spec.targetRefs) report([...S, spec.targetRef ? 'targetRef' : 'targetRefs'], 'targetRef/targetRefs is not supported by ztmesh; use selector');
    validateSelector(spec.selector, [...S, 'selector'], report);
    spec.jwtRules?.forEach((r: JwtRule, i) => {
      const J: PathSeg[] = [...S, 'jwtRules', i];
      r.audiences?.forEach((a, k) => a === '' && report([...J, 'audiences', k], 'audience must be non-empty string'));
      if (!r.issuer && !r.jwksUri) report(J, 'issuer or jwksUri must be non-empty string');
      if (r.jwksUri) {
        let u: URL | undefined;
        try {
          u = new URL(r.jwksUri);
        } catch {
          report([...J, 'jwksUri'], `jwksUri "${r.jwksUri}" is not a valid URL`);
        }
        if (u && u.protocol !== 'https:' && u.protocol !== 'http:') report([...J, 'jwksUri'], `URI scheme "${u.protocol.replace(':', '')}" is not supported`);
      }
      if (r.jwks) {
        try {
          const j = JSON.parse(r.jwks) as { keys?: unknown };
          if (!Array.isArray(j.keys)) report([...J, 'jwks'], 'jwks parse error: a JWKS must be an object with a "keys" list');
        } catch (e) {
          report([...J, 'jwks'], `jwks parse error: ${(e as Error).message}`);
        }
      }
      r.fromHeaders?.forEach((h, k) => !h.name && report([...J, 'fromHeaders', k, 'name'], 'location header name must be non-empty string'));
      r.fromParams?.forEach((p, k) => p === '' && report([...J, 'fromParams', k], 'location query must be non-empty string'));
      r.fromCookies?.forEach((p, k) => p === '' && report([...J, 'fromCookies', k], 'cookie name must be non-empty string'));
      r.outputClaimToHeaders?.forEach((o, k) => {
        if (!o.claim || !o.header) report([...J, 'outputClaimToHeaders', k], 'outputClaimToHeaders header and claim value must be non-empty string');
        else if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(o.header)) report([...J, 'outputClaimToHeaders', k, 'header'], `"${o.header}" is not a valid HTTP header name`);
      });
      // Istio's CRD rule for Duration fields: duration(self) >= duration('1ms').
      const te = r.timeout !== undefined ? istioDurationError(r.timeout) : undefined;
      if (te) report([...J, 'timeout'], te);
    });
  },
};

/**
 * The request-authentication filter (RequestAuthentication selecting this workload), for
 * the sidecar's inbound chain and the gateway: verified claims go into `x.auth` for
 * authorization, an invalid token is answered 401 with `WWW-Authenticate: Bearer
 * error="invalid_token"`, and a missing token passes unauthenticated. Client-supplied
 * copies of the headers the rules write are removed first, whatever happens.
 */
import { sharedJwksCache, type JwksCache } from '../identity/jwks.js';
import { authenticate, authnHeaderEdits, compileRequestAuthn, INVALID_TOKEN_CHALLENGE, type AuthnResult, type RequestAuthnConfig } from '../policy/request-authn.js';
import type { Exchange, Filter, FilterResult } from './filters.js';
import type { ProxyState } from './state.js';

export function requestAuthnFilter(workload: { namespace: string; labels: Record<string, string> }, opts: { cache?: JwksCache; now?: () => number; maxTokenLength?: number } = {}): Filter {
  const cache = opts.cache ?? sharedJwksCache;
  const now = opts.now ?? Date.now;
  const compiled = new WeakMap<ProxyState, RequestAuthnConfig>();
  const configFor = (s: ProxyState): RequestAuthnConfig => {
    let c = compiled.get(s);
    if (!c) {
      c = compileRequestAuthn(s.snapshot.requestAuthn, workload, s.snapshot.mesh.rootNamespace, { maxTokenLength: opts.maxTokenLength });
      for (const r of c.rules) if (r.jwksUri && !cache.get(r.jwksUri)) void cache.load(r.jwksUri, r.jwksTimeoutMs); // warm the key sets
      compiled.set(s, c);
    }
    return c;
  };
  const finish = (x: Exchange, r: AuthnResult): FilterResult => {
    if (r.kind === 'none') return undefined;
    if (r.kind === 'ok') {
      x.auth = r.auth;
      (x as Exchange & { token?: string }).token = r.token; // for per-credential limits and token exchange at the gateway
      const e = authnHeaderEdits(r);
      for (const k of e.remove) delete x.req.headers[k];
      for (const [k, v] of Object.entries(e.set)) x.req.headers[k] = v;
      return undefined;
    }
    if (r.kind === 'reject') {
      const body = r.reason === 'unknown_issuer' ? 'Jwt issuer is not configured' : 'Jwt verification fails';
      return { status: 401, body, decision: 'DENY', reason: `invalid JWT (${r.reason}): ${r.detail}`, policy: r.rule?.policy ?? null, headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE } };
    }
    return { status: 401, body: 'Jwt verification fails', decision: 'DENY', reason: 'JWKS unavailable', headers: { 'www-authenticate': INVALID_TOKEN_CHALLENGE } };
  };
  return {
    name: 'request-authentication',
    onRequest(x) {
      const cfg = configFor(x.state);
      if (cfg.rules.length === 0) return undefined;
      for (const h of cfg.outputHeaders) delete x.req.headers[h];
      const req = { headers: x.req.headers, query: x.query.startsWith('?') ? x.query.slice(1) : x.query };
      const r = authenticate(cfg, req, (u) => cache.get(u), Math.floor(now() / 1000), () => null);
      if (r.kind !== 'need_keys') return finish(x, r);
      // First use of this key set: fetch it, then decide (fail closed when it cannot be fetched).
      return cache.load(r.jwksUri, r.rule.jwksTimeoutMs).then(() =>
        finish(x, authenticate(cfg, req, (u) => cache.get(u), Math.floor(now() / 1000), (u) => cache.lastError(u) ?? 'not fetched')),
      );
    },
  };
}

/**
 * OAuth 2.0 Token Exchange (RFC 8693) at the control plane, as a pure function: a caller
 * authenticated by its SVID presents an end-user JWT the mesh accepts (`subject_token`)
 * and one `audience`; the answer is a JWT of at most 5 minutes for exactly that audience,
 * signed with the mesh's JWT key, with an `act` claim naming the caller (prior actors
 * nested inside) and honouring the subject token's `may_act`.
 */
import type { JwtSigner } from '../identity/jwt-svid.js';
import { signCompactJws } from '../identity/jws.js';
import type { JsonValue } from '../identity/strict-json.js';

export const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
export const MAX_EXCHANGED_TTL_SECONDS = 300;

export interface ExchangeDeps {
  /** The caller's SPIFFE ID (verified client certificate). */
  actor: string;
  /** Verify a subject token: its claims, or why it is not accepted. */
  verifySubject: (token: string) => { ok: true; claims: Record<string, JsonValue> } | { ok: false; detail: string };
  /** Whether `audience` names something in the mesh tokens may be minted for. */
  knownAudience: (audience: string) => boolean;
  signer: JwtSigner;
  issuer: string;
  nowSeconds: number;
  ttlSeconds?: number;
}

export type ExchangeResult = { status: 200; body: Record<string, unknown> } | { status: 400; body: { error: string; error_description: string } };

const err = (error: string, error_description: string): ExchangeResult => ({ status: 400, body: { error, error_description } });

/** `form` is the application/x-www-form-urlencoded request body. */
export function exchangeToken(form: URLSearchParams, d: ExchangeDeps): ExchangeResult {
  for (const k of ['grant_type', 'subject_token', 'subject_token_type', 'requested_token_type', 'actor_token', 'actor_token_type']) {
    if (form.getAll(k).length > 1) return err('invalid_request', `parameter ${k} is repeated`);
  }
  const grant = form.get('grant_type');
  if (!grant) return err('invalid_request', 'grant_type is required');
  if (grant !== GRANT_TYPE) return err('unsupported_grant_type', `grant_type must be ${GRANT_TYPE}`);
  const subject = form.get('subject_token');
  if (!subject) return err('invalid_request', 'subject_token is required');
  const stt = form.get('subject_token_type');
  if (!stt) return err('invalid_request', 'subject_token_type is required');
  if (stt !== JWT_TOKEN_TYPE && stt !== ACCESS_TOKEN_TYPE) return err('invalid_request', `subject_token_type ${stt} is not supported (use ${JWT_TOKEN_TYPE})`);
  const rtt = form.get('requested_token_type');
  if (rtt && rtt !== JWT_TOKEN_TYPE && rtt !== ACCESS_TOKEN_TYPE) return err('invalid_request', `requested_token_type ${rtt} is not supported`);
  if (form.has('actor_token')) return err('invalid_request', 'actor_token is not supported: the actor is the caller authenticated by mTLS');
  if (form.has('resource')) return err('invalid_target', 'resource is not supported; name the audience');
  const audiences = form.getAll('audience');
  if (audiences.length === 0 || audiences[0] === '') return err('invalid_request', 'audience is required');
  if (audiences.length > 1) return err('invalid_target', 'exactly one audience per exchange');
  const audience = audiences[0];
  if (!d.knownAudience(audience)) return err('invalid_target', `audience "${audience}" is not a service of this mesh`);
  const v = d.verifySubject(subject);
  if (!v.ok) return err('invalid_request', `subject_token is not accepted: ${v.detail}`);
  const c = v.claims;
  if (typeof c.sub !== 'string' || c.sub === '') return err('invalid_request', 'subject_token has no "sub"');
  if (c.may_act !== undefined) {
    const ma = c.may_act as Record<string, JsonValue> | null;
    if (!ma || typeof ma !== 'object' || Array.isArray(ma) || ma.sub !== d.actor) return err('invalid_request', `the subject token's may_act does not allow ${d.actor} to act for it`);
  }
  const ttl = Math.min(d.ttlSeconds ?? MAX_EXCHANGED_TTL_SECONDS, MAX_EXCHANGED_TTL_SECONDS);
  let exp = d.nowSeconds + ttl;
  if (typeof c.exp === 'number' && c.exp < exp) exp = Math.floor(c.exp);
  if (exp <= d.nowSeconds) return err('invalid_request', 'subject_token has expired');
  const prior = c.act && typeof c.act === 'object' && !Array.isArray(c.act) ? c.act : undefined;
  const act: Record<string, unknown> = { sub: d.actor, ...(prior ? { act: prior } : {}) };
  const origIss = typeof c.iss === 'string' ? c.iss : undefined;
  const claims: Record<string, unknown> = {
    iss: d.issuer,
    sub: origIss && origIss !== d.issuer ? `${origIss}/${c.sub}` : c.sub,
    aud: audience,
    iat: d.nowSeconds,
    exp,
    act,
    ...(typeof c.scope === 'string' ? { scope: c.scope } : {}),
  };
  const token = signCompactJws({ alg: d.signer.alg, kid: d.signer.kid, typ: 'JWT' }, claims, d.signer.privateKey);
  return { status: 200, body: { access_token: token, issued_token_type: JWT_TOKEN_TYPE, token_type: 'Bearer', expires_in: exp - d.nowSeconds } };
}

// ---------------------------------------------------------------- the HTTP endpoint

import type { IncomingMessage, ServerResponse } from 'node:http';
import type tls from 'node:tls';
import { jwksDocument, loadOrCreateJwtSigner } from '../identity/jwt-svid.js';
import { peerIdentity, type BundleSet } from '../identity/index.js';
import { sharedJwksCache } from '../identity/jwks.js';
import { authenticate, compileRequestAuthn } from '../policy/request-authn.js';
import type { RequestAuthentication } from '../config/types.js';
import type { PolicySnapshot } from '../policy/snapshot.js';

export interface TokenServiceOptions {
  dataDir: string;
  passphrase: string;
  trustDomain: string;
  bundles: BundleSet;
  snapshot: () => PolicySnapshot | null;
  /** `name.namespace` of every registered service (the audiences tokens may be minted for). */
  services: () => string[];
}

/** `POST /token` (RFC 8693, caller authenticated by its SVID) and `GET /.well-known/jwks.json`. */
export class TokenService {
  private signer: Promise<JwtSigner> | null = null;
  readonly issuer: string;

  constructor(private readonly o: TokenServiceOptions) {
    this.issuer = `https://ztmesh.${o.trustDomain}`;
  }

  /** One signer per process: concurrent first calls share one load (or creation) of the key. */
  private getSigner(): Promise<JwtSigner> {
    this.signer ??= loadOrCreateJwtSigner(this.o.dataDir, this.o.passphrase);
    this.signer.catch(() => (this.signer = null)); // a failed load is retried by the next call
    return this.signer;
  }

  async jwks(): Promise<unknown> {
    const s = await this.getSigner();
    return { keys: jwksDocument([s]).keys.map((k) => ({ ...k, use: 'sig' })) };
  }

  async handleToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method !== 'POST') return send(405, { error: 'invalid_request', error_description: 'POST only' });
    const v = peerIdentity(req.socket as tls.TLSSocket, this.o.bundles, Date.now(), { expectedTrustDomain: this.o.trustDomain });
    if (!v.ok) return send(401, { error: 'invalid_client', error_description: `the caller must present its SVID (${v.reason})` });
    if (!String(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      return send(400, { error: 'invalid_request', error_description: 'the body must be application/x-www-form-urlencoded' });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > 64 * 1024) return send(400, { error: 'invalid_request', error_description: 'request body too large' });
      chunks.push(c as Buffer);
    }
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const signer = await this.getSigner();
    const snap = this.o.snapshot();
    const root = snap?.mesh.rootNamespace ?? 'istio-system';
    // Every jwtRule of the mesh accepts subject tokens, and so does the mesh's own issuer (nested exchange).
    const ras = (snap?.requestAuthn ?? []).map((r) => ({ ...r, metadata: { ...r.metadata, namespace: root }, spec: { ...r.spec, selector: undefined } })) as RequestAuthentication[];
    ras.push({ kind: 'RequestAuthentication', metadata: { name: 'ztmesh-token-exchange', namespace: root, annotations: {} }, spec: { jwtRules: [{ issuer: this.issuer, jwks: JSON.stringify(await this.jwks()) }] } } as unknown as RequestAuthentication);
    const cfg = compileRequestAuthn(ras, { namespace: root, labels: {} }, root);
    await Promise.all(cfg.rules.filter((r) => r.jwksUri && !sharedJwksCache.get(r.jwksUri)).map((r) => sharedJwksCache.load(r.jwksUri!, r.jwksTimeoutMs)));
    const now = Math.floor(Date.now() / 1000);
    const services = new Set(this.o.services());
    const r = exchangeToken(form, {
      actor: v.spiffeId,
      signer,
      issuer: this.issuer,
      nowSeconds: now,
      knownAudience: (a) => services.has(a),
      verifySubject: (t) => {
        const a = authenticate(cfg, { headers: { authorization: `Bearer ${t}` }, query: '' }, (u) => sharedJwksCache.get(u), now, (u) => sharedJwksCache.lastError(u) ?? 'not fetched');
        return a.kind === 'ok' ? { ok: true, claims: a.payload } : { ok: false, detail: a.kind === 'reject' ? `${a.reason}: ${a.detail}` : 'no token' };
      },
    });
    send(r.status, r.body);
  }
}

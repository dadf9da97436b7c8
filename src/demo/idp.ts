/**
 * A tiny local identity provider for `ztmesh demo`: an HTTPS server that signs end-user
 * tokens (ES256) for a fixed set of demo users and publishes its JWKS, the way an OIDC
 * provider does. The edge gateway's RequestAuthentication fetches the JWKS over HTTPS.
 *
 *   GET  /.well-known/jwks.json            the public keys
 *   POST /token  username=…&password=…      {access_token, token_type, expires_in}
 *
 * Demo quality on purpose: users and passwords are fixed, and it listens on loopback only.
 */
import https from 'node:https';
import { createHash, createPublicKey, generateKeyPairSync, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { signCompactJws } from '../identity/jws.js';
import { devServerCert } from '../gateway/dev-cert.js';

export const DEMO_USERS: Readonly<Record<string, { password: string; roles: string[] }>> = Object.freeze({
  alice: { password: 'wonderland', roles: ['customer'] },
  bob: { password: 'builder', roles: ['customer', 'support'] },
});

export interface IdpOptions {
  issuer: string;
  audience: string;
  /** Lifetime of issued tokens, seconds. */
  ttlSeconds?: number;
  /** Directory for the listener's self-signed certificate. */
  dir: string;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export class DemoIdp {
  readonly kid = 'demo-es256-1';
  private readonly key: KeyObject = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  private server?: https.Server;
  /** The listener's certificate (PEM): what a client of the IdP must trust (written by start()). */
  caPem = '';
  readonly caFile: string;
  port = 0;

  constructor(private readonly o: IdpOptions) {
    this.caFile = join(o.dir, 'idp-cert.pem');
  }

  get jwksUri(): string {
    return `https://127.0.0.1:${this.port}/.well-known/jwks.json`;
  }

  get tokenUrl(): string {
    return `https://127.0.0.1:${this.port}/token`;
  }

  jwks(): { keys: Record<string, unknown>[] } {
    return { keys: [{ ...(createPublicKey(this.key).export({ format: 'jwk' }) as object), kid: this.kid, use: 'sig', alg: 'ES256' }] };
  }

  /** Sign a token for `sub`; `expiresIn` may be negative (an expired token, for the demo's attacks). */
  issue(sub: string, o: { expiresIn?: number; claims?: Record<string, unknown> } = {}): string {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + (o.expiresIn ?? this.o.ttlSeconds ?? 600);
    return signCompactJws(
      { alg: 'ES256', kid: this.kid, typ: 'JWT' },
      { iss: this.o.issuer, sub, aud: this.o.audience, iat: Math.min(now, exp - 60), exp, jti: randomUUID(), roles: DEMO_USERS[sub]?.roles ?? [], ...o.claims },
      this.key,
    );
  }

  /** Check a user's password (constant time) and sign a token, or null. */
  login(username: string, password: string): string | null {
    const u = Object.hasOwn(DEMO_USERS, username) ? DEMO_USERS[username] : undefined;
    const ok = timingSafeEqual(digest(password), digest(u?.password ?? `\u0000${password}`));
    return u && ok ? this.issue(username) : null;
  }

  async start(): Promise<void> {
    mkdirSync(this.o.dir, { recursive: true });
    const cert = devServerCert(this.o.dir, ['127.0.0.1', 'localhost'], 'idp');
    this.caPem = readFileSync(cert.certFile, 'utf8');
    this.server = https.createServer({ cert: this.caPem, key: readFileSync(cert.keyFile) }, (req, res) => {
      const send = (status: number, body: unknown) => {
        const text = JSON.stringify(body);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
        res.end(text);
      };
      const path = (req.url ?? '').split('?')[0];
      if (req.method === 'GET' && path === '/.well-known/jwks.json') return send(200, this.jwks());
      if (req.method === 'POST' && path === '/token') {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (c: string) => {
          body += c;
          if (body.length > 4096) req.destroy();
        });
        req.on('end', () => {
          const f = new URLSearchParams(body);
          const token = this.login(f.get('username') ?? '', f.get('password') ?? '');
          if (!token) return send(401, { error: 'invalid_grant', error_description: 'unknown user or wrong password' });
          send(200, { access_token: token, token_type: 'Bearer', expires_in: this.o.ttlSeconds ?? 600 });
        });
        return;
      }
      send(404, { error: 'not found' });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    const s = this.server;
    if (!s) return Promise.resolve();
    return new Promise((r) => {
      s.closeAllConnections();
      s.close(() => r());
    });
  }
}

/**
 * JSON Web Key Sets for verifying end-user JWTs: parse a JWKS document into public
 * KeyObjects (symmetric `oct` keys and private key material are refused), and a cache of
 * remote JWKS documents (HTTPS, periodic refresh, fail closed: a key set that was never
 * fetched yields no keys, never a default key).
 */
import { createPublicKey, type KeyObject, type JsonWebKey } from 'node:crypto';
import { parseStrictJson } from './strict-json.js';

export interface JwksKey {
  kid?: string;
  alg?: string;
  key: KeyObject;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

/** Parse a JWKS (text or object). Throws with a reason on a malformed set; skips keys not usable for signatures. */
export function parseJwks(doc: string | unknown): JwksKey[] {
  const j = typeof doc === 'string' ? parseStrictJson(doc) : doc;
  if (!j || typeof j !== 'object' || Array.isArray(j) || !Array.isArray((j as { keys?: unknown }).keys)) throw new Error('a JWKS must be an object with a "keys" list');
  const out: JwksKey[] = [];
  for (const k of (j as { keys: unknown[] }).keys) {
    if (!k || typeof k !== 'object' || Array.isArray(k)) continue;
    const jwk = k as Record<string, unknown>;
    if (jwk.kty !== 'EC' && jwk.kty !== 'RSA') continue; // never oct (HMAC) or unknown key types
    if (jwk.use !== undefined && jwk.use !== 'sig' && jwk.use !== 'jwt-svid') continue;
    if (PRIVATE_MEMBERS.some((m) => m in jwk)) continue; // a JWKS publishes public keys only
    try {
      const pub: Record<string, unknown> = jwk.kty === 'EC' ? { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y } : { kty: 'RSA', n: jwk.n, e: jwk.e };
      const key = createPublicKey({ key: pub as JsonWebKey, format: 'jwk' });
      out.push({ kid: typeof jwk.kid === 'string' ? jwk.kid : undefined, alg: typeof jwk.alg === 'string' ? jwk.alg : undefined, key });
    } catch {
      continue;
    }
  }
  return out;
}

/** Keys of `set` a token with `kid`/`alg` may be verified with (by kid when the token names one). */
export function keysFor(set: readonly JwksKey[], kid: string | undefined, alg: string): KeyObject[] {
  return set.filter((k) => (kid === undefined || k.kid === kid) && (k.alg === undefined || k.alg === alg)).map((k) => k.key);
}

export interface JwksCacheOptions {
  /** How long a fetched set is used before it is refreshed (default 5 min, as Envoy). */
  refreshMs?: number;
  /** Per-fetch timeout when load() is not given one (default 5 s). */
  timeoutMs?: number;
  /** Largest JWKS document accepted (default 512 KiB). */
  maxBytes?: number;
  now?: () => number;
  fetchText?: (url: string, timeoutMs: number, maxBytes: number) => Promise<string>;
}

interface Entry {
  keys: JwksKey[] | null;
  fetchedAt: number;
  error: string | null;
  inflight: Promise<void> | null;
  /** The timeout of the last load() that named one; background refreshes use it too. */
  timeoutMs: number | undefined;
}

/** Remote JWKS documents by URI. `get` is synchronous (the request path); `load` fetches. */
export class JwksCache {
  private readonly entries = new Map<string, Entry>();
  private readonly refreshMs: number;
  private readonly now: () => number;

  constructor(private readonly o: JwksCacheOptions = {}) {
    this.refreshMs = o.refreshMs ?? 5 * 60_000;
    this.now = o.now ?? Date.now;
  }

  /** The cached keys, or undefined when never fetched successfully. Starts a refresh in the background when stale. */
  get(uri: string): JwksKey[] | undefined {
    const e = this.entries.get(uri);
    if (!e) return undefined;
    if (e.keys && this.now() - e.fetchedAt > this.refreshMs && !e.inflight) void this.load(uri, e.timeoutMs);
    return e.keys ?? undefined;
  }

  lastError(uri: string): string | null {
    return this.entries.get(uri)?.error ?? null;
  }

  /**
   * Fetch (or join the fetch of) `uri`, giving up after `timeoutMs` (a RequestAuthentication
   * rule's `timeout`); resolves when done, whatever the outcome. A failed refresh keeps the
   * previous keys.
   */
  load(uri: string, timeoutMs?: number): Promise<void> {
    let e = this.entries.get(uri);
    if (!e) {
      e = { keys: null, fetchedAt: 0, error: null, inflight: null, timeoutMs };
      this.entries.set(uri, e);
    }
    if (timeoutMs !== undefined) e.timeoutMs = timeoutMs;
    if (e.inflight) return e.inflight;
    const entry = e;
    entry.inflight = (this.o.fetchText ?? fetchText)(uri, entry.timeoutMs ?? this.o.timeoutMs ?? 5000, this.o.maxBytes ?? 512 * 1024)
      .then((text) => {
        entry.keys = parseJwks(text);
        entry.fetchedAt = this.now();
        entry.error = null;
      })
      .catch((err: Error) => {
        entry.error = err.message;
        // A set that cannot be refreshed is retried on next use, but only after a short pause.
        if (entry.keys) entry.fetchedAt = this.now() - this.refreshMs + 10_000;
      })
      .finally(() => {
        entry.inflight = null;
      });
    return entry.inflight;
  }
}

async function fetchText(url: string, timeoutMs: number, maxBytes: number): Promise<string> {
  // One deadline for connecting, the answer's head and its body.
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, { signal, redirect: 'error', headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
    const len = Number(res.headers.get('content-length') ?? 0);
    if (len > maxBytes) throw new Error(`JWKS at ${url} is larger than ${maxBytes} bytes`);
    const text = await res.text();
    if (text.length > maxBytes) throw new Error(`JWKS at ${url} is larger than ${maxBytes} bytes`);
    return text;
  } catch (e) {
    if (signal.aborted) throw new Error(`the JWKS fetch timed out after ${timeoutMs}ms (jwtRules timeout)`);
    throw e;
  }
}

/** One cache per process, shared by the sidecar's and the gateway's filters. */
export const sharedJwksCache = new JwksCache();

/**
 * Join tokens: single-use, short-lived attestation secrets bound to a namespace and
 * service account. A token is `ztmjt.<id>.<secret>`; only SHA-256 of the whole token
 * is stored (JSON file, atomic writes), looked up by id and compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, open, unlink, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ZtmError } from '../errors.js';
import { parseTrustDomain, spiffeIdFromParts } from './spiffe-id.js';
import { writeFileAtomic } from './ca.js';

export const MAX_TOKEN_TTL_MS = 24 * 3_600_000;
export const DEFAULT_TOKEN_TTL_MS = 10 * 60_000;

export type TokenRejectReason = 'malformed' | 'unknown' | 'expired' | 'used';

export interface JoinTokenRecord {
  id: string;
  /** hex SHA-256 of the full token string. */
  sha256: string;
  namespace: string;
  serviceAccount: string;
  createdAt: number;
  expiresAt: number;
  usedAt?: number;
}

export interface CreatedToken {
  token: string;
  id: string;
  namespace: string;
  serviceAccount: string;
  expiresAt: Date;
}

export interface Attestation {
  tokenId: string;
  namespace: string;
  serviceAccount: string;
}

/** Persistence behind the store; swap for the state store later. */
export interface TokenBackend {
  load(): Promise<JoinTokenRecord[]>;
  save(records: JoinTokenRecord[]): Promise<void>;
  /** Run `f` with exclusive access (across processes if the backend is shared). */
  exclusive<T>(f: () => Promise<T>): Promise<T>;
}

const TOKEN_RE = /^ztmjt\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$/;
const NAME_RE = /^[a-zA-Z0-9._-]+$/;

function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** JSON-file backend: `<dataDir>/join-tokens.json`, atomic rename, `O_EXCL` lock file. */
export class JsonFileTokenBackend implements TokenBackend {
  private chain: Promise<unknown> = Promise.resolve();
  constructor(readonly file: string) {}

  async load(): Promise<JoinTokenRecord[]> {
    try {
      const doc = JSON.parse(await readFile(this.file, 'utf8')) as { version: number; tokens: JoinTokenRecord[] };
      return Array.isArray(doc.tokens) ? doc.tokens : [];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new ZtmError('ZTM_TOKEN_INVALID', `cannot read the join token store ${this.file}: ${(e as Error).message}`);
    }
  }

  async save(records: JoinTokenRecord[]): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.file, JSON.stringify({ version: 1, tokens: records }, null, 2) + '\n');
  }

  exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = async () => {
      const lock = this.file + '.lock';
      await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
      for (let i = 0; ; i++) {
        try {
          const h = await open(lock, 'wx');
          await h.close();
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          // A lock older than 30 s was left by a crashed writer: break it.
          const age = await stat(lock).then((st) => Date.now() - st.mtimeMs, () => 0);
          if (age > 30_000) {
            await unlink(lock).catch(() => undefined);
            continue;
          }
          if (i > 500) throw new ZtmError('ZTM_TOKEN_INVALID', `the join token store is locked (${lock}); remove the file if no ztmesh process is running`);
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      try {
        return await f();
      } finally {
        await unlink(lock).catch(() => undefined);
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }
}

/** In-memory backend (tests, embedded control plane). */
export class MemoryTokenBackend implements TokenBackend {
  private records: JoinTokenRecord[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  async load(): Promise<JoinTokenRecord[]> {
    return this.records.map((r) => ({ ...r }));
  }
  async save(records: JoinTokenRecord[]): Promise<void> {
    this.records = records.map((r) => ({ ...r }));
  }
  exclusive<T>(f: () => Promise<T>): Promise<T> {
    const p = this.chain.then(f, f);
    this.chain = p.catch(() => undefined);
    return p;
  }
}

export function tokenStorePath(dataDir: string): string {
  return join(dataDir, 'join-tokens.json');
}

export class JoinTokenStore {
  constructor(
    private readonly backend: TokenBackend,
    private readonly clock: () => number = Date.now,
  ) {}

  static inDataDir(dataDir: string, clock?: () => number): JoinTokenStore {
    return new JoinTokenStore(new JsonFileTokenBackend(tokenStorePath(dataDir)), clock);
  }

  async create(o: { namespace: string; serviceAccount: string; ttlMs?: number; trustDomain?: string }): Promise<CreatedToken> {
    for (const [k, v] of [
      ['namespace', o.namespace],
      ['service account', o.serviceAccount],
    ] as const) {
      if (!v || !NAME_RE.test(v)) throw new ZtmError('ZTM_USAGE', `${k} "${v ?? ''}" is not a valid SPIFFE path segment ([a-zA-Z0-9._-]+)`);
    }
    // Validates the resulting ID too (dot segments etc.).
    spiffeIdFromParts(parseTrustDomain(o.trustDomain ?? 'cluster.local'), ['ns', o.namespace, 'sa', o.serviceAccount]);
    const ttl = o.ttlMs ?? DEFAULT_TOKEN_TTL_MS;
    if (!(ttl > 0) || ttl > MAX_TOKEN_TTL_MS) throw new ZtmError('ZTM_USAGE', `join token TTL must be between 1s and 24h (got ${ttl} ms)`);
    const id = randomBytes(12).toString('base64url');
    const token = `ztmjt.${id}.${randomBytes(32).toString('base64url')}`;
    const now = this.clock();
    const rec: JoinTokenRecord = {
      id,
      sha256: tokenHash(token).toString('hex'),
      namespace: o.namespace,
      serviceAccount: o.serviceAccount,
      createdAt: now,
      expiresAt: now + ttl,
    };
    await this.backend.exclusive(async () => {
      const all = (await this.backend.load()).filter((r) => r.expiresAt > now);
      all.push(rec);
      await this.backend.save(all);
    });
    return { token, id, namespace: o.namespace, serviceAccount: o.serviceAccount, expiresAt: new Date(rec.expiresAt) };
  }

  /** Check the token without consuming it. */
  async peek(token: string): Promise<Attestation> {
    const all = await this.backend.load();
    return this.check(all, token, this.clock()).att;
  }

  /** Validate and burn a token: a second call with the same token fails with reason `used`. */
  async consume(token: string): Promise<Attestation> {
    return this.backend.exclusive(async () => {
      const all = await this.backend.load();
      const now = this.clock();
      const { att, rec } = this.check(all, token, now);
      rec.usedAt = now;
      await this.backend.save(all.filter((r) => r.expiresAt > now || r === rec));
      return att;
    });
  }

  private check(all: JoinTokenRecord[], token: string, now: number): { att: Attestation; rec: JoinTokenRecord } {
    const m = typeof token === 'string' ? TOKEN_RE.exec(token) : null;
    if (!m) throw reject('malformed', 'the join token is malformed');
    const rec = all.find((r) => r.id === m[1]);
    const presented = tokenHash(token);
    const stored = rec ? Buffer.from(rec.sha256, 'hex') : Buffer.alloc(32);
    // Constant-time comparison (also performed when the id is unknown).
    const equal = stored.length === 32 && timingSafeEqual(presented, stored);
    if (!rec || !equal) throw reject('unknown', 'the join token is not known');
    if (rec.usedAt !== undefined) throw reject('used', 'the join token was already used (tokens are single-use)');
    if (now >= rec.expiresAt) throw reject('expired', `the join token expired at ${new Date(rec.expiresAt).toISOString()}`);
    return { att: { tokenId: rec.id, namespace: rec.namespace, serviceAccount: rec.serviceAccount }, rec };
  }

  /** Tokens without secrets, for listing. */
  async list(): Promise<Omit<JoinTokenRecord, 'sha256'>[]> {
    return (await this.backend.load()).map(({ sha256: _s, ...r }) => r);
  }
}

function reject(reason: TokenRejectReason, msg: string): ZtmError {
  return new ZtmError('ZTM_TOKEN_INVALID', `${msg}; create a new one with \`ztmesh token create\``, {}, { reason });
}

/** Parse `10m`, `1h`, `30s`, `500ms`, `2d` or plain milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(String(s).trim());
  if (!m) throw new ZtmError('ZTM_USAGE', `"${s}" is not a duration (use e.g. 30s, 10m, 1h)`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms'];
  return Math.round(n * unit);
}

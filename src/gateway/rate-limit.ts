/**
 * Rate limiting with Kong's rate-limiting plugin as the reference (windows, limitBy, status,
 * headers, fault tolerance), counted with the sliding-window-counter estimate:
 *
 *   estimate = previous_window_count × (1 − elapsed_fraction_of_current_window) + current_window_count
 *
 * A request is admitted when, for every configured window, estimate + 1 ≤ limit; only an
 * admitted request is counted (as Kong does). The `local` policy counts in process; the
 * `redis` policy runs the same decision as one Lua script, so replicas sharing a Redis never
 * admit more than the limit under concurrency. Headers (Kong): `RateLimit-Limit`,
 * `RateLimit-Remaining`, `RateLimit-Reset` for the most constrained window,
 * `X-RateLimit-Limit-<Window>` / `X-RateLimit-Remaining-<Window>` per window, and on 429
 * `Retry-After`; `hideClientHeaders` drops all but `Retry-After`.
 */
import { createHash } from 'node:crypto';
import type { Redis as RedisClient } from 'ioredis';
import { RATE_LIMIT_WINDOWS, WINDOW_SECONDS, type RateLimitPolicySpec, type RateLimitWindow } from '../config/kinds/gateway.js';

export interface WindowUsage {
  window: RateLimitWindow;
  limit: number;
  /** Estimated requests in the sliding window before this one. */
  used: number;
  /** Seconds until the current fixed window ends (≥ 1). */
  reset: number;
}

export interface Verdict {
  allowed: boolean;
  usage: WindowUsage[];
}

/** Sliding-window estimate for one window at `nowMs`, from the previous and current fixed-window counts. */
export function estimate(prev: number, curr: number, windowSeconds: number, nowMs: number): number {
  const size = windowSeconds * 1000;
  const elapsed = (nowMs % size) / size;
  return prev * (1 - elapsed) + curr;
}

export function windowIndex(windowSeconds: number, nowMs: number): number {
  return Math.floor(nowMs / (windowSeconds * 1000));
}

export function resetSeconds(windowSeconds: number, nowMs: number): number {
  const size = windowSeconds * 1000;
  return Math.max(1, Math.ceil((size - (nowMs % size)) / 1000));
}

/** Kong's response headers for a verdict. */
export function rateLimitHeaders(v: Verdict, hide: boolean): Record<string, string> {
  const h: Record<string, string> = {};
  let best: { limit: number; remaining: number; reset: number; seconds: number } | null = null;
  for (const u of v.usage) {
    // The request being answered counts when it was admitted.
    const remaining = Math.max(0, Math.floor(u.limit - u.used - (v.allowed ? 1 : 0)));
    const name = u.window[0].toUpperCase() + u.window.slice(1);
    h[`X-RateLimit-Limit-${name}`] = String(u.limit);
    h[`X-RateLimit-Remaining-${name}`] = String(remaining);
    const seconds = WINDOW_SECONDS[u.window];
    if (!best || remaining < best.remaining || (remaining === best.remaining && seconds > best.seconds)) best = { limit: u.limit, remaining, reset: u.reset, seconds };
  }
  if (best) {
    h['RateLimit-Limit'] = String(best.limit);
    h['RateLimit-Remaining'] = String(best.remaining);
    h['RateLimit-Reset'] = String(best.reset);
  }
  const out: Record<string, string> = hide ? {} : h;
  if (!v.allowed) {
    const stop = v.usage.filter((u) => u.used + 1 > u.limit).sort((a, b) => b.reset - a.reset)[0];
    out['Retry-After'] = String(stop?.reset ?? 1);
  }
  return out;
}

export interface Limiter {
  /** Decide for `key` (already scoped to the policy and identifier) and count when admitted. */
  take(key: string, limits: [RateLimitWindow, number][], nowMs: number): Promise<Verdict> | Verdict;
  close?(): Promise<void>;
}

/** In-process counters. */
export class LocalLimiter implements Limiter {
  private readonly counts = new Map<string, { idx: number; prev: number; curr: number }>();
  private sweeps = 0;

  take(key: string, limits: [RateLimitWindow, number][], nowMs: number): Verdict {
    const usage: WindowUsage[] = [];
    const cells: { idx: number; prev: number; curr: number }[] = [];
    let allowed = true;
    for (const [w, limit] of limits) {
      const secs = WINDOW_SECONDS[w];
      const idx = windowIndex(secs, nowMs);
      const k = `${key}|${w}`;
      let c = this.counts.get(k);
      if (!c) {
        c = { idx, prev: 0, curr: 0 };
        this.counts.set(k, c);
      } else if (c.idx !== idx) {
        c.prev = c.idx === idx - 1 ? c.curr : 0;
        c.curr = 0;
        c.idx = idx;
      }
      cells.push(c);
      const used = estimate(c.prev, c.curr, secs, nowMs);
      if (used + 1 > limit) allowed = false;
      usage.push({ window: w, limit, used, reset: resetSeconds(secs, nowMs) });
    }
    if (allowed) for (const c of cells) c.curr++;
    if (++this.sweeps % 10_000 === 0) this.sweep(nowMs);
    return { allowed, usage };
  }

  private sweep(nowMs: number): void {
    for (const [k, c] of this.counts) {
      const w = k.slice(k.lastIndexOf('|') + 1) as RateLimitWindow;
      if (windowIndex(WINDOW_SECONDS[w], nowMs) - c.idx > 1) this.counts.delete(k);
    }
  }
}

/**
 * KEYS: for each window, the previous and current counter keys. ARGV: now (ms), then per
 * window: seconds, limit. Returns per window the estimate (as a string), then 1/0 admitted.
 */
const REDIS_SCRIPT = `
local now = tonumber(ARGV[1])
local n = (#ARGV - 1) / 2
local used = {}
local ok = 1
for i = 1, n do
  local secs = tonumber(ARGV[2 * i])
  local limit = tonumber(ARGV[2 * i + 1])
  local size = secs * 1000
  local prev = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local curr = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local elapsed = (now % size) / size
  local est = prev * (1 - elapsed) + curr
  used[i] = tostring(est)
  if est + 1 > limit then ok = 0 end
end
if ok == 1 then
  for i = 1, n do
    local secs = tonumber(ARGV[2 * i])
    redis.call('INCR', KEYS[2 * i])
    redis.call('PEXPIRE', KEYS[2 * i], secs * 2000 + 1000)
  end
end
used[n + 1] = ok
return used
`;

export class RedisLimiter implements Limiter {
  private readonly sha = createHash('sha1').update(REDIS_SCRIPT).digest('hex');

  constructor(
    private readonly client: RedisClient,
    private readonly prefix = 'ztmesh:rl:',
  ) {}

  async take(key: string, limits: [RateLimitWindow, number][], nowMs: number): Promise<Verdict> {
    const keys: string[] = [];
    const args: (string | number)[] = [nowMs];
    for (const [w, limit] of limits) {
      const secs = WINDOW_SECONDS[w];
      const idx = windowIndex(secs, nowMs);
      keys.push(`${this.prefix}${key}|${w}|${idx - 1}`, `${this.prefix}${key}|${w}|${idx}`);
      args.push(secs, limit);
    }
    let res: (string | number)[];
    try {
      res = (await this.client.evalsha(this.sha, keys.length, ...keys, ...args)) as (string | number)[];
    } catch (e) {
      if (!/NOSCRIPT/.test((e as Error).message)) throw e;
      res = (await this.client.eval(REDIS_SCRIPT, keys.length, ...keys, ...args)) as (string | number)[];
    }
    const allowed = Number(res[limits.length]) === 1;
    return {
      allowed,
      usage: limits.map(([w, limit], i) => ({ window: w, limit, used: Number(res[i]), reset: resetSeconds(WINDOW_SECONDS[w], nowMs) })),
    };
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}

/** The windows a policy limits, shortest first. */
export function policyLimits(spec: RateLimitPolicySpec): [RateLimitWindow, number][] {
  return RATE_LIMIT_WINDOWS.filter((w) => spec.limits[w] !== undefined).map((w) => [w, spec.limits[w]!] as [RateLimitWindow, number]);
}

/**
 * The identifier requests are counted by (Kong's limit_by, falling back to the client IP when
 * the consumer, credential or header is missing).
 */
export function identifierFor(
  spec: RateLimitPolicySpec,
  r: { clientIp: string; principal?: string; token?: string; headers: Record<string, string | string[] | undefined>; path: string; service?: string },
): string {
  const by = spec.limitBy ?? 'consumer';
  switch (by) {
    case 'consumer':
      if (r.principal) return `consumer:${r.principal}`;
      break;
    case 'credential':
      if (r.token) return `credential:${createHash('sha256').update(r.token).digest('base64url').slice(0, 22)}`;
      break;
    case 'header': {
      const v = r.headers[spec.headerName!.toLowerCase()];
      if (v !== undefined) return `header:${Array.isArray(v) ? v.join(',') : v}`;
      break;
    }
    case 'path':
      return `path:${r.path}`;
    case 'service':
      return `service:${r.service ?? ''}`;
    case 'ip':
      break;
  }
  return `ip:${r.clientIp}`;
}

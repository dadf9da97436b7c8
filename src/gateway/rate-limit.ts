/**
 * Rate limiting with Kong's rate-limiting plugin as the reference (windows, limitBy, status,
 * headers, fault tolerance), counted with the sliding-window-counter estimate:
 *
 *   estimate = previous_period_count × weight + current_period_count
 *   weight   = clamp((end_of_current_period − now) / length_of_previous_period, 0, 1)
 *
 * Periods are aligned to calendar boundaries in UTC, as Kong's timestamp module aligns them
 * (kong/tools/timestamp.lua): a second, minute, hour or day starts on its UTC boundary, a
 * month on the 1st at 00:00 UTC, a year on January 1st at 00:00 UTC. The sliding window is
 * as long as the current period (so a sliding month in February is 28 days and in March 31)
 * and the previous period's count is taken as spread evenly over its own real length: the
 * weight is the share of the previous period the sliding window still covers. For the
 * fixed-length windows (second..day) this is the usual `1 − elapsed_fraction`. At the end of
 * a period the estimate is exactly that period's count, so no calendar period ever admits
 * more than its limit.
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

/** The calendar period of a window that contains an instant (UTC). */
export interface Period {
  /** Counts periods since the epoch: consecutive periods have consecutive indexes. */
  index: number;
  /** Start (inclusive) and end (exclusive), ms since the epoch. */
  start: number;
  end: number;
  /** Length of the period before this one, ms (differs from end − start for months and years). */
  prevLength: number;
}

/** The period of window `w` at `nowMs` (UTC calendar boundaries, as Kong's timestamp module). */
export function periodAt(w: RateLimitWindow, nowMs: number): Period {
  if (w === 'month' || w === 'year') {
    const d = new Date(nowMs);
    const y = d.getUTCFullYear();
    if (w === 'year') {
      const start = Date.UTC(y, 0, 1);
      return { index: y - 1970, start, end: Date.UTC(y + 1, 0, 1), prevLength: start - Date.UTC(y - 1, 0, 1) };
    }
    const m = d.getUTCMonth();
    const start = Date.UTC(y, m, 1);
    return { index: (y - 1970) * 12 + m, start, end: Date.UTC(y, m + 1, 1), prevLength: start - Date.UTC(y, m - 1, 1) };
  }
  const size = WINDOW_SECONDS[w] * 1000;
  const index = Math.floor(nowMs / size);
  return { index, start: index * size, end: (index + 1) * size, prevLength: size };
}

/** How much the previous period's count weighs at `nowMs`: the share of it the sliding window (as long as the current period) still covers. */
export function previousWeight(p: Period, nowMs: number): number {
  return Math.min(1, Math.max(0, (p.end - nowMs) / p.prevLength));
}

/** Sliding-window estimate for one window at `nowMs`, from the previous and current period counts. */
export function estimate(prev: number, curr: number, p: Period, nowMs: number): number {
  return prev * previousWeight(p, nowMs) + curr;
}

/** Seconds until the current period ends (≥ 1). */
export function resetSeconds(p: Period, nowMs: number): number {
  return Math.max(1, Math.ceil((p.end - nowMs) / 1000));
}

/** Kong's response headers for a verdict. */
export function rateLimitHeaders(v: Verdict, hide: boolean): Record<string, string> {
  const h: Record<string, string> = {};
  let best: { limit: number; remaining: number; reset: number; order: number } | null = null;
  for (const u of v.usage) {
    // The request being answered counts when it was admitted.
    const remaining = Math.max(0, Math.floor(u.limit - u.used - (v.allowed ? 1 : 0)));
    const name = u.window[0].toUpperCase() + u.window.slice(1);
    h[`X-RateLimit-Limit-${name}`] = String(u.limit);
    h[`X-RateLimit-Remaining-${name}`] = String(remaining);
    const order = RATE_LIMIT_WINDOWS.indexOf(u.window);
    if (!best || remaining < best.remaining || (remaining === best.remaining && order > best.order)) best = { limit: u.limit, remaining, reset: u.reset, order };
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
      const p = periodAt(w, nowMs);
      const idx = p.index;
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
      const used = estimate(c.prev, c.curr, p, nowMs);
      if (used + 1 > limit) allowed = false;
      usage.push({ window: w, limit, used, reset: resetSeconds(p, nowMs) });
    }
    if (allowed) for (const c of cells) c.curr++;
    if (++this.sweeps % 10_000 === 0) this.sweep(nowMs);
    return { allowed, usage };
  }

  private sweep(nowMs: number): void {
    for (const [k, c] of this.counts) {
      const w = k.slice(k.lastIndexOf('|') + 1) as RateLimitWindow;
      if (periodAt(w, nowMs).index - c.idx > 1) this.counts.delete(k);
    }
  }
}

/**
 * KEYS: for each window, the previous and current period's counter keys. ARGV: now (ms), then
 * per window: the current period's end (ms), the previous period's length (ms), the limit,
 * and the counter's time to live (ms). The weight is computed here, from the same clock value
 * the keys were chosen with, as previousWeight() does. Returns per window the estimate (as a
 * string), then 1/0 admitted.
 */
const REDIS_SCRIPT = `
local now = tonumber(ARGV[1])
local n = (#ARGV - 1) / 4
local used = {}
local ok = 1
for i = 1, n do
  local b = 4 * (i - 1) + 1
  local periodEnd = tonumber(ARGV[b + 1])
  local prevLength = tonumber(ARGV[b + 2])
  local limit = tonumber(ARGV[b + 3])
  local prev = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local curr = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local weight = (periodEnd - now) / prevLength
  if weight > 1 then weight = 1 elseif weight < 0 then weight = 0 end
  local est = prev * weight + curr
  used[i] = tostring(est)
  if est + 1 > limit then ok = 0 end
end
if ok == 1 then
  for i = 1, n do
    redis.call('INCR', KEYS[2 * i])
    redis.call('PEXPIRE', KEYS[2 * i], tonumber(ARGV[4 * i + 1]))
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
    const periods: Period[] = [];
    for (const [w, limit] of limits) {
      const p = periodAt(w, nowMs);
      periods.push(p);
      keys.push(`${this.prefix}${key}|${w}|${p.index - 1}`, `${this.prefix}${key}|${w}|${p.index}`);
      // The current count is read as "previous" until the next period ends.
      const ttl = p.end - nowMs + (periodAt(w, p.end).end - p.end) + 1000;
      args.push(p.end, p.prevLength, limit, ttl);
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
      usage: limits.map(([w, limit], i) => ({ window: w, limit, used: Number(res[i]), reset: resetSeconds(periods[i], nowMs) })),
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
 * the consumer, credential or header is missing, or, for limitBy: path, when the request path
 * is not the configured `path`).
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
      if (spec.path !== undefined && r.path === spec.path) return `path:${spec.path}`;
      break;
    case 'service':
      return `service:${r.service ?? ''}`;
    case 'ip':
      break;
  }
  return `ip:${r.clientIp}`;
}

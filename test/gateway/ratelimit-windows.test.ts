/**
 * Rate-limit windows with an injected clock: calendar periods in UTC (Kong's timestamp module
 * aligns month and year windows to the 1st of the month / January 1st), the sliding estimate
 * weighing the previous period by the real lengths of the current and previous period, and the
 * same decisions from the local limiter and the Redis script (a real redis-server started here).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedisServer, type RedisServer } from '../redis-server.js';
import { Redis } from 'ioredis';
import { LocalLimiter, periodAt, previousWeight, rateLimitHeaders, RedisLimiter, type Limiter } from '../../src/gateway/rate-limit.js';
import type { RateLimitWindow } from '../../src/config/kinds/gateway.js';

const DAY = 86_400_000;
const utc = (y: number, m: number, d: number, h = 0, min = 0, s = 0) => Date.UTC(y, m - 1, d, h, min, s);


let redisServer: RedisServer;
let client: Redis;

before(async () => {
  redisServer = await startRedisServer();
  client = new Redis({ host: '127.0.0.1', port: redisServer.port, maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  await client.ping();
});

after(async () => {
  client?.disconnect();
  redisServer?.stop();
});

describe('calendar periods (UTC)', () => {
  test('a month runs from the 1st 00:00 UTC to the next 1st; its previous month has its own length', () => {
    const jan31 = periodAt('month', utc(2025, 1, 31, 23, 59, 59) + 999);
    assert.equal(jan31.start, utc(2025, 1, 1));
    assert.equal(jan31.end, utc(2025, 2, 1));
    assert.equal(jan31.prevLength, 31 * DAY); // December
    const feb1 = periodAt('month', utc(2025, 2, 1));
    assert.equal(feb1.index, jan31.index + 1);
    assert.equal(feb1.start, utc(2025, 2, 1));
    assert.equal(feb1.end - feb1.start, 28 * DAY);
    assert.equal(feb1.prevLength, 31 * DAY);
    const mar = periodAt('month', utc(2025, 3, 10));
    assert.equal(mar.end - mar.start, 31 * DAY);
    assert.equal(mar.prevLength, 28 * DAY);
    assert.equal(periodAt('month', utc(2024, 2, 29, 12)).end - utc(2024, 2, 1), 29 * DAY); // leap year
    const dec = periodAt('month', utc(2024, 12, 31, 23));
    const jan = periodAt('month', utc(2025, 1, 1));
    assert.equal(jan.index, dec.index + 1); // across the year boundary
  });

  test('a year runs from January 1st 00:00 UTC; 2024 has 366 days', () => {
    const y2024 = periodAt('year', utc(2024, 7, 1));
    assert.equal(y2024.start, utc(2024, 1, 1));
    assert.equal(y2024.end - y2024.start, 366 * DAY);
    assert.equal(y2024.prevLength, 365 * DAY);
    const y2025 = periodAt('year', utc(2025, 1, 1));
    assert.equal(y2025.index, y2024.index + 1);
    assert.equal(y2025.prevLength, 366 * DAY);
  });

  test('fixed windows keep their epoch-aligned periods and the usual 1 − elapsed weight', () => {
    const now = utc(2025, 5, 5, 10, 30, 15) + 250;
    const m = periodAt('minute', now);
    assert.equal(m.start, utc(2025, 5, 5, 10, 30));
    assert.equal(m.prevLength, 60_000);
    assert.equal(previousWeight(m, now), 1 - 15.25 / 60);
    const d = periodAt('day', now);
    assert.equal(d.start, utc(2025, 5, 5));
    assert.equal(previousWeight(d, now), 1 - (10.5 * 3600 + 15.25) / 86400);
  });

  test('the previous month weighs (end of current − now) / length of previous, clamped to [0, 1]', () => {
    // Feb 1 00:00: the 28-day sliding window covers 28 of January's 31 days.
    assert.equal(previousWeight(periodAt('month', utc(2025, 2, 1)), utc(2025, 2, 1)), 28 / 31);
    // Mar 1 .. Mar 4 00:00: a 31-day window still covers all 28 days of February.
    assert.equal(previousWeight(periodAt('month', utc(2025, 3, 1)), utc(2025, 3, 1)), 1);
    assert.equal(previousWeight(periodAt('month', utc(2025, 3, 4)), utc(2025, 3, 4)), 1);
    assert.equal(previousWeight(periodAt('month', utc(2025, 3, 18)), utc(2025, 3, 18)), 14 / 28);
    // End of a month: the previous one no longer counts.
    const last = utc(2025, 2, 28, 23, 59, 59) + 999;
    assert.equal(previousWeight(periodAt('month', last), last), 1 / (31 * DAY));
    // New year after a leap year.
    assert.equal(previousWeight(periodAt('year', utc(2025, 1, 1)), utc(2025, 1, 1)), 365 / 366);
  });
});

/** Drive a limiter with an injected clock; returns how many of `n` requests were admitted. */
async function admit(l: Limiter, key: string, limits: [RateLimitWindow, number][], nowMs: number, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await l.take(key, limits, nowMs)).allowed) ok++;
  return ok;
}

for (const kind of ['local', 'redis'] as const) {
  describe(`${kind} policy with an injected clock`, () => {
    const make = (): Limiter => (kind === 'local' ? new LocalLimiter() : new RedisLimiter(client, `test:${Math.random().toString(36).slice(2)}:`));

    test('month: Jan 31 → Feb 1 (28-day February) → Mar 1, with the sliding estimate at each step', async () => {
      const l = make();
      const limits: [RateLimitWindow, number][] = [['month', 10]];
      // January (nothing before it): exactly 10 admitted on Jan 31.
      assert.equal(await admit(l, 'k', limits, utc(2025, 1, 31, 12), 15), 10);
      let v = await l.take('k', limits, utc(2025, 1, 31, 23, 59, 59));
      assert.equal(v.allowed, false);
      assert.equal(v.usage[0].used, 10); // December (empty) is all but out of the window
      assert.equal(v.usage[0].reset, 1); // one second to Feb 1
      // Feb 1 00:00: the 28-day window covers 28/31 of January → 9.03 used; 9.03 + 1 > 10: refused.
      v = await l.take('k', limits, utc(2025, 2, 1));
      assert.equal(v.allowed, false);
      assert.ok(Math.abs(v.usage[0].used - (10 * 28) / 31) < 1e-9, String(v.usage[0].used));
      assert.equal(v.usage[0].reset, 28 * 86400);
      // Feb 15 00:00: January weighs 14/31 → 4.52 used → admitted; then 5.52 … 8.52 admitted, 9.52 refused.
      v = await l.take('k', limits, utc(2025, 2, 15));
      assert.ok(Math.abs(v.usage[0].used - (10 * 14) / 31) < 1e-9, String(v.usage[0].used));
      assert.equal(v.allowed, true);
      assert.equal(await admit(l, 'k', limits, utc(2025, 2, 15), 10), 4);
      // February now holds 5. Mar 1: a 31-day window covers all 28 days of February (weight 1).
      v = await l.take('k', limits, utc(2025, 3, 1));
      assert.equal(v.usage[0].used, 5);
      assert.equal(v.allowed, true);
      assert.equal(v.usage[0].reset, 31 * 86400);
      // Mar 18 00:00: February weighs 14/28 → 2.5 + 1 (March) = 3.5; 6 more fit (up to 9.5).
      assert.equal(await admit(l, 'k', limits, utc(2025, 3, 18), 10), 6);
      // May 1: its previous month is April (empty); February and March no longer count.
      v = await l.take('k', limits, utc(2025, 5, 1));
      assert.equal(v.usage[0].used, 0);
    });

    test('year: 2024 (366 days) → 2025, headers X-RateLimit-*-Year and the real reset', async () => {
      const l = make();
      const limits: [RateLimitWindow, number][] = [['hour', 100], ['month', 200], ['year', 366]];
      assert.equal(await admit(l, 'y', limits, utc(2024, 12, 31, 18), 150), 100); // the hour limit stops it
      let v = await l.take('y', limits, utc(2024, 12, 31, 18));
      assert.equal(v.allowed, false);
      let h = rateLimitHeaders(v, false);
      assert.equal(h['X-RateLimit-Limit-Hour'], '100');
      assert.equal(h['X-RateLimit-Remaining-Hour'], '0');
      assert.equal(h['X-RateLimit-Limit-Month'], '200');
      assert.equal(h['X-RateLimit-Remaining-Month'], '100');
      assert.equal(h['X-RateLimit-Limit-Year'], '366');
      assert.equal(h['X-RateLimit-Remaining-Year'], '266');
      assert.equal(h['RateLimit-Limit'], '100');
      assert.equal(h['Retry-After'], '3600'); // the hour stopped it
      // Jan 1 2025 00:00: 2024 weighs 365/366 in the year window, December 31/31 in the month window.
      v = await l.take('y', limits, utc(2025, 1, 1));
      assert.equal(v.allowed, true);
      assert.ok(Math.abs(v.usage[2].used - (100 * 365) / 366) < 1e-9, String(v.usage[2].used));
      assert.equal(v.usage[1].used, 100);
      assert.equal(v.usage[2].reset, 365 * 86400);
      h = rateLimitHeaders(v, false);
      assert.equal(h['X-RateLimit-Remaining-Month'], String(200 - 100 - 1));
      assert.equal(h['X-RateLimit-Remaining-Year'], String(Math.floor(366 - (100 * 365) / 366 - 1)));
      assert.equal(h['X-RateLimit-Remaining-Hour'], '99');
      // RateLimit-* name the most constrained window; hour and month both have 99 left: the longer one.
      assert.equal(h['RateLimit-Limit'], '200');
      assert.equal(h['RateLimit-Remaining'], '99');
      assert.equal(h['RateLimit-Reset'], String(31 * 86400));
    });

    test('a month limit with fixed windows: the shorter window stops first, the month counts only admitted requests', async () => {
      const l = make();
      const limits: [RateLimitWindow, number][] = [['minute', 3], ['month', 5]];
      assert.equal(await admit(l, 'm', limits, utc(2025, 4, 30, 23, 50), 10), 3);
      assert.equal(await admit(l, 'm', limits, utc(2025, 4, 30, 23, 55), 10), 2); // a fresh minute, but the month has 2 left
      const v = await l.take('m', limits, utc(2025, 4, 30, 23, 59, 30));
      assert.equal(v.usage[0].used, 0);
      assert.equal(v.allowed, false);
      assert.equal(v.usage[1].used, 5);
      assert.equal(rateLimitHeaders(v, false)['Retry-After'], '30'); // the month ends at May 1 00:00
    });
  });
}

test('redis: counters expire after the next period ends (month keys live ~2 months, not 2 fixed windows)', async () => {
  const prefix = `ttl:${Math.random().toString(36).slice(2)}:`;
  const l = new RedisLimiter(client, prefix);
  const now = utc(2025, 1, 31, 12); // January ends in 12 h, February is 28 days
  await l.take('t', [['month', 5], ['year', 5]], now);
  const monthKey = `${prefix}t|month|${periodAt('month', now).index}`;
  const yearKey = `${prefix}t|year|${periodAt('year', now).index}`;
  const monthTtl = await client.pttl(monthKey);
  const yearTtl = await client.pttl(yearKey);
  const monthWant = 12 * 3_600_000 + 28 * DAY + 1000;
  const yearWant = utc(2026, 1, 1) - now + 365 * DAY + 1000;
  assert.ok(monthTtl > monthWant - 5000 && monthTtl <= monthWant, `${monthTtl} vs ${monthWant}`);
  assert.ok(yearTtl > yearWant - 5000 && yearTtl <= yearWant, `${yearTtl} vs ${yearWant}`);
  assert.equal(await client.get(monthKey), '1');
});

/**
 * RateLimitPolicy at running gateways, with Kong's rate-limiting plugin as the reference:
 * statuses and headers, limitBy, hideClientHeaders; the redis policy shared by two gateway
 * processes (a real redis-server started here) admits exactly the limit under concurrency;
 * a Redis that is down fails open (counted in /metrics) or closed, as configured.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../../src/util/net.js';
import { startRedisServer, type RedisServer } from '../redis-server.js';
import { baseConfig, gatewayMetrics, gw, startGatewayMesh, stopGatewayMesh, type GatewayMesh } from './harness.js';


let redis: RedisServer;
let redisPort = 0;
let m: GatewayMesh;

function policies(port: number, deadPort: number): string {
  const rl = (name: string, path: string, spec: string) => `---
apiVersion: ztmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: ${name}, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  match: {paths: ["${path}"]}
${spec}`;
  return baseConfig(
    rl('local', '/api/local', `  limits: {minute: 3, hour: 100}\n  limitBy: header\n  headerName: x-api-key\n`) +
      rl('bypath', '/api/bypath', `  limits: {minute: 2}\n  limitBy: path\n  path: /api/bypath/exact\n`) +
      `---
apiVersion: ztmesh.io/v1alpha1
kind: GatewayPolicy
metadata: {name: trust-one-proxy, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  numTrustedProxies: 1
` +
      rl('calendar', '/api/calendar', `  limits: {month: 2, year: 3}\n  limitBy: header\n  headerName: x-api-key\n`) +
      rl('hidden', '/api/hidden', `  limits: {minute: 1}\n  limitBy: ip\n  hideClientHeaders: true\n  errorMessage: slow down\n`) +
      rl('shared', '/api/shared', `  limits: {minute: 5}\n  limitBy: header\n  headerName: x-api-key\n  policy: redis\n  redis: {host: 127.0.0.1, port: ${port}}\n`) +
      rl('open', '/api/open', `  limits: {minute: 1}\n  limitBy: ip\n  policy: redis\n  redis: {host: 127.0.0.1, port: ${deadPort}, timeout: 300ms}\n`) +
      rl('closed', '/api/closed', `  limits: {minute: 1}\n  limitBy: ip\n  policy: redis\n  faultTolerant: false\n  redis: {host: 127.0.0.1, port: ${deadPort}, timeout: 300ms}\n`),
  );
}

before(async () => {
  redis = await startRedisServer();
  redisPort = redis.port;
  const deadPort = await freePort();
  m = await startGatewayMesh('ratelimit', policies(redisPort, deadPort), { gateways: 2 });
});

after(async () => {
  await stopGatewayMesh(m);
  redis?.stop();
});

const key = () => `k-${Math.random().toString(36).slice(2)}`;

describe('local policy (Kong semantics)', () => {
  test('headers on every answer; the request over the limit gets 429 with Retry-After', async () => {
    const k = key();
    const g = m.gateways[0];
    let r = await gw(g, 'GET', '/api/local/x', { headers: { 'x-api-key': k } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-ratelimit-limit-minute'], '3');
    assert.equal(r.headers['x-ratelimit-remaining-minute'], '2');
    assert.equal(r.headers['x-ratelimit-limit-hour'], '100');
    assert.equal(r.headers['x-ratelimit-remaining-hour'], '99');
    assert.equal(r.headers['ratelimit-limit'], '3');
    assert.equal(r.headers['ratelimit-remaining'], '2');
    const reset = Number(r.headers['ratelimit-reset']);
    assert.ok(reset >= 1 && reset <= 60, String(reset));
    assert.equal(r.headers['retry-after'], undefined);
    await gw(g, 'GET', '/api/local/x', { headers: { 'x-api-key': k } });
    r = await gw(g, 'GET', '/api/local/x', { headers: { 'x-api-key': k } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['ratelimit-remaining'], '0');
    r = await gw(g, 'GET', '/api/local/x', { headers: { 'x-api-key': k } });
    assert.equal(r.status, 429);
    assert.match(r.body, /API rate limit exceeded/);
    assert.equal(r.headers['x-ratelimit-remaining-minute'], '0');
    assert.equal(r.headers['ratelimit-remaining'], '0');
    const ra = Number(r.headers['retry-after']);
    assert.ok(ra >= 1 && ra <= 60, String(ra));
  });

  test('limitBy header counts per key; a request without the header falls back to the client IP', async () => {
    const a = key();
    for (let i = 0; i < 3; i++) assert.equal((await gw(m.gateways[0], 'GET', '/api/local/y', { headers: { 'x-api-key': a } })).status, 200);
    assert.equal((await gw(m.gateways[0], 'GET', '/api/local/y', { headers: { 'x-api-key': a } })).status, 429);
    assert.equal((await gw(m.gateways[0], 'GET', '/api/local/y', { headers: { 'x-api-key': key() } })).status, 200);
  });

  test('local counters are per gateway process', async () => {
    const k = key();
    for (let i = 0; i < 3; i++) await gw(m.gateways[0], 'GET', '/api/local/z', { headers: { 'x-api-key': k } });
    assert.equal((await gw(m.gateways[0], 'GET', '/api/local/z', { headers: { 'x-api-key': k } })).status, 429);
    assert.equal((await gw(m.gateways[1], 'GET', '/api/local/z', { headers: { 'x-api-key': k } })).status, 200);
  });

  test('month and year windows: Kong header names, reset at the end of the UTC calendar month', async () => {
    const k = key();
    const g = m.gateways[0];
    const secondsToMonthEnd = () => {
      const d = new Date();
      return (Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) - d.getTime()) / 1000;
    };
    let r = await gw(g, 'GET', '/api/calendar/a', { headers: { 'x-api-key': k } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-ratelimit-limit-month'], '2');
    assert.equal(r.headers['x-ratelimit-remaining-month'], '1');
    assert.equal(r.headers['x-ratelimit-limit-year'], '3');
    assert.equal(r.headers['x-ratelimit-remaining-year'], '2');
    assert.equal(r.headers['ratelimit-limit'], '2');
    const reset = Number(r.headers['ratelimit-reset']);
    assert.ok(Math.abs(reset - secondsToMonthEnd()) <= 5, `${reset} vs ${secondsToMonthEnd()}`);
    assert.equal((await gw(g, 'GET', '/api/calendar/a', { headers: { 'x-api-key': k } })).status, 200);
    r = await gw(g, 'GET', '/api/calendar/a', { headers: { 'x-api-key': k } });
    assert.equal(r.status, 429);
    assert.equal(r.headers['x-ratelimit-remaining-month'], '0');
    assert.equal(r.headers['x-ratelimit-remaining-year'], '1');
    assert.ok(Math.abs(Number(r.headers['retry-after']) - secondsToMonthEnd()) <= 5, String(r.headers['retry-after']));
  });

  test('limitBy path (Kong): the configured path is one counter for every client; other paths fall back to the client IP', async () => {
    const g = m.gateways[0];
    const from = (ip: string) => ({ headers: { 'x-forwarded-for': ip } });
    let r = await gw(g, 'GET', '/api/bypath/exact', from('203.0.113.1'));
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-ratelimit-remaining-minute'], '1');
    r = await gw(g, 'GET', '/api/bypath/exact?q=1', from('203.0.113.2'));
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-ratelimit-remaining-minute'], '0');
    assert.equal((await gw(g, 'GET', '/api/bypath/exact', from('203.0.113.3'))).status, 429);
    // Other paths: counted by client IP (not per path, and not under the configured path's counter).
    r = await gw(g, 'GET', '/api/bypath/other', from('203.0.113.1'));
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-ratelimit-remaining-minute'], '1');
    assert.equal((await gw(g, 'GET', '/api/bypath/another', from('203.0.113.1'))).status, 200);
    r = await gw(g, 'GET', '/api/bypath/third', from('203.0.113.1'));
    assert.equal(r.status, 429);
    r = await gw(g, 'GET', '/api/bypath/third', from('203.0.113.2'));
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-ratelimit-remaining-minute'], '1');
  });

  test('hideClientHeaders: only Retry-After on the 429; custom error message', async () => {
    let r = await gw(m.gateways[0], 'GET', '/api/hidden');
    assert.equal(r.status, 200);
    assert.equal(r.headers['ratelimit-limit'], undefined);
    assert.equal(r.headers['x-ratelimit-limit-minute'], undefined);
    r = await gw(m.gateways[0], 'GET', '/api/hidden');
    assert.equal(r.status, 429);
    assert.equal(r.body, 'slow down');
    assert.ok(r.headers['retry-after']);
    assert.equal(r.headers['ratelimit-remaining'], undefined);
  });

  test('paths outside the policy are not limited', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await gw(m.gateways[0], 'GET', '/api/free')).headers['ratelimit-limit'], undefined);
  });
});

describe('redis policy shared by two gateways', () => {
  test('20 concurrent requests over two gateways: exactly the limit (5) is admitted', async () => {
    const k = key();
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => gw(m.gateways[i % 2], 'GET', '/api/shared/x', { headers: { 'x-api-key': k } })));
    const ok = rs.filter((r) => r.status === 200).length;
    const limited = rs.filter((r) => r.status === 429).length;
    assert.equal(ok, 5, rs.map((r) => r.status).join(','));
    assert.equal(limited, 15);
  });

  test('one gateway sees what the other counted (headers agree)', async () => {
    const k = key();
    let r = await gw(m.gateways[0], 'GET', '/api/shared/y', { headers: { 'x-api-key': k } });
    assert.equal(r.headers['x-ratelimit-remaining-minute'], '4');
    r = await gw(m.gateways[1], 'GET', '/api/shared/y', { headers: { 'x-api-key': k } });
    assert.equal(r.headers['x-ratelimit-remaining-minute'], '3');
  });

  test('Redis down: faultTolerant (default) fails open and counts it; faultTolerant false fails closed', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await gw(m.gateways[0], 'GET', '/api/open')).status, 200);
    const text = await gatewayMetrics(m.gateways[0]);
    assert.match(text, /ztmesh_gateway_ratelimit_decisions_total\{result="fail_open"[^}]*\} [1-9]/);
    assert.match(text, /ztmesh_gateway_ratelimit_store_errors_total\{policy="istio-system\/open"[^}]*\} [1-9]/);
    assert.equal((await gw(m.gateways[0], 'GET', '/api/closed')).status, 500);
  });
});

/**
 * Gateway figures.
 *   npx tsc -p . && node dist/bench/gateway.js
 * 1. JWT verifications per second on one core (RequestAuthentication `authenticate`, ES256 and RS256),
 *    with the verified-signature cache off (every request verifies) and on (the same token again).
 * 2. Redis limiter decisions per second (one gateway-side client, 64 in flight, real redis-server).
 * 3. Added latency: p50/p90/p99 over sequential keep-alive requests, in the same run and
 *    interleaved in rounds: app direct (plain HTTP); through the gateway without a token on a
 *    route no rate limit covers (TLS + route + authz + mTLS to the app's sidecar); and through
 *    the gateway with a token on a rate-limited route (the same + JWT verification + local
 *    rate limit). The last two differ only by what JWT + rate limiting cost.
 */
import https from 'node:https';
import http from 'node:http';
import { Redis } from 'ioredis';
import { compileRequestAuthn, authenticate } from '../src/policy/request-authn.js';
import { RedisLimiter } from '../src/gateway/rate-limit.js';
import type { RequestAuthentication } from '../src/config/types.js';
import { startRedisServer } from '../test/redis-server.js';
import { TestIdp, ISSUER, baseConfig, startGatewayMesh, stopGatewayMesh, HOST } from '../test/gateway/harness.js';

const idp = new TestIdp();

function jwtPerSecond(token: string, cacheSize = 0): number {
  const ra = { kind: 'RequestAuthentication', metadata: { name: 'a', namespace: 'istio-system', annotations: {} }, spec: { jwtRules: [{ issuer: ISSUER, audiences: ['shop'], jwks: JSON.stringify(idp.jwks()) }] } } as unknown as RequestAuthentication;
  const cfg = compileRequestAuthn([ra], { namespace: 'istio-system', labels: {} }, 'istio-system', { cacheSize });
  const req = { headers: { authorization: `Bearer ${token}` }, query: '' };
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < 500; i++) authenticate(cfg, req, () => undefined, now);
  const n = 5000;
  const t = performance.now();
  for (let i = 0; i < n; i++) if (authenticate(cfg, req, () => undefined, now).kind !== 'ok') throw new Error('not ok');
  return n / ((performance.now() - t) / 1000);
}

async function redisPerSecond(): Promise<number> {
  const server = await startRedisServer();
  try {
    const client = new Redis({ host: '127.0.0.1', port: server.port });
    await client.ping();
    const l = new RedisLimiter(client);
    const total = 20_000;
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        await l.take(`k${i % 1000}`, [['minute', 1_000_000], ['hour', 10_000_000]], Date.now());
      }
    };
    await worker(); // warm (loads the script)
    next = 0;
    const t = performance.now();
    await Promise.all(Array.from({ length: 64 }, worker));
    const rate = total / ((performance.now() - t) / 1000);
    await l.close();
    return rate;
  } finally {
    server.stop();
  }
}

interface Pcts {
  p50: number;
  p90: number;
  p99: number;
}

function pcts(xs: number[]): Pcts {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

type Path = 'direct' | 'gateway' | 'gatewayJwtRl';

async function latency(): Promise<Record<Path, Pcts>> {
  const extra = `---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: edge-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules: [{issuer: "${ISSUER}", audiences: [shop], jwks: ${JSON.stringify(JSON.stringify(idp.jwks()))}}]
---
apiVersion: ztmesh.io/v1alpha1
kind: RateLimitPolicy
metadata: {name: rl, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  match: {paths: [/api/]}
  limits: {second: 1000000}
  limitBy: consumer
`;
  const m = await startGatewayMesh('bench', baseConfig(extra));
  try {
    const token = idp.token({ exp: Math.floor(Date.now() / 1000) + 3600 });
    const ha = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sa = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    const one = (path: Path) =>
      new Promise<number>((resolve, reject) => {
        const t = performance.now();
        const gw = { host: '127.0.0.1', port: m.gateways[0].ports.https, agent: sa, servername: 'localhost' };
        const opts =
          path === 'gatewayJwtRl'
            ? { ...gw, path: '/api/bench', headers: { host: HOST, authorization: `Bearer ${token}` } }
            : path === 'gateway'
              ? { ...gw, path: '/v2/bench', headers: { host: HOST } } // rewritten to /api/bench: same app path
              : { host: '127.0.0.1', port: m.app.port, path: '/api/bench', headers: { host: HOST }, agent: ha };
        const req = (path === 'direct' ? http : https).request(opts, (res) => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          res.resume();
          res.on('end', () => resolve(performance.now() - t));
        });
        req.on('error', reject);
        req.end();
      });
    const paths: Path[] = ['direct', 'gateway', 'gatewayJwtRl'];
    const xs: Record<Path, number[]> = { direct: [], gateway: [], gatewayJwtRl: [] };
    for (const p of paths) for (let i = 0; i < 300; i++) await one(p); // warm-up
    // Rounds of 250 per path, interleaved, so a noisy moment hits all three alike.
    for (let round = 0; round < 12; round++) for (const p of paths) for (let i = 0; i < 250; i++) xs[p].push(await one(p));
    ha.destroy();
    sa.destroy();
    return { direct: pcts(xs.direct), gateway: pcts(xs.gateway), gatewayJwtRl: pcts(xs.gatewayJwtRl) };
  } finally {
    await stopGatewayMesh(m);
  }
}

const es = jwtPerSecond(idp.token({ exp: Math.floor(Date.now() / 1000) + 3600 }));
const rs = jwtPerSecond(idp.rsaToken({ exp: Math.floor(Date.now() / 1000) + 3600 }));
const esCached = jwtPerSecond(idp.token({ exp: Math.floor(Date.now() / 1000) + 3600 }), 100);
console.log(`JWT verifications per second (one core): ES256 ${Math.round(es)}, RS256 ${Math.round(rs)}; the same ES256 token again (verified-signature cache) ${Math.round(esCached)}`);
console.log(`Redis limiter decisions per second (1 client, 64 in flight, 2 windows): ${Math.round(await redisPerSecond())}`);
const l = await latency();
const f = (x: Pcts) => `p50 ${x.p50.toFixed(3)} / p90 ${x.p90.toFixed(3)} / p99 ${x.p99.toFixed(3)} ms`;
console.log('Latency, sequential keep-alive requests (3,000 per path, interleaved):');
console.log(`  app direct (plain HTTP)                                    ${f(l.direct)}`);
console.log(`  via gateway: TLS + route + authz + mTLS + sidecar          ${f(l.gateway)}`);
console.log(`  via gateway: the same + JWT (ES256) + local rate limit     ${f(l.gatewayJwtRl)}`);
console.log(`  gateway added vs direct: p50 +${(l.gatewayJwtRl.p50 - l.direct.p50).toFixed(3)} ms; JWT + rate limit added vs gateway without them: p50 +${(l.gatewayJwtRl.p50 - l.gateway.p50).toFixed(3)} ms (ratio ${(l.gatewayJwtRl.p50 / l.gateway.p50).toFixed(2)})`);

/**
 * Gateway figures.
 *   npx tsc -p . && node dist/bench/gateway.js
 * 1. JWT verifications per second on one core (RequestAuthentication `authenticate`, ES256 and RS256).
 * 2. Redis limiter decisions per second (one gateway-side client, 64 in flight, real redis-server).
 * 3. Added latency: median over sequential keep-alive requests, app direct (plain HTTP) vs
 *    through the gateway (TLS + JWT + local rate limit + route + authz + mTLS to the app's
 *    sidecar), in the same run; printed with the ratio.
 */
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { compileRequestAuthn, authenticate } from '../src/policy/request-authn.js';
import { RedisLimiter } from '../src/gateway/rate-limit.js';
import type { RequestAuthentication } from '../src/config/types.js';
import { TestIdp, ISSUER, baseConfig, startGatewayMesh, stopGatewayMesh, HOST } from '../test/gateway/harness.js';

const idp = new TestIdp();

function jwtPerSecond(token: string): number {
  const ra = { kind: 'RequestAuthentication', metadata: { name: 'a', namespace: 'istio-system', annotations: {} }, spec: { jwtRules: [{ issuer: ISSUER, audiences: ['shop'], jwks: JSON.stringify(idp.jwks()) }] } } as unknown as RequestAuthentication;
  const cfg = compileRequestAuthn([ra], { namespace: 'istio-system', labels: {} }, 'istio-system');
  const req = { headers: { authorization: `Bearer ${token}` }, query: '' };
  const now = Math.floor(Date.now() / 1000);
  for (let i = 0; i < 500; i++) authenticate(cfg, req, () => undefined, now);
  const n = 5000;
  const t = performance.now();
  for (let i = 0; i < n; i++) if (authenticate(cfg, req, () => undefined, now).kind !== 'ok') throw new Error('not ok');
  return n / ((performance.now() - t) / 1000);
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function redisPerSecond(): Promise<number> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100; i++) {
      const up = await new Promise<boolean>((r) => {
        const c = net.connect(port, '127.0.0.1', () => (c.end(), r(true)));
        c.on('error', () => r(false));
      });
      if (up) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const client = new Redis({ host: '127.0.0.1', port });
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
    proc.kill('SIGKILL');
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function latency(): Promise<{ direct: number; gateway: number }> {
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
  limits: {second: 1000000}
  limitBy: consumer
`;
  const m = await startGatewayMesh('bench', baseConfig(extra));
  try {
    const token = idp.token({ exp: Math.floor(Date.now() / 1000) + 3600 });
    const ha = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sa = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    const one = (secure: boolean) =>
      new Promise<number>((resolve, reject) => {
        const t = performance.now();
        const opts = secure
          ? { host: '127.0.0.1', port: m.gateways[0].ports.https, path: '/api/bench', headers: { host: HOST, authorization: `Bearer ${token}` }, agent: sa, servername: 'localhost' }
          : { host: '127.0.0.1', port: m.app.port, path: '/api/bench', headers: { host: HOST }, agent: ha };
        const req = (secure ? https : http).request(opts, (res) => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          res.resume();
          res.on('end', () => resolve(performance.now() - t));
        });
        req.on('error', reject);
        req.end();
      });
    const run = async (secure: boolean, n: number) => {
      const xs: number[] = [];
      for (let i = 0; i < n; i++) xs.push(await one(secure));
      return xs;
    };
    await run(false, 200);
    await run(true, 200);
    const direct = median(await run(false, 2000));
    const gateway = median(await run(true, 2000));
    ha.destroy();
    sa.destroy();
    return { direct, gateway };
  } finally {
    await stopGatewayMesh(m);
  }
}

const es = jwtPerSecond(idp.token({ exp: Math.floor(Date.now() / 1000) + 3600 }));
const rs = jwtPerSecond(idp.rsaToken({ exp: Math.floor(Date.now() / 1000) + 3600 }));
console.log(`JWT verifications per second (one core): ES256 ${Math.round(es)}, RS256 ${Math.round(rs)}`);
console.log(`Redis limiter decisions per second (1 client, 64 in flight, 2 windows): ${Math.round(await redisPerSecond())}`);
const l = await latency();
console.log(`Median latency, sequential keep-alive: app direct ${l.direct.toFixed(3)} ms, via gateway (TLS+JWT+rate limit+authz+mTLS+sidecar) ${l.gateway.toFixed(3)} ms, ratio ${(l.gateway / l.direct).toFixed(1)}x, added ${(l.gateway - l.direct).toFixed(3)} ms`);

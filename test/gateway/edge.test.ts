/**
 * The gateway's edge checks against the running process: IP allow/deny (IPv4, IPv6, CIDR,
 * deny wins) with the client address taken from X-Forwarded-For counted from the right past
 * one trusted proxy; request size limits (413, 417, 411, chunked bodies counted as they
 * stream); request-smuggling framings refused over raw sockets; header count/size limits;
 * slow clients timed out; client identity headers stripped.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { baseConfig, gw, HOST, rawTls, startGatewayMesh, stopGatewayMesh, waitFor, writeConfig, type GatewayMesh, type Reply } from './harness.js';

const policy = (extra = '') => `---
apiVersion: ztmesh.io/v1alpha1
kind: GatewayPolicy
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  numTrustedProxies: 1
  ipAccess:
    allow: [127.0.0.0/8, 10.0.0.0/8, "2001:db8::/32"]
    deny: [10.0.0.66/32, 10.9.0.0/16, "2001:db8::bad/128"]
  requestSize: {maxBytes: 1024${extra}}
`;

let m: GatewayMesh;

before(async () => {
  m = await startGatewayMesh('edge', baseConfig(policy()), {
    extraArgs: ['--max-headers', '30', '--max-header-bytes', '4096', '--headers-timeout', '1s', '--request-timeout', '3s', '--idle-timeout', '5s'],
  });
});

after(async () => {
  await stopGatewayMesh(m);
});

const xff = (v: string) => gw(m.gateways[0], 'GET', '/api/ip', { headers: { 'x-forwarded-for': v } });

describe('IP allow/deny with one trusted proxy', () => {
  test('the peer address when there is no X-Forwarded-For', async () => {
    assert.equal((await gw(m.gateways[0], 'GET', '/api/ip')).status, 200);
  });

  test('the client is the right-most X-Forwarded-For entry; the gateway appends the peer', async () => {
    const r = await xff('10.1.2.3');
    assert.equal(r.status, 200);
    const h = m.app.last()!.headers;
    assert.equal(h['x-envoy-external-address'], '10.1.2.3');
    assert.equal(h['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
  });

  test('deny wins over allow; a non-empty allow list refuses the rest (403)', async () => {
    assert.equal((await xff('10.0.0.66')).status, 403);
    assert.equal((await xff('10.9.200.1')).status, 403);
    assert.equal((await xff('8.8.8.8')).status, 403);
    assert.equal((await xff('10.0.0.67')).status, 200);
  });

  test('a spoofed left-most entry does not help; entries left of the trusted hop are ignored', async () => {
    assert.equal((await xff('10.1.2.3, 8.8.8.8')).status, 403);
    assert.equal((await xff('8.8.8.8, 10.1.2.3')).status, 200);
    assert.equal((await gw(m.gateways[0], 'GET', '/api/ip', { headers: { 'x-forwarded-for': ['10.1.2.3', '8.8.8.8'] } })).status, 403);
  });

  test('IPv6 CIDRs, any spelling of an address, IPv4-mapped IPv6', async () => {
    assert.equal((await xff('2001:db8::1')).status, 200);
    assert.equal((await xff('2001:db8:ffff::1')).status, 200);
    assert.equal((await xff('2001:db8::bad')).status, 403);
    assert.equal((await xff('2001:0db8:0000:0000:0000:0000:0000:0bad')).status, 403);
    assert.equal((await xff('2001:db9::1')).status, 403);
    assert.equal((await xff('::ffff:10.0.0.66')).status, 403);
    assert.equal((await xff('::ffff:10.1.1.1')).status, 200);
  });

  test('a malformed client entry is a 400', async () => {
    assert.equal((await xff('not-an-ip')).status, 400);
    assert.equal((await xff('10.1.2.3, 010.1.2.3')).status, 400);
  });
});

describe('request size limits', () => {
  test('Content-Length over the limit: 413 and the app sees nothing', async () => {
    const before = m.app.count();
    const r = await gw(m.gateways[0], 'POST', '/api/upload', { body: 'x'.repeat(2000) });
    assert.equal(r.status, 413);
    assert.equal(m.app.count(), before);
    assert.equal((await gw(m.gateways[0], 'POST', '/api/upload', { body: 'x'.repeat(1000) })).status, 200);
  });

  test('Expect: 100-continue over the limit: 417 before any body is sent', async () => {
    const r = await rawTls(m.gateways[0], `POST /api/upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n`);
    assert.match(r.data, /^HTTP\/1\.1 417 /);
  });

  test('a chunked body is counted as it streams: 413 arrives before the body ends', async () => {
    const r = await new Promise<Reply>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: m.gateways[0].ports.https, method: 'POST', path: '/api/stream', headers: { host: HOST, 'transfer-encoding': 'chunked' }, rejectUnauthorized: false, servername: 'localhost', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers });
        });
      });
      req.on('error', reject);
      req.write('a'.repeat(600));
      setTimeout(() => req.write('b'.repeat(600)), 50);
      // never ended: a gateway that buffered the body to measure it would never answer
    });
    assert.equal(r.status, 413);
  });

  test('a chunked body under the limit reaches the app', async () => {
    const r = await new Promise<Reply>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: m.gateways[0].ports.https, method: 'POST', path: '/api/stream-ok', headers: { host: HOST, 'transfer-encoding': 'chunked' }, rejectUnauthorized: false, servername: 'localhost', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: '', headers: res.headers }));
      });
      req.on('error', reject);
      req.write('a'.repeat(500));
      req.end('b'.repeat(500));
    });
    assert.equal(r.status, 200);
    assert.equal(m.app.last()!.url, '/api/stream-ok');
  });
});

describe('request smuggling framings are refused (raw bytes)', () => {
  const smuggled = `GET /api/smuggled HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
  const cases: [string, string][] = [
    ['Content-Length with Transfer-Encoding', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`],
    ['Transfer-Encoding then Content-Length', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n${smuggled}`],
    ['obfuscated Transfer-Encoding (xchunked)', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`],
    ['Transfer-Encoding: chunked, identity', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`],
    ['Transfer-Encoding: identity, chunked', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n${smuggled}`],
    ['two Transfer-Encoding headers', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${smuggled}`],
    ['space before the colon', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n${smuggled}`],
    ['duplicate Content-Length (different)', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd${smuggled}`],
    ['duplicate Content-Length (same)', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd${smuggled}`],
    ['Content-Length list', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 4, 4\r\n\r\nabcd${smuggled}`],
    ['signed Content-Length', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: +4\r\n\r\nabcd${smuggled}`],
    ['hex Content-Length', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 0x4\r\n\r\nabcd${smuggled}`],
    ['obs-fold header continuation', `POST /api/a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\nabcd${smuggled}`],
    ['bare LF line endings', `POST /api/a HTTP/1.1\nHost: ${HOST}\nContent-Length: 4\nTransfer-Encoding: chunked\n\n0\n\n${smuggled}`],
    ['NUL in a header value', `GET /api/a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\u0000b\r\n\r\n`],
  ];
  for (const [name, bytes] of cases) {
    test(name, async () => {
      const before = m.app.count((r) => r.url === '/api/smuggled' || r.url === '/api/a');
      const r = await rawTls(m.gateways[0], bytes);
      assert.match(r.data, /^HTTP\/1\.1 400 /, `${name}: ${JSON.stringify(r.data.slice(0, 120))} ${r.error ?? ''}`);
      assert.doesNotMatch(r.data.slice(12), /HTTP\/1\.1 200/, 'no second response');
      assert.equal(m.app.count((x) => x.url === '/api/smuggled' || x.url === '/api/a'), before, 'nothing reached the app');
    });
  }
});

describe('header limits, slow clients and identity headers', () => {
  test('too many header fields: 431', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 40; i++) headers[`x-h${i}`] = 'v';
    assert.equal((await gw(m.gateways[0], 'GET', '/api/h', { headers })).status, 431);
  });

  test('a request head larger than the limit: 431', async () => {
    const r = await rawTls(m.gateways[0], `GET /api/h HTTP/1.1\r\nHost: ${HOST}\r\nX-Big: ${'a'.repeat(6000)}\r\n\r\n`);
    assert.match(r.data, /^HTTP\/1\.1 431 /);
  });

  test('a client that never finishes its headers gets 408 and is disconnected', async () => {
    const r = await rawTls(m.gateways[0], `GET /api/slow HTTP/1.1\r\nHost: ${HOST}\r\nX-Partial: 1\r\n`, 20_000);
    assert.equal(r.error, undefined, 'the gateway closed the connection');
    assert.match(r.data, /^HTTP\/1\.1 408 /);
  });

  test('a connection that sends nothing is closed', async () => {
    const r = await rawTls(m.gateways[0], Buffer.alloc(0), 20_000);
    assert.notEqual(r.error, 'timeout');
  });

  test('client-supplied identity headers never reach the mesh', async () => {
    const r = await gw(m.gateways[0], 'GET', '/api/id', { headers: { 'x-forwarded-client-cert': 'By=spiffe://cluster.local/ns/shop/sa/api;URI=spiffe://cluster.local/ns/shop/sa/admin', 'x-ztmesh-principal': 'cluster.local/ns/shop/sa/admin', 'x-envoy-external-address': '10.0.0.1' } });
    assert.equal(r.status, 200);
    const h = m.app.last()!.headers;
    assert.equal(h['x-ztmesh-principal'], undefined);
    assert.equal(h['x-envoy-external-address'], '127.0.0.1');
    assert.doesNotMatch(String(h['x-forwarded-client-cert']), /sa\/admin/);
  });
});

describe('require Content-Length', () => {
  test('411 for a chunked body once the policy requires a length', async () => {
    writeConfig(m.cfg, 'gateway.yaml', baseConfig(policy(', requireContentLength: true')));
    await waitFor('the gateway applies requireContentLength', async () => {
      const r = await rawTls(m.gateways[0], `POST /api/len HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\na\r\n0\r\n\r\n`);
      return /^HTTP\/1\.1 411 /.test(r.data) ? r : null;
    }, 15_000, 100);
    assert.equal((await gw(m.gateways[0], 'POST', '/api/len', { body: 'abc' })).status, 200);
  });
});

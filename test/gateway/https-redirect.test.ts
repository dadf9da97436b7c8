/**
 * Istio Gateway `servers[].tls.httpsRedirect: true` (Envoy's require_tls): on the gateway's
 * plain HTTP listener a request for such a server's host is answered 301 with
 * `Location: https://<host><path and query as received>`; other hosts are still served over
 * HTTP, and HTTPS keeps routing. The Location's port: none or :80 → none (443); any other
 * port → the gateway's HTTPS port (followed here to a real HTTPS answer).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { HOST, SERVICE_PORT, baseConfig, gw, startGatewayMesh, stopGatewayMesh, type GatewayHandle, type GatewayMesh, type Reply } from './harness.js';
import { compileHttpsRedirectHosts, httpsRedirectLocation } from '../../src/gateway/https-redirect.js';

let m: GatewayMesh;

const EXTRA = `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge-http, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, protocol: HTTP, name: http}
    hosts: ["istio-system/${HOST}", "*.secure.example.com"]
    tls: {httpsRedirect: true}
  - port: {number: 8080, protocol: HTTP, name: http-plain}
    hosts: ["plain.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: plain, namespace: shop}
spec:
  hosts: ["plain.example.com"]
  gateways: ["istio-system/edge-http"]
  http:
  - route: [{destination: {host: api.shop.svc.cluster.local, port: {number: ${SERVICE_PORT}}}}]
`;

before(async () => {
  m = await startGatewayMesh('https-redirect', baseConfig(EXTRA), { http: true });
});

after(async () => {
  await stopGatewayMesh(m);
});

/** One plaintext HTTP request to the gateway's HTTP listener. */
function plain(g: GatewayHandle, method: string, path: string, host: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: g.ports.http!, method, path, headers: { host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

describe('a running gateway with tls.httpsRedirect', () => {
  test('HTTP → 301 to https with the path and query as received; nothing reaches the service', async () => {
    const g = m.gateways[0];
    assert.ok(g.ports.http, 'the gateway has an HTTP listener');
    const before = m.app.seen.length;
    let r = await plain(g, 'GET', '/api/items?id=7&sort=desc', HOST);
    assert.equal(r.status, 301, r.body);
    assert.equal(r.headers.location, `https://${HOST}/api/items?id=7&sort=desc`);
    // Every method, and paths no route serves: the redirect comes before routing (Envoy's virtual host).
    r = await plain(g, 'POST', '/nowhere/%7Ex?q=a%20b', HOST, 'payload');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, `https://${HOST}/nowhere/%7Ex?q=a%20b`);
    r = await plain(g, 'GET', '/api/a', 'api.secure.example.com');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'https://api.secure.example.com/api/a');
    assert.equal(m.app.seen.length, before);
  });

  test('port: :80 is dropped, any other port becomes the HTTPS port, and following the Location is served over HTTPS', async () => {
    const g = m.gateways[0];
    let r = await plain(g, 'GET', '/api/p', `${HOST}:80`);
    assert.equal(r.headers.location, `https://${HOST}/api/p`);
    r = await plain(g, 'GET', '/api/p?x=1', `${HOST}:${g.ports.http}`);
    assert.equal(r.status, 301);
    const loc = new URL(String(r.headers.location));
    assert.equal(loc.protocol, 'https:');
    assert.equal(loc.hostname, HOST);
    assert.equal(Number(loc.port), g.ports.https);
    const followed = await gw(g, 'GET', loc.pathname + loc.search, { host: loc.host });
    assert.equal(followed.status, 200, followed.body);
    assert.equal(m.app.last()!.url, '/api/p?x=1');
  });

  test('HTTPS still routes the redirected host; a host without httpsRedirect is served over plain HTTP', async () => {
    const g = m.gateways[0];
    const s = await gw(g, 'GET', '/api/secure?y=2');
    assert.equal(s.status, 200, s.body);
    assert.equal(s.headers.location, undefined);
    assert.equal(m.app.last()!.url, '/api/secure?y=2');
    const p = await plain(g, 'GET', '/api/plain', 'plain.example.com');
    assert.equal(p.status, 200, p.body);
    assert.equal(m.app.last()!.url, '/api/plain');
  });
});

describe('httpsRedirectLocation / compileHttpsRedirectHosts (pure)', () => {
  const hosts = ['shop.example.com', '*.secure.example.com'];
  test('host match (case, trailing dot, wildcard), port rules, IPv6 literals, absolute-form targets', () => {
    assert.equal(httpsRedirectLocation(hosts, 'Shop.Example.com', '/a?b=1', 8443), 'https://Shop.Example.com/a?b=1');
    assert.equal(httpsRedirectLocation(hosts, 'shop.example.com.', '/', 8443), 'https://shop.example.com./');
    assert.equal(httpsRedirectLocation(hosts, 'x.secure.example.com:8080', '/a', 8443), 'https://x.secure.example.com:8443/a');
    assert.equal(httpsRedirectLocation(hosts, 'secure.example.com', '/a', 8443), null);
    assert.equal(httpsRedirectLocation(hosts, 'other.example.com', '/a', 8443), null);
    assert.equal(httpsRedirectLocation(hosts, '', '/a', 8443), null);
    assert.equal(httpsRedirectLocation(hosts, 'shop.example.com', 'http://shop.example.com/a/b?c=d', 443), 'https://shop.example.com/a/b?c=d');
    assert.equal(httpsRedirectLocation(['*'], '[::1]:8080', '/v6', 8443), 'https://[::1]:8443/v6');
    assert.equal(httpsRedirectLocation(['*'], '[::1]', '/v6', 8443), 'https://[::1]/v6');
    assert.equal(httpsRedirectLocation([], 'shop.example.com', '/a', 8443), null);
  });

  test('only servers with tls.httpsRedirect: true of Gateways selecting the gateway', () => {
    const gwr = (name: string, selector: Record<string, string> | undefined, servers: unknown[]) => ({ kind: 'Gateway', metadata: { name, namespace: 'istio-system' }, spec: { selector, servers } });
    const res = [
      gwr('a', { istio: 'ingressgateway' }, [
        { port: { number: 80, protocol: 'HTTP' }, hosts: ['ns/One.example.com'], tls: { httpsRedirect: true } },
        { port: { number: 80, protocol: 'HTTP' }, hosts: ['two.example.com'], tls: { httpsRedirect: false } },
        { port: { number: 80, protocol: 'HTTP' }, hosts: ['three.example.com'] },
      ]),
      gwr('b', { istio: 'other' }, [{ port: { number: 80, protocol: 'HTTP' }, hosts: ['four.example.com'], tls: { httpsRedirect: true } }]),
      gwr('c', undefined, [{ port: { number: 80, protocol: 'HTTP' }, hosts: ['five.example.com'], tls: { httpsRedirect: true } }]),
    ];
    assert.deepEqual(compileHttpsRedirectHosts(res, { istio: 'ingressgateway' }), ['one.example.com']);
  });
});

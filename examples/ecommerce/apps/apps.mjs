#!/usr/bin/env node
// The five small services of the e-commerce demo, in one process (each on its own
// loopback port, each behind its own ztmesh sidecar). Usage:
//   node apps.mjs '{"user-service":18001,...}' '{"order-service":{"proxy":"http://127.0.0.1:15001"}}'
// order-service calls product-catalog and payment-service through its sidecar (HTTP proxy).
// order-service also keeps the last bearer token it received and shows it on its own loopback
// port (GET /internal/last-token, not routed by the mesh): the demo plays a compromised
// order-service that replays it elsewhere.
import http from 'node:http';

const ports = JSON.parse(process.argv[2] ?? '{}');
const outbound = JSON.parse(process.argv[3] ?? '{}');

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Call a mesh service through this app's sidecar (absolute-form request to the HTTP proxy). */
function viaSidecar(proxy, method, url, body) {
  const p = new URL(proxy);
  return new Promise((resolve) => {
    const data = body ? JSON.stringify(body) : '';
    const req = http.request(
      { host: p.hostname, port: Number(p.port), method, path: url, headers: { host: new URL(url).host, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, body: text }));
      },
    );
    req.on('error', (e) => resolve({ status: 599, body: e.message }));
    req.end(data);
  });
}

let lastToken = null;

const handlers = {
  'user-service': async (req) => {
    const m = /^\/api\/v1\/users\/([^/]+)$/.exec(req.path);
    if (req.method === 'GET' && m) return [200, { id: m[1], name: `customer-${m[1]}`, email: `c${m[1]}@example.test` }];
    if (req.method === 'GET' && req.path === '/api/v1/users') return [200, { users: ['1', '2', '42'], note: 'the full customer list' }];
    return [404, { error: 'not found' }];
  },
  'product-catalog': async (req) => {
    let m = /^\/api\/v1\/products\/([^/]+)$/.exec(req.path);
    if (req.method === 'GET' && m) return [200, { id: m[1], name: `product-${m[1]}`, price: 1999 }];
    m = /^\/api\/v1\/inventory\/([^/]+)$/.exec(req.path);
    if (req.method === 'GET' && m) return [200, { id: m[1], inStock: 7 }];
    if (req.method === 'PUT' && /^\/api\/v1\/products\//.test(req.path)) return [200, { updated: true }];
    return [404, { error: 'not found' }];
  },
  'payment-service': async (req) => {
    if (req.method === 'POST' && req.path === '/api/v1/charges') return [201, { charge: `ch_${Date.now()}`, status: 'captured' }];
    if (req.method === 'POST' && req.path === '/api/v1/refunds') return [201, { refund: `re_${Date.now()}` }];
    if (req.method === 'GET' && req.path === '/api/v1/charges') return [200, { charges: ['every card charge ever'] }];
    if (req.path.startsWith('/admin')) return [200, { admin: 'card data export' }];
    return [404, { error: 'not found' }];
  },
  'shipping-service': async (req) => {
    const m = /^\/api\/v1\/shipments\/([^/]+)$/.exec(req.path);
    if (req.method === 'GET' && m) return [200, { id: m[1], status: 'in transit' }];
    return [404, { error: 'not found' }];
  },
  'order-service': async (req) => {
    const auth = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '');
    if (auth) lastToken = auth[1];
    if (req.method === 'GET' && req.path === '/internal/last-token') return [200, { token: lastToken }];
    if (req.method === 'POST' && req.path === '/api/v1/orders') {
      const proxy = outbound['order-service']?.proxy;
      const product = await viaSidecar(proxy, 'GET', 'http://product-catalog:8080/api/v1/products/7');
      const stock = await viaSidecar(proxy, 'GET', 'http://product-catalog:8080/api/v1/inventory/7');
      const charge = await viaSidecar(proxy, 'POST', 'http://payment-service:8080/api/v1/charges', { amount: 1999 });
      const ok = product.status === 200 && stock.status === 200 && charge.status === 201;
      return [ok ? 201 : 502, { order: ok ? `ord_${Date.now()}` : null, steps: { product: product.status, inventory: stock.status, charge: charge.status } }];
    }
    const m = /^\/api\/v1\/orders\/([^/]+)$/.exec(req.path);
    if (req.method === 'GET' && m) return [200, { id: m[1], status: 'paid' }];
    return [404, { error: 'not found' }];
  },
  'partner-api': async (req) => [200, { partner: 'ok', path: req.path }],
};

const bound = {};
await Promise.all(
  Object.entries(ports).map(
    ([name, port]) =>
      new Promise((resolve) => {
        const h = handlers[name];
        const srv = http.createServer(async (req, res) => {
          let body = '';
          req.on('data', (c) => (body += c));
          req.on('end', async () => {
            const u = new URL(req.url, 'http://app');
            const [status, out] = await h({ method: req.method, path: u.pathname, body, headers: req.headers });
            json(res, status, { service: name, ...out, caller: req.headers['x-forwarded-client-cert'] ?? null });
          });
        });
        srv.listen(port, '127.0.0.1', () => {
          bound[name] = srv.address().port;
          resolve();
        });
      }),
  ),
);
process.stdout.write(JSON.stringify({ ready: true, ports: bound }) + '\n');
process.on('SIGTERM', () => process.exit(0));

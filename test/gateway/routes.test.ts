/** The gateway's route table (src/gateway/routes.ts) as a pure function of the configuration. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileRoutes, matchRoute, qualifyHost } from '../../src/gateway/routes.js';
import { snapshotOf } from '../helpers.js';

test('destination hosts: a short name is relative to the VirtualService namespace (as Istio); dotted names are kept', () => {
  assert.equal(qualifyHost('Reviews', 'bookinfo'), 'reviews.bookinfo.svc.cluster.local');
  assert.equal(qualifyHost('api.shop', 'other'), 'api.shop');
  assert.equal(qualifyHost('payments.prod.svc.cluster.local', 'x'), 'payments.prod.svc.cluster.local');
  const snap = snapshotOf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8443, protocol: HTTPS, name: https}, hosts: ["shop.demo.test"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: production}
spec:
  hosts: ["shop.demo.test"]
  gateways: ["istio-system/shop"]
  http:
  - match: [{uri: {prefix: /api/v1/products/}}]
    route: [{destination: {host: product-catalog, port: {number: 8080}}}]
`);
  const t = compileRoutes(snap.config.resources, { istio: 'ingressgateway' });
  const m = matchRoute(t, { host: 'shop.demo.test', method: 'GET', pathOnly: '/api/v1/products/7', query: '', headers: {} });
  assert.equal(m?.destination?.host, 'product-catalog.production.svc.cluster.local');
  assert.equal(m?.destination?.port, 8080);
});

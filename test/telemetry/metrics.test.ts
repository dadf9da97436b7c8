/**
 * ProxyMetrics.request (the per-request path, series kept per label tuple) must write exactly
 * what prom-client's public inc/observe write: same series, values, buckets, sum and count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyMetrics } from '../../src/telemetry/metrics.js';
import type { RequestDecision, RequestDirection } from '../../src/telemetry/metrics.js';

type Req = [RequestDirection, string, string, number, RequestDecision, number];

const A = 'spiffe://cluster.local/ns/a/sa/a';
const B = 'spiffe://cluster.local/ns/b/sa/b';
const REQUESTS: Req[] = [
  ['inbound', A, B, 200, 'ALLOW', 0.0003],
  ['inbound', A, B, 200, 'ALLOW', 0.0007],
  ['inbound', A, B, 503, 'ALLOW', 0.004], // same histogram series, another counter series
  ['inbound', 'unknown', B, 403, 'DENY', 0.0005], // exactly on a bucket bound
  ['outbound', B, 'external', 502, 'DENY', 12], // above the last bucket: +Inf only
  ['outbound', B, A, 200, 'ALLOW', 0.02],
  ['gateway', 'external', B, 429, 'DENY', 0],
  ['inbound', A, B, 200, 'ALLOW', 1.5],
];

function viaPublicApi(m: ProxyMetrics, reqs: Req[]): void {
  for (const [direction, src, dst, status, decision, s] of reqs) {
    m.requests.inc({ direction, source_principal: src, destination_principal: dst, response_code: String(status), decision });
    m.duration.observe({ direction, source_principal: src, destination_principal: dst, decision }, s);
  }
}

test('request() writes the same ztmesh_requests_total and ztmesh_request_duration_seconds as inc/observe', async () => {
  const fast = new ProxyMetrics({ service: 's', namespace: 'n' });
  const slow = new ProxyMetrics({ service: 's', namespace: 'n' });
  for (const r of REQUESTS) fast.request(...r);
  viaPublicApi(slow, REQUESTS);
  assert.equal(await fast.registry.metrics(), await slow.registry.metrics());
  const text = await fast.registry.metrics();
  assert.match(text, /ztmesh_requests_total\{direction="inbound",source_principal="spiffe:\/\/cluster.local\/ns\/a\/sa\/a",destination_principal="spiffe:\/\/cluster.local\/ns\/b\/sa\/b",response_code="200",decision="ALLOW",service="s",namespace="n"\} 3/);
  assert.ok(text.includes(`ztmesh_request_duration_seconds_count{service="s",namespace="n",direction="inbound",source_principal="${A}",destination_principal="${B}",decision="ALLOW"} 4`));
  assert.ok(text.includes(`ztmesh_request_duration_seconds_bucket{le="0.0005",service="s",namespace="n",direction="inbound",source_principal="unknown",destination_principal="${B}",decision="DENY"} 1`));
});

test('request() and the public API share series (the gateway uses both), and survive a reset', async () => {
  const mixed = new ProxyMetrics();
  const slow = new ProxyMetrics();
  viaPublicApi(mixed, REQUESTS.slice(0, 3));
  for (const r of REQUESTS.slice(3)) mixed.request(...r);
  viaPublicApi(mixed, REQUESTS.slice(0, 2));
  for (const r of REQUESTS.slice(0, 2)) mixed.request(...r);
  viaPublicApi(slow, [...REQUESTS, ...REQUESTS.slice(0, 2), ...REQUESTS.slice(0, 2)]);
  assert.equal(await mixed.registry.metrics(), await slow.registry.metrics());

  mixed.registry.resetMetrics();
  slow.registry.resetMetrics();
  for (const r of REQUESTS) mixed.request(...r);
  viaPublicApi(slow, REQUESTS);
  assert.equal(await mixed.registry.metrics(), await slow.registry.metrics());
});

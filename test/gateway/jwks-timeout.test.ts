/**
 * RequestAuthentication jwtRules[].timeout (Istio: how long to wait for the JWKS fetch,
 * default 5s) at a running gateway, against a real HTTPS JWKS server on loopback that answers
 * after 1.5 s: a rule with `timeout: 300ms` gives up, fails closed (401) and says why in the
 * access log; a rule with the default timeout waits for the same slow server and verifies.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestIdp, baseConfig, gw, jwksServer, logsOf, startGatewayMesh, stopGatewayMesh, waitFor, type GatewayMesh } from './harness.js';

const DELAY_MS = 1500;
const idp = new TestIdp();
const side = mkdtempSync(join(tmpdir(), 'ztmesh-gw-jwks-timeout-'));
let slow: Awaited<ReturnType<typeof jwksServer>>;
let m: GatewayMesh;

before(async () => {
  slow = await jwksServer(side, () => idp.jwks(), { delayMs: DELAY_MS });
  const base = slow.url.replace(/\/jwks\.json$/, '');
  m = await startGatewayMesh(
    'jwks-timeout',
    baseConfig(`---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: slow-idps, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: https://impatient.test
    jwksUri: ${base}/impatient.json
    timeout: 300ms
  - issuer: https://patient.test
    jwksUri: ${base}/patient.json
`),
    { env: { NODE_EXTRA_CA_CERTS: slow.caFile } },
  );
});

after(async () => {
  await slow?.close();
  await stopGatewayMesh(m);
});

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

/** The gateway's access-log records (JSON lines). */
function accessLog(): Record<string, unknown>[] {
  return readdirSync(m.dir)
    .filter((f) => /^access-gateway-.*\.jsonl$/.test(f))
    .flatMap((f) => readFileSync(join(m.dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
}

test('timeout: 300ms and a JWKS answering after 1.5 s: the fetch gives up, the token is refused (401) and the log names the timeout', async () => {
  const started = Date.now();
  const r = await gw(m.gateways[0], 'GET', '/api/x', { headers: bearer(idp.token({ iss: 'https://impatient.test' })) });
  const took = Date.now() - started;
  assert.equal(r.status, 401, r.body);
  assert.equal(r.headers['www-authenticate'], 'Bearer error="invalid_token"');
  assert.ok(took < DELAY_MS, `answered after ${took} ms: the gateway waited for the slow JWKS`);
  assert.equal(m.app.seen.length, 0);
  const rec = await waitFor('the access log record of the 401', async () => accessLog().find((a) => a.path === '/api/x' && a.status === 401) ?? null, 5000, 50).catch((e: Error) =>
    assert.fail(`${e.message}\n${logsOf(m.dir, 3000)}`),
  );
  assert.match(String(rec.reason), /^invalid JWT \(jwks_unavailable\): the JWKS at https:\/\/127\.0\.0\.1:\d+\/impatient\.json could not be fetched: the JWKS fetch timed out after 300ms \(jwtRules timeout\)$/);
  assert.ok(slow.hits() >= 1, 'the JWKS server was asked');
});

test('the default timeout (5s) waits for the same slow JWKS server and the token verifies', async () => {
  const r = await gw(m.gateways[0], 'GET', '/api/y', { headers: bearer(idp.token({ iss: 'https://patient.test', sub: 'pat' })) });
  assert.equal(r.status, 200, r.body);
  assert.equal(m.app.last()!.url, '/api/y');
});

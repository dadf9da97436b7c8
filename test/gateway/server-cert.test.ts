/**
 * The gateway's HTTPS certificate issued by the mesh CA for DNS names (`ztmesh gateway
 * --dns-names`): DNS name rules and Gateway host coverage as pure functions; then real
 * processes on 127.0.0.1 (control plane with 12 s certificates, the api service behind a
 * sidecar, a gateway with --dns-names): clients trusting only the mesh roots verify the
 * served certificate for its names and refuse it for others; openssl reads DNS SANs only,
 * no URI SAN, serverAuth only; POST /v1/sign-server refuses (403) names no Gateway grants,
 * names only a `hosts: ["*"]` Gateway covers, callers no Gateway selects, unregistered and
 * quarantined callers (401 without an SVID); the certificate is renewed and swapped into
 * the live listener (a new serial on new connections, the open connection keeps working);
 * a restart with the control plane down serves the persisted certificate; the CLI refuses
 * a missing or doubled certificate source and bad DNS names with a usage error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeDnsName, normalizeDnsNames, buildCsr, toPem, pemCertificates, parseCertificate, verifySvidChain, BundleSet, loadCa, checkCsr, createRootCa, createIntermediateCa, CertificateAuthority } from '../../src/identity/index.js';
import { authorizeServerCertificate, hostCoversCertName } from '../../src/control/server-cert.js';
import { ZtmError } from '../../src/errors.js';
import { App, LocalMesh, SERVICE_PORT, baseConfig, configDir, id, logsOf, meshSvid, runCliAsync, sleep, tempDir, teardown, waitFor, writeConfig, type GatewayHandle, type SidecarHandle } from './harness.js';

const NAMES = ['shop.example.test', 'api.example.test'];

// ------------------------------------------------------------------ pure parts

test('DNS names: RFC 1123 labels, an optional leading "*." label, lower-cased; IPs and junk refused', () => {
  assert.equal(normalizeDnsName('Shop.Example.TEST'), 'shop.example.test');
  assert.equal(normalizeDnsName('*.cdn.example.test'), '*.cdn.example.test');
  assert.equal(normalizeDnsName('xn--bcher-kva.example'), 'xn--bcher-kva.example');
  assert.equal(normalizeDnsName('a-1.b2.example.test'), 'a-1.b2.example.test');
  assert.deepEqual(normalizeDnsNames(['A.example.test', 'a.example.test', 'b.example.test']), ['a.example.test', 'b.example.test']);
  for (const bad of ['', '127.0.0.1', '10.0.0.1', '::1', '[::1]', 'shop.example.test.', '-a.example.test', 'a-.example.test', 'a..example.test', 'a_b.example.test', '*.test', '*', 'a.*.example.test', '*a.example.test', '**.example.test', 'bücher.example', `${'a'.repeat(64)}.example.test`, `${'a.'.repeat(127)}test`, 'host.123']) {
    assert.throws(() => normalizeDnsName(bad), (e: unknown) => e instanceof ZtmError && e.code === 'ZTM_USAGE', bad);
  }
  assert.throws(() => normalizeDnsNames([]), /at least one/);
});

const gateway = (name: string, selector: Record<string, string>, hosts: string[], ns = 'istio-system') => ({
  kind: 'Gateway',
  metadata: { name, namespace: ns },
  spec: { selector, servers: [{ port: { number: 443, protocol: 'HTTPS', name: 'https' }, hosts }] },
});
const edge = { id: 'istio-system/ingress-gateway@127.0.0.1:8443', namespace: 'istio-system', labels: { istio: 'ingressgateway' } };
const GW_ID = id('istio-system', 'ingress-gateway');

test('Gateway host coverage: exact, ns/host, "*.suffix" one label only, wildcard requests need the same wildcard, "*" never', () => {
  assert.ok(hostCoversCertName('shop.example.test', 'shop.example.test'));
  assert.ok(hostCoversCertName('SHOP.example.test', 'shop.example.test'));
  assert.ok(hostCoversCertName('*.example.test', 'a.example.test'));
  assert.ok(!hostCoversCertName('*.example.test', 'a.b.example.test'));
  assert.ok(!hostCoversCertName('*.example.test', 'example.test'));
  assert.ok(!hostCoversCertName('shop.example.test', 'shop.example.test.evil'));
  assert.ok(hostCoversCertName('*.example.test', '*.example.test'));
  assert.ok(!hostCoversCertName('a.example.test', '*.example.test'));
  assert.ok(!hostCoversCertName('*.test', '*.example.test'));
  assert.ok(!hostCoversCertName('*', 'shop.example.test'));

  const res = [gateway('edge', { istio: 'ingressgateway' }, ['shop/shop.example.test', './api.example.test', '*/*.cdn.example.test']), gateway('other', { app: 'other' }, ['other.example.test'])];
  const ok = authorizeServerCertificate(res, GW_ID, [edge], ['shop.example.test', 'api.example.test', 'x.cdn.example.test']);
  assert.ok(ok.ok);
  assert.equal(ok.coveredBy['x.cdn.example.test'], 'istio-system/edge host *.cdn.example.test');
  const notCovered = authorizeServerCertificate(res, GW_ID, [edge], ['shop.example.test', 'other.example.test']);
  assert.ok(!notCovered.ok);
  assert.equal(notCovered.status, 403);
  assert.equal(notCovered.name, 'other.example.test');
  assert.match(notCovered.error, /other\.example\.test is not covered/);
  // "*" alone never authorizes, whatever else a Gateway lists.
  const star = authorizeServerCertificate([gateway('all', { istio: 'ingressgateway' }, ['*']), ...res], GW_ID, [edge], ['anything.example.org']);
  assert.ok(!star.ok);
  assert.match(star.error, /wildcard-everything host "\*" of Gateway istio-system\/all.*cannot be used to mint certificates/);
  assert.ok(!authorizeServerCertificate([gateway('all', { istio: 'ingressgateway' }, ['istio-system/*'])], GW_ID, [edge], ['a.example.org']).ok);
  // No Gateway selects the workload; no registration at all; an empty selector selects nothing.
  const api = { id: 'shop/api@127.0.0.1:1', namespace: 'shop', labels: { app: 'api' } };
  assert.match((authorizeServerCertificate(res, id('shop', 'api'), [api], ['shop.example.test']) as { error: string }).error, /no Gateway in namespace shop selects workload shop\/api/);
  // Labels are the workload's own claim; its namespace is attested by its SVID: a workload in
  // another namespace registered with istio=ingressgateway is not entitled to the edge's names.
  const impostor = { id: 'shop/api@127.0.0.1:2', namespace: 'shop', labels: { istio: 'ingressgateway' } };
  const imp = authorizeServerCertificate(res, id('shop', 'api'), [impostor], ['shop.example.test']);
  assert.ok(!imp.ok);
  assert.match(imp.error, /Gateways in other namespaces \(istio-system\/edge\) grant certificates only to workloads in their own namespace/);
  assert.match((authorizeServerCertificate(res, GW_ID, [], ['shop.example.test']) as { error: string }).error, /has no registered workload/);
  assert.ok(!authorizeServerCertificate([gateway('x', {}, ['shop.example.test'])], GW_ID, [edge], ['shop.example.test']).ok);
  // Replicas under one identity: every one of them must be entitled.
  const replica = { id: 'istio-system/ingress-gateway@127.0.0.1:9443', namespace: 'istio-system', labels: { istio: 'ingressgateway', app: 'other' } };
  assert.ok(authorizeServerCertificate(res, GW_ID, [edge, replica], ['shop.example.test']).ok);
  assert.ok(!authorizeServerCertificate(res, GW_ID, [edge, replica], ['other.example.test']).ok);
});

// ------------------------------------------------------------------ real processes

const TTL = '12s';

/** The edge Gateway lists the names a certificate may carry; another Gateway selects other workloads. */
function config(): string {
  return baseConfig(
    `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: internal, namespace: shop}
spec:
  selector: {app: internal-edge}
  servers:
  - port: {number: 443, protocol: HTTPS, name: https}
    hosts: ["internal.example.test"]
`,
    { gatewayHosts: ['shop.example.test', 'istio-system/api.example.test', '*.cdn.example.test'], vsHosts: ['shop.example.test', 'api.example.test'] },
  );
}

interface Served {
  authorized: boolean;
  error: string | null;
  leafPem: string;
  intermediatePem: string | null;
  serial: string;
}

/** Connect with only the mesh roots trusted and `servername`; report whether the certificate verified. */
function connect(port: number, roots: string, servername: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca: roots, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const peer = s.getPeerCertificate(true);
      const leaf = new X509Certificate(peer.raw);
      const inter = peer.issuerCertificate && peer.issuerCertificate.raw && !peer.issuerCertificate.raw.equals(peer.raw) ? new X509Certificate(peer.issuerCertificate.raw).toString() : null;
      // Hostname check as https does, on top of the chain check.
      const hostErr = tls.checkServerIdentity(servername, peer);
      const error = s.authorizationError ? String(s.authorizationError) : hostErr ? (hostErr as NodeJS.ErrnoException).code ?? hostErr.message : null;
      resolve({ authorized: s.authorized && !hostErr, error, leafPem: leaf.toString(), intermediatePem: inter, serial: leaf.serialNumber.toLowerCase() });
      s.end();
    });
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error('TLS connect timed out')));
  });
}

/** One HTTPS request verified the standard way (rejectUnauthorized, SNI = Host = `name`). */
function verifiedGet(port: number, roots: string, name: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, servername: name, headers: { host: name }, ca: roots, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** POST /v1/sign-server on the control plane's mTLS API as `caller` (null: no client certificate). */
function signServer(mesh: LocalMesh, caller: { keyPem: string; chainPem: string } | null, dnsNames: string[]): Promise<{ status: number; body: Record<string, any> }> {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const data = JSON.stringify({ csr: toPem(buildCsr(key), 'CERTIFICATE REQUEST'), dnsNames });
  const roots = readFileSync(mesh.control!.info.bundlePath, 'utf8');
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: mesh.control!.info.port,
        method: 'POST',
        path: '/v1/sign-server',
        ca: roots,
        ...(caller ? { key: caller.keyPem, cert: caller.chainPem } : {}),
        checkServerIdentity: () => undefined,
        ALPNProtocols: ['http/1.1'],
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      } as https.RequestOptions,
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** The SVID a running process keeps in its data dir (chain + key, svid.pem). */
function svidOf(dataDir: string): { keyPem: string; chainPem: string } {
  const text = readFileSync(join(dataDir, 'svid.pem'), 'utf8');
  return { chainPem: pemCertificates(text).map((c) => toPem(c)).join(''), keyPem: /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(text)![0] };
}

describe('gateway --dns-names: the HTTPS certificate from the mesh CA', () => {
  let dir: string;
  let cfg: string;
  let mesh: LocalMesh;
  let app: App;
  let api: SidecarHandle;
  let g: GatewayHandle;
  let roots: string;

  before(async () => {
    dir = tempDir('gw-server-cert');
    cfg = configDir(dir, false);
    writeConfig(cfg, 'gateway.yaml', config());
    mesh = new LocalMesh(dir, [cfg], { accessLog: false, svidTtl: TTL });
    await mesh.startControl();
    roots = readFileSync(mesh.control!.info.bundlePath, 'utf8');
    app = await new App('api').start();
    api = await mesh.startSidecar({ service: 'api', namespace: 'shop', serviceAccount: 'api', labels: { app: 'api' }, appPort: app.port, servicePort: SERVICE_PORT });
    // Mixed case on purpose: names are lower-cased.
    g = await mesh.startGateway({ dnsNames: ['Shop.example.test', 'api.example.test'] });
    await mesh.waitInSync();
    await waitFor('the gateway routes to api over a verified connection', async () => {
      const r = await verifiedGet(g.ports.https, roots, 'shop.example.test', '/api/probe').catch(() => null);
      return r?.status === 200 ? r : null;
    }, 15_000, 100);
  });

  after(async () => {
    if (process.env.ZTMESH_TEST_LOGS) console.log(logsOf(dir));
    await app?.close();
    await teardown(mesh, dir, mesh?.gateways ?? []);
  });

  test('clients trusting only the mesh roots verify it for its names, and refuse it for any other name', async () => {
    for (const name of NAMES) {
      const c = await connect(g.ports.https, roots, name);
      assert.equal(c.error, null, name);
      assert.ok(c.authorized, name);
      const r = await verifiedGet(g.ports.https, roots, name, '/api/hello');
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body).app, 'api');
    }
    const other = await connect(g.ports.https, roots, 'nothere.example.test');
    assert.ok(!other.authorized);
    assert.equal(other.error, 'ERR_TLS_CERT_ALTNAME_INVALID');
    await assert.rejects(verifiedGet(g.ports.https, roots, 'nothere.example.test', '/api/hello'), (e: NodeJS.ErrnoException) => e.code === 'ERR_TLS_CERT_ALTNAME_INVALID');
    // A client trusting some other root refuses it.
    const foreign = await connect(g.ports.https, toPem(createRootCa({ trustDomain: 'elsewhere.test' }).der), 'shop.example.test');
    assert.ok(!foreign.authorized);
    assert.equal(foreign.error, 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
  });

  test('openssl: DNS SANs exactly the requested names, no URI SAN, serverAuth only, digitalSignature, chained to the mesh intermediate', async () => {
    const c = await connect(g.ports.https, roots, 'shop.example.test');
    const text = execFileSync('openssl', ['x509', '-text', '-noout'], { input: c.leafPem, encoding: 'utf8' });
    const san = /X509v3 Subject Alternative Name:.*\n\s*(.*)\n/.exec(text)?.[1].trim();
    assert.equal(san, 'DNS:shop.example.test, DNS:api.example.test');
    assert.doesNotMatch(text, /URI:/);
    assert.doesNotMatch(text, /spiffe:/);
    assert.equal(/X509v3 Extended Key Usage:.*\n\s*(.*)\n/.exec(text)?.[1].trim(), 'TLS Web Server Authentication');
    assert.equal(/X509v3 Key Usage:.*\n\s*(.*)\n/.exec(text)?.[1].trim(), 'Digital Signature');
    assert.match(text, /CA:FALSE/);
    assert.match(text, /Public Key Algorithm: id-ecPublicKey[\s\S]*?(prime256v1|P-256)/);
    // Chained to the mesh intermediate, verified by openssl for the sslserver purpose.
    assert.ok(c.intermediatePem, 'the gateway sends the intermediate');
    const ca = await loadCa(join(dir, 'control'), mesh.passphrase);
    assert.equal(new X509Certificate(c.intermediatePem!).fingerprint256, new X509Certificate(ca.chain[0]).fingerprint256);
    writeFileSync(join(dir, 'leaf.pem'), c.leafPem);
    writeFileSync(join(dir, 'inter.pem'), c.intermediatePem!);
    const v = execFileSync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', mesh.control!.info.bundlePath, '-untrusted', join(dir, 'inter.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' });
    assert.match(v, /leaf\.pem: OK/);
    // Lifetime: the control plane's SVID TTL.
    const x = new X509Certificate(c.leafPem);
    assert.equal(Date.parse(x.validTo) - Date.parse(x.validFrom), 12_000);
    // And it can never pass as a workload identity.
    const bundles = BundleSet.of('cluster.local', pemCertificates(roots));
    const asSvid = verifySvidChain([c.leafPem, c.intermediatePem!], bundles);
    assert.equal(asSvid.ok ? 'accepted' : asSvid.reason, 'missing_uri_san');
  });

  test('cert and key are kept in the data dir (0600), the key matching the served certificate', async () => {
    const file = join(g.dataDir, 'server-cert.pem');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const text = readFileSync(file, 'utf8');
    const key = createPrivateKey(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(text)![0]);
    const leaf = parseCertificate(pemCertificates(text)[0]);
    assert.ok(leaf.spki.equals(createPublicKey(key).export({ type: 'spki', format: 'der' })));
    assert.deepEqual(leaf.dnsNames, NAMES);
  });

  test('the control plane refuses (403, naming the name) what no Gateway selecting the caller grants', async () => {
    const gwSvid = svidOf(g.dataDir);
    // The gateway itself may have its names, one-label wildcard subdomains, and the wildcard entry as such.
    const ok = await signServer(mesh, gwSvid, ['api.example.test', 'x.cdn.example.test', '*.cdn.example.test']);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(parseCertificate(pemCertificates(ok.body.chainPem)[0]).dnsNames, ['api.example.test', 'x.cdn.example.test', '*.cdn.example.test']);
    for (const [names, name] of [
      [['shop.example.test', 'evil.example.test'], 'evil.example.test'],
      [['a.b.cdn.example.test'], 'a.b.cdn.example.test'],
      [['*.example.test'], '*.example.test'],
      [['internal.example.test'], 'internal.example.test'],
    ] as [string[], string][]) {
      const r = await signServer(mesh, gwSvid, names);
      assert.equal(r.status, 403, JSON.stringify(names));
      assert.equal(r.body.name, name);
      assert.equal(r.body.code, 'ZTM_CERT_DENIED');
      assert.match(r.body.error, new RegExp(`${name.replace(/[.*]/g, '\\$&')} is not covered by the hosts of any Gateway selecting workload istio-system/ingress-gateway@`));
    }
    // A registered workload that no Gateway selects (the api sidecar, app=api).
    const apiCaller = await signServer(mesh, svidOf(api.dataDir), ['shop.example.test']);
    assert.equal(apiCaller.status, 403);
    assert.match(apiCaller.body.error, /no Gateway in namespace shop selects workload shop\/api@/);
    // A valid SVID with no registration behind it.
    const nobody = await signServer(mesh, await meshSvid(mesh, id('istio-system', 'nobody')), ['shop.example.test']);
    assert.equal(nobody.status, 403);
    assert.match(nobody.body.error, /has no registered workload/);
    // No client certificate: 401. Malformed names: 400.
    assert.equal((await signServer(mesh, null, ['shop.example.test'])).status, 401);
    const bad = await signServer(mesh, gwSvid, ['127.0.0.1']);
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /IP addresses are not DNS names/);
  });

  test('a quarantined caller is refused', async () => {
    await mesh.admin('POST', '/v1/quarantine', { spiffeId: id('shop', 'api') });
    try {
      const r = await signServer(mesh, svidOf(api.dataDir), ['shop.example.test']);
      assert.equal(r.status, 403);
      assert.match(r.body.error, /quarantined/);
    } finally {
      await mesh.admin('POST', '/v1/quarantine', { spiffeId: id('shop', 'api'), lift: true });
    }
  });

  test('a Gateway with hosts: ["*"] selecting the gateway cannot be used to mint certificates', async () => {
    const before = (await mesh.admin<{ version: string }>('GET', '/v1/config')).version;
    writeConfig(cfg, 'everything.yaml', `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: everything, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, protocol: HTTPS, name: https}
    hosts: ["*"]
`);
    await waitFor('the control plane accepts the new configuration', async () => (await mesh.admin<{ version: string }>('GET', '/v1/config')).version !== before, 10_000, 50);
    const r = await signServer(mesh, svidOf(g.dataDir), ['evil.example.org']);
    assert.equal(r.status, 403);
    assert.equal(r.body.name, 'evil.example.org');
    assert.match(r.body.error, /covered only by the wildcard-everything host "\*" of Gateway istio-system\/everything: a "\*" Gateway host cannot be used to mint certificates/);
    // Names the specific Gateway lists are still fine.
    assert.equal((await signServer(mesh, svidOf(g.dataDir), ['shop.example.test'])).status, 200);
  });

  test('rotation: renewed at about half its lifetime and swapped into the live listener without dropping connections', async () => {
    const first = await connect(g.ports.https, roots, 'shop.example.test');
    // A keep-alive connection opened on the first certificate, used every second across the swap.
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const viaAgent = () =>
      new Promise<{ status: number; serial: string }>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port: g.ports.https, path: '/api/keepalive', servername: 'shop.example.test', headers: { host: 'shop.example.test' }, ca: roots, agent }, (res) => {
          sockets.add(res.socket);
          const serial = new X509Certificate((res.socket as tls.TLSSocket).getPeerCertificate().raw).serialNumber.toLowerCase();
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, serial }));
        });
        req.on('error', reject);
        req.end();
      });
    const opened = await viaAgent();
    assert.equal(opened.status, 200);
    let rotated: Served | null = null;
    const started = Date.now();
    while (!rotated && Date.now() - started < 20_000) {
      await sleep(1000);
      const kept = await viaAgent();
      assert.equal(kept.status, 200);
      const c = await connect(g.ports.https, roots, 'shop.example.test');
      assert.ok(c.authorized, `a new connection verifies (${c.error})`);
      if (c.serial !== first.serial && c.serial !== opened.serial) rotated = c;
    }
    assert.ok(rotated, 'a new certificate was served within 20 s');
    // The connection opened before the swap still works, on the certificate it negotiated.
    const after = await viaAgent();
    assert.equal(after.status, 200);
    assert.equal(after.serial, opened.serial);
    assert.equal(sockets.size, 1, 'one keep-alive connection served every request');
    agent.destroy();
    // The admin status and the data dir follow the swap.
    await waitFor('status and file show the served serial', async () => {
      const st = (await (await fetch(`http://127.0.0.1:${g.ports.admin}/status`)).json()) as { serverCertificate: { source: string; serial: string; dnsNames: string[] } };
      const onDisk = parseCertificate(pemCertificates(readFileSync(join(g.dataDir, 'server-cert.pem'), 'utf8'))[0]).serialHex;
      const served = (await connect(g.ports.https, roots, 'shop.example.test')).serial;
      return st.serverCertificate.source === 'mesh-ca' && st.serverCertificate.serial === served && onDisk === served;
    }, 10_000, 100);
  });

  test('fail-static: restarted while the control plane is down, the gateway serves its persisted certificate', async () => {
    const persisted = parseCertificate(pemCertificates(readFileSync(join(g.dataDir, 'server-cert.pem'), 'utf8'))[0]);
    await g.stop();
    await mesh.control!.stop();
    const again = await mesh.startGateway({ dnsNames: NAMES, dataDir: g.dataDir });
    const c = await connect(again.ports.https, roots, 'shop.example.test');
    assert.ok(c.authorized, String(c.error));
    assert.equal(c.serial.replace(/^0+/, ''), persisted.serialHex.replace(/^0+/, ''));
    assert.ok(Date.now() < persisted.notAfter.getTime());
  });
});

test('the CLI: no certificate source, both sources, or a bad DNS name is a usage error (exit 2)', async () => {
  const dir = tempDir('gw-cli-usage');
  const common = ['gateway', '--control-plane', '127.0.0.1:1', '--ca-file', join(dir, 'none.pem'), '--data-dir', join(dir, 'data')];
  try {
    const none = await runCliAsync(common);
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /ZTM_USAGE.*needs a certificate: --dns-names <name,...> \(issued by the mesh CA\) or --cert-file <pem> --key-file <pem>/);
    const both = await runCliAsync([...common, '--dns-names', 'shop.example.test', '--cert-file', 'c.pem', '--key-file', 'k.pem']);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /ZTM_USAGE.*either --dns-names or --cert-file\/--key-file/);
    const half = await runCliAsync([...common, '--cert-file', 'c.pem']);
    assert.equal(half.code, 2, half.stderr);
    assert.match(half.stderr, /--cert-file and --key-file go together/);
    for (const bad of ['10.0.0.1', 'shop_example.test', '*.test', 'a..b.test', '']) {
      const r = await runCliAsync([...common, '--dns-names', bad]);
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /ZTM_USAGE/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the CA refuses a server certificate request asking for a SPIFFE ID', async () => {
  const root = createRootCa({ trustDomain: 'cluster.local' });
  const inter = createIntermediateCa(root, { trustDomain: 'cluster.local' });
  const ca = new CertificateAuthority({ trustDomain: 'cluster.local', roots: [root.der], chain: [inter.der], signingKey: inter.key, defaultTtlMs: 48 * 3_600_000 });
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  assert.throws(() => ca.issueServerCertificate(checkCsr(buildCsr(key, [GW_ID])), { dnsNames: ['shop.example.test'] }), /must not ask for a URI SAN/);
  const c = ca.issueServerCertificate(checkCsr(buildCsr(key)), { dnsNames: ['shop.example.test'] });
  assert.equal(c.notAfter.getTime() - c.notBefore.getTime(), 24 * 3_600_000, 'capped at 24 h');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { peerIdentity, IntermediateCache, type SvidVerifyResult } from '../../src/identity/verify.js';
import { BundleSet } from '../../src/identity/bundle.js';
import { buildCsr, toPem } from '../../src/identity/x509.js';
import { makePki, p256, TD } from './helpers.js';

test('peerIdentity on real TLS sockets: full handshake, resumed session, no client certificate', async () => {
  const { root, ca } = makePki();
  const bundles = BundleSet.of(TD, [root.der]);
  const mk = (id: string) => {
    const k = p256();
    return { key: k.export({ type: 'pkcs8', format: 'pem' }) as string, cert: ca.issueFromCsr(buildCsr(k), { spiffeId: id }).chainPem };
  };
  const srv = mk('spiffe://cluster.local/ns/a/sa/server');
  const cli = mk('spiffe://cluster.local/ns/a/sa/client');
  const cache = new IntermediateCache();
  const serverSeen: { reused: boolean; r: SvidVerifyResult; rNoCache: SvidVerifyResult; authorized: boolean }[] = [];
  const server = tls.createServer({ ...srv, ca: toPem(root.der), requestCert: true, rejectUnauthorized: false }, (s) => {
    serverSeen.push({
      reused: s.isSessionReused(),
      rNoCache: peerIdentity(s, bundles),
      r: peerIdentity(s, bundles, Date.now(), { intermediateCache: cache }),
      authorized: s.authorized,
    });
    s.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const connect = (opts: tls.ConnectionOptions) =>
    new Promise<{ reused: boolean; r: SvidVerifyResult; session?: Buffer }>((resolve, reject) => {
      let session: Buffer | undefined;
      let result: { reused: boolean; r: SvidVerifyResult } | undefined;
      const c = tls.connect({ host: '127.0.0.1', port, ca: toPem(root.der), checkServerIdentity: () => undefined, ...opts });
      c.on('session', (s) => (session = s));
      c.on('secureConnect', () => (result = { reused: c.isSessionReused(), r: peerIdentity(c, bundles) }));
      c.on('error', reject);
      c.on('data', () => undefined);
      c.on('end', () => c.end());
      c.on('close', () => setTimeout(() => resolve({ ...result!, session }), 10));
    });

  const first = await connect({ ...cli });
  assert.equal(first.reused, false);
  assert.ok(first.r.ok && first.r.spiffeId === 'spiffe://cluster.local/ns/a/sa/server');
  assert.ok(serverSeen[0].r.ok && serverSeen[0].r.spiffeId === 'spiffe://cluster.local/ns/a/sa/client');
  assert.ok(first.session, 'got a session ticket');

  const resumed = await connect({ ...cli, session: first.session });
  assert.equal(resumed.reused, true);
  // Client side: Node reports an empty peer certificate on a resumed TLS 1.3 session.
  assert.equal(resumed.r.ok, false);
  if (!resumed.r.ok) assert.equal(resumed.r.reason, 'empty_certificate');
  // Server side: only the leaf is available; without the cache it cannot be chained,
  // with the intermediates cache from earlier verified handshakes it can.
  const s2 = serverSeen[1];
  assert.equal(s2.reused, true);
  assert.equal(s2.authorized, true);
  assert.equal(s2.rNoCache.ok, false);
  assert.ok(s2.r.ok, JSON.stringify(s2.r.ok ? '' : s2.r.reason));

  // No client certificate at all (rejectUnauthorized is off on this server so we see it).
  await connect({});
  const s3 = serverSeen[2];
  assert.equal(s3.r.ok, false);
  if (!s3.r.ok) assert.equal(s3.r.reason, 'empty_certificate');
  await new Promise<void>((r) => server.close(() => r()));
});

test('TlsSessionIdentities: resumed client sessions keep the identity, re-verified against the current bundle', async () => {
  const { TlsSessionIdentities } = await import('../../src/identity/tls-session.js');
  const { root, ca } = makePki();
  const bundles = BundleSet.of(TD, [root.der]);
  const k = p256();
  const srv = { key: k.export({ type: 'pkcs8', format: 'pem' }) as string, cert: ca.issueFromCsr(buildCsr(k), { spiffeId: 'spiffe://cluster.local/ns/a/sa/server' }).chainPem };
  const ck = p256();
  const cli = { key: ck.export({ type: 'pkcs8', format: 'pem' }) as string, cert: ca.issueFromCsr(buildCsr(ck), { spiffeId: 'spiffe://cluster.local/ns/a/sa/client' }).chainPem };
  const server = tls.createServer({ ...srv, ca: toPem(root.der), requestCert: true, rejectUnauthorized: true }, (s) => s.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const sessions = new TlsSessionIdentities();
  const peerKey = `127.0.0.1:${port}`;
  const connect = () =>
    new Promise<{ reused: boolean; r: SvidVerifyResult }>((resolve, reject) => {
      const offer = sessions.offer(peerKey);
      const c = tls.connect({ host: '127.0.0.1', port, ...cli, ca: toPem(root.der), checkServerIdentity: () => undefined, session: offer?.session });
      sessions.watch(c, peerKey);
      let out: { reused: boolean; r: SvidVerifyResult } | undefined;
      c.on('secureConnect', () => (out = { reused: c.isSessionReused(), r: sessions.identify(c, offer, bundles) }));
      c.on('error', reject);
      c.on('data', () => undefined);
      c.on('end', () => c.end());
      c.on('close', () => setTimeout(() => resolve(out!), 10));
    });
  const a = await connect();
  assert.equal(a.reused, false);
  assert.ok(a.r.ok);
  const b = await connect();
  assert.equal(b.reused, true);
  assert.ok(b.r.ok && b.r.spiffeId === 'spiffe://cluster.local/ns/a/sa/server', 'identity survives resumption');
  const c2 = await connect();
  assert.equal(c2.reused, true, 'tickets from resumed sessions are kept too');
  assert.ok(c2.r.ok);
  // Retire the root: a resumed session no longer yields an identity.
  const other = makePki();
  bundles.addRoot(TD, other.root.der);
  bundles.removeRoot(TD, root.der);
  const d = await connect();
  assert.equal(d.reused, true);
  assert.equal(d.r.ok ? 'ok' : d.r.reason, 'untrusted');
  await new Promise<void>((r) => server.close(() => r()));
});

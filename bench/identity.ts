/**
 * Identity benchmarks (one process, one core):
 *   npx tsc -p . && node dist/bench/identity.js
 * - CSR→certificate issuance per second (parse + proof-of-possession check + build + sign),
 *   and its two halves separately; X.509-SVID chain verification per second.
 * - mTLS handshakes per second on loopback (client and server in this process, so each
 *   handshake pays for both ends): full handshakes, and TLS 1.3 resumed sessions. Both
 *   sides establish the peer's SPIFFE ID on every connection (server: peerIdentity with
 *   an intermediate cache; client: TlsSessionIdentities).
 */
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { generateKeyPairSync } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { CertificateAuthority, createIntermediateCa, createRootCa, checkCsr } from '../src/identity/ca.js';
import { buildCsr, toPem } from '../src/identity/x509.js';
import { BundleSet } from '../src/identity/bundle.js';
import { verifySvidChain, peerIdentity, IntermediateCache } from '../src/identity/verify.js';
import { TlsSessionIdentities } from '../src/identity/tls-session.js';
import { median, printTable } from './util.js';

const TD = 'cluster.local';
const ID = 'spiffe://cluster.local/ns/production/sa/order-service';

function perSecond(fn: () => unknown, seconds = 1, rounds = 5): number {
  const t0 = performance.now();
  while (performance.now() - t0 < 300) fn(); // warm-up
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < seconds * 1000) {
      fn();
      n++;
    }
    rates.push(n / ((performance.now() - start) / 1000));
  }
  return median(rates);
}

const root = createRootCa({ trustDomain: TD });
const inter = createIntermediateCa(root, { trustDomain: TD });
const ca = new CertificateAuthority({ trustDomain: TD, roots: [root.der], chain: [inter.der], signingKey: inter.key });
const bundles = BundleSet.of(TD, [root.der]);
const csrs = Array.from({ length: 64 }, () => buildCsr(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, [ID]));
let i = 0;
const issueRate = perSecond(() => ca.issueFromCsr(csrs[i++ % csrs.length], { spiffeId: ID }));
const csrRate = perSecond(() => checkCsr(csrs[i++ % csrs.length]));
const parsed = csrs.map((c) => checkCsr(c));
const signRate = perSecond(() => ca.issue(parsed[i++ % parsed.length], { spiffeId: ID }));
const sample = ca.issueFromCsr(csrs[0], { spiffeId: ID });
const verifyRate = perSecond(() => verifySvidChain(sample.chain, bundles));
// First sight: every leaf is new, so its signature is really checked.
const fresh = Array.from({ length: 3000 }, (_, k) => ca.issue(parsed[k % parsed.length], { spiffeId: ID }).chain);
const t0 = performance.now();
for (const ch of fresh) if (!verifySvidChain(ch, bundles).ok) throw new Error('bench: verification failed');
const coldRate = fresh.length / ((performance.now() - t0) / 1000);

printTable('X.509-SVID issuance and verification (one core)', ['operation', 'per second', 'µs each'], [
  ['CSR → certificate (parse, PoP check, build, sign)', Math.round(issueRate), (1e6 / issueRate).toFixed(1)],
  ['  of which: CSR parse + signature check', Math.round(csrRate), (1e6 / csrRate).toFixed(1)],
  ['  of which: build TBS + ECDSA P-256 sign', Math.round(signRate), (1e6 / signRate).toFixed(1)],
  ['verifySvidChain, first sight of a leaf', Math.round(coldRate), (1e6 / coldRate).toFixed(1)],
  ['verifySvidChain, repeat peer (memoized signatures)', Math.round(verifyRate), (1e6 / verifyRate).toFixed(1)],
]);

// ---------------------------------------------------------------- handshakes
function creds(id: string) {
  const k = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return { key: k.export({ type: 'pkcs8', format: 'pem' }) as string, cert: ca.issueFromCsr(buildCsr(k), { spiffeId: id }).chainPem };
}

async function handshakes(resume: boolean, concurrency: number, seconds = 3): Promise<{ rate: number; failures: number; reused: number }> {
  const cache = new IntermediateCache();
  let failures = 0;
  const server = tls.createServer({ ...creds('spiffe://cluster.local/ns/a/sa/server'), ca: toPem(root.der), requestCert: true, rejectUnauthorized: true }, (s) => {
    const id = peerIdentity(s, bundles, Date.now(), { intermediateCache: cache });
    if (!id.ok) failures++;
    // Send a byte before closing: the client only keeps a TLS 1.3 ticket it has read.
    s.end('ok');
  });
  server.on('tlsClientError', () => failures++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const ctx = tls.createSecureContext({ ...creds('spiffe://cluster.local/ns/a/sa/client'), ca: toPem(root.der) });
  const sessions = new TlsSessionIdentities();
  const peerKey = `127.0.0.1:${port}`;
  let n = 0;
  let reused = 0;
  let running = true;
  const one = () =>
    new Promise<void>((resolve) => {
      const offer = resume ? sessions.offer(peerKey) : undefined;
      const c = tls.connect({ host: '127.0.0.1', port, secureContext: ctx, checkServerIdentity: () => undefined, session: offer?.session });
      if (resume) sessions.watch(c, peerKey);
      c.on('secureConnect', () => {
        if (c.isSessionReused()) reused++;
        // Full handshake: identity from the peer certificate; resumed: from the session's verified chain.
        const id = sessions.identify(c, offer, bundles);
        if (!id.ok) failures++;
        n++;
      });
      c.on('error', () => {
        failures++;
        resolve();
      });
      c.on('data', () => undefined);
      c.on('close', () => resolve());
    });
  // Prime a session for the resumed run.
  await one();
  n = 0;
  reused = 0;
  const start = performance.now();
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) await one();
  });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  running = false;
  await Promise.all(loops);
  const rate = n / ((performance.now() - start) / 1000);
  await new Promise<void>((r) => server.close(() => r()));
  return { rate, failures, reused: n ? reused / n : 0 };
}

const rows: (string | number)[][] = [];
for (const [resume, conc] of [
  [false, 1],
  [false, 4],
  [true, 1],
  [true, 4],
] as const) {
  const r = await handshakes(resume, conc);
  rows.push([resume ? 'resumed (TLS 1.3 ticket)' : 'full (ECDSA P-256 mTLS)', conc, Math.round(r.rate), `${Math.round(r.reused * 100)}%`, r.failures]);
}
printTable('mTLS handshakes on loopback (client + server in one process, one core)', ['handshake', 'concurrency', 'per second', 'resumed', 'failures'], rows);

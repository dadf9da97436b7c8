/** Loopback mTLS traffic for rotation tests: fresh handshakes in a loop plus one long-lived connection. */
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { SvidRotator } from '../../src/identity/rotation.js';
import type { BundleSet } from '../../src/identity/bundle.js';
import { peerIdentity, IntermediateCache } from '../../src/identity/verify.js';

export interface TrafficStats {
  handshakes: number;
  failures: string[];
  longLivedRoundTrips: number;
  serverIds: Set<string>;
  clientIds: Set<string>;
  /** Distinct leaf serials seen by each side (proves rotation happened under traffic). */
  serverCertSerials: Set<string>;
  clientCertSerials: Set<string>;
}

export interface Harness {
  port: number;
  stats: TrafficStats;
  stop(): Promise<TrafficStats>;
}

export async function startTraffic(serverRot: SvidRotator, clientRot: SvidRotator, serverBundles: BundleSet, clientBundles: BundleSet, concurrency = 2): Promise<Harness> {
  const stats: TrafficStats = {
    handshakes: 0,
    failures: [],
    longLivedRoundTrips: 0,
    serverIds: new Set(),
    clientIds: new Set(),
    serverCertSerials: new Set(),
    clientCertSerials: new Set(),
  };
  const cache = new IntermediateCache();
  const server = tls.createServer(serverRot.serverOptions(), (sock) => {
    const id = peerIdentity(sock, serverBundles, Date.now(), { intermediateCache: cache });
    if (!id.ok) {
      stats.failures.push(`server rejected client: ${id.reason} ${id.detail}`);
      sock.destroy();
      return;
    }
    stats.clientIds.add(id.spiffeId);
    stats.clientCertSerials.add(id.chain[0].serialHex);
    sock.on('data', (d) => sock.write(`pong:${id.spiffeId}:${d.toString()}`));
    sock.on('error', (e) => stats.failures.push(`server socket: ${e.message}`));
  });
  server.on('tlsClientError', (e) => stats.failures.push(`server handshake: ${e.message}`));
  serverRot.attachServer(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  let running = true;

  const oneRequest = () =>
    new Promise<void>((resolve) => {
      const c = tls.connect({ host: '127.0.0.1', port, ...clientRot.clientOptions() });
      let done = false;
      const finish = (err?: string) => {
        if (done) return;
        done = true;
        if (err) stats.failures.push(err);
        c.destroy();
        resolve();
      };
      c.setTimeout(5000, () => finish('client timeout'));
      c.on('error', (e) => finish(`client: ${e.message}`));
      c.on('secureConnect', () => {
        const id = peerIdentity(c, clientBundles);
        if (!id.ok) return finish(`client rejected server: ${id.reason} ${id.detail}`);
        stats.serverIds.add(id.spiffeId);
        stats.serverCertSerials.add(id.chain[0].serialHex);
        stats.handshakes++;
        c.write('ping');
      });
      c.on('data', (d) => {
        if (!d.toString().startsWith('pong:')) return finish(`bad reply ${d.toString()}`);
        finish();
      });
      c.on('close', () => finish(done ? undefined : 'closed before reply'));
    });

  const loops = Array.from({ length: concurrency }, async () => {
    while (running) await oneRequest();
  });

  // One connection opened before any rotation and used throughout.
  const long = tls.connect({ host: '127.0.0.1', port, ...clientRot.clientOptions() });
  await new Promise<void>((r, j) => {
    long.once('secureConnect', () => r());
    long.once('error', j);
  });
  long.on('error', (e) => stats.failures.push(`long-lived: ${e.message}`));
  long.on('close', () => {
    if (running) stats.failures.push('long-lived connection closed during rotation');
  });
  const longLoop = (async () => {
    while (running) {
      await new Promise<void>((resolve) => {
        long.once('data', () => {
          stats.longLivedRoundTrips++;
          resolve();
        });
        long.write('x');
      });
      await new Promise((r) => setTimeout(r, 20));
    }
  })();

  return {
    port,
    stats,
    async stop() {
      running = false;
      await Promise.all([...loops, longLoop]);
      long.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      return stats;
    },
  };
}

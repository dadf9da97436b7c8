/**
 * Paired before/after of the sidecar data path: the sidecars of two built checkouts and the
 * bare Node floor pair (bench/mesh.ts's "floor") behind one app and one load generator,
 * measured in turn within each run (the order of the two checkouts alternates), so a
 * comparison is not at the mercy of a shared machine getting busier between two bench runs.
 *
 *   npx tsc -p . && node dist/bench/mesh-ab.js <before-checkout> <after-checkout> [--runs 4]
 *
 * Each checkout is a directory with the repository built in it (bin/ and dist/), e.g.
 * `git worktree add /tmp/before <commit> && (cd /tmp/before && npm ci && npx tsc -p .)`.
 * 1,000 req/s × 10 s of 1 KB POSTs per path, as bench/mesh.ts --only latency,floor.
 * Reported per run and path: CPU seconds per 1,000 requests of the client and server
 * proxies, p50/p90 from the scheduled send time, and peak RSS (VmHWM) so far.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort } from '../src/util/net.js';
import { cpuSeconds, machineBusyCores, memoryMb } from './proc-stats.js';
import { policyDocs, printTable, SERVER_ALLOW_CLIENT } from './util.js';
import type { LoadMsg, LoadResult, LoadSpec } from './mesh-worker.js';

const WORKER = fileURLToPath(new URL('./mesh-worker.js', import.meta.url));
const args = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !all[i - 1]?.startsWith('--'));
const runsAt = process.argv.indexOf('--runs');
const RUNS = runsAt > 0 ? Number(process.argv[runsAt + 1]) : 4;
if (args.length !== 2) {
  console.error('usage: node dist/bench/mesh-ab.js <before-checkout> <after-checkout> [--runs 4]');
  process.exit(2);
}
const checkouts = args.map((a) => resolve(a));
const POLICY = `${policyDocs('bench')}---\n${SERVER_ALLOW_CLIENT}`;

interface Meshlike {
  stopAll(): Promise<void>;
  startControl(): Promise<unknown>;
  startSidecar(spec: Record<string, unknown>): Promise<{ proc: ChildProcess; ports: { upstreams: Record<string, number> } }>;
  waitInSync(): Promise<void>;
}
interface Path {
  name: string;
  port: number;
  client: number;
  server: number;
}

const root = mkdtempSync(join(tmpdir(), 'ztmesh-bench-ab-'));
const children: ChildProcess[] = [];
const meshes: Meshlike[] = [];

function worker(argv: string[]): ChildProcess {
  const p = fork(WORKER, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(p);
  return p;
}
const listening = (p: ChildProcess) => new Promise<number>((r) => p.once('message', (m: { port: number }) => r(m.port)));

async function meshOf(checkout: string, name: string, appPort: number): Promise<Path> {
  const { LocalMesh } = (await import(pathToFileURL(join(checkout, 'dist/src/control/launcher.js')).href)) as { LocalMesh: new (dir: string, cfg: string[], o: { accessLog: boolean }) => Meshlike };
  const dir = join(root, name);
  mkdirSync(join(dir, 'config'), { recursive: true });
  writeFileSync(join(dir, 'config', '00-bench.yaml'), POLICY);
  const m = new LocalMesh(join(dir, 'run'), [join(dir, 'config')], { accessLog: false });
  meshes.push(m);
  await m.startControl();
  const server = await m.startSidecar({ service: 'server', namespace: 'bench', serviceAccount: 'server', labels: { app: 'server' }, appPort, servicePort: 8080 });
  const up = await freePort();
  const client = await m.startSidecar({ service: 'client', namespace: 'bench', serviceAccount: 'client', labels: { app: 'client' }, appPort, servicePort: 8080, upstreams: { [up]: 'server.bench:8080' } });
  await m.waitInSync();
  return { name, port: client.ports.upstreams['server.bench:8080'], client: client.proc.pid!, server: server.proc.pid! };
}

function measure(gen: ChildProcess, p: Path): Promise<{ result: LoadResult; cpu: [number, number] }> {
  const spec: LoadSpec = { port: p.port, target: '/echo', hostHeader: 'server.bench:8080', rate: 1000, warmupMs: 2000, durationMs: 10_000, bodyBytes: 1024, maxConns: 64, drainMs: 3000 };
  return new Promise((resolveRun, reject) => {
    let c0 = 0;
    let s0 = 0;
    const on = (m: LoadMsg) => {
      if (m.type === 'measuring') {
        c0 = cpuSeconds(p.client);
        s0 = cpuSeconds(p.server);
        return;
      }
      gen.off('message', on);
      if (m.type === 'error') return reject(new Error(m.message));
      resolveRun({ result: m.result, cpu: [cpuSeconds(p.client) - c0, cpuSeconds(p.server) - s0] });
    };
    gen.on('message', on);
    gen.send({ type: 'run', spec });
  });
}

async function main(): Promise<void> {
  const app = worker(['app']);
  const appPort = await listening(app);
  const [before, after] = [await meshOf(checkouts[0], 'before', appPort), await meshOf(checkouts[1], 'after', appPort)];
  const key = join(root, 'floor-key.pem');
  const cert = join(root, 'floor-cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=floor', '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const pem = { keyPem: readFileSync(key, 'utf8'), certPem: readFileSync(cert, 'utf8') };
  const fs = worker(['floor-server', JSON.stringify({ ...pem, port: appPort })]);
  const fc = worker(['floor-client', JSON.stringify({ ...pem, port: await listening(fs) })]);
  const floor: Path = { name: 'floor', port: await listening(fc), client: fc.pid!, server: fs.pid! };
  const gen = worker(['load']);
  const rows: string[][] = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const p of run % 2 ? [before, after, floor] : [after, before, floor]) {
      const until = Date.now() + 30_000;
      while ((await machineBusyCores(1000)) > 0.3 && Date.now() < until);
      const { result: r, cpu } = await measure(gen, p);
      const [c, s] = [memoryMb(p.client), memoryMb(p.server)];
      rows.push([String(run), p.name, String(r.ok), ((cpu[0] / r.ok) * 1000).toFixed(3), ((cpu[1] / r.ok) * 1000).toFixed(3), r.sched.p50.toFixed(2), r.sched.p90.toFixed(2), `${c.hwm.toFixed(1)} / ${s.hwm.toFixed(1)}`]);
    }
  }
  printTable(`Paired runs, 1,000 req/s × 10 s each (before: ${checkouts[0]}, after: ${checkouts[1]})`, ['run', 'path', 'ok', 'client CPU s / 1,000 req', 'server CPU s / 1,000 req', 'p50 ms', 'p90 ms', 'peak RSS client / server MB'], rows);
  gen.send({ type: 'exit' });
  for (const w of [fc, fs, app]) w.send({ type: 'exit' });
}

main()
  .catch((e: Error) => {
    console.error(e.stack ?? e.message);
    process.exitCode = 1;
  })
  .finally(async () => {
    await Promise.all(meshes.map((m) => m.stopAll().catch(() => undefined)));
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    rmSync(root, { recursive: true, force: true });
  });

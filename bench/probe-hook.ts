/**
 * Preload for the mesh's child processes in bench/mesh.ts --probe (Node 20 refuses
 * --cpu-prof in NODE_OPTIONS, but allows --import):
 *   NODE_OPTIONS=--import=<abs path>/dist/bench/probe-hook.js ZTMESH_BENCH_PROBE_DIR=<dir>
 * - Event-loop delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution): SIGUSR2 writes
 *   <dir>/<pid>.eld.json (ms percentiles since the previous SIGUSR2) and resets.
 * - With ZTMESH_BENCH_CPU_PROF=1 also the V8 sampling profiler, written to
 *   <dir>/<command>-<pid>.cpuprofile when the process exits.
 */
import { Session } from 'node:inspector';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.ZTMESH_BENCH_PROBE_DIR;
if (dir) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  process.on('SIGUSR2', () => {
    const ms = (ns: number) => ns / 1e6;
    const out = { pid: process.pid, count: h.count, p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), p999: ms(h.percentile(99.9)), max: ms(h.max), mean: ms(h.mean) };
    writeFileSync(join(dir, `${process.pid}.eld.json`), JSON.stringify(out));
    h.reset();
  });
  if (process.env.ZTMESH_BENCH_CPU_PROF) {
    const session = new Session();
    session.connect();
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: 500 });
    session.post('Profiler.start');
    process.once('exit', () => {
      // Same-thread inspector sessions answer synchronously, so this works inside 'exit'.
      session.post('Profiler.stop', (err, res) => {
        if (!err) writeFileSync(join(dir, `${process.argv.slice(2, 3).join('')}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
      });
    });
  }
}

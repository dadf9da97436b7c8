/**
 * Preload for profiling the mesh's child processes from bench/mesh.ts (Node 20 refuses
 * --cpu-prof in NODE_OPTIONS, but allows --import): starts the V8 sampling profiler
 * and writes <ZTMESH_BENCH_CPU_PROF>/<pid>.cpuprofile when the process exits.
 *   NODE_OPTIONS=--import=<abs path>/dist/bench/cpu-prof-hook.js ZTMESH_BENCH_CPU_PROF=<dir>
 */
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.ZTMESH_BENCH_CPU_PROF;
if (dir) {
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

/** A real redis-server on a free loopback port, for the rate-limit tests and the gateway bench. */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { freePort } from '../src/util/net.js';

export interface RedisServer {
  port: number;
  stop(): void;
}

/** Start redis-server (no persistence) and wait until it accepts connections. */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const failed = new Promise<never>((_, reject) =>
    proc.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === 'ENOENT' ? 'redis-server is not installed: run `bash scripts/test-deps.sh` (npm test does it for you)' : `redis-server: ${e.message}`)),
    ),
  );
  const up = async (): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      const ok = await new Promise<boolean>((r) => {
        const s = net.connect(port, '127.0.0.1', () => (s.end(), r(true)));
        s.on('error', () => r(false));
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server did not accept connections on 127.0.0.1:${port}`);
  };
  await Promise.race([up(), failed]);
  return { port, stop: () => void proc.kill('SIGKILL') };
}

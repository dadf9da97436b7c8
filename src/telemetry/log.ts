/** Structured logs (JSON lines via pino) for the long-running processes. */
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, opts: { level?: string; destination?: number } = {}): Logger {
  return pino({ name, level: opts.level ?? process.env.ZTMESH_LOG_LEVEL ?? 'info', base: { component: name } }, pino.destination({ fd: opts.destination ?? 2, sync: false }));
}

/** A logger that drops everything (tests, libraries used without one). */
export const silentLogger: Logger = pino({ level: 'silent' });

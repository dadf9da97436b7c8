/** The loopback admin endpoints every workload process serves (sidecar and gateway alike). */
import type http from 'node:http';
import type { Registry } from 'prom-client';
import { handleJson, HttpError, sendText } from '../util/http.js';

export interface AdminSource {
  registry: Registry;
  /** The applied configuration, if any. */
  state(): { version: string; slice: unknown } | null;
  hasCertificate(): boolean;
  status(): unknown;
}

/** `/metrics`, `/ready`, `/status` (and `/`), `/config_dump`. */
export async function serveAdmin(src: AdminSource, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://admin').pathname;
  if (req.method === 'GET' && path === '/metrics') {
    sendText(res, 200, await src.registry.metrics(), src.registry.contentType);
    return;
  }
  await handleJson(res, () => {
    if (req.method !== 'GET') throw new HttpError(405, 'GET only');
    const state = src.state();
    if (path === '/ready') {
      if (!state || !src.hasCertificate()) throw new HttpError(503, 'not ready: waiting for configuration or certificate');
      return { ready: true, version: state.version };
    }
    if (path === '/status' || path === '/') return src.status();
    if (path === '/config_dump') return state?.slice ?? null;
    throw new HttpError(404, `no route for ${path}`);
  });
}

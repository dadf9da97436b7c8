/** Small HTTP helpers shared by the control plane's and the sidecar's JSON APIs. */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Read a JSON body of at most `limit` bytes (413 beyond it, 400 when malformed, 415 when not JSON). */
export async function readJson(req: IncomingMessage, limit = 1 << 20): Promise<unknown> {
  const ct = String(req.headers['content-type'] ?? '');
  if (ct && !/^application\/json\b/i.test(ct)) throw new HttpError(415, 'expected Content-Type: application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new HttpError(413, `body larger than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `malformed JSON: ${(e as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Route a request to a handler; errors become JSON `{error}` with their status. */
export async function handleJson(res: ServerResponse, fn: () => Promise<unknown> | unknown): Promise<void> {
  try {
    const out = await fn();
    if (!res.headersSent) sendJson(res, 200, out);
  } catch (e) {
    const status = e instanceof HttpError ? e.status : (e as { code?: string }).code?.startsWith?.('ZTM_') ? 400 : 500;
    if (!res.headersSent) sendJson(res, status, { error: (e as Error).message, code: (e as { code?: string }).code });
    else res.destroy();
  }
}

/** Forwarding between hops: header hygiene (forwardHeaders) and body streaming (forwardBody). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { forwardHeaders, forwardRawHeaders, keepAliveFromRawHeaders, rawHeader, serverNameOf } from '../../src/proxy/hop.js';
import { forwardBody } from '../../src/proxy/forward-body.js';

test('forwardHeaders drops hop-by-hop headers, those named in Connection, and the drop set', () => {
  const h = { host: 'a', connection: 'keep-alive', 'keep-alive': 'timeout=5', te: 'trailers', 'x-a': '1', 'set-cookie': ['a=1', 'b=2'], 'x-forwarded-client-cert': 'forged' };
  assert.deepEqual(forwardHeaders(h, new Set(['x-forwarded-client-cert'])), { host: 'a', 'x-a': '1', 'set-cookie': ['a=1', 'b=2'] });
  assert.deepEqual(forwardHeaders({ connection: 'close', 'x-a': '1' }), { 'x-a': '1' });
  assert.deepEqual(forwardHeaders({ connection: 'Keep-Alive, X-Secret ,x-other', 'x-secret': 's', 'x-other': 'o', 'x-a': '1' }), { 'x-a': '1' });
  assert.deepEqual(forwardHeaders({ connection: 'x-secret', 'x-secret': 's', 'x-a': '1' }), { 'x-a': '1' });
  assert.deepEqual(forwardHeaders({ 'x-a': '1', 'proxy-authorization': 'p', upgrade: 'websocket', trailer: 'x' }), { 'x-a': '1' });
});

/** A proxy hop using forwardBody in front of an echo server; returns what the echo server received. */
async function viaHop<T>(run: (port: number) => Promise<T>): Promise<{ result: T; received: { method: string; body: string; length?: string; te?: string }[] }> {
  const received: { method: string; body: string; length?: string; te?: string }[] = [];
  const echo = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      received.push({ method: req.method ?? '', body, length: req.headers['content-length'], te: req.headers['transfer-encoding'] });
      res.end(`got ${body.length}`);
    });
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  const hop = http.createServer((req, res) => {
    const up = http.request({ host: '127.0.0.1', port: (echo.address() as AddressInfo).port, method: req.method, path: req.url, headers: forwardHeaders(req.headers) }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, forwardHeaders(ur.headers));
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    forwardBody(req, up);
  });
  await new Promise<void>((r) => hop.listen(0, '127.0.0.1', () => r()));
  try {
    return { result: await run((hop.address() as AddressInfo).port), received };
  } finally {
    hop.closeAllConnections();
    echo.closeAllConnections();
    await Promise.all([new Promise((r) => hop.close(r)), new Promise((r) => echo.close(r))]);
  }
}

function send(port: number, method: string, headers: http.OutgoingHttpHeaders, chunks: (string | Buffer)[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: '/x', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    // Chunks written on separate turns so the hop sees them as separate reads.
    let i = 0;
    const next = () => {
      if (i === chunks.length) return req.end();
      req.write(chunks[i++]);
      setImmediate(next);
    };
    next();
  });
}

test('forwardBody forwards Content-Length bodies (one chunk or many), chunked bodies, large bodies and no body', async () => {
  const big = Buffer.alloc(3 * 1024 * 1024, 0x61); // more than the sockets buffer: backpressure
  const { result, received } = await viaHop(async (port) => [
    await send(port, 'POST', { 'content-length': 5 }, ['hello']),
    await send(port, 'POST', { 'content-length': 11 }, ['hello', ' ', 'world']),
    await send(port, 'POST', {}, ['chunked', ' body']),
    await send(port, 'PUT', { 'content-length': big.length }, [big]),
    await send(port, 'GET', {}, []),
    await send(port, 'POST', { 'content-length': 0 }, []),
  ]);
  assert.deepEqual(result.map((r) => r.body), ['got 5', 'got 11', 'got 12', `got ${big.length}`, 'got 0', 'got 0']);
  assert.deepEqual(received.map((r) => [r.method, r.body.length, r.length, r.te]), [
    ['POST', 5, '5', undefined],
    ['POST', 11, '11', undefined],
    ['POST', 12, undefined, 'chunked'],
    ['PUT', big.length, String(big.length), undefined],
    ['GET', 0, undefined, undefined],
    ['POST', 0, '0', undefined],
  ]);
  assert.equal(received[1].body, 'hello world');
  assert.equal(received[3].body, big.toString());
});

test('forwardRawHeaders keeps what forwardHeaders keeps, from rawHeaders, as a writeHead list', () => {
  const raw = ['Content-Type', 'text/plain', 'Connection', 'keep-alive, X-Hop', 'X-Hop', 'h', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'Content-Type', 'text/html', 'Keep-Alive', 'timeout=5', 'X-Multi', '1', 'x-multi', '2', 'Transfer-Encoding', 'chunked', 'X-Forwarded-Client-Cert', 'f'];
  assert.deepEqual(forwardRawHeaders(raw, new Set(['x-forwarded-client-cert'])), ['content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2', 'x-multi', '1', 'x-multi', '2']);
  assert.deepEqual(forwardRawHeaders(['Connection', 'close', 'X-A', '1', 'Content-Length', '5', 'content-length', '5']), ['x-a', '1', 'content-length', '5']);
  assert.deepEqual(forwardRawHeaders([]), []);
});

test('a response forwarded with forwardRawHeaders reads as one forwarded with forwardHeaders', async () => {
  const app = http.createServer((_req, res) => {
    res.writeHead(201, 'Made', [['Content-Type', 'text/plain'], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2'], ['X-Multi', '1'], ['X-Multi', '2'], ['Connection', 'X-Hop'], ['X-Hop', 'secret'], ['Content-Length', '2']]);
    res.end('ok');
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  const front = (raw: boolean) =>
    http.createServer((req, res) => {
      http.get({ host: '127.0.0.1', port: (app.address() as AddressInfo).port, path: '/', agent: false }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.statusMessage, raw ? forwardRawHeaders(ur.rawHeaders) : forwardHeaders(ur.headers));
        ur.pipe(res);
      });
      req.resume();
    });
  const servers = [front(true), front(false)];
  try {
    const seen = [];
    for (const s of servers) {
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
      const r = await new Promise<http.IncomingMessage>((resolve) => http.get({ host: '127.0.0.1', port: (s.address() as AddressInfo).port, path: '/', agent: false }, resolve));
      r.resume();
      const { date: _d, connection: _c, 'keep-alive': _k, ...h } = r.headers;
      seen.push({ status: r.statusCode, message: r.statusMessage, headers: h });
    }
    assert.deepEqual(seen[0], seen[1]);
    assert.deepEqual(seen[0].headers, { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'], 'x-multi': '1, 2', 'content-length': '2' });
  } finally {
    for (const s of [...servers, app]) {
      s.closeAllConnections();
      s.close();
    }
  }
});

test('rawHeader finds the first value case-insensitively; serverNameOf derives the TLS server name as node:http does', () => {
  const raw = ['Host', 'a.example:8080', 'Content-Length', '5', 'content-length', '5', 'X-A', '1'];
  assert.equal(rawHeader(raw, 'content-length'), '5');
  assert.equal(rawHeader(raw, 'host'), 'a.example:8080');
  assert.equal(rawHeader(raw, 'x-b'), undefined);
  assert.equal(serverNameOf('server.bench:8080'), 'server.bench');
  assert.equal(serverNameOf('server.bench'), 'server.bench');
  assert.equal(serverNameOf('127.0.0.1:80'), '');
  assert.equal(serverNameOf('[::1]:8080'), '');
  assert.equal(serverNameOf('[::1]'), '');
});

test('keepAliveFromRawHeaders pools sockets as node:http does without building the response headers, and honours the Keep-Alive hint', async () => {
  let hint = 'timeout=60';
  const server = http.createServer((req, res) => {
    res.setHeader('keep-alive', hint);
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const agent = keepAliveFromRawHeaders(new http.Agent({ keepAlive: true, maxSockets: 1, timeout: 30_000 }));
  const get = () =>
    new Promise<{ socket: unknown; headersBuilt: boolean }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, agent }, (res) => {
        const socket = res.socket;
        res.resume();
        res.on('end', () => setImmediate(() => resolve({ socket, headersBuilt: Object.getOwnPropertySymbols(res).some((s) => s.description === 'kHeaders' && (res as unknown as Record<symbol, unknown>)[s] != null) })));
      }).on('error', reject);
    });
  try {
    const a = await get();
    const b = await get();
    assert.equal(a.socket, b.socket, 'the socket was pooled and reused');
    assert.equal(b.headersBuilt, false, 'the response headers object was not built');
    const pooled = Object.values(agent.freeSockets)[0]![0] as unknown as { timeout: number };
    assert.equal(pooled.timeout, 30_000, 'a hint longer than the pool timeout leaves it');
    hint = 'timeout=5';
    await get();
    assert.equal((Object.values(agent.freeSockets)[0]![0] as unknown as { timeout: number }).timeout, 4_000, 'a shorter hint, less a second');
    hint = 'timeout=1';
    const c = await get();
    assert.equal(Object.values(agent.freeSockets).flat().length, 0, 'a hint of one second: not kept');
    assert.equal((c.socket as { destroyed: boolean }).destroyed, true);
  } finally {
    agent.destroy();
    server.close();
  }
});

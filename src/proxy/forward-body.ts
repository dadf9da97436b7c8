/** Streaming a request body to the next hop. */
import type { ClientRequest, IncomingMessage } from 'node:http';
import { rawHeader } from './hop.js';

/**
 * Stream `from`'s body into `to` as `from.pipe(to)` does (every chunk is written as it
 * arrives, with backpressure), except that when `from` declares a Content-Length the chunk
 * that completes it goes through `to.end(chunk)`. node:http writes an `end(chunk)` and the
 * message's end in one corked batch; with pipe() the end comes on its own after the last
 * write, and on a TLS socket whose previous write is still in flight that end is an empty
 * TLS write (a syscall and a write request) on every request. Bodies without a length, and
 * no body at all, end when `from` ends, as with pipe().
 */
export function forwardBody(from: IncomingMessage, to: ClientRequest, fromRaw = false): void {
  // fromRaw: the first Content-Length of rawHeaders (what `headers` keeps), so that `headers`
  // is not built for this; otherwise `headers`, which the gateway may have rewritten.
  const declared = fromRaw ? rawHeader(from.rawHeaders, 'content-length') : from.headers['content-length'];
  let left = declared !== undefined && /^[0-9]{1,15}$/.test(declared) ? Number(declared) : -1;
  let ended = false;
  const onDrain = () => from.resume();
  from.on('data', (chunk: Buffer) => {
    if (ended || to.destroyed) return;
    if (left >= 0) {
      left -= chunk.length;
      if (left <= 0) {
        ended = true;
        to.end(chunk);
        return;
      }
    }
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', onDrain);
    }
  });
  from.once('end', () => {
    if (ended || to.destroyed) return;
    ended = true;
    to.end();
  });
  from.resume();
}

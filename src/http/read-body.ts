/** Reading a request body of bounded size, for the form and JSON parsers. */
import type { IncomingMessage } from 'node:http';
import getRawBody from 'raw-body';

/** Thrown like raw-body's own errors: `type` says what went wrong ('entity.too.large' for the limit). */
function tooLarge(limit: number): Error {
  return Object.assign(new Error('request entity too large'), { type: 'entity.too.large', status: 413, limit });
}

/** The next turn of the event loop, shared by every request that waits in this one (one setImmediate, one promise). */
let nextTurn: Promise<void> | null = null;
function afterThisTurn(): Promise<void> {
  return (nextTurn ??= new Promise<void>((resolve) =>
    setImmediate(() => {
      nextTurn = null;
      resolve();
    }),
  ));
}

/**
 * The body's bytes, at most `limit` of them. A declared length over the limit fails before
 * anything is read. The 'request' event fires while Node's parser is still on the headers; a body
 * that came in the same packet is parsed right after, in the same turn of the event loop, so by
 * the next turn (setImmediate; a microtask is too early) it is complete and is taken from the
 * stream's buffer in one read, without a listener pipeline per request. A body still arriving is
 * read by raw-body.
 */
export async function readBodyBytes(req: IncomingMessage, length: number | undefined, limit: number): Promise<Buffer> {
  if (length !== undefined && length > limit) throw tooLarge(limit);
  if (!req.complete) await afterThisTurn();
  if (req.complete && !req.readableFlowing && !req.readableDidRead) {
    const buffer = (req.read() as Buffer | null) ?? Buffer.alloc(0);
    if (buffer.length > limit) throw tooLarge(limit);
    return buffer;
  }
  return getRawBody(req, { limit, length: length ?? null });
}

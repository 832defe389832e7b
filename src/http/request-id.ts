import { randomFillSync } from 'node:crypto';

/** An incoming X-Request-Id is honoured when it is short and plain; anything else gets a fresh id. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

// 128 random bits per id, as 32 hex characters, from a pool refilled every 256 ids: one
// getrandom call and no string rewriting per request (randomUUID + removing dashes cost ~4x).
const ID_BYTES = 16;
const pool = Buffer.allocUnsafe(ID_BYTES * 256);
let offset = pool.length;

export function newRequestId(): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const id = pool.toString('hex', offset, offset + ID_BYTES);
  offset += ID_BYTES;
  return id;
}

/** The request's id: the incoming header's when sane, else a fresh one. */
export function requestIdFor(incoming: string | undefined): string {
  return incoming !== undefined && SANE_REQUEST_ID.test(incoming) ? incoming : newRequestId();
}

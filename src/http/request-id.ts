import { randomBytesPooled } from '../domain/secrets.js';

/**
 * Request ids are the server's own: an incoming X-Request-Id would let anyone file events under an
 * id of their choosing (an incident's, another request's). A short, plain one is kept beside it as
 * the client's (`clientRequestId`), for correlating with the caller's own logs.
 */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** 128 random bits, as 32 hex characters, from the CSPRNG pool the secrets draw on (no getrandom call per request). */
export function newRequestId(): string {
  return randomBytesPooled(16).toString('hex');
}

/** The client's own X-Request-Id when it is short and plain, else null (never the request's id). */
export function clientRequestIdOf(incoming: string | string[] | undefined): string | null {
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : null;
}

import { timeOrderedHex } from '../domain/time-ordered-id.js';

/**
 * Request ids are the server's own: an incoming X-Request-Id would let anyone file events under an
 * id of their choosing (an incident's, another request's). A short, plain one is kept beside it as
 * the client's (`clientRequestId`), for correlating with the caller's own logs.
 */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * 32 hex characters: the time, then 80 random bits from the CSPRNG pool the secrets draw on (no
 * getrandom call per request). Time first, so that the audit log's requestId index grows at its
 * end (see domain/time-ordered-id.ts).
 */
export function newRequestId(): string {
  return timeOrderedHex();
}

/** The client's own X-Request-Id when it is short and plain, else null (never the request's id). */
export function clientRequestIdOf(incoming: string | string[] | undefined): string | null {
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : null;
}

import { randomBytesPooled } from '../domain/secrets.js';

/** An incoming X-Request-Id is honoured when it is short and plain; anything else gets a fresh id. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** 128 random bits, as 32 hex characters, from the CSPRNG pool the secrets draw on (no getrandom call per request). */
export function newRequestId(): string {
  return randomBytesPooled(16).toString('hex');
}

/** The request's id: the incoming header's when sane, else a fresh one. */
export function requestIdFor(incoming: string | undefined): string {
  return incoming !== undefined && SANE_REQUEST_ID.test(incoming) ? incoming : newRequestId();
}

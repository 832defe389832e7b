/**
 * Fetches a federated source's keys: from its jwksUrl, or from the jwks_uri its OIDC discovery
 * document names. Bounded in time and size so a slow or hostile source cannot hang a caller.
 */
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';

export const FETCH_TIMEOUT_MS = 5_000;
export const FETCH_SIZE_LIMIT = 512 * 1024;

export class JwksFetchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JwksFetchError';
  }
}

function fetchFailure(url: string, timeoutMs: number, error: unknown): JwksFetchError {
  if (error instanceof JwksFetchError) return error;
  const name = (error as Error | undefined)?.name;
  const timedOut = name === 'TimeoutError' || name === 'AbortError';
  return new JwksFetchError(timedOut ? `${url} did not answer within ${timeoutMs} ms` : `${url} could not be fetched: ${(error as Error).message}`, { cause: error });
}

/** GET a JSON document; `signal` bounds the whole exchange, body included (a source that trickles bytes is cut off too). */
async function fetchJson(url: string, signal: AbortSignal, timeoutMs: number): Promise<unknown> {
  try {
    const response = await fetch(url, { signal, redirect: 'follow', headers: { accept: 'application/json' } });
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw new JwksFetchError(`${url} answered HTTP ${response.status}`);
    }
    const declared = Number(response.headers.get('content-length') ?? '0');
    if (declared > FETCH_SIZE_LIMIT) {
      await response.body?.cancel().catch(() => undefined);
      throw new JwksFetchError(`${url} is larger than ${FETCH_SIZE_LIMIT} bytes`);
    }
    const reader = response.body?.getReader();
    if (!reader) throw new JwksFetchError(`${url} sent no body`);
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > FETCH_SIZE_LIMIT) {
        await reader.cancel().catch(() => undefined);
        throw new JwksFetchError(`${url} is larger than ${FETCH_SIZE_LIMIT} bytes`);
      }
      chunks.push(value);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new JwksFetchError(`${url} did not return JSON`);
    }
  } catch (error) {
    throw fetchFailure(url, timeoutMs, error);
  }
}

/** Checks that a value is a JWKS jose can use; throws JwksFetchError naming the problem. */
export function assertJwks(value: unknown, where: string): JSONWebKeySet {
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { keys?: unknown }).keys)) {
    throw new JwksFetchError(`${where} is not a JWKS (an object with a "keys" array)`);
  }
  const jwks = value as JSONWebKeySet;
  for (const key of jwks.keys) {
    if (typeof key !== 'object' || key === null || typeof key.kty !== 'string') throw new JwksFetchError(`${where} has a key without "kty"`);
    if ('d' in key || 'p' in key || 'k' in key) throw new JwksFetchError(`${where} holds private or symmetric key material; give public keys only`);
  }
  try {
    createLocalJWKSet(jwks);
  } catch (error) {
    throw new JwksFetchError(`${where} is not a usable JWKS: ${(error as Error).message}`);
  }
  return jwks;
}

/**
 * The source's current keys. `timeoutMs` bounds the whole fetch (discovery document and JWKS
 * together), so a caller waits at most that long whatever the source does.
 */
export async function fetchJwks(source: { jwksUrl: string | null; oidcDiscoveryUrl: string | null }, timeoutMs = FETCH_TIMEOUT_MS): Promise<JSONWebKeySet> {
  const signal = AbortSignal.timeout(timeoutMs);
  let jwksUrl = source.jwksUrl;
  if (!jwksUrl && source.oidcDiscoveryUrl) {
    const discovery = (await fetchJson(source.oidcDiscoveryUrl, signal, timeoutMs)) as { jwks_uri?: unknown } | null;
    if (!discovery || typeof discovery !== 'object' || typeof discovery.jwks_uri !== 'string') {
      throw new JwksFetchError(`${source.oidcDiscoveryUrl} names no jwks_uri`);
    }
    if (!/^https?:\/\//i.test(discovery.jwks_uri)) throw new JwksFetchError(`${source.oidcDiscoveryUrl} names a jwks_uri that is not an http(s) URL`);
    jwksUrl = discovery.jwks_uri;
  }
  if (!jwksUrl) throw new JwksFetchError('the source has neither jwksUrl nor oidcDiscoveryUrl');
  return assertJwks(await fetchJson(jwksUrl, signal, timeoutMs), jwksUrl);
}

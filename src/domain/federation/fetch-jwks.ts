/**
 * Fetches a federated source's keys: from its jwksUrl, or from the jwks_uri its OIDC discovery
 * document names. Bounded in time and size so a slow or hostile source cannot hang a caller.
 *
 * What it refuses, so a source URL cannot be turned into a probe of what the server can reach:
 * - a redirect to another origin (scheme, host and port); same-origin redirects are followed, at
 *   most MAX_REDIRECTS;
 * - a discovery document whose `issuer` is not the source's (OIDC Discovery §4.3): the source's
 *   `issuer` when set, else the issuer the discovery URL is built from (the part before
 *   `/.well-known/openid-configuration`, or after `/.well-known/oauth-authorization-server`, RFC
 *   8414 §3); a discovery URL of neither form needs the source's `issuer`.
 * Errors say "could not fetch keys" and a reason class (HTTP status class, timeout, connection,
 * size, not JSON, not a JWKS), never the response body, the address that answered or the
 * network error; the full cause stays on `cause` for the server's log.
 */
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { jwksFetches } from '../../telemetry/metrics.js';
import { inSpan } from '../../telemetry/trace.js';

export const FETCH_TIMEOUT_MS = 5_000;
export const FETCH_SIZE_LIMIT = 512 * 1024;
export const MAX_REDIRECTS = 3;
const OIDC_DISCOVERY_SUFFIX = '/.well-known/openid-configuration';
const OAUTH_METADATA_PREFIX = '/.well-known/oauth-authorization-server';

export class JwksFetchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JwksFetchError';
  }
}

/** What a fetched document is, in messages: the field it came from, never its address. */
type Document = 'jwksUrl' | 'oidcDiscoveryUrl' | 'jwks_uri';

function couldNotFetch(what: Document, reason: string, cause?: unknown): JwksFetchError {
  return new JwksFetchError(`could not fetch keys: ${what} ${reason}`, cause === undefined ? undefined : { cause });
}

function fetchFailure(what: Document, timeoutMs: number, error: unknown): JwksFetchError {
  if (error instanceof JwksFetchError) return error;
  const name = (error as Error | undefined)?.name;
  const timedOut = name === 'TimeoutError' || name === 'AbortError';
  return couldNotFetch(what, timedOut ? `did not answer within ${timeoutMs} ms` : 'could not be reached', error);
}

async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}

/** GET with redirects followed by hand: only within the origin of the URL asked for. */
async function getSameOrigin(url: string, what: Document, signal: AbortSignal): Promise<Response> {
  let current = new URL(url);
  for (let redirects = 0; ; redirects += 1) {
    const response = await fetch(current, { signal, redirect: 'manual', headers: { accept: 'application/json' } });
    if (response.status < 300 || response.status >= 400) return response;
    await discard(response);
    const location = response.headers.get('location');
    if (!location) throw couldNotFetch(what, `answered HTTP ${response.status} without a Location`);
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw couldNotFetch(what, 'redirected to an invalid URL');
    }
    if (next.origin !== current.origin) throw couldNotFetch(what, 'redirected to another origin (refused)');
    if (redirects >= MAX_REDIRECTS) throw couldNotFetch(what, `redirected more than ${MAX_REDIRECTS} times`);
    current = next;
  }
}

/** GET a JSON document; `signal` bounds the whole exchange, body included (a source that trickles bytes is cut off too). */
async function fetchJson(url: string, what: Document, signal: AbortSignal, timeoutMs: number): Promise<unknown> {
  try {
    const response = await getSameOrigin(url, what, signal);
    if (!response.ok) {
      await discard(response);
      throw couldNotFetch(what, `answered HTTP ${Math.floor(response.status / 100)}xx`);
    }
    const declared = Number(response.headers.get('content-length') ?? '0');
    if (declared > FETCH_SIZE_LIMIT) {
      await discard(response);
      throw couldNotFetch(what, `answered more than ${FETCH_SIZE_LIMIT} bytes`);
    }
    const reader = response.body?.getReader();
    if (!reader) throw couldNotFetch(what, 'answered no body');
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > FETCH_SIZE_LIMIT) {
        await reader.cancel().catch(() => undefined);
        throw couldNotFetch(what, `answered more than ${FETCH_SIZE_LIMIT} bytes`);
      }
      chunks.push(value);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw couldNotFetch(what, 'did not answer JSON');
    }
  } catch (error) {
    throw fetchFailure(what, timeoutMs, error);
  }
}

/**
 * The issuer a discovery document must name: the source's own, else the one its discovery URL
 * is built from; null when neither is known.
 */
export function expectedIssuer(source: { issuer: string | null; oidcDiscoveryUrl: string | null }): string | null {
  if (source.issuer) return source.issuer;
  if (!source.oidcDiscoveryUrl) return null;
  const url = new URL(source.oidcDiscoveryUrl);
  if (url.search || url.hash) return null;
  if (url.pathname.endsWith(OIDC_DISCOVERY_SUFFIX)) return `${url.origin}${url.pathname.slice(0, -OIDC_DISCOVERY_SUFFIX.length)}`;
  if (url.pathname === OAUTH_METADATA_PREFIX || url.pathname.startsWith(`${OAUTH_METADATA_PREFIX}/`)) {
    return `${url.origin}${url.pathname.slice(OAUTH_METADATA_PREFIX.length)}`;
  }
  return null;
}

/** The jwks_uri of a discovery document that names the source's issuer. */
async function discoverJwksUri(
  source: { issuer: string | null; oidcDiscoveryUrl: string }, signal: AbortSignal, timeoutMs: number,
): Promise<string> {
  const issuer = expectedIssuer(source);
  if (!issuer) throw couldNotFetch('oidcDiscoveryUrl', 'is not a /.well-known/openid-configuration URL and the source has no issuer to check it against');
  const discovery = (await fetchJson(source.oidcDiscoveryUrl, 'oidcDiscoveryUrl', signal, timeoutMs)) as { issuer?: unknown; jwks_uri?: unknown } | null;
  if (!discovery || typeof discovery !== 'object') throw couldNotFetch('oidcDiscoveryUrl', 'did not answer a discovery document');
  if (discovery.issuer !== issuer) throw couldNotFetch('oidcDiscoveryUrl', 'answered a discovery document for another issuer');
  if (typeof discovery.jwks_uri !== 'string') throw couldNotFetch('oidcDiscoveryUrl', 'answered a discovery document without jwks_uri');
  if (!/^https?:\/\//i.test(discovery.jwks_uri) || !URL.canParse(discovery.jwks_uri)) {
    throw couldNotFetch('oidcDiscoveryUrl', 'answered a jwks_uri that is not an http(s) URL');
  }
  return discovery.jwks_uri;
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
export function fetchJwks(
  source: { issuer: string | null; jwksUrl: string | null; oidcDiscoveryUrl: string | null }, timeoutMs = FETCH_TIMEOUT_MS,
): Promise<JSONWebKeySet> {
  return inSpan('jwks fetch', source.issuer ? { 'tessera.source.issuer': source.issuer } : undefined, async () => {
    try {
      const keys = await fetchSourceJwks(source, timeoutMs);
      jwksFetches.inc({ result: 'ok' });
      return keys;
    } catch (error) {
      jwksFetches.inc({ result: 'failed' });
      throw error;
    }
  });
}

async function fetchSourceJwks(
  source: { issuer: string | null; jwksUrl: string | null; oidcDiscoveryUrl: string | null }, timeoutMs: number,
): Promise<JSONWebKeySet> {
  const signal = AbortSignal.timeout(timeoutMs);
  let jwksUrl = source.jwksUrl;
  let what: Document = 'jwksUrl';
  if (!jwksUrl && source.oidcDiscoveryUrl) {
    jwksUrl = await discoverJwksUri({ issuer: source.issuer, oidcDiscoveryUrl: source.oidcDiscoveryUrl }, signal, timeoutMs);
    what = 'jwks_uri';
  }
  if (!jwksUrl) throw new JwksFetchError('could not fetch keys: the source has neither jwksUrl nor oidcDiscoveryUrl');
  const document = await fetchJson(jwksUrl, what, signal, timeoutMs);
  try {
    return assertJwks(document, `the document at ${what}`);
  } catch (error) {
    throw new JwksFetchError(`could not fetch keys: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * One parser per credential scheme a request may carry (Basic lives in client-auth.ts): the
 * access token of `Authorization: Bearer` (RFC 6750 §2.1) or `Authorization: DPoP` (RFC 9449
 * §7.1), and the `DPoP` proof header (RFC 9449 §4.1). Userinfo, the admin API and the token
 * endpoint read them here and nowhere else.
 */
import type { IncomingMessage } from 'node:http';
import { DpopError, DPOP_SIGNING_ALGORITHMS } from '../domain/dpop.js';
import type { DpopVerifier, VerifiedProof } from '../domain/dpop.js';
import type { VerifiedAccessToken } from '../domain/tokens.js';

export type TokenScheme = 'Bearer' | 'DPoP';

export type PresentedAccessToken =
  | { kind: 'token'; scheme: TokenScheme; token: string }
  /** The scheme is Bearer or DPoP, but what follows is not a token. */
  | { kind: 'malformed'; scheme: TokenScheme }
  /** No Authorization header, or another scheme. */
  | { kind: 'none' };

/** RFC 6750 §2.1 b64token. */
const TOKEN68 = /^ +([A-Za-z0-9\-._~+/]+=*) *$/;
/** Any printable ASCII: admin app passwords may be chosen by the operator (TESSERA_BOOTSTRAP_TOKEN). */
const PRINTABLE = /^ +([\x21-\x7e]+) *$/;

export function parseTokenAuthorization(header: string | undefined, syntax: 'token68' | 'printable' = 'token68'): PresentedAccessToken {
  const trimmed = (header ?? '').trim();
  const scheme = /^(bearer|dpop)\b/i.exec(trimmed);
  if (!scheme) return { kind: 'none' };
  const name: TokenScheme = scheme[1]!.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
  const value = (syntax === 'token68' ? TOKEN68 : PRINTABLE).exec(trimmed.slice(scheme[0].length));
  return value ? { kind: 'token', scheme: name, token: value[1]! } : { kind: 'malformed', scheme: name };
}

/** What a request's headers are read from: Node's request (`ctx.req`). */
export type HeaderSource = Pick<IncomingMessage, 'headers' | 'headersDistinct'>;

/** The one DPoP proof a request carries, or undefined; two headers are refused (RFC 9449 §4.3 point 1). */
export function dpopProofHeader(request: HeaderSource): string | undefined {
  // headersDistinct builds an object of every header on each read: only when there is a proof.
  if (request.headers['dpop'] === undefined) return undefined;
  const values = request.headersDistinct['dpop'];
  if (values === undefined || values.length === 0) return undefined;
  if (values.length > 1) throw new DpopError('invalid_dpop_proof', 'send exactly one DPoP header');
  return values[0];
}

/** The WWW-Authenticate challenge of a resource refusing a token for its DPoP binding (RFC 9449 §7.1). */
export function dpopChallenge(error: string, description: string): string {
  return `DPoP algs="${DPOP_SIGNING_ALGORITHMS.join(' ')}", error="${error}", error_description="${description}"`;
}

export interface ResourceRequest {
  presented: { scheme: TokenScheme; token: string };
  /** The request's headers; null where there are none to read (no proof then). */
  headers: HeaderSource | null;
  method: string;
  /** The request's URL as the client sees it (TESSERA_PUBLIC_URL + path). */
  url: string;
}

/**
 * A resource's check of a verified token against how it was presented (RFC 9449 §7): a bound
 * token (cnf.jkt) only as `DPoP`, with a proof by that key carrying its ath; a `DPoP` token must
 * be bound. Returns null when it holds, or why not (the resource answers 401 with dpopChallenge).
 */
export async function tokenBindingRefusal(
  dpop: DpopVerifier, verified: VerifiedAccessToken, request: ResourceRequest,
): Promise<string | null> {
  const jkt = verified.claims.cnf?.jkt;
  if (request.presented.scheme === 'Bearer') return jkt === undefined ? null : 'this access token is bound to a DPoP key: send it as DPoP with a proof';
  if (jkt === undefined) return 'this access token is not DPoP-bound: send it as Bearer';
  let proof: VerifiedProof;
  try {
    const header = request.headers ? dpopProofHeader(request.headers) : undefined;
    if (header === undefined) return 'a DPoP proof is required with a DPoP-bound access token';
    proof = await dpop.verify(header, { method: request.method, url: request.url, accessToken: request.presented.token });
  } catch (error) {
    if (error instanceof DpopError) return error.description;
    throw error;
  }
  return proof.jkt === jkt ? null : 'the DPoP proof is signed by another key than the one the token is bound to';
}

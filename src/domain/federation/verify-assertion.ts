/**
 * The federated-source half of the one verifier for incoming JWTs (incoming-jwt.ts decides which
 * half a JWT goes to): signature by one of the source's keys, an asymmetric algorithm from the
 * allow-list, `typ` absent or JWT (never an access token's at+jwt), `exp` present and in the
 * future, `nbf` and `iat` within a small clock skew, `iat` no older than the source's
 * maxTokenAgeSeconds, `iss` where the source sets it, and `aud` always: the source's audience,
 * or else the provider's issuer or token endpoint (RFC 7523 §3).
 *
 * Every refusal is an AssertionRejected with a machine-readable reason and a precise detail
 * (which source, which claim, which kid) for the event log; the client only hears invalid_grant.
 */
import {
  decodeJwt, decodeProtectedHeader, errors, jwtVerify,
  type JWTPayload, type JWTVerifyOptions, type ProtectedHeaderParameters,
} from 'jose';
import type { FederatedSource } from '../model.js';
import type { Collections } from '../../store/ports.js';
import { TtlCache } from '../cache.js';
import { sha256Hex } from '../secrets.js';
import { DEFAULT_SOURCE_KEY_OPTIONS, SourceKeyCache, isRemoteSource, type KeySet, type SourceKeyOptions } from './source-keys.js';
import { expectedIssuer } from './fetch-jwks.js';
import { inSpan } from '../../telemetry/trace.js';

/** Asymmetric algorithms only: never `none`, never HMAC (a public key is not a shared secret). */
export const ASSERTION_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
/** Tolerated clock difference for nbf and iat; exp gets none (the contract: in the future). */
export const CLOCK_SKEW_SECONDS = 30;
const MAX_ASSERTION_LENGTH = 16_384;
/** How long a verified signature is remembered (see SourceJwtVerifier.verified). */
const VERIFIED_TTL_MS = 60_000;

export type AssertionRejectionReason =
  | 'malformed' | 'alg_not_allowed' | 'typ_not_allowed' | 'no_sources' | 'keys_unavailable' | 'unknown_kid' | 'bad_signature'
  | 'expired' | 'missing_exp' | 'not_yet_valid' | 'issued_in_future' | 'too_old' | 'iss_mismatch' | 'aud_mismatch' | 'missing_sub';

export class AssertionRejected extends Error {
  constructor(readonly reason: AssertionRejectionReason, readonly detail: string, readonly sourceSlug: string | null = null) {
    super(`${reason}: ${detail}`);
    this.name = 'AssertionRejected';
  }
}

export interface VerifiedAssertion {
  source: FederatedSource;
  claims: JWTPayload & { sub: string; exp: number };
  header: ProtectedHeaderParameters;
}

/** The JWS compact shape (the signature may be empty: that is how alg=none tokens look, and we want to name them). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** True when a string looks like a JWT (three base64url parts, a JSON header with alg); used to pick the rule. */
export function looksLikeJwt(value: string): boolean {
  return decoded(value) !== null;
}

type Peeked = { header: ProtectedHeaderParameters; payload: JWTPayload };
/**
 * The last few strings decoded: one request decodes its JWT in several places (which rule, which
 * verifier, which source), each a base64url decode and two JSON.parse (5% of a token exchange).
 * The header and the payload are kept apart: a JSON header with alg makes a JWT for looksLikeJwt
 * even when the payload does not decode (it is then refused as malformed, not taken for a secret).
 * Frozen, since one decoding is handed to several readers.
 */
const decodings = new Map<string, { header: ProtectedHeaderParameters; payload: JWTPayload | null } | null>();
const DECODINGS_KEPT = 16;

function decoded(value: string): { header: ProtectedHeaderParameters; payload: JWTPayload | null } | null {
  const known = decodings.get(value);
  if (known !== undefined) return known;
  let result: { header: ProtectedHeaderParameters; payload: JWTPayload | null } | null = null;
  if (value.length <= MAX_ASSERTION_LENGTH && COMPACT_JWS.test(value)) {
    try {
      const header = decodeProtectedHeader(value);
      if (typeof header.alg === 'string') {
        let payload: JWTPayload | null = null;
        try {
          payload = Object.freeze(decodeJwt(value));
        } catch {
          payload = null;
        }
        result = Object.freeze({ header: Object.freeze(header), payload });
      }
    } catch {
      result = null;
    }
  }
  if (decodings.size >= DECODINGS_KEPT) decodings.delete(decodings.keys().next().value as string);
  decodings.set(value, result);
  return result;
}

/** The unverified header and payload, for choosing a path (source or provider); never trusted as is. */
export function peekJwt(value: string): Peeked | null {
  const result = decoded(value);
  return result && result.payload ? { header: result.header, payload: result.payload } : null;
}

/** How specific a rejection is: when several sources refuse, the most telling reason is reported. */
const SPECIFICITY: Record<AssertionRejectionReason, number> = {
  malformed: 9, alg_not_allowed: 9, typ_not_allowed: 9, no_sources: 9, expired: 8, missing_exp: 8, not_yet_valid: 8, issued_in_future: 8, too_old: 8,
  aud_mismatch: 8, missing_sub: 8, iss_mismatch: 7, bad_signature: 5, unknown_kid: 4, keys_unavailable: 3,
};

const isoDate = (seconds: unknown) => (typeof seconds === 'number' && Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : String(seconds));

export class SourceJwtVerifier {
  /** Source records, briefly cached: the token endpoint reads them on every JWT request. */
  private readonly sources = new TtlCache<FederatedSource | null>(5_000);
  /**
   * JWTs whose signature and claims jose verified, by source and the JWT's SHA-256 (never the JWT
   * itself), for VERIFIED_TTL_MS: a workload sends its one projected token with every exchange.
   * Used only with the same key set object (a refetch of the keys makes a new one) and the same
   * issuer and audience; what time changes (exp, iat, the source's maxTokenAgeSeconds) is checked
   * on every use, and a source that is gone or changed is a miss through `sources`.
   */
  private readonly verified = new TtlCache<{ keySet: KeySet; checks: string; payload: JWTPayload }>(VERIFIED_TTL_MS);
  readonly keys: SourceKeyCache;

  constructor(
    private readonly collections: Pick<Collections, 'federatedSources'>,
    options: SourceKeyOptions = DEFAULT_SOURCE_KEY_OPTIONS,
  ) {
    this.keys = new SourceKeyCache(collections, options);
  }

  private async loadSources(ids: readonly string[]): Promise<FederatedSource[]> {
    const found = await Promise.all(ids.map((id) => this.sources.getOrLoad(id, () => this.collections.federatedSources.findOne({ id }))));
    return found.filter((s): s is FederatedSource => s !== null);
  }

  /** Forget a source's cached record and keys (after an admin change on this process). */
  invalidate(sourceId: string): void {
    this.sources.delete(sourceId);
    this.keys.forget(sourceId);
    this.verified.clear();
  }

  /**
   * Verifies `jwt` against the sources with these ids; the first source that accepts it wins.
   * `audiences` are what `aud` must contain one of where a source sets no audience.
   */
  async verify(jwt: string, sourceIds: readonly string[], audiences: readonly string[]): Promise<VerifiedAssertion> {
    if (jwt.length > MAX_ASSERTION_LENGTH) throw new AssertionRejected('malformed', `the JWT is longer than ${MAX_ASSERTION_LENGTH} characters`);
    const peeked = peekJwt(jwt);
    if (!peeked) throw new AssertionRejected('malformed', 'not a JWS compact serialization with a JSON header and payload');
    const { header, payload } = peeked;
    checkAlgorithm(header.alg);
    checkType(header.typ);
    const sources = await this.loadSources(sourceIds);
    if (sources.length === 0) throw new AssertionRejected('no_sources', 'the provider has no federated sources');
    // The unverified iss only orders the attempts; each source still checks iss itself.
    // A discovery source without an issuer of its own checks the issuer its discovery URL names.
    const issuers = new Map(sources.map((s) => [s.id, expectedIssuer(s)]));
    const candidates = sources.filter((s) => issuers.get(s.id) === null || issuers.get(s.id) === payload.iss);
    if (candidates.length === 0) {
      throw new AssertionRejected(
        'iss_mismatch',
        `iss ${JSON.stringify(payload.iss ?? null)} matches none of the sources' issuers (${sources.map((s) => `${s.slug}: ${issuers.get(s.id)}`).join(', ')})`,
      );
    }
    candidates.sort((a, b) => Number(issuers.get(b.id) !== null) - Number(issuers.get(a.id) !== null));
    // Sources that still need their first fetch are fetched side by side: the wait is one timeout, not one per source.
    if (candidates.length > 1) await Promise.all(candidates.map((s) => this.keys.current(s)));
    const rejections: AssertionRejected[] = [];
    for (const source of candidates) {
      try {
        return await this.verifyWithSource(jwt, header, source, issuers.get(source.id) ?? null, audiences);
      } catch (error) {
        if (!(error instanceof AssertionRejected)) throw error;
        rejections.push(error);
      }
    }
    if (rejections.length === 1) throw rejections[0]!;
    const best = [...rejections].sort((a, b) => SPECIFICITY[b.reason] - SPECIFICITY[a.reason])[0]!;
    throw new AssertionRejected(best.reason, rejections.map((r) => `source ${r.sourceSlug}: ${r.detail}`).join('; '), best.sourceSlug);
  }

  private async verifyWithSource(
    jwt: string, header: ProtectedHeaderParameters, source: FederatedSource, issuer: string | null, audiences: readonly string[],
  ): Promise<VerifiedAssertion> {
    const reject = (reason: AssertionRejectionReason, detail: string) => new AssertionRejected(reason, detail, source.slug);
    const current = await this.keys.current(source);
    let keySet = current.keySet;
    if (!keySet) throw reject('keys_unavailable', `source ${source.slug} has no keys: ${current.problem}`);
    const options: JWTVerifyOptions = {
      algorithms: [...ASSERTION_ALGORITHMS],
      clockTolerance: CLOCK_SKEW_SECONDS,
      requiredClaims: ['exp'],
      ...(issuer !== null ? { issuer } : {}),
      audience: source.audience !== null ? source.audience : [...audiences],
    };
    const cacheKey = `${source.id}:${sha256Hex(jwt)}`;
    const checks = JSON.stringify([options.issuer ?? null, options.audience]);
    const seen = this.verified.get(cacheKey);
    let payload: JWTPayload;
    if (seen && seen.keySet === keySet && seen.checks === checks) {
      payload = { ...seen.payload };
    } else {
      ({ payload, keySet } = await this.verifySignature(jwt, header, source, keySet, options));
      this.verified.set(cacheKey, { keySet, checks, payload });
    }
    const now = Math.floor(Date.now() / 1000);
    // jose allowed the skew on exp too; the contract wants exp strictly in the future.
    if (typeof payload.exp !== 'number' || payload.exp <= now) throw reject('expired', `the JWT expired at ${isoDate(payload.exp)}`);
    if (typeof payload.iat === 'number' && payload.iat > now + CLOCK_SKEW_SECONDS) {
      throw reject('issued_in_future', `iat ${isoDate(payload.iat)} is in the future beyond ${CLOCK_SKEW_SECONDS} s of clock skew`);
    }
    const maxAge = source.maxTokenAgeSeconds ?? null;
    if (maxAge !== null) {
      if (typeof payload.iat !== 'number') throw reject('too_old', `source ${source.slug} accepts JWTs at most ${maxAge} s old, and this one has no iat`);
      if (now - payload.iat > maxAge) throw reject('too_old', `the JWT was issued at ${isoDate(payload.iat)}, more than source ${source.slug}'s ${maxAge} s ago`);
    }
    if (typeof payload.sub !== 'string' || payload.sub === '' || payload.sub.length > 255) {
      throw reject('missing_sub', 'the JWT has no usable sub claim (a non-empty string of at most 255 characters)');
    }
    return { source, header, claims: payload as VerifiedAssertion['claims'] };
  }

  /** jose's verification with the source's keys, fetched again once for an unknown kid. */
  private async verifySignature(
    jwt: string, header: ProtectedHeaderParameters, source: FederatedSource, keySet: KeySet, options: JWTVerifyOptions,
  ): Promise<{ payload: JWTPayload; keySet: KeySet }> {
    const reject = (reason: AssertionRejectionReason, detail: string) => new AssertionRejected(reason, detail, source.slug);
    try {
      return { payload: await verifyWithKeySet(jwt, keySet, options), keySet };
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw translate(error, source, header, options);
      const kid = header.kid === undefined ? 'no kid' : `kid ${JSON.stringify(header.kid)}`;
      const refreshed = await this.keys.refreshForUnknownKid(source);
      if (!refreshed) {
        throw reject('unknown_kid', isRemoteSource(source)
          ? `${kid} (${header.alg}) is not among source ${source.slug}'s keys; they were fetched less than a minute ago, so they were not fetched again`
          : `${kid} (${header.alg}) is not among source ${source.slug}'s keys`);
      }
      if (!refreshed.keySet) throw reject('keys_unavailable', `${kid} is unknown and source ${source.slug}'s keys could not be fetched: ${refreshed.problem}`);
      const fresh = refreshed.keySet;
      try {
        return { payload: await verifyWithKeySet(jwt, fresh, options), keySet: fresh };
      } catch (retryError) {
        if (retryError instanceof errors.JWKSNoMatchingKey) {
          throw reject('unknown_kid', `${kid} (${header.alg}) is not among source ${source.slug}'s keys, even after fetching them again`);
        }
        throw translate(retryError, source, header, options);
      }
    }
  }
}

function checkAlgorithm(alg: unknown): void {
  if (typeof alg !== 'string') throw new AssertionRejected('malformed', 'the JWT header has no alg');
  if (alg.toLowerCase() === 'none') throw new AssertionRejected('alg_not_allowed', 'alg "none" (an unsigned JWT) is never accepted');
  if (/^HS\d+$/i.test(alg)) {
    throw new AssertionRejected('alg_not_allowed', `alg ${alg} (HMAC) is not accepted for federated JWTs: a source's public key is not a shared secret`);
  }
  if (!(ASSERTION_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new AssertionRejected('alg_not_allowed', `alg ${JSON.stringify(alg)} is not one of ${ASSERTION_ALGORITHMS.join(', ')}`);
  }
}

/** jwtVerify, trying each candidate key when several match (jose leaves that to the caller). */
function verifyWithKeySet(jwt: string, keySet: KeySet, options: JWTVerifyOptions): Promise<JWTPayload> {
  return inSpan('jwt verify', { 'jwt.typ': 'assertion' }, () => verifyWithCandidates(jwt, keySet, options));
}

async function verifyWithCandidates(jwt: string, keySet: KeySet, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(jwt, keySet, options)).payload;
  } catch (error) {
    if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
    for await (const key of error) {
      try {
        return (await jwtVerify(jwt, key, options)).payload;
      } catch (inner) {
        // The signature verified with this key but a claim failed: that is the answer.
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

/** RFC 7515 §4.1.9: a media type, "application/" may be left out, compared case-insensitively. */
export function normalizeTyp(typ: unknown): string | undefined {
  return typeof typ === 'string' ? typ.toLowerCase().replace(/^application\//, '') : undefined;
}

/** A source's JWT says it is a JWT or says nothing: an access token (at+jwt), a DPoP proof or a logout token is not an assertion. */
function checkType(typ: unknown): void {
  if (typ === undefined) return;
  if (typ !== 'JWT' && typ !== 'jwt') {
    throw new AssertionRejected('typ_not_allowed', `typ ${JSON.stringify(typ)} is not accepted from a federated source (only JWT, jwt or none)`);
  }
}

function translate(error: unknown, source: FederatedSource, header: ProtectedHeaderParameters, options: JWTVerifyOptions): AssertionRejected {
  const reject = (reason: AssertionRejectionReason, detail: string) => new AssertionRejected(reason, detail, source.slug);
  if (error instanceof errors.JWTExpired) return reject('expired', `the JWT expired at ${isoDate(error.payload.exp)}`);
  if (error instanceof errors.JWTClaimValidationFailed) {
    const p = error.payload;
    switch (error.claim) {
      case 'nbf': return reject('not_yet_valid', `the JWT is not valid before ${isoDate(p.nbf)} (nbf)`);
      case 'iss': return reject('iss_mismatch', `iss ${JSON.stringify(p.iss ?? null)} is not source ${source.slug}'s issuer ${JSON.stringify(options.issuer ?? null)}`);
      case 'aud': return reject('aud_mismatch', source.audience !== null
        ? `aud ${JSON.stringify(p.aud ?? null)} does not contain source ${source.slug}'s audience ${JSON.stringify(source.audience)}`
        : `aud ${JSON.stringify(p.aud ?? null)} contains none of ${JSON.stringify(options.audience)} (source ${source.slug} sets no audience, so the provider's issuer or token endpoint is required)`);
      case 'exp': return reject('missing_exp', error.reason === 'missing' ? 'the JWT has no exp claim; an expiry is required' : 'the exp claim is not a number');
      case 'iat': return reject('malformed', 'the iat claim is not a number');
      default: return reject('malformed', `claim ${error.claim} is invalid: ${error.message}`);
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return reject('bad_signature', `the signature does not verify with source ${source.slug}'s key${header.kid === undefined ? '' : ` ${JSON.stringify(header.kid)}`}`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return reject('alg_not_allowed', `alg ${JSON.stringify(header.alg)} cannot be verified with source ${source.slug}'s keys: ${(error as Error).message}`);
  }
  if (error instanceof errors.JOSEError) return reject('malformed', `${(error as Error).message}`);
  return reject('malformed', `the JWT could not be verified: ${(error as Error).message}`);
}

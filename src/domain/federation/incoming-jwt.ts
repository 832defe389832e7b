/**
 * The one verifier for every JWT a request brings to be trusted as an identity (client_credentials
 * assertions today; jwt-bearer assertions and token-exchange subject and actor tokens next).
 *
 * A JWT whose `iss` is one of this server's providers is a federated-provider token or nothing:
 * it must be a live access token (typ at+jwt, signature by that provider's keys, unexpired, not on
 * the denylist) of a provider the requesting provider lists, and never goes through the sources,
 * so a source over a provider's JWKS cannot turn its id_tokens or revoked tokens into credentials.
 * Any other JWT is checked against the provider's federated sources (verify-assertion.ts).
 */
import type { ProtectedHeaderParameters } from 'jose';
import type { FederatedSource, Provider } from '../model.js';
import type { AccessTokenClaims, TokenService } from '../tokens.js';
import type { ProviderService } from '../providers.js';
import type { Collections } from '../../store/ports.js';
import { DEFAULT_SOURCE_KEY_OPTIONS, type SourceKeyOptions } from './source-keys.js';
import { AssertionRejected, SourceJwtVerifier, normalizeTyp, peekJwt, type AssertionRejectionReason, type VerifiedAssertion } from './verify-assertion.js';

export type VerifiedIncomingJwt =
  | { kind: 'federated_source'; source: FederatedSource; claims: VerifiedAssertion['claims']; header: ProtectedHeaderParameters }
  | { kind: 'federated_provider'; issuer: Provider; claims: AccessTokenClaims };

export type JwtRefusalReason =
  | AssertionRejectionReason | 'jwe' | 'not_trusted' | 'provider_not_trusted' | 'not_an_access_token' | 'inactive_token' | 'dpop_bound';

/** Why a JWT was not accepted: `detail` is for the event log, never for the client. */
export interface JwtRefusal {
  kind: 'refused';
  reason: JwtRefusalReason;
  detail: string;
  /** The source that refused it, if one did. */
  source: string | null;
  /** The provider of this server that issued it, if one did. */
  federatedProvider: string | null;
}

/** Five base64url parts: the JWE compact serialization (RFC 7516 §7.1). */
const COMPACT_JWE = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){4}$/;
const MAX_JWT_LENGTH = 16_384;

export interface IncomingJwtDependencies {
  collections: Pick<Collections, 'federatedSources'>;
  tokens: Pick<TokenService, 'verifyAccessToken' | 'isRevoked'>;
  providers: Pick<ProviderService, 'issuer' | 'getBySlugCached'>;
  /** The token endpoint's URL, an audience RFC 7523 §3 allows. */
  tokenEndpoint: string;
}

export interface IncomingJwtOptions {
  /**
   * Token exchange (RFC 8693): an access token of the requesting provider itself is accepted like
   * one of its federated providers (a resource server exchanging the token it was called with).
   */
  acceptOwnAccessTokens?: boolean;
}

export class IncomingJwtVerifier {
  readonly sources: SourceJwtVerifier;

  constructor(private readonly deps: IncomingJwtDependencies, options: SourceKeyOptions = DEFAULT_SOURCE_KEY_OPTIONS) {
    this.sources = new SourceJwtVerifier(deps.collections, options);
  }

  /** A source changed or went (admin API, on this process): its record and keys are read again at the next JWT. */
  invalidateSource(sourceId: string): void {
    this.sources.invalidate(sourceId);
  }

  async verifyIncomingJwt(provider: Provider, jwt: string, options: IncomingJwtOptions = {}): Promise<VerifiedIncomingJwt | JwtRefusal> {
    if (jwt.length <= MAX_JWT_LENGTH && COMPACT_JWE.test(jwt)) {
      return refusal('jwe', 'an encrypted JWT (JWE) is not accepted: send the signed JWT itself');
    }
    const peeked = peekJwt(jwt);
    const issuer = typeof peeked?.payload.iss === 'string' ? await this.ourProvider(peeked.payload.iss) : null;
    if (issuer) return this.verifyProviderToken(provider, issuer, jwt, peeked!.header, options);
    if (provider.federatedSourceIds.length === 0) {
      return refusal('not_trusted', provider.federatedProviderIds.length === 0
        ? `provider ${provider.slug} trusts no federated sources or providers`
        : `the JWT is not an access token of a provider of this server, and provider ${provider.slug} trusts no federated sources`);
    }
    try {
      const verified = await this.sources.verify(jwt, provider.federatedSourceIds, this.audiences(provider));
      return { kind: 'federated_source', source: verified.source, claims: verified.claims, header: verified.header };
    } catch (error) {
      if (!(error instanceof AssertionRejected)) throw error;
      return { kind: 'refused', reason: error.reason, detail: error.detail, source: error.sourceSlug, federatedProvider: null };
    }
  }

  /** RFC 7523 §3: the authorization server's issuer or its token endpoint (the path answers with and without its slash). */
  private audiences(provider: Provider): string[] {
    const endpoint = this.deps.tokenEndpoint;
    return [this.deps.providers.issuer(provider), endpoint, endpoint.replace(/\/$/, '')];
  }

  private async verifyProviderToken(
    provider: Provider, issuer: Provider, jwt: string, header: ProtectedHeaderParameters, options: IncomingJwtOptions,
  ): Promise<VerifiedIncomingJwt | JwtRefusal> {
    const refuse = (reason: JwtRefusalReason, detail: string) => ({ ...refusal(reason, detail), federatedProvider: issuer.slug });
    const own = options.acceptOwnAccessTokens === true && issuer.id === provider.id;
    if (!own && !provider.federatedProviderIds.includes(issuer.id)) {
      return refuse('provider_not_trusted', `the JWT was issued by provider ${issuer.slug}, which is not a federated provider of ${provider.slug}`);
    }
    if (normalizeTyp(header.typ) !== 'at+jwt') {
      return refuse('not_an_access_token', `typ ${JSON.stringify(header.typ ?? null)}: an id_token or another JWT of provider ${issuer.slug}, not an access token (at+jwt)`);
    }
    const verified = await this.deps.tokens.verifyAccessToken(jwt);
    if (!verified || verified.provider.id !== issuer.id) {
      return refuse('inactive_token', `not a live access token of provider ${issuer.slug}: ${await this.explainInactive(jwt)}`);
    }
    // RFC 9449: a bound token is good only with a proof by its key at a resource; as an assertion
    // it would turn a stolen bound token into a fresh token without the key.
    if (verified.claims.cnf) {
      return refuse('dpop_bound', `a DPoP-bound access token of provider ${issuer.slug} (cnf.jkt ${verified.claims.cnf.jkt}) is not accepted as an assertion`);
    }
    return { kind: 'federated_provider', issuer, claims: verified.claims };
  }

  private async explainInactive(jwt: string): Promise<string> {
    const payload = peekJwt(jwt)?.payload;
    if (!payload) return 'malformed';
    if (typeof payload.exp === 'number' && payload.exp <= Date.now() / 1000) return `expired at ${new Date(payload.exp * 1000).toISOString()}`;
    if (typeof payload.jti === 'string' && (await this.deps.tokens.isRevoked(payload.jti))) return `revoked (jti ${payload.jti})`;
    return 'the signature, type or claims do not verify';
  }

  /** The provider of this server whose issuer `iss` is, if any. */
  private async ourProvider(iss: string): Promise<Provider | null> {
    const match = /\/application\/o\/([a-z0-9-]{1,64})\/$/.exec(iss);
    if (!match) return null;
    const provider = await this.deps.providers.getBySlugCached(match[1]!);
    return provider && this.deps.providers.issuer(provider) === iss ? provider : null;
  }
}

function refusal(reason: JwtRefusalReason, detail: string): JwtRefusal {
  return { kind: 'refused', reason, detail, source: null, federatedProvider: null };
}

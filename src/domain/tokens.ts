/**
 * Access tokens (RFC 9068 JWTs) and ID tokens; refresh tokens are refresh-tokens.ts (`refreshTokens`). Issuing an access token writes
 * nothing: revocation is a denylist of jti until exp, checked when a token is verified. A token
 * dies with what it was issued on (contract v2): its provider, client and user, checked through
 * their short-lived caches on every verification, and the credential it carries in `sid` (an app
 * password, a refresh family: token-bindings.ts), checked on the same denylist read as its jti.
 */
import { randomUUID, type KeyObject } from 'node:crypto';
import { CompactSign, decodeJwt, errors, jwtVerify, type CompactJWSHeaderParameters, type JWTHeaderParameters, type JWTPayload } from 'jose';
import type { Client, Provider, User } from './model.js';
import { isUsable } from './users.js';
import { audClaim } from './audiences.js';
import { credentialSid } from './token-bindings.js';
import { RefreshTokens } from './refresh-tokens.js';
import { ConflictError } from '../store/errors.js';
import type { ActiveSigningKey, SigningKeyService } from './keys.js';
import type { ProviderService } from './providers.js';
import { sha256 } from './secrets.js';
import type { Collections } from '../store/ports.js';
import { inSpan } from '../telemetry/trace.js';

export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  /** The client_id, or the requested audience (RFC 8707): a string for one value, an array for several. */
  aud: string | string[];
  client_id: string;
  scope: string;
  iat: number;
  exp: number;
  jti: string;
  /** The credential the token was issued on (token-bindings.ts), when it has one besides its user and client. */
  sid?: string;
  /** Delegation (RFC 8693 §4.1): the actor, with the actors before it nested inside. */
  act?: Record<string, unknown>;
  /** RFC 9449 §6.1: the token is bound to the DPoP key of this RFC 7638 thumbprint. */
  cnf?: { jkt: string };
}

export interface IssuedAccessToken {
  token: string;
  claims: AccessTokenClaims;
  expiresIn: number;
}

export interface IssueInput {
  provider: Provider;
  client: Pick<Client, 'clientId'>;
  user: User;
  scopes: readonly string[];
  /** The credential the token was issued on expires then; the token must not outlive it. */
  notAfter?: Date | null;
  /** Extra claims (scope mappings). */
  extraClaims?: Record<string, unknown>;
  /** The app password the token was issued on: revoking it revokes the token. */
  appPasswordId?: string | null;
  /** The refresh-token family issued with the token: revoking the family revokes the token. */
  refreshFamilyId?: string | null;
  /** The requested audience (RFC 8707); none: the client_id. */
  audience?: readonly string[] | null;
  /** The actor of a token exchange (RFC 8693 §4.1). */
  act?: Record<string, unknown> | null;
  /** A token exchanged for this one was bound to this credential: this one dies with it too. */
  sid?: string | null;
  /** The DPoP key (RFC 7638 thumbprint) the token is bound to: its cnf.jkt. */
  dpopJkt?: string | null;
}

export interface VerifiedAccessToken {
  claims: AccessTokenClaims;
  provider: Provider;
  /** The client it was issued to and its user, both as they are now (live, and not made again since). */
  client: Client;
  user: User;
}

/** What a token is issued to, read through their services' brief caches. */
export interface TokenHolders {
  clients: { getByClientId(clientId: string): Promise<Client | null> };
  users: { get(id: string): Promise<User | null> };
}

/**
 * Seconds by which two server processes' clocks may differ: a record made on one and a token
 * issued on another just after must not look older than the record.
 */
const CLOCK_SKEW_SECONDS = 2;

/** A record made after the token was issued is another one under the same key (a client or user deleted and made again). */
function madeAfter(record: { createdAt: Date }, iat: number): boolean {
  return Math.floor(record.createdAt.getTime() / 1000) > iat + CLOCK_SKEW_SECONDS;
}

/** Claims a user's granted scopes release (OpenID Connect Core §5.4). */
export function scopeClaims(user: User, scopes: readonly string[]): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  if (scopes.includes('profile')) {
    claims.name = user.name ?? user.username;
    claims.preferred_username = user.username;
  }
  if (scopes.includes('email') && user.email) {
    claims.email = user.email;
    claims.email_verified = user.attributes.email_verified === true;
  }
  return claims;
}

const KEY_RELOAD_INTERVAL_MS = 5_000;
/** Verified access tokens remembered (by SHA-256) until their exp; the oldest go first beyond this. */
const MAX_VERIFIED_TOKENS = 10_000;

interface VerifiedEntry {
  claims: AccessTokenClaims;
  providerId: string;
  /** The key that signed it: a token dies with its key (retired, or past its retirement). */
  kid: string;
  /** Seen on the denylist: a revocation is never undone, so it need not be read again. */
  revoked?: true;
}

/** The protected headers of a key, built once per key (jose encodes them per token). */
const protectedHeaders = new WeakMap<ActiveSigningKey, { accessToken: CompactJWSHeaderParameters; idToken: CompactJWSHeaderParameters }>();
function headersOf(key: ActiveSigningKey): { accessToken: CompactJWSHeaderParameters; idToken: CompactJWSHeaderParameters } {
  let headers = protectedHeaders.get(key);
  if (!headers) {
    headers = { accessToken: { alg: key.alg, kid: key.kid, typ: 'at+jwt' }, idToken: { alg: key.alg, kid: key.kid, typ: 'JWT' } };
    protectedHeaders.set(key, headers);
  }
  return headers;
}

/**
 * A compact JWS (RFC 7515) of the claims, signed by jose (as every JOSE operation here) with the
 * KeyObject imported once; jose turns it into a CryptoKey once and keeps it.
 */
function signCompact(key: KeyObject, header: CompactJWSHeaderParameters, payload: object): Promise<string> {
  return inSpan('jwt sign', { 'jwt.alg': header.alg, ...(header.typ ? { 'jwt.typ': header.typ } : {}) },
    () => new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader(header).sign(key));
}

const RESERVED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'sid', 'client_id', 'scope', 'auth_time', 'acr', 'amr', 'typ', 'azp', 'nonce', 'act', 'may_act', 'cnf']);

export class TokenService {
  private readonly keyReloads = new Map<string, number>();
  /**
   * Access tokens whose signature and claims verified, keyed by the token's SHA-256 (never the
   * token itself), kept until exp: a resource server introspects one token many times. What can
   * change before exp is still checked on every use (live()): the denylist (jti and sid), the
   * provider, the client and the user. Forgotten when the provider's keys change.
   */
  private readonly verified = new Map<string, VerifiedEntry>();
  private lastSweep = 0;
  /** Refresh tokens: issued, spent and revoked with the access tokens of their family. */
  readonly refreshTokens: RefreshTokens;

  constructor(
    private readonly collections: Pick<Collections, 'revokedTokens' | 'refreshTokens'>,
    private readonly keys: SigningKeyService,
    private readonly providers: ProviderService,
    private readonly holders: TokenHolders,
  ) {
    keys.onInvalidate((providerId) => this.forgetVerified(providerId));
    this.refreshTokens = new RefreshTokens(collections);
  }

  async issueAccessToken(input: IssueInput): Promise<IssuedAccessToken> {
    const { provider, client, user, scopes } = input;
    const { key, now, exp, extra } = await this.prepare(input);
    const sid = input.sid ? input.sid : input.appPasswordId ? credentialSid('app_password', input.appPasswordId)
      : input.refreshFamilyId ? credentialSid('refresh_family', input.refreshFamilyId) : undefined;
    const claims: AccessTokenClaims = {
      ...extra,
      iss: this.providers.issuer(provider),
      sub: user.id,
      aud: audClaim(input.audience, client.clientId),
      client_id: client.clientId,
      scope: scopes.join(' '),
      iat: now,
      exp,
      jti: randomUUID(),
      ...(sid ? { sid } : {}),
      ...(input.act ? { act: input.act } : {}),
      ...(input.dpopJkt ? { cnf: { jkt: input.dpopJkt } } : {}),
    };
    const token = await signCompact(key.privateKey, headersOf(key).accessToken, claims);
    return { token, claims, expiresIn: Math.max(0, exp - now) };
  }

  /**
   * This service, but every access token it issues is bound to the DPoP key `jkt` (unless the
   * caller names one). The token endpoint hands it to the grant when the request carried a good
   * proof, so every grant that issues through it is bound without code of its own.
   */
  confirmedBy(jkt: string): TokenService {
    const bound = Object.create(this) as TokenService;
    bound.issueAccessToken = (input) => this.issueAccessToken({ ...input, dpopJkt: input.dpopJkt ?? jkt });
    return bound;
  }

  /** An OpenID Connect ID token for the same grant. */
  async issueIdToken(input: IssueInput & { authTime?: number }): Promise<string> {
    const { provider, client, user } = input;
    const { key, now, exp, extra } = await this.prepare(input);
    const claims = {
      ...extra,
      auth_time: input.authTime ?? now,
      azp: client.clientId,
      iss: this.providers.issuer(provider),
      sub: user.id,
      aud: client.clientId,
      iat: now,
      exp,
    };
    return signCompact(key.privateKey, headersOf(key).idToken, claims);
  }

  /** What both token kinds share: the signing key, the lifetime (capped by notAfter), and the scope and mapping claims. */
  private async prepare(input: IssueInput) {
    const key = await this.keys.activeKey(input.provider.id);
    const now = Math.floor(Date.now() / 1000);
    let exp = now + input.provider.accessTokenLifetimeSeconds;
    if (input.notAfter) exp = Math.min(exp, Math.floor(input.notAfter.getTime() / 1000));
    const extra = scopeClaims(input.user, input.scopes);
    if (input.extraClaims) for (const name of Object.keys(input.extraClaims)) if (!RESERVED_CLAIMS.has(name)) extra[name] = input.extraClaims[name];
    return { key, now, exp, extra };
  }

  /**
   * Verifies an access token of any provider of this server: signature against that provider's
   * keys, typ at+jwt, expiry, the revocation denylist, and that its client and user are still
   * there and usable. Null when it is not a live token of ours.
   */
  async verifyAccessToken(token: string): Promise<VerifiedAccessToken | null> {
    if (token.length > 16_384) return null;
    const digest = sha256(token).toString('base64');
    const known = this.verified.get(digest);
    if (known) return this.recheck(digest, known);
    if (token.split('.').length !== 3) return null;
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(token);
    } catch {
      return null;
    }
    const provider = await this.providerForIssuer(unverified.iss);
    if (!provider) return null;
    let claims: AccessTokenClaims;
    let kid: string;
    try {
      const verified = await this.verifyWithProviderKeys(token, provider);
      claims = verified.payload as AccessTokenClaims;
      kid = verified.kid;
    } catch {
      return null;
    }
    if (typeof claims.jti !== 'string' || typeof claims.exp !== 'number') return null;
    Object.freeze(claims);
    const entry: VerifiedEntry = { claims, providerId: provider.id, kid };
    this.remember(digest, entry);
    return this.live(entry, provider);
  }

  /** A token verified before: what may have changed since is checked again. */
  private async recheck(digest: string, entry: VerifiedEntry): Promise<VerifiedAccessToken | null> {
    const { claims } = entry;
    if (entry.revoked) return null;
    // jose's rules: expired when exp <= now; not yet valid when nbf > now (in whole seconds).
    const now = Math.floor(Date.now() / 1000);
    if (claims.exp <= now) {
      this.verified.delete(digest);
      return null;
    }
    if (typeof claims.nbf === 'number' && claims.nbf > now) return null;
    // The provider may have been deleted (its keys with it) or replaced under the same slug.
    const provider = await this.providerForIssuer(claims.iss);
    if (!provider || provider.id !== entry.providerId) {
      this.verified.delete(digest);
      return null;
    }
    // Its key may have been retired since (on this process the entry is forgotten at once; on
    // others the key set is read again within its cache TTL).
    const key = (await this.keys.verificationKeys(provider.id)).get(entry.kid);
    if (!key || !this.keys.isLive(key)) {
      this.verified.delete(digest);
      return null;
    }
    return this.live(entry, provider);
  }

  /**
   * What the token was issued on, as it is now: not denied (its jti, or the credential in its
   * sid), its client still the one of this provider, its user still usable. The client and user
   * come from their services' caches (2–5 s across processes, at once on this one).
   */
  private async live(entry: VerifiedEntry, provider: Provider): Promise<VerifiedAccessToken | null> {
    const { claims } = entry;
    if (await this.isDenied(claims)) {
      entry.revoked = true;
      return null;
    }
    const client = await this.holders.clients.getByClientId(claims.client_id);
    if (!client || client.providerId !== provider.id || madeAfter(client, claims.iat)) return null;
    const user = await this.holders.users.get(claims.sub);
    if (!user || !isUsable(user) || madeAfter(user, claims.iat)) return null;
    return { claims, provider, client, user };
  }

  /** One denylist read for the jti and, when the token carries one, its sid. */
  private async isDenied(claims: AccessTokenClaims): Promise<boolean> {
    const filter = typeof claims.sid === 'string' ? { id: { $in: [claims.jti, claims.sid] } } : { id: claims.jti };
    return (await this.collections.revokedTokens.findOne(filter)) !== null;
  }

  private remember(digest: string, entry: VerifiedEntry): void {
    if (this.verified.size >= MAX_VERIFIED_TOKENS) {
      // Expired ones first (swept at most once a second, so a full cache costs no scan per insert),
      // then the oldest (Map order is insertion order).
      const now = Math.floor(Date.now() / 1000);
      if (now !== this.lastSweep) {
        this.lastSweep = now;
        for (const [key, value] of this.verified) if (value.claims.exp <= now) this.verified.delete(key);
      }
      if (this.verified.size >= MAX_VERIFIED_TOKENS) this.verified.delete(this.verified.keys().next().value as string);
    }
    this.verified.set(digest, entry);
  }

  private forgetVerified(providerId: string): void {
    for (const [key, value] of this.verified) if (value.providerId === providerId) this.verified.delete(key);
  }

  /**
   * Keys are cached per provider and picked by kid; a kid we have not seen may be a key another
   * process just made (algorithm change), so an unknown kid reloads the provider's keys, at most
   * once per 5 s.
   */
  private async verifyWithProviderKeys(token: string, provider: Provider): Promise<{ payload: JWTPayload; kid: string }> {
    const options = {
      issuer: this.providers.issuer(provider), typ: 'at+jwt', algorithms: ['RS256', 'ES256', 'EdDSA'],
      requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id'],
    };
    const verify = async () => {
      const byKid = await this.keys.verificationKeys(provider.id);
      const keyFor = (header: JWTHeaderParameters): KeyObject => {
        const found = typeof header.kid === 'string' ? byKid.get(header.kid) : undefined;
        if (!found) throw new errors.JWKSNoMatchingKey();
        if (!this.keys.isLive(found)) throw new errors.JWSSignatureVerificationFailed('the key has retired');
        // A key is only ever used with the algorithm it was made for.
        if (found.alg !== header.alg) throw new errors.JOSEAlgNotAllowed('the key is not for this algorithm');
        return found.key;
      };
      return inSpan('jwt verify', { 'jwt.typ': 'at+jwt' }, async () => {
        const { payload, protectedHeader } = await jwtVerify(token, keyFor, options);
        return { payload, kid: protectedHeader.kid! };
      });
    };
    try {
      return await verify();
    } catch (error) {
      const last = this.keyReloads.get(provider.id) ?? 0;
      if (!(error instanceof errors.JWKSNoMatchingKey) || Date.now() - last < KEY_RELOAD_INTERVAL_MS) throw error;
      this.keyReloads.set(provider.id, Date.now());
      this.keys.invalidate(provider.id);
      return verify();
    }
  }

  async isRevoked(jti: string): Promise<boolean> {
    return (await this.collections.revokedTokens.findOne({ id: jti })) !== null;
  }

  /** Adds the token's jti to the denylist until the token would expire anyway. A store failure throws: nothing was revoked. */
  async revokeAccessToken(claims: Pick<AccessTokenClaims, 'jti' | 'exp'>): Promise<void> {
    try {
      await this.collections.revokedTokens.insert({ id: claims.jti, expiresAt: new Date(claims.exp * 1000), createdAt: new Date() });
    } catch (error) {
      // Already revoked: revocation is idempotent.
      if (!(error instanceof ConflictError)) throw error;
    }
  }

  /** The admin API changed the provider (its keys may have changed): forget what was verified with them. */
  invalidateProviderKeys(providerId: string): void {
    this.keys.invalidate(providerId);
  }

  private async providerForIssuer(iss: unknown): Promise<Provider | null> {
    if (typeof iss !== 'string') return null;
    const match = /\/application\/o\/([a-z0-9-]{1,64})\/$/.exec(iss);
    if (!match) return null;
    const provider = await this.providers.getBySlugCached(match[1]!);
    return provider && this.providers.issuer(provider) === iss ? provider : null;
  }
}

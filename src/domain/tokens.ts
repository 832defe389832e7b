/**
 * Access tokens (RFC 9068 JWTs), ID tokens and refresh tokens. Issuing an access token writes
 * nothing: revocation is a denylist of jti until exp, checked when a token is verified.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, createLocalJWKSet, decodeJwt, errors, jwtVerify, type JWTPayload } from 'jose';
import type { Client, Provider, RefreshToken, User } from './model.js';
import type { SigningKeyService } from './keys.js';
import type { ProviderService } from './providers.js';
import { generateSecret, sha256Hex } from './secrets.js';
import { TtlCache } from './cache.js';
import type { Collections } from '../store/ports.js';

export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string;
  client_id: string;
  scope: string;
  iat: number;
  exp: number;
  jti: string;
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
}

export interface VerifiedAccessToken {
  claims: AccessTokenClaims;
  provider: Provider;
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

const RESERVED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'client_id', 'scope', 'auth_time', 'acr', 'amr', 'typ', 'azp', 'nonce']);

export class TokenService {
  private readonly jwksByProvider = new TtlCache<ReturnType<typeof createLocalJWKSet>>(30_000, 1_000);
  private readonly keyReloads = new Map<string, number>();

  constructor(
    private readonly collections: Pick<Collections, 'revokedTokens' | 'refreshTokens'>,
    private readonly keys: SigningKeyService,
    private readonly providers: ProviderService,
  ) {}

  async issueAccessToken(input: IssueInput): Promise<IssuedAccessToken> {
    const { provider, client, user, scopes } = input;
    const { key, now, exp, extra } = await this.prepare(input);
    const claims: AccessTokenClaims = {
      ...extra,
      iss: this.providers.issuer(provider),
      sub: user.id,
      aud: client.clientId,
      client_id: client.clientId,
      scope: scopes.join(' '),
      iat: now,
      exp,
      jti: randomUUID(),
    };
    const token = await new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' }).sign(key.privateKey);
    return { token, claims, expiresIn: Math.max(0, exp - now) };
  }

  /** An OpenID Connect ID token for the same grant. */
  async issueIdToken(input: IssueInput & { authTime?: number }): Promise<string> {
    const { provider, client, user } = input;
    const { key, now, exp, extra } = await this.prepare(input);
    return new SignJWT({ ...extra, auth_time: input.authTime ?? now, azp: client.clientId })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.providers.issuer(provider))
      .setSubject(user.id)
      .setAudience(client.clientId)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .sign(key.privateKey);
  }

  /** What both token kinds share: the signing key, the lifetime (capped by notAfter), and the scope and mapping claims. */
  private async prepare(input: IssueInput) {
    const key = await this.keys.activeKey(input.provider.id);
    const now = Math.floor(Date.now() / 1000);
    let exp = now + input.provider.accessTokenLifetimeSeconds;
    if (input.notAfter) exp = Math.min(exp, Math.floor(input.notAfter.getTime() / 1000));
    const extra: Record<string, unknown> = { ...scopeClaims(input.user, input.scopes) };
    for (const [name, value] of Object.entries(input.extraClaims ?? {})) if (!RESERVED_CLAIMS.has(name)) extra[name] = value;
    return { key, now, exp, extra };
  }

  /**
   * Verifies an access token of any provider of this server: signature against that provider's
   * keys, typ at+jwt, expiry, and the revocation denylist. Null when it is not a live token of ours.
   */
  async verifyAccessToken(token: string): Promise<VerifiedAccessToken | null> {
    if (token.length > 16_384 || token.split('.').length !== 3) return null;
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(token);
    } catch {
      return null;
    }
    const provider = await this.providerForIssuer(unverified.iss);
    if (!provider) return null;
    try {
      const payload = await this.verifyWithProviderKeys(token, provider);
      const claims = payload as AccessTokenClaims;
      if (await this.isRevoked(claims.jti)) return null;
      return { claims, provider };
    } catch {
      return null;
    }
  }

  /**
   * Keys are cached per provider; a kid we have not seen may be a key another process just made
   * (algorithm change), so an unknown kid reloads the provider's keys, at most once per 5 s.
   */
  private async verifyWithProviderKeys(token: string, provider: Provider): Promise<JWTPayload> {
    const options = {
      issuer: this.providers.issuer(provider), typ: 'at+jwt', algorithms: ['RS256', 'ES256', 'EdDSA'],
      requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id'],
    };
    const load = async () => createLocalJWKSet(await this.keys.publicJwks(provider.id));
    try {
      return (await jwtVerify(token, await this.jwksByProvider.getOrLoad(provider.id, load), options)).payload;
    } catch (error) {
      const last = this.keyReloads.get(provider.id) ?? 0;
      if (!(error instanceof errors.JWKSNoMatchingKey) || Date.now() - last < KEY_RELOAD_INTERVAL_MS) throw error;
      this.keyReloads.set(provider.id, Date.now());
      this.keys.invalidate(provider.id);
      this.jwksByProvider.delete(provider.id);
      return (await jwtVerify(token, await this.jwksByProvider.getOrLoad(provider.id, load), options)).payload;
    }
  }

  async isRevoked(jti: string): Promise<boolean> {
    return (await this.collections.revokedTokens.findOne({ id: jti })) !== null;
  }

  /** Adds the token's jti to the denylist until the token would expire anyway. */
  async revokeAccessToken(claims: Pick<AccessTokenClaims, 'jti' | 'exp'>): Promise<void> {
    try {
      await this.collections.revokedTokens.insert({ id: claims.jti, expiresAt: new Date(claims.exp * 1000), createdAt: new Date() });
    } catch {
      // Already revoked: revocation is idempotent.
    }
  }

  async issueRefreshToken(input: {
    provider: Provider; clientId: string; userId: string; scopes: readonly string[]; familyId?: string; notAfter?: Date | null;
  }): Promise<{ token: string; record: RefreshToken }> {
    const token = generateSecret();
    const now = new Date();
    let expiresAt = new Date(now.getTime() + input.provider.refreshTokenLifetimeSeconds * 1000);
    if (input.notAfter && input.notAfter < expiresAt) expiresAt = input.notAfter;
    const record: RefreshToken = {
      id: randomUUID(),
      tokenHash: sha256Hex(token),
      familyId: input.familyId ?? randomUUID(),
      clientId: input.clientId,
      providerId: input.provider.id,
      userId: input.userId,
      scopes: [...input.scopes],
      usedAt: null,
      revokedAt: null,
      expiresAt,
      createdAt: now,
    };
    await this.collections.refreshTokens.insert(record);
    return { token, record };
  }

  findRefreshToken(token: string): Promise<RefreshToken | null> {
    return this.collections.refreshTokens.findOne({ tokenHash: sha256Hex(token) });
  }

  invalidateProviderKeys(providerId: string): void {
    this.jwksByProvider.delete(providerId);
  }

  private async providerForIssuer(iss: unknown): Promise<Provider | null> {
    if (typeof iss !== 'string') return null;
    const match = /\/application\/o\/([a-z0-9-]{1,64})\/$/.exec(iss);
    if (!match) return null;
    const provider = await this.providers.getBySlugCached(match[1]!);
    return provider && this.providers.issuer(provider) === iss ? provider : null;
  }
}

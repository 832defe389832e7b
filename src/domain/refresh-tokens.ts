/**
 * Refresh tokens (RFC 6749 §6), stored by SHA-256 and rotated: issuing, finding, spending (one
 * conditional update, so two racing uses cannot both win) and revoking a family with every access
 * token issued with it.
 */
import { randomUUID } from 'node:crypto';
import type { Provider, RefreshToken } from './model.js';
import { credentialSid, denyTokensOf } from './token-bindings.js';
import { RefreshTokenRepository } from '../store/repositories.js';
import { generateSecret, sha256Hex } from './secrets.js';
import type { Collections } from '../store/ports.js';

export class RefreshTokens {
  private readonly families: RefreshTokenRepository;

  constructor(private readonly collections: Pick<Collections, 'revokedTokens' | 'refreshTokens'>) {
    this.families = new RefreshTokenRepository(collections);
  }

  async issue(input: {
    provider: Provider; clientId: string; userId: string; scopes: readonly string[]; familyId?: string; notAfter?: Date | null;
    audience?: readonly string[] | null;
    /** RFC 9449 §5: a public client's refresh token is bound to its DPoP key. */
    dpopJkt?: string | null;
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
      ...(input.audience && input.audience.length > 0 ? { audience: [...input.audience] } : {}),
      ...(input.dpopJkt ? { dpopJkt: input.dpopJkt } : {}),
      usedAt: null,
      revokedAt: null,
      expiresAt,
      createdAt: now,
    };
    await this.collections.refreshTokens.insert(record);
    return { token, record };
  }

  find(token: string): Promise<RefreshToken | null> {
    return this.collections.refreshTokens.findOne({ tokenHash: sha256Hex(token) });
  }

  /** Spends a refresh token, exactly once; null when it was already spent, revoked or expired. */
  spend(record: Pick<RefreshToken, 'tokenHash'>, now: Date): Promise<RefreshToken | null> {
    return this.families.spend(record.tokenHash, now);
  }

  /**
   * Revokes a refresh-token family and every access token issued with it: the denial first, so
   * that a failure between the two writes leaves nothing live that was meant to die.
   */
  async revokeFamily(familyId: string, now = new Date()): Promise<number> {
    await denyTokensOf(this.collections, credentialSid('refresh_family', familyId), now);
    return this.families.revokeFamily(familyId, now);
  }
}

/**
 * grant_type=refresh_token (RFC 6749 §6) with rotation: each use spends the token (one conditional
 * update, so two racing uses cannot both win) and returns a new one of the same family. Presenting
 * a spent token again means it leaked: the whole family is revoked (RFC 9700 §4.14.2).
 * Scope may only narrow.
 */
import { parseScopeParameter, permittedScopes } from '../../domain/scopes.js';
import { sha256Hex } from '../../domain/secrets.js';
import { isUsable } from '../../domain/users.js';
import { OAuthError, invalidGrant } from '../errors.js';
import type { Grant } from './grant.js';
import { issueUserTokens } from './user-tokens.js';

export const refreshTokenGrant: Grant = {
  grantType: 'refresh_token',
  clientGrant: 'REFRESH_TOKEN',
  requireClientSecret: true,
  async handle(services, { params, requestId, client: { client, provider } }) {
    const presented = params.get('refresh_token');
    if (!presented) throw new OAuthError('invalid_request', 'refresh_token is required');
    const scopeParam = params.get('scope');
    const asked = scopeParam === undefined ? null : parseScopeParameter(scopeParam);
    if (scopeParam !== undefined && asked === null) throw new OAuthError('invalid_scope', 'the scope parameter is malformed');

    const record = presented.length <= 512 ? await services.tokens.findRefreshToken(presented) : null;
    if (!record) throw invalidGrant('the refresh token is invalid', 'unknown refresh token');
    // Another client's token is not spent: the legitimate holder keeps it.
    if (record.clientId !== client.clientId) throw invalidGrant('the refresh token is invalid', `refresh token of client ${record.clientId}`);
    if (asked && asked.some((s) => !record.scopes.includes(s))) {
      throw new OAuthError('invalid_scope', 'a refresh may only narrow the scope of the original grant');
    }

    const now = new Date();
    const spent = await services.store.refreshTokenRepository.spend(sha256Hex(presented), now);
    if (!spent) {
      const current = await services.tokens.findRefreshToken(presented);
      if (current && current.usedAt !== null && current.revokedAt === null) {
        const revoked = await services.store.refreshTokenRepository.revokeFamily(current.familyId, now);
        services.logger.warn({ requestId, clientId: client.clientId, familyId: current.familyId, revoked }, 'refresh token reused: family revoked');
        throw invalidGrant('the refresh token is invalid', 'refresh token reused; its family is revoked');
      }
      throw invalidGrant('the refresh token is invalid', current?.revokedAt ? 'refresh token revoked' : 'refresh token expired or already used');
    }

    const user = await services.users.get(spent.userId);
    if (!user || !isUsable(user)) {
      await services.store.refreshTokenRepository.revokeFamily(spent.familyId, now);
      throw invalidGrant('the refresh token is invalid', 'the user is gone or inactive');
    }
    // Scopes the admin has since taken from the client are not renewed.
    const permitted = permittedScopes(client.allowedScopes);
    const scopes = (asked ?? spent.scopes).filter((s) => permitted.includes(s));
    return issueUserTokens(services, {
      provider, client, user, scopes, requestId, grant: 'refresh_token', refreshFamilyId: spent.familyId,
    });
  },
};

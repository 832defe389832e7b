/**
 * grant_type=refresh_token (RFC 6749 §6) with rotation: each use spends the token (one conditional
 * update, so two racing uses cannot both win) and returns a new one of the same family. Presenting
 * a spent token again means it leaked: the whole family is revoked (RFC 9700 §4.14.2).
 * Scope may only narrow. Bound policies decide before the token is spent (invalid_grant).
 */
import type { Services } from '../../domain/services.js';
import { parseScopeParameter, permittedScopes } from '../../domain/scopes.js';
import { isUsable } from '../../domain/users.js';
import { OAuthError, invalidGrant } from '../errors.js';
import { requireBoundKey, type Grant } from './grant.js';
import { authorizeUserTokens, issueUserTokens } from './user-tokens.js';
import { narrowed } from '../audience.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'events' | 'logger' | 'policies' | 'tokens' | 'users'>;

export const refreshTokenGrant: Grant<ServicesUsed> = {
  grantType: 'refresh_token',
  clientGrant: 'REFRESH_TOKEN',
  requireClientSecret: true,
  async handle(services, { params, requestId, client: { client, provider }, audience: requested, dpop }) {
    const presented = params.get('refresh_token');
    if (!presented) throw new OAuthError('invalid_request', 'refresh_token is required');
    const scopeParam = params.get('scope');
    const asked = scopeParam === undefined ? null : parseScopeParameter(scopeParam);
    if (scopeParam !== undefined && asked === null) throw new OAuthError('invalid_scope', 'the scope parameter is malformed');

    const record = presented.length <= 512 ? await services.tokens.refreshTokens.find(presented) : null;
    if (!record) throw invalidGrant('the refresh token is invalid', 'unknown refresh token');
    // Another client's token is not spent: the legitimate holder keeps it.
    if (record.clientId !== client.clientId) throw invalidGrant('the refresh token is invalid', `refresh token of client ${record.clientId}`);
    const now = new Date();
    if (record.usedAt !== null) return reused(record.familyId);
    if (record.revokedAt !== null) throw invalidGrant('the refresh token is invalid', 'refresh token revoked');
    if (record.expiresAt <= now) throw invalidGrant('the refresh token is invalid', 'refresh token expired');
    // RFC 9449 §5: a bound refresh token is not spent without a proof by its key (a stolen one is useless alone).
    requireBoundKey(record.dpopJkt, dpop, 'this refresh token is bound to a DPoP key: send a proof signed by it');
    if (asked && asked.some((s) => !record.scopes.includes(s))) {
      throw new OAuthError('invalid_scope', 'a refresh may only narrow the scope of the original grant');
    }
    const user = await services.users.get(record.userId);
    if (!user || !isUsable(user)) {
      await services.tokens.refreshTokens.revokeFamily(record.familyId, now);
      throw invalidGrant('the refresh token is invalid', 'the user is gone or inactive');
    }
    // Scopes the admin has since taken from the client are not renewed.
    const permitted = permittedScopes(client.allowedScopes);
    const scopes = (asked ?? record.scopes).filter((s) => permitted.includes(s));
    const audience = narrowed(requested, record.audience ?? [], client);
    // Policies decide before the token is spent, so a refusal does not cost the user the token.
    const authorized = await authorizeUserTokens(services, { provider, client, user, scopes, requestId, grant: 'refresh_token', audience }, 'invalid_grant');

    // The one conditional update that decides which of several racing uses wins.
    const spent = await services.tokens.refreshTokens.spend(record, now);
    if (!spent) return reused(record.familyId);
    return issueUserTokens(services, { ...authorized, refreshFamilyId: spent.familyId });

    async function reused(familyId: string): Promise<never> {
      const revoked = await services.tokens.refreshTokens.revokeFamily(familyId, now);
      services.logger.warn({ requestId, clientId: client.clientId, familyId, revoked }, 'refresh token reused: family revoked');
      throw invalidGrant('the refresh token is invalid', 'refresh token reused; its family is revoked');
    }
  },
};

/**
 * POST /application/o/revoke/ (RFC 7009). The caller authenticates as the client the token was
 * issued to (RFC 7009 §2.1; contract v2). An access token's jti goes on the denylist until its
 * exp; a refresh token revokes its whole family and the access tokens issued with it. Unknown,
 * already revoked, expired, other clients' and other providers' tokens answer 200 alike (§2.2):
 * the answer says nothing about tokens the caller may not see. A store failure is 503
 * temporarily_unavailable, never a 200: the caller must know the token may still be live.
 */
import type { Services } from '../domain/services.js';
import { oauthEndpoint } from './endpoint.js';
import { OAuthError } from './errors.js';
import { authenticatedTokenRequest, findLiveToken, type FoundToken } from './introspection.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'clients' | 'events' | 'logger' | 'providers' | 'tokens' | 'users'>;

export function revocationEndpoint(services: ServicesUsed) {
  return oauthEndpoint(async (ctx, { body, requestId }) => {
    const { client, token, hint } = await authenticatedTokenRequest(services, ctx.get('authorization') || undefined, body);
    let found: FoundToken | null = await findLiveToken(services, client.provider, token, hint);
    if (!found && token.split('.').length !== 3) {
      // A spent refresh token still names its family: revoking it ends the grant too.
      const record = await services.tokens.refreshTokens.find(token);
      if (record && record.providerId === client.provider.id && record.revokedAt === null) found = { kind: 'refresh_token', record };
    }
    // Only the client the token was issued to may revoke it; another client's token is left alone.
    const issuedTo = found?.kind === 'access_token' ? found.verified.claims.client_id : found?.record.clientId;
    if (issuedTo !== client.client.clientId) found = null;
    try {
      if (found?.kind === 'access_token') {
        await services.tokens.revokeAccessToken(found.verified.claims);
      } else if (found?.kind === 'refresh_token') {
        await services.tokens.refreshTokens.revokeFamily(found.record.familyId);
      }
    } catch (error) {
      // RFC 7009 §2.2.1: on a 503 the client must assume the token still exists, and may retry.
      services.logger.error({ err: error, requestId }, 'revocation failed: the store did not take the write');
      throw new OAuthError('temporarily_unavailable', 'the token could not be revoked now and may still be active; retry shortly');
    }
    if (found) {
      services.events.record({
        action: 'TOKEN_REVOKED',
        requestId,
        clientId: client.client.clientId,
        context: {
          tokenType: found.kind,
          providerId: client.provider.id,
          ...(found.kind === 'access_token'
            ? { jti: found.verified.claims.jti, tokenClientId: found.verified.claims.client_id, sub: found.verified.claims.sub }
            : { familyId: found.record.familyId, tokenClientId: found.record.clientId, sub: found.record.userId }),
        },
      });
    }
    ctx.status = 200;
    ctx.body = '';
  });
}

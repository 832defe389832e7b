/**
 * POST /application/o/revoke/ (RFC 7009). The caller authenticates as a client of the token's
 * provider. An access token's jti goes on the denylist until its exp; a refresh token revokes its
 * whole family. Unknown, already revoked, expired and other providers' tokens answer 200 alike
 * (RFC 7009 §2.2): the answer says nothing about tokens the caller may not see.
 */
import type { Services } from '../domain/services.js';
import { oauthEndpoint } from './endpoint.js';
import { authenticatedTokenRequest, findLiveToken, type FoundToken } from './introspection.js';

export function revocationEndpoint(services: Services) {
  return oauthEndpoint(async (ctx, { body, requestId }) => {
    const { client, token, hint } = await authenticatedTokenRequest(services, ctx.get('authorization') || undefined, body);
    let found: FoundToken | null = await findLiveToken(services, client.provider, token, hint);
    if (!found && token.split('.').length !== 3) {
      // A spent refresh token still names its family: revoking it ends the grant too.
      const record = await services.tokens.findRefreshToken(token);
      if (record && record.providerId === client.provider.id && record.revokedAt === null) found = { kind: 'refresh_token', record };
    }
    if (found?.kind === 'access_token') {
      await services.tokens.revokeAccessToken(found.verified.claims);
    } else if (found?.kind === 'refresh_token') {
      await services.store.refreshTokenRepository.revokeFamily(found.record.familyId, new Date());
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

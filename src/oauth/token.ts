/**
 * POST /application/o/token/: parse → authenticate the client → dispatch to the grant's module.
 */
import type { Services } from '../domain/services.js';
import { OAuthError } from './errors.js';
import { oauthEndpoint } from './endpoint.js';
import { authenticateClient, extractClientCredentials, requireGrant, type AuthenticatedClient, type PresentedClient } from './client-auth.js';
import type { Grant } from './grants/grant.js';
import { GRANTS } from './grants/index.js';
import { TOKEN_EXCHANGE_GRANT_TYPE } from './grants/token-exchange.js';
import { audienceOf } from './audience.js';

export function tokenEndpoint(services: Services, grants: readonly Grant[] = GRANTS) {
  const byType = new Map(grants.map((g) => [g.grantType, g]));
  return oauthEndpoint(async (ctx, { body, requestId }) => {
    if (ctx.method !== 'POST') throw new OAuthError('invalid_request', 'the token endpoint takes POST');
    const grantType = body.get('grant_type');
    if (!grantType) throw new OAuthError('invalid_request', 'grant_type is required');
    const grant = byType.get(grantType);
    if (!grant) throw new OAuthError('unsupported_grant_type', `grant_type '${grantType}' is not supported`);
    const authorization = ctx.get('authorization') || undefined;
    let presented: PresentedClient | undefined;
    let client: AuthenticatedClient;
    let audience: string[];
    try {
      presented = extractClientCredentials(authorization, body);
      client = await authenticateClient(services, presented, { requireSecret: grant.requireClientSecret });
      requireGrant(client.client, grant.clientGrant);
      audience = audienceOf(body, client.client, grantType === TOKEN_EXCHANGE_GRANT_TYPE);
    } catch (error) {
      if (grant.failureAction && error instanceof OAuthError) {
        services.events.record({
          action: grant.failureAction,
          requestId,
          clientId: presented?.clientIds[0] ?? body.get('client_id') ?? null,
          context: { grantType, rule: 'none', stage: error.code === 'invalid_target' ? 'audience' : 'client_authentication', error: error.code, reason: error.detail ?? error.description },
        });
      }
      throw error;
    }
    const response = await grant.handle(services, { params: body, requestId, client, presented, authorization, audience });
    ctx.status = 200;
    ctx.body = response;
  });
}

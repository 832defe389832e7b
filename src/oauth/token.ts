/**
 * POST /application/o/token/: parse → authenticate the client → dispatch to the grant's module.
 */
import type { Context } from 'koa';
import type { Services } from '../domain/services.js';
import { MAX_CLIENT_ID_LENGTH } from '../domain/clients.js';
import { UnknownClientEventLimiter } from '../domain/rate-limits.js';
import { OAuthError } from './errors.js';
import { oauthEndpoint } from './endpoint.js';
import { authenticateClient, extractClientCredentials, requireGrant, type AuthenticatedClient, type PresentedClient } from './client-auth.js';
import type { Grant } from './grants/grant.js';
import { GRANTS } from './grants/index.js';
import { TOKEN_EXCHANGE_GRANT_TYPE } from './grants/token-exchange.js';
import { audienceOf } from './audience.js';

/**
 * The event of a request refused before its client was authenticated. A request naming no known
 * client is anyone's to send: its client_id is cut to a client_id's length and its events are
 * limited per address.
 */
async function recordClientAuthenticationFailure(
  services: Services, unknownClientEvents: UnknownClientEventLimiter, ctx: Context, event: { action: string; requestId: string; clientId: string | null; context: Record<string, unknown> },
): Promise<void> {
  const clientId = event.clientId === null ? null : event.clientId.slice(0, MAX_CLIENT_ID_LENGTH);
  const known = clientId !== null && (await services.clients.getByClientId(clientId)) !== null;
  if (!known && !(await unknownClientEvents.allows(ctx.state.clientAddress as string))) return;
  services.events.record({ ...event, clientId });
}

export function tokenEndpoint(services: Services, grants: readonly Grant[] = GRANTS) {
  const byType = new Map(grants.map((g) => [g.grantType, g]));
  const unknownClientEvents = new UnknownClientEventLimiter();
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
        await recordClientAuthenticationFailure(services, unknownClientEvents, ctx, {
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

/**
 * POST /application/o/token/: parse → authenticate the client → dispatch to the grant's module.
 */
import type { Middleware } from 'koa';
import type { Services } from '../domain/services.js';
import { OAuthError } from './errors.js';
import { oauthEndpoint } from './endpoint.js';
import { authenticateClient, extractClientCredentials, requireGrant, type AuthenticatedClient, type PresentedClient } from './client-auth.js';
import type { Grant } from './grants/grant.js';
import { GRANTS } from './grants/index.js';
import { countTokenRequest, deviceFlowOutcomes } from '../telemetry/metrics.js';

const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';

export function tokenEndpoint(services: Services, grants: readonly Grant[] = GRANTS): Middleware {
  const byType = new Map(grants.map((g) => [g.grantType, g]));
  const endpoint = oauthEndpoint(async (ctx, { body, requestId }) => {
    if (ctx.method !== 'POST') throw new OAuthError('invalid_request', 'the token endpoint takes POST');
    const grantType = body.get('grant_type');
    if (!grantType) throw new OAuthError('invalid_request', 'grant_type is required');
    const grant = byType.get(grantType);
    if (!grant) throw new OAuthError('unsupported_grant_type', `grant_type '${grantType}' is not supported`);
    // Names the request's span; only a grant this server knows (the caller chooses grant_type).
    ctx.state.grantType = grant.grantType;
    const authorization = ctx.get('authorization') || undefined;
    let presented: PresentedClient | undefined;
    let client: AuthenticatedClient;
    try {
      presented = extractClientCredentials(authorization, body);
      client = await authenticateClient(services, presented, { requireSecret: grant.requireClientSecret });
      requireGrant(client.client, grant.clientGrant);
    } catch (error) {
      if (grant.failureAction && error instanceof OAuthError) {
        services.events.record({
          action: grant.failureAction,
          requestId,
          clientId: presented?.clientIds[0] ?? body.get('client_id') ?? null,
          context: { grantType, rule: 'none', stage: 'client_authentication', error: error.code, reason: error.detail ?? error.description },
        });
      }
      throw error;
    }
    const response = await grant.handle(services, { params: body, requestId, client, presented, authorization });
    ctx.status = 200;
    ctx.body = response;
  });
  return async (ctx, next) => {
    try {
      await endpoint(ctx, next);
      countOutcome(ctx.state.grantType as string | undefined, 'issued');
    } catch (error) {
      countOutcome(ctx.state.grantType as string | undefined, error instanceof OAuthError ? error.code : 'server_error');
      throw error;
    }
  };
}

function countOutcome(grantType: string | undefined, outcome: string): void {
  countTokenRequest(grantType, outcome);
  if (grantType !== DEVICE_CODE) return;
  if (outcome === 'issued') deviceFlowOutcomes.inc({ outcome: 'exchanged' });
  else if (outcome === 'expired_token') deviceFlowOutcomes.inc({ outcome: 'expired' });
}

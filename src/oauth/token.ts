/**
 * POST /application/o/token/: parse → authenticate the client → check the DPoP proof, if any,
 * once for every grant → dispatch to the grant's module.
 */
import type { Context, Middleware } from 'koa';
import type { Services } from '../domain/services.js';
import { MAX_CLIENT_ID_LENGTH } from '../domain/clients.js';
import { UnknownClientEventLimiter } from '../domain/rate-limits.js';
import { DpopError, type VerifiedProof } from '../domain/dpop.js';
import { dpopProofHeader } from './credentials.js';
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
import { countTokenRequest, deviceFlowOutcomes } from '../telemetry/metrics.js';

const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';

export function tokenEndpoint(services: Services, grants: readonly Grant[] = GRANTS): Middleware {
  const byType = new Map(grants.map((g) => [g.grantType, g]));
  const unknownClientEvents = new UnknownClientEventLimiter();
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
    let audience: string[];
    let dpop: VerifiedProof | null;
    let stage = 'client_authentication';
    try {
      presented = extractClientCredentials(authorization, body);
      client = await authenticateClient(services, presented, { requireSecret: grant.requireClientSecret });
      requireGrant(client.client, grant.clientGrant);
      stage = 'audience';
      audience = audienceOf(body, client.client, grantType === TOKEN_EXCHANGE_GRANT_TYPE);
      stage = 'dpop';
      dpop = await tokenRequestProof(services, ctx, client);
    } catch (error) {
      if (grant.failureAction && error instanceof OAuthError) {
        await recordClientAuthenticationFailure(services, unknownClientEvents, ctx, {
          action: grant.failureAction,
          requestId,
          clientId: presented?.clientIds[0] ?? body.get('client_id') ?? null,
          context: { grantType, rule: 'none', stage, error: error.code, reason: error.detail ?? error.description },
        });
      }
      throw error;
    }
    // With a proof, every access token the grant issues is bound to its key (cnf.jkt).
    const grantServices = dpop ? { ...services, tokens: services.tokens.confirmedBy(dpop.jkt) } : services;
    const response = await grant.handle(grantServices, { params: body, requestId, client, audience, dpop });
    if (client.provider.dpopNonce) ctx.set('DPoP-Nonce', services.dpop.currentNonce());
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

/**
 * The request's DPoP proof, verified for this endpoint's URL (as the client sees it, from
 * TESSERA_PUBLIC_URL) and the provider's nonce setting; null without one, refused for a client
 * that requires DPoP. A bad proof is invalid_dpop_proof, a missing nonce use_dpop_nonce (RFC 9449 §8).
 */
async function tokenRequestProof(services: Services, ctx: Context, { client, provider }: AuthenticatedClient): Promise<VerifiedProof | null> {
  try {
    const header = dpopProofHeader(ctx.req);
    if (header === undefined) {
      if (client.requireDpop) throw new DpopError('invalid_dpop_proof', 'this client gets tokens only with a DPoP proof');
      return null;
    }
    return await services.dpop.verify(header, { method: ctx.method, url: `${services.config.publicUrl}${ctx.path}`, nonceRequired: provider.dpopNonce === true });
  } catch (error) {
    if (!(error instanceof DpopError)) throw error;
    const refusal = new OAuthError(error.code, error.description);
    throw error.nonce ? refusal.withHeader('DPoP-Nonce', error.nonce) : refusal;
  }
}

/**
 * grant_type=urn:ietf:params:oauth:grant-type:token-exchange (RFC 8693): parse → the client
 * (confidential ones prove their secret) → verify the subject and actor tokens
 * (domain/token-exchange.ts, through the one verifier) → scope and lifetime only narrow → the
 * bound policies (they see request.context.subject_token and actor_token; an actor that the
 * subject's may_act does not name needs a policy bound to the client) → issue an access token,
 * never a refresh token. Each exchange is a TOKEN_EXCHANGED event, each refusal LOGIN_FAILED.
 */
import type { Services } from '../../domain/services.js';
import { permittedScopes } from '../../domain/scopes.js';
import { TOKEN_TYPE, verifyExchange, type VerifiedExchange } from '../../domain/token-exchange.js';
import { OAuthError } from '../errors.js';
import type { Grant } from './grant.js';
import { grantedScopes, issueForIdentity, recordingFailures, type Attempt } from './machine-identity.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'appPasswords' | 'events' | 'generatedAccounts' | 'jwtVerifier' | 'policies' | 'tokens' | 'users'>;

export const TOKEN_EXCHANGE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** The scope asked, or by default the subject token's (for a token of this server) within the client's. */
export function exchangeScopes(requested: string | undefined, permitted: readonly string[], verified: VerifiedExchange): string[] {
  const limit = verified.identity.scopeLimit;
  const asked = requested ?? (limit ? limit.filter((s) => permitted.includes(s)).join(' ') : undefined);
  return grantedScopes(asked, permitted, limit);
}

export const tokenExchangeGrant: Grant<ServicesUsed> = {
  grantType: TOKEN_EXCHANGE_GRANT_TYPE,
  clientGrant: 'TOKEN_EXCHANGE',
  requireClientSecret: true,
  failureAction: 'LOGIN_FAILED',
  handle(services, request) {
    const { params, requestId, client: { client, provider, method } } = request;
    const attempt: Attempt = { rule: 'token_exchange', username: null, context: {} };
    const base = { grantType: TOKEN_EXCHANGE_GRANT_TYPE, providerId: provider.id, authMethod: method };
    return recordingFailures(services.events, request, base, attempt, async () => {
      const requestedType = params.get('requested_token_type');
      if (requestedType !== undefined && requestedType !== TOKEN_TYPE.accessToken) {
        throw new OAuthError('invalid_request', `requested_token_type must be ${TOKEN_TYPE.accessToken}`);
      }
      const requested = params.get('scope');
      const permitted = permittedScopes(client.allowedScopes);
      grantedScopes(requested, permitted, null);
      const verified = await verifyExchange(services, {
        provider, client, requestId,
        subjectToken: params.get('subject_token'), subjectTokenType: params.get('subject_token_type'),
        actorToken: params.get('actor_token'), actorTokenType: params.get('actor_token_type'),
      });
      Object.assign(attempt.context, verified.context);
      if (verified.kind === 'refused') {
        attempt.username = verified.username;
        attempt.context.stage = verified.stage;
        throw new OAuthError(verified.error, verified.description, verified.detail);
      }
      attempt.username = verified.identity.user.username;
      return issueForIdentity(services, request, TOKEN_EXCHANGE_GRANT_TYPE, {
        identity: verified.identity,
        scopes: exchangeScopes(requested, permitted, verified),
        extra: {
          jwtClaims: verified.subjectClaims, subjectToken: verified.subjectClaims, actorToken: verified.actorClaims,
          act: verified.act, delegationByPolicy: verified.delegation === 'policy', notAfter: verified.notAfter,
          // A token of this server bound to a credential (app password, refresh family): the new one dies with it.
          sid: typeof verified.subjectClaims.sid === 'string' ? verified.subjectClaims.sid : null,
        },
        event: { action: 'TOKEN_EXCHANGED', context: { ...base, ...verified.context, rule: 'token_exchange', act: verified.act } },
        issuedTokenType: TOKEN_TYPE.accessToken,
      });
    });
  },
};

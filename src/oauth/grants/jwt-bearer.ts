/**
 * grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer (RFC 7523 §2.1): the `assertion` is
 * checked exactly as rule 4 of client_credentials checks a JWT (identity-rules.ts jwtRule, the one
 * verifier of incoming JWTs) and the token is for the identity rule 4 gives. parse → the client
 * (confidential ones prove their secret, public ones name themselves) → verify → policies → issue.
 */
import type { Services } from '../../domain/services.js';
import { jwtRule } from '../../domain/identity-rules.js';
import { permittedScopes } from '../../domain/scopes.js';
import { MAX_INPUT_TOKEN_LENGTH } from '../../domain/token-exchange.js';
import { OAuthError } from '../errors.js';
import type { Grant } from './grant.js';
import { grantedScopes, issueForIdentity, recordingFailures, type Attempt } from './machine-identity.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'appPasswords' | 'events' | 'generatedAccounts' | 'jwtVerifier' | 'policies' | 'tokens' | 'users'>;

export const JWT_BEARER_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

export const jwtBearerGrant: Grant<ServicesUsed> = {
  grantType: JWT_BEARER_GRANT_TYPE,
  clientGrant: 'JWT_BEARER',
  requireClientSecret: true,
  failureAction: 'LOGIN_FAILED',
  handle(services, request) {
    const { params, requestId, client: { client, provider, method } } = request;
    const attempt: Attempt = { rule: 'jwt_bearer', username: null, context: {} };
    const base = { grantType: JWT_BEARER_GRANT_TYPE, providerId: provider.id, authMethod: method };
    return recordingFailures(services.events, request, base, attempt, async () => {
      const assertion = params.get('assertion');
      if (!assertion) throw new OAuthError('invalid_request', 'assertion is required');
      if (assertion.length > MAX_INPUT_TOKEN_LENGTH) throw new OAuthError('invalid_request', `the assertion is longer than ${MAX_INPUT_TOKEN_LENGTH} characters`);
      const requested = params.get('scope');
      const permitted = permittedScopes(client.allowedScopes);
      grantedScopes(requested, permitted, null);
      const identity = await jwtRule(services, provider, assertion, 'assertion', requestId);
      Object.assign(attempt, { username: identity.kind === 'identity' ? identity.user.username : identity.username });
      Object.assign(attempt.context, identity.context, { identityRule: identity.rule });
      if (identity.kind === 'refused') throw new OAuthError(identity.error === 'wrong_client_secret' ? 'invalid_grant' : identity.error, identity.description, identity.detail);
      return issueForIdentity(services, request, JWT_BEARER_GRANT_TYPE, {
        identity, scopes: grantedScopes(requested, permitted, identity.scopeLimit),
        event: { action: 'LOGIN', context: { ...base, ...identity.context, rule: 'jwt_bearer', identityRule: identity.rule } },
      });
    });
  },
};

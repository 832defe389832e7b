/**
 * grant_type=client_credentials (and grant_type=password, treated the same): a machine gets a
 * token without a person. parse → identify (domain/identity-rules.ts: the contract's four rules,
 * nothing stored) → scope → the bound policies → save a generated account → issue.
 *
 * Every attempt is a LOGIN or LOGIN_FAILED event with the rule, the client, the user and the
 * precise reason of a failure, which the error body leaves out.
 */
import type { GrantType } from '../../domain/model.js';
import type { Services } from '../../domain/services.js';
import { identify, type Refusal } from '../../domain/identity-rules.js';
import { permittedScopes } from '../../domain/scopes.js';
import { unmatchedClientSecret } from '../client-auth.js';
import { OAuthError } from '../errors.js';
import type { Grant, TokenRequest, TokenResponse } from './grant.js';
import { grantedScopes, issueForIdentity, recordingFailures, type Attempt } from './machine-identity.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'appPasswords' | 'events' | 'generatedAccounts' | 'jwtVerifier' | 'policies' | 'tokens' | 'users'>;

export function refusalError(refusal: Refusal, request: TokenRequest): OAuthError {
  if (refusal.error === 'wrong_client_secret') return unmatchedClientSecret(request.client);
  return new OAuthError(refusal.error, refusal.description, refusal.detail);
}

async function handle(services: ServicesUsed, request: TokenRequest, grant: string): Promise<TokenResponse> {
  const { params, requestId, client: authenticated } = request;
  const { client, provider } = authenticated;
  const attempt: Attempt = { rule: 'none', username: null, context: {} };
  const base = { grantType: grant, providerId: provider.id, authMethod: authenticated.method };
  return recordingFailures(services.events, request, base, attempt, async () => {
    const requested = params.get('scope') ?? params.get('scopes');
    const permitted = permittedScopes(client.allowedScopes);
    grantedScopes(requested, permitted, null);
    const identity = await identify(services, provider, client, {
      username: params.get('username'), password: params.get('password'),
      clientAssertionType: params.get('client_assertion_type'), clientAssertion: params.get('client_assertion'),
      secrets: authenticated.presentedSecrets, secretVerified: authenticated.secretVerified,
    }, requestId);
    Object.assign(attempt, { rule: identity.rule, username: identity.kind === 'identity' ? identity.user.username : identity.username });
    Object.assign(attempt.context, identity.context);
    if (identity.kind === 'refused') throw refusalError(identity, request);
    return issueForIdentity(services, request, grant, {
      identity, scopes: grantedScopes(requested, permitted, identity.scopeLimit),
      event: { action: 'LOGIN', context: { ...base, rule: identity.rule, ...identity.context } },
    });
  });
}

function machineGrant(grantType: string, clientGrant: GrantType): Grant<ServicesUsed> {
  return {
    grantType,
    clientGrant,
    // The rules decide what the secret means (it may carry an app password or a JWT).
    requireClientSecret: false,
    failureAction: 'LOGIN_FAILED',
    handle: (services, request) => handle(services, request, grantType),
  };
}

export const clientCredentialsGrant: Grant<ServicesUsed> = machineGrant('client_credentials', 'CLIENT_CREDENTIALS');
export const passwordGrant: Grant<ServicesUsed> = machineGrant('password', 'PASSWORD');

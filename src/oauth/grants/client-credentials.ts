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
import { identify, type Identity, type Refusal } from '../../domain/identity-rules.js';
import { DomainConflictError } from '../../domain/errors.js';
import { grantableScopes, parseScopeParameter, permittedScopes } from '../../domain/scopes.js';
import { unmatchedClientSecret } from '../client-auth.js';
import { OAuthError, invalidGrant } from '../errors.js';
import type { Grant, TokenRequest, TokenResponse } from './grant.js';
import { enforceTokenPolicies, issueUserTokens, withScopeMappings } from './user-tokens.js';

/** What the grant learned before failing, for the LOGIN_FAILED event. */
interface Attempt {
  rule: Identity['rule'] | Refusal['rule'];
  username: string | null;
  context: Record<string, unknown>;
}

function refusalError(refusal: Refusal, request: TokenRequest): OAuthError {
  if (refusal.error === 'wrong_client_secret') return unmatchedClientSecret(request.client);
  return new OAuthError(refusal.error, refusal.description, refusal.detail);
}

/** The requested scopes: each within the client's, and within the identity's limit (a federated provider's token). */
function grantedScopes(requested: string | undefined, permitted: readonly string[], limit: readonly string[] | null): string[] {
  const scopes = parseScopeParameter(requested);
  if (scopes === null && requested !== undefined) throw new OAuthError('invalid_scope', 'the scope parameter is malformed');
  const refused = (scopes ?? []).filter((s) => !permitted.includes(s));
  if (refused.length > 0) throw new OAuthError('invalid_scope', `this client may not ask for: ${refused.join(' ')}`);
  const beyond = limit ? (scopes ?? []).filter((s) => !limit.includes(s)) : [];
  if (beyond.length > 0) throw new OAuthError('invalid_scope', `the input token was not granted: ${beyond.join(' ')}`);
  return scopes ?? [];
}

async function handle(services: Services, request: TokenRequest, grant: string): Promise<TokenResponse> {
  const { params, requestId, client: authenticated } = request;
  const { client, provider } = authenticated;
  const attempt: Attempt = { rule: 'none', username: null, context: {} };
  const base = { grantType: grant, providerId: provider.id, authMethod: authenticated.method };
  try {
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
    // The admin scope only for admins, not granted otherwise (RFC 6749 §3.3; the response says what was).
    const scopes = grantableScopes(identity.user, grantedScopes(requested, permitted, identity.scopeLimit));
    const input = {
      provider, client, user: identity.user, scopes, requestId, grant, jwtClaims: identity.jwtClaims, notAfter: identity.notAfter,
      appPasswordId: identity.appPasswordId ?? null,
    };
    await enforceTokenPolicies(services, input, 'invalid_grant');
    // Only now, with the policies' yes, is a generated account created or updated.
    const user = identity.account ? await saveAccount(services, identity) : identity.user;
    const authorized = await withScopeMappings(services, { ...input, user });
    return await issueUserTokens(services, authorized, {
      refreshToken: false,
      event: { action: 'LOGIN', context: { ...base, rule: identity.rule, userId: user.id, ...identity.context } },
    });
  } catch (error) {
    const reason = error instanceof OAuthError ? (error.detail ?? error.description) : 'internal error';
    services.events.record({
      action: 'LOGIN_FAILED', requestId, clientId: client.clientId, username: attempt.username,
      context: { ...base, ...attempt.context, rule: attempt.rule, error: error instanceof OAuthError ? error.code : 'server_error', reason },
    });
    throw error;
  }
}

async function saveAccount(services: Services, identity: Identity): Promise<Identity['user']> {
  try {
    return await services.generatedAccounts.save(identity.account!);
  } catch (error) {
    if (error instanceof DomainConflictError) throw invalidGrant('the token cannot be issued for this identity', error.message);
    throw error;
  }
}

function machineGrant(grantType: string, clientGrant: GrantType): Grant {
  return {
    grantType,
    clientGrant,
    // The rules decide what the secret means (it may carry an app password or a JWT).
    requireClientSecret: false,
    failureAction: 'LOGIN_FAILED',
    handle: (services, request) => handle(services, request, grantType),
  };
}

export const clientCredentialsGrant: Grant = machineGrant('client_credentials', 'CLIENT_CREDENTIALS');
export const passwordGrant: Grant = machineGrant('password', 'PASSWORD');

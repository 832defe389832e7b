/**
 * The steps the machine grants share once they know who the token is for (client_credentials,
 * jwt-bearer, token exchange): the scope within the client's and the input token's, the bound
 * policies, the generated account saved only after their yes, the scope mappings, the tokens;
 * and the LOGIN_FAILED event with the private reason when any step refuses.
 */
import type { Services } from '../../domain/services.js';
import type { Identity } from '../../domain/identity-rules.js';
import { DomainConflictError } from '../../domain/errors.js';
import { grantableScopes, parseScopeParameter } from '../../domain/scopes.js';
import type { EventLog } from '../../domain/events.js';
import { OAuthError, invalidGrant } from '../errors.js';
import type { TokenRequest, TokenResponse } from './grant.js';
import { enforceTokenPolicies, issueUserTokens, withScopeMappings, type UserTokenInput } from './user-tokens.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'events' | 'generatedAccounts' | 'policies' | 'tokens'>;

/** The requested scopes: each within the client's, and within the identity's limit (a token of this server). */
export function grantedScopes(requested: string | undefined, permitted: readonly string[], limit: readonly string[] | null): string[] {
  const scopes = parseScopeParameter(requested);
  if (scopes === null && requested !== undefined) throw new OAuthError('invalid_scope', 'the scope parameter is malformed');
  const refused = (scopes ?? []).filter((s) => !permitted.includes(s));
  if (refused.length > 0) throw new OAuthError('invalid_scope', `this client may not ask for: ${refused.join(' ')}`);
  const beyond = limit ? (scopes ?? []).filter((s) => !limit.includes(s)) : [];
  if (beyond.length > 0) throw new OAuthError('invalid_scope', `the input token was not granted: ${beyond.join(' ')}`);
  return scopes ?? [];
}

export async function saveAccount(services: ServicesUsed, identity: Identity): Promise<Identity['user']> {
  try {
    return await services.generatedAccounts.save(identity.account!);
  } catch (error) {
    if (error instanceof DomainConflictError) throw invalidGrant('the token cannot be issued for this identity', error.message);
    throw error;
  }
}

export interface IdentityIssue {
  identity: Identity;
  scopes: readonly string[];
  /** Added to the policies' input and the token (audience, act, subject and actor claims). */
  extra?: Partial<UserTokenInput>;
  event: { action: string; context: Record<string, unknown> };
  issuedTokenType?: string;
}

/** Policies → save the generated account → scope mappings → issue, without a refresh token. */
export async function issueForIdentity(services: ServicesUsed, request: TokenRequest, grant: string, issue: IdentityIssue): Promise<TokenResponse> {
  const { provider, client } = request.client;
  const { identity } = issue;
  const input: UserTokenInput = {
    provider, client, user: identity.user, requestId: request.requestId, grant, jwtClaims: identity.jwtClaims, notAfter: identity.notAfter,
    appPasswordId: identity.appPasswordId ?? null, audience: request.audience, ...issue.extra,
    // The admin scope only for admins, not granted otherwise (RFC 6749 §3.3; the response says what was).
    scopes: grantableScopes(identity.user, issue.scopes),
  };
  await enforceTokenPolicies(services, input, 'invalid_grant');
  // Only now, with the policies' yes, is a generated account created or updated.
  const user = identity.account ? await saveAccount(services, identity) : identity.user;
  const authorized = await withScopeMappings(services, { ...input, user });
  const options = { refreshToken: false, event: { action: issue.event.action, context: { ...issue.event.context, userId: user.id } } };
  return issueUserTokens(services, authorized, issue.issuedTokenType ? { ...options, issuedTokenType: issue.issuedTokenType } : options);
}

/** What a grant learned before failing, for the LOGIN_FAILED event. */
export interface Attempt {
  rule: string;
  username: string | null;
  context: Record<string, unknown>;
}

/** Runs the grant's steps; a failure is recorded as LOGIN_FAILED with what was learned and the private reason, then answered. */
export async function recordingFailures<T>(
  events: EventLog, request: TokenRequest, base: Record<string, unknown>, attempt: Attempt, steps: () => Promise<T>,
): Promise<T> {
  try {
    return await steps();
  } catch (error) {
    const reason = error instanceof OAuthError ? (error.detail ?? error.description) : 'internal error';
    events.record({
      action: 'LOGIN_FAILED', requestId: request.requestId, clientId: request.client.client.clientId, username: attempt.username,
      context: { ...base, ...attempt.context, rule: attempt.rule, error: error instanceof OAuthError ? error.code : 'server_error', reason },
    });
    throw error;
  }
}

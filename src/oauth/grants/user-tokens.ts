/**
 * The steps every grant shares for a user's tokens (people, service accounts, generated ones):
 * authorizeUserTokens runs the bound expression policies and the scope mappings (before anything
 * is spent or stored; enforceTokenPolicies and withScopeMappings are its two halves, for a grant
 * that stores something in between), issueUserTokens issues an access token, an ID token when
 * `openid` was granted, a refresh token when the client holds the REFRESH_TOKEN grant (and the
 * grant gives them), and records one event (TOKEN_ISSUED unless the grant names another).
 */
import { randomUUID } from 'node:crypto';
import type { Client, Provider, User } from '../../domain/model.js';
import { grantableScopes } from '../../domain/scopes.js';
import type { Services } from '../../domain/services.js';
import { OAuthError } from '../errors.js';
import type { TokenResponse } from './grant.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'events' | 'policies' | 'tokens'>;

export interface UserTokenInput {
  provider: Provider;
  client: Client;
  user: User;
  scopes: readonly string[];
  requestId: string;
  /** The grant_type, for policies and the event. */
  grant: string;
  /** The input JWT's claims, for policies (`request.context.oauth_jwt`). */
  jwtClaims?: Record<string, unknown> | null;
  /** The credential the tokens are issued on expires then; they must not outlive it. */
  notAfter?: Date | null;
  /** The app password the tokens are issued on: revoking it revokes them. */
  appPasswordId?: string | null;
  /** The audience the request asked for (RFC 8707); none: the client_id. */
  audience?: readonly string[];
  /** The actor of a token exchange (RFC 8693 §4.1). */
  act?: Record<string, unknown> | null;
  /** Token exchange: the verified subject and actor tokens' claims, for policies. */
  subjectToken?: Record<string, unknown> | null;
  actorToken?: Record<string, unknown> | null;
  /** Token exchange: the subject token's credential sid, so the new token dies with it. */
  sid?: string | null;
  /** Token exchange with an actor the subject's may_act does not name: a policy bound to the client must allow it. */
  delegationByPolicy?: boolean;
}

export interface AuthorizedUserTokens extends UserTokenInput {
  /** Claims of the scope mappings of the granted scopes. */
  extraClaims: Record<string, unknown>;
}

/**
 * Every policy bound to the provider and the client must pass (a POLICY_DENIED event names the
 * one that did not); `refusal` is the error the grant answers then. Returns what to issue.
 */
export async function authorizeUserTokens(
  services: ServicesUsed, input: UserTokenInput & { codeVerifier?: string | null }, refusal: 'access_denied' | 'invalid_grant',
): Promise<AuthorizedUserTokens> {
  // The admin scope only for admins, not granted otherwise (RFC 6749 §3.3; the response says what was).
  const narrowed = { ...input, scopes: grantableScopes(input.user, input.scopes) };
  await enforceTokenPolicies(services, narrowed, refusal);
  const { codeVerifier: _ignored, ...rest } = narrowed;
  return withScopeMappings(services, rest);
}

export async function enforceTokenPolicies(
  services: ServicesUsed, input: UserTokenInput & { codeVerifier?: string | null }, refusal: 'access_denied' | 'invalid_grant',
): Promise<void> {
  const { provider, client, user, scopes, requestId } = input;
  const decision = await services.policies.evaluateTokenPolicies({
    provider, client, user, grantType: input.grant, scopes, codeVerifier: input.codeVerifier ?? null, jwtClaims: input.jwtClaims ?? null, requestId,
    subjectToken: input.subjectToken ?? null, actorToken: input.actorToken ?? null,
  });
  if (!decision.allowed) {
    throw new OAuthError(refusal, 'the request was refused by a policy', `policy '${decision.policyName}' denied: ${decision.reason}`);
  }
  if (input.delegationByPolicy && decision.clientPolicies === 0) {
    throw new OAuthError('invalid_grant', 'the actor may not act for the subject',
      "the subject token has no may_act naming the actor, and no policy is bound to the client to allow the delegation");
  }
}

/** The claims of the scope mappings of the granted scopes. */
export async function withScopeMappings(services: ServicesUsed, input: UserTokenInput): Promise<AuthorizedUserTokens> {
  const { provider, client, user, scopes, requestId } = input;
  const extraClaims = await services.policies.scopeMappingClaims({ provider, user, client, scopes, requestId });
  return { ...input, extraClaims };
}

export interface IssueOptions {
  /** False for grants that never give refresh tokens (client_credentials); default: when the client holds REFRESH_TOKEN. */
  refreshToken?: boolean;
  /** The event to record instead of TOKEN_ISSUED, with context added to the usual one. */
  event?: { action: string; context: Record<string, unknown> };
  /** RFC 8693 §2.2.1: token exchange says what it issued. */
  issuedTokenType?: string;
}

export async function issueUserTokens(
  services: ServicesUsed, input: AuthorizedUserTokens & { refreshFamilyId?: string }, options: IssueOptions = {},
): Promise<TokenResponse> {
  const { provider, client, user, scopes, extraClaims } = input;
  const notAfter = input.notAfter ?? null;
  // The access token belongs to the refresh family issued with it: revoking the family revokes it.
  const refreshFamilyId = (options.refreshToken ?? client.grantTypes.includes('REFRESH_TOKEN')) ? (input.refreshFamilyId ?? randomUUID()) : null;
  const access = await services.tokens.issueAccessToken({
    provider, client, user, scopes, extraClaims, notAfter, refreshFamilyId, appPasswordId: input.appPasswordId ?? null,
    audience: input.audience ?? null, act: input.act ?? null, sid: input.sid ?? null,
  });
  const jkt = access.claims.cnf?.jkt ?? null;
  const response: TokenResponse = {
    access_token: access.token,
    token_type: jkt ? 'DPoP' : 'Bearer',
    expires_in: access.expiresIn,
    scope: scopes.join(' '),
    ...(options.issuedTokenType ? { issued_token_type: options.issuedTokenType } : {}),
  };
  if (scopes.includes('openid') && !options.issuedTokenType) {
    response.id_token = await services.tokens.issueIdToken({ provider, client, user, scopes, extraClaims, notAfter });
  }
  if (refreshFamilyId) {
    // Rotation keeps the new refresh token in its family.
    const refresh = await services.tokens.refreshTokens.issue({
      provider, clientId: client.clientId, userId: user.id, scopes, familyId: refreshFamilyId, notAfter, audience: input.audience ?? null,
      // RFC 9449 §5: a confidential client's refresh token is bound by its authentication, a public client's by the key.
      dpopJkt: client.type === 'PUBLIC' ? jkt : null,
    });
    response.refresh_token = refresh.token;
  }
  services.events.record({
    action: options.event?.action ?? 'TOKEN_ISSUED',
    requestId: input.requestId,
    clientId: client.clientId,
    username: user.username,
    context: {
      grantType: input.grant, providerId: provider.id, scope: response.scope, jti: access.claims.jti, aud: access.claims.aud,
      refreshToken: response.refresh_token !== undefined, idToken: response.id_token !== undefined, ...(jkt ? { dpopJkt: jkt } : {}),
      ...options.event?.context,
    },
  });
  return response;
}


/**
 * The steps the device_code and refresh_token grants share for a person's tokens:
 * authorizeUserTokens runs the bound expression policies and the scope mappings (before anything
 * is spent), issueUserTokens issues an access token, an ID token when `openid` was granted, a
 * refresh token when the client holds the REFRESH_TOKEN grant, and records TOKEN_ISSUED.
 */
import { randomUUID } from 'node:crypto';
import type { Client, Provider, User } from '../../domain/model.js';
import { grantableScopes } from '../../domain/scopes.js';
import type { Services } from '../../domain/services.js';
import { OAuthError } from '../errors.js';
import type { TokenResponse } from './grant.js';

export interface UserTokenInput {
  provider: Provider;
  client: Client;
  user: User;
  scopes: readonly string[];
  requestId: string;
  /** The grant_type, for policies and the event. */
  grant: string;
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
  services: Services, input: UserTokenInput & { codeVerifier?: string | null }, refusal: 'access_denied' | 'invalid_grant',
): Promise<AuthorizedUserTokens> {
  const { provider, client, user, requestId } = input;
  // The admin scope only for admins, not granted otherwise (RFC 6749 §3.3; the response says what was).
  const scopes = grantableScopes(user, input.scopes);
  const decision = await services.policies.evaluateTokenPolicies({
    provider, client, user, grantType: input.grant, scopes, codeVerifier: input.codeVerifier ?? null, jwtClaims: null, requestId,
  });
  if (!decision.allowed) {
    throw new OAuthError(refusal, 'the request was refused by a policy', `policy '${decision.policyName}' denied: ${decision.reason}`);
  }
  const extraClaims = await services.policies.scopeMappingClaims({ provider, user, client, scopes, requestId });
  const { codeVerifier: _ignored, ...rest } = input;
  return { ...rest, scopes, extraClaims };
}

export async function issueUserTokens(
  services: Services, input: AuthorizedUserTokens & { refreshFamilyId?: string },
): Promise<TokenResponse> {
  const { provider, client, user, scopes, extraClaims } = input;
  // The access token belongs to the refresh family issued with it: revoking the family revokes it.
  const refreshFamilyId = client.grantTypes.includes('REFRESH_TOKEN') ? (input.refreshFamilyId ?? randomUUID()) : null;
  const access = await services.tokens.issueAccessToken({ provider, client, user, scopes, extraClaims, refreshFamilyId });
  const response: TokenResponse = {
    access_token: access.token,
    token_type: 'Bearer',
    expires_in: access.expiresIn,
    scope: scopes.join(' '),
  };
  if (scopes.includes('openid')) {
    response.id_token = await services.tokens.issueIdToken({ provider, client, user, scopes, extraClaims });
  }
  if (refreshFamilyId) {
    // Rotation keeps the new refresh token in its family.
    const refresh = await services.tokens.issueRefreshToken({
      provider, clientId: client.clientId, userId: user.id, scopes, familyId: refreshFamilyId,
    });
    response.refresh_token = refresh.token;
  }
  services.events.record({
    action: 'TOKEN_ISSUED',
    requestId: input.requestId,
    clientId: client.clientId,
    username: user.username,
    context: {
      grantType: input.grant, providerId: provider.id, scope: response.scope, jti: access.claims.jti,
      refreshToken: response.refresh_token !== undefined, idToken: response.id_token !== undefined,
    },
  });
  return response;
}

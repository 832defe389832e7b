/**
 * The last step the device_code and refresh_token grants share: issue an access token for a
 * person, an ID token when `openid` was granted, a refresh token when the client holds the
 * REFRESH_TOKEN grant, and record TOKEN_ISSUED under the request id.
 */
import type { Client, Provider, User } from '../../domain/model.js';
import type { Services } from '../../domain/services.js';
import type { TokenResponse } from './grant.js';

export interface UserTokenInput {
  provider: Provider;
  client: Client;
  user: User;
  scopes: readonly string[];
  requestId: string;
  /** The grant_type, for the event. */
  grant: string;
  /** Rotation keeps the refresh token in its family. */
  refreshFamilyId?: string;
}

export async function issueUserTokens(services: Services, input: UserTokenInput): Promise<TokenResponse> {
  const { provider, client, user, scopes } = input;
  const access = await services.tokens.issueAccessToken({ provider, client, user, scopes });
  const response: TokenResponse = {
    access_token: access.token,
    token_type: 'Bearer',
    expires_in: access.expiresIn,
    scope: scopes.join(' '),
  };
  if (scopes.includes('openid')) {
    response.id_token = await services.tokens.issueIdToken({ provider, client, user, scopes, accessToken: access.token });
  }
  if (client.grantTypes.includes('REFRESH_TOKEN')) {
    const refresh = await services.tokens.issueRefreshToken({
      provider, clientId: client.clientId, userId: user.id, scopes, familyId: input.refreshFamilyId,
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

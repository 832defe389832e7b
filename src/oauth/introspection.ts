/**
 * POST /application/o/introspect/ (RFC 7662). The caller authenticates as a confidential client
 * (it proves its secret: bad credentials and public clients are 401 invalid_client, never
 * active:false) and sees only tokens of its own provider: a token of another provider, an expired,
 * revoked or malformed token, or one whose client, user or credential is gone, is {"active": false}.
 * Access tokens and refresh tokens are both understood.
 */
import type { Provider, RefreshToken, User } from '../domain/model.js';
import type { Services } from '../domain/services.js';
import type { VerifiedAccessToken } from '../domain/tokens.js';
import { isUsable } from '../domain/users.js';
import type { FormParams } from '../http/body.js';
import { OAuthError } from './errors.js';
import { oauthEndpoint } from './endpoint.js';
import { authenticateClient, extractClientCredentials, type AuthenticatedClient } from './client-auth.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'clients' | 'providers' | 'tokens' | 'users'>;

const MAX_TOKEN_LENGTH = 16_384;

export type FoundToken =
  | { kind: 'access_token'; verified: VerifiedAccessToken }
  | { kind: 'refresh_token'; record: RefreshToken };

/** The endpoint's common start: parse, authenticate the client (secret required), read `token`. */
export async function authenticatedTokenRequest(
  services: ServicesUsed, authorization: string | undefined, body: FormParams, confidentialOnly = false,
): Promise<{ client: AuthenticatedClient; token: string; hint: 'access_token' | 'refresh_token' | null }> {
  const presented = extractClientCredentials(authorization, body);
  const client = await authenticateClient(services, presented, { requireSecret: true, confidentialOnly });
  const token = body.get('token');
  if (token === undefined || token === '') throw new OAuthError('invalid_request', 'the token parameter is required');
  // RFC 7009 §2.1 / RFC 7662 §2.1: the hint is only a hint; an unknown one is ignored.
  const rawHint = body.get('token_type_hint');
  const hint = rawHint === 'access_token' || rawHint === 'refresh_token' ? rawHint : null;
  return { client, token, hint };
}

/**
 * Finds the token wherever it is, the hinted kind first. Only live tokens (unexpired, unrevoked,
 * unspent) of `provider` are returned; everything else is null, alike.
 */
export async function findLiveToken(
  services: ServicesUsed, provider: Provider, token: string, hint: 'access_token' | 'refresh_token' | null,
): Promise<FoundToken | null> {
  if (token.length > MAX_TOKEN_LENGTH) return null;
  const order: ('access_token' | 'refresh_token')[] = hint === 'refresh_token' ? ['refresh_token', 'access_token'] : ['access_token', 'refresh_token'];
  for (const kind of order) {
    if (kind === 'access_token') {
      // Access tokens are JWTs; a refresh token never has two dots.
      if (token.split('.').length !== 3) continue;
      const verified = await services.tokens.verifyAccessToken(token);
      if (verified) return verified.provider.id === provider.id ? { kind, verified } : null;
    } else {
      const record = await services.tokens.refreshTokens.find(token);
      if (record) {
        const live = record.providerId === provider.id && record.revokedAt === null && record.usedAt === null && record.expiresAt.getTime() > Date.now();
        return live ? { kind, record } : null;
      }
    }
  }
  return null;
}

async function liveUser(services: ServicesUsed, id: string): Promise<User | null> {
  const user = await services.users.get(id);
  return user && isUsable(user) ? user : null;
}

export function introspectionEndpoint(services: ServicesUsed) {
  return oauthEndpoint(async (ctx, { body }) => {
    const { client, token, hint } = await authenticatedTokenRequest(services, ctx.get('authorization') || undefined, body, true);
    const found = await findLiveToken(services, client.provider, token, hint);
    ctx.status = 200;
    if (!found) {
      ctx.body = { active: false };
      return;
    }
    if (found.kind === 'access_token') {
      // Verification checked that the user is still there and usable.
      const { claims, user } = found.verified;
      ctx.body = {
        active: true,
        scope: claims.scope,
        client_id: claims.client_id,
        username: user.username,
        // RFC 9449 §6.2: a bound token says so, with its key's thumbprint.
        token_type: claims.cnf ? 'DPoP' : 'Bearer',
        exp: claims.exp,
        iat: claims.iat,
        ...(typeof claims.nbf === 'number' ? { nbf: claims.nbf } : {}),
        sub: claims.sub,
        aud: claims.aud,
        iss: claims.iss,
        jti: claims.jti,
        ...(claims.act ? { act: claims.act } : {}),
        ...(claims.cnf ? { cnf: { jkt: claims.cnf.jkt } } : {}),
      };
      return;
    }
    const { record } = found;
    const user = await liveUser(services, record.userId);
    if (!user) {
      ctx.body = { active: false };
      return;
    }
    ctx.body = {
      active: true,
      scope: record.scopes.join(' '),
      client_id: record.clientId,
      username: user.username,
      exp: Math.floor(record.expiresAt.getTime() / 1000),
      iat: Math.floor(record.createdAt.getTime() / 1000),
      sub: record.userId,
      iss: services.providers.issuer(client.provider),
    };
  });
}

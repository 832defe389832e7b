/**
 * GET/POST /application/o/userinfo/ (OpenID Connect Core §5.3): the claims of the scopes the
 * access token was granted (and of the provider's scope mappings), read from the user as it is now. The token comes as a Bearer header
 * (RFC 6750 §2.1), a DPoP header with its proof (RFC 9449 §7.1) or, on POST, as the form
 * parameter access_token (§2.2), not both. Errors carry WWW-Authenticate: Bearer with the RFC 6750
 * §3 error code; a DPoP-bound token presented without its proof: WWW-Authenticate: DPoP.
 */
import type { Services } from '../domain/services.js';
import { scopeClaims } from '../domain/tokens.js';
import { OAuthError, type OAuthErrorCode } from './errors.js';
import { oauthEndpoint } from './endpoint.js';
import { dpopChallenge, parseTokenAuthorization, tokenBindingRefusal, type TokenScheme } from './credentials.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'config' | 'dpop' | 'policies' | 'tokens'>;

const REALM = 'tessera';

function bearerError(code: OAuthErrorCode, description: string, detail?: string): OAuthError {
  const error = new OAuthError(code, description, detail);
  // Description text is ours: plain ASCII without quotes or backslashes.
  return error.withHeader('WWW-Authenticate', `Bearer realm="${REALM}", error="${code}", error_description="${description}"`);
}

function presentedToken(authorization: string, formToken: string | undefined): { scheme: TokenScheme; token: string } {
  if (authorization.trim() !== '') {
    const presented = parseTokenAuthorization(authorization);
    if (formToken !== undefined) throw bearerError('invalid_request', 'send the access token once: in the Authorization header or in the body');
    if (presented.kind === 'malformed') throw bearerError('invalid_request', `the ${presented.scheme} authorization header is malformed`);
    // Another scheme: as if no token was sent (RFC 6750 §3.1: no error code then).
    if (presented.kind === 'none') throw new OAuthError('invalid_token', 'a Bearer access token is required').withHeader('WWW-Authenticate', `Bearer realm="${REALM}"`);
    return presented;
  }
  if (formToken !== undefined && formToken !== '') return { scheme: 'Bearer', token: formToken };
  throw new OAuthError('invalid_token', 'a Bearer access token is required').withHeader('WWW-Authenticate', `Bearer realm="${REALM}"`);
}

/** Mappings may add claims, not replace the ones that say whose answer this is. */
const RESERVED = new Set(['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'jti', 'client_id', 'scope', 'azp']);
function withoutReserved(claims: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(claims).filter(([name]) => !RESERVED.has(name)));
}

export function userinfoEndpoint(services: ServicesUsed) {
  return oauthEndpoint(async (ctx, { body, requestId }) => {
    const presented = presentedToken(ctx.get('authorization'), ctx.method === 'POST' ? body.get('access_token') : undefined);
    // Verification checks the token's user, client and credential are still live (contract v2).
    const verified = await services.tokens.verifyAccessToken(presented.token);
    if (!verified) throw bearerError('invalid_token', 'the access token is invalid, expired or revoked');
    const refusal = await tokenBindingRefusal(services.dpop, verified, {
      presented, headers: ctx.req, method: ctx.method, url: `${services.config.publicUrl}${ctx.path}`,
    });
    if (refusal) throw new OAuthError('invalid_token', refusal).withHeader('WWW-Authenticate', dpopChallenge('invalid_token', refusal));
    const { user, client } = verified;
    const scopes = String(verified.claims.scope ?? '').split(' ').filter((s) => s !== '');
    // Scope mappings add their claims here as in the tokens.
    const mapped = await services.policies.scopeMappingClaims({ provider: verified.provider, user, client, scopes, requestId });
    ctx.status = 200;
    ctx.body = { ...scopeClaims(user, scopes), ...withoutReserved(mapped), sub: user.id };
  });
}

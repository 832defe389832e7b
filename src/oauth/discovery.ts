/** OpenID Connect Discovery and RFC 8414 metadata, one document for both paths. */
import type { Context, Middleware } from 'koa';
import type { Services } from '../domain/services.js';
import { DEFAULT_SCOPES } from '../domain/scopes.js';
import { JWKS_MAX_AGE_SECONDS } from '../domain/keys.js';
import type { Provider } from '../domain/model.js';
import { DPOP_SIGNING_ALGORITHMS } from '../domain/dpop.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'config' | 'keys' | 'providers'>;

export function providerMetadata(services: ServicesUsed, provider: Provider): Record<string, unknown> {
  const base = `${services.config.publicUrl}/application/o`;
  const authMethods = ['client_secret_basic', 'client_secret_post', 'none'];
  return {
    issuer: services.providers.issuer(provider),
    token_endpoint: `${base}/token/`,
    device_authorization_endpoint: `${base}/device/`,
    introspection_endpoint: `${base}/introspect/`,
    revocation_endpoint: `${base}/revoke/`,
    userinfo_endpoint: `${base}/userinfo/`,
    jwks_uri: `${base}/${provider.slug}/jwks/`,
    grant_types_supported: [
      'urn:ietf:params:oauth:grant-type:device_code', 'client_credentials', 'password', 'refresh_token',
      'urn:ietf:params:oauth:grant-type:jwt-bearer', 'urn:ietf:params:oauth:grant-type:token-exchange',
    ],
    // RFC 8707: a token asked for with resource (or audience) has exactly those as aud, else the
    // client_id; a resource server accepts only tokens whose aud contains its own identifier.
    resource_indicators_supported: true,
    // There is no authorization endpoint: tokens come from the device flow and the token endpoint.
    response_types_supported: [],
    scopes_supported: [...DEFAULT_SCOPES],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [provider.signingAlgorithm],
    token_endpoint_auth_methods_supported: authMethods,
    introspection_endpoint_auth_methods_supported: authMethods,
    revocation_endpoint_auth_methods_supported: authMethods,
    code_challenge_methods_supported: ['S256', 'plain'],
    dpop_signing_alg_values_supported: [...DPOP_SIGNING_ALGORITHMS],
    claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'auth_time', 'name', 'preferred_username', 'email', 'email_verified'],
    claims_parameter_supported: false,
    request_parameter_supported: false,
    // OpenID Connect Discovery defaults this one to true when it is left out.
    request_uri_parameter_supported: false,
  };
}

/** The provider a per-provider path names, or a JSON 404. */
async function providerOfPath(services: ServicesUsed, ctx: Context): Promise<Provider | null> {
  const provider = await services.providers.getBySlugCached(String(ctx.params.slug));
  if (!provider) {
    ctx.status = 404;
    ctx.body = { error: 'not_found', error_description: 'no provider with that slug', request_id: ctx.state.requestId };
    return null;
  }
  ctx.set('Cache-Control', 'public, max-age=60');
  return provider;
}

export function discoveryEndpoint(services: ServicesUsed): Middleware {
  return async (ctx) => {
    const provider = await providerOfPath(services, ctx);
    if (provider) ctx.body = providerMetadata(services, provider);
  };
}

export function jwksEndpoint(services: ServicesUsed): Middleware {
  return async (ctx) => {
    const provider = await providerOfPath(services, ctx);
    if (!provider) return;
    ctx.type = 'application/jwk-set+json';
    // NEXT keys are published at least this long before they sign, so a cache of this age is never stale.
    ctx.set('Cache-Control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`);
    ctx.body = await services.keys.publicJwks(provider.id);
  };
}

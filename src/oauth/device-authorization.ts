/**
 * POST /application/o/device/: the device authorization request (RFC 8628 §3.1).
 * per-address limit → parse → authenticate the client (Basic with `client_id:` works like body
 * client_id, unlike the authentik report) → DEVICE_CODE grant → scopes → PKCE → issue codes.
 */
import type { Services } from '../domain/services.js';
import type { Provider } from '../domain/model.js';
import { UserCodeSpaceExhaustedError, type StartedAuthorization } from '../domain/device-flow.js';
import { parseScopeParameter, permittedScopes } from '../domain/scopes.js';
import { Memo } from '../domain/cache.js';
import { readQuery, type FormParams } from '../http/body.js';
import { audienceOf } from './audience.js';
import { OAuthError } from './errors.js';
import { oauthEndpoint, type OAuthAdmission } from './endpoint.js';
import { authenticateClient, extractClientCredentials, requireGrant } from './client-auth.js';
import { parseCodeChallenge } from './pkce.js';

/** What this module uses of the services. */
type ServicesUsed = Pick<Services, 'clients' | 'config' | 'deviceFlow' | 'providers' | 'rateLimits'>;

export interface DeviceAuthorizationResponse {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  interval: number;
}

/** Where people enter codes: the provider's own page if it names one, else this server's /device. */
export function verificationUri(services: Pick<Services, 'config'>, provider: Provider): string {
  return provider.deviceFlow.verificationUri ?? `${services.config.publicUrl}/device`;
}

export function verificationUriComplete(base: string, userCode: string): string {
  const prefix = plainPrefix(base);
  // User codes are printable ASCII; anything else takes URL's own path.
  if (prefix !== null && /^[\x20-\x7e]*$/.test(userCode)) return prefix + formEncode(userCode);
  const url = new URL(base);
  url.searchParams.set('code', userCode);
  return url.toString();
}

/**
 * For a base URI without query or fragment (the usual case), `<href>?code=`: what URL's
 * searchParams.set would produce up to the value, worked out once per base instead of per request.
 */
const prefixes = new Memo<string | null>(1_000);
function plainPrefix(base: string): string | null {
  return prefixes.get(base, () => {
    const { href } = new URL(base);
    return href.includes('?') || href.includes('#') ? null : `${href}?code=`;
  });
}

/** application/x-www-form-urlencoded serialisation of one printable-ASCII value, as URLSearchParams does it. */
function formEncode(value: string): string {
  if (/^[A-Za-z0-9*._-]*$/.test(value)) return value;
  return encodeURIComponent(value).replace(/%20/g, '+').replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** A parameter that may come in the body or the query string, but not both. */
function oneOf(name: string, body: FormParams, query: FormParams): string | undefined {
  const inBody = body.get(name);
  const inQuery = query.get(name);
  if (inBody !== undefined && inQuery !== undefined) throw new OAuthError('invalid_request', `parameter '${name}' was given both in the query and in the body`);
  return inBody ?? inQuery;
}

/** `scope`, or its alias `scopes` (authentik's documented name); not both. */
export function requestedScopes(body: FormParams): string[] {
  const scope = body.get('scope');
  const scopes = body.get('scopes');
  if (scope !== undefined && scopes !== undefined) throw new OAuthError('invalid_request', "send 'scope' or its alias 'scopes', not both");
  const parsed = parseScopeParameter(scope ?? scopes ?? '');
  if (parsed === null) throw new OAuthError('invalid_scope', 'the scope parameter is malformed');
  return parsed;
}

/** More than the configured device authorizations from one address in a minute: 429 slow_down (contract, version 2). */
function perAddressLimit(services: ServicesUsed): OAuthAdmission {
  const limiter = services.rateLimits.deviceAuthorizations;
  return async (ctx) => {
    const verdict = await limiter.consume(ctx.state.clientAddress as string);
    if (verdict.limited) {
      throw new OAuthError('slow_down', 'too many device authorization requests from this address; wait before trying again', undefined, 429)
        .withHeader('Retry-After', String(verdict.retryAfterSeconds));
    }
  };
}

export function deviceAuthorizationEndpoint(services: ServicesUsed) {
  return oauthEndpoint(async (ctx, { body }) => {
    if (ctx.method !== 'POST') throw new OAuthError('invalid_request', 'the device authorization endpoint takes POST');
    const query = readQuery(ctx);
    const presented = extractClientCredentials(ctx.get('authorization') || undefined, body);
    const { client, provider } = await authenticateClient(services, presented, { requireSecret: true });
    requireGrant(client, 'DEVICE_CODE');

    const scopes = requestedScopes(body);
    const permitted = permittedScopes(client.allowedScopes);
    const outside = scopes.filter((s) => !permitted.includes(s));
    if (outside.length > 0) throw new OAuthError('invalid_scope', `this client may not ask for: ${outside.join(' ')}`);

    // RFC 8707 §2: stored with the code, the token's aud when the code is exchanged.
    const audience = audienceOf(body, client, false);

    const challenge = parseCodeChallenge(oneOf('code_challenge', body, query), oneOf('code_challenge_method', body, query));
    if (!challenge && provider.deviceFlow.requirePkce) {
      throw new OAuthError('invalid_request', 'this provider requires PKCE: send code_challenge (S256 recommended)');
    }

    // RFC 9449 §10: the thumbprint (base64url SHA-256, 43 characters) of the key the device will poll with.
    const dpopJkt = body.get('dpop_jkt');
    if (dpopJkt !== undefined && !/^[A-Za-z0-9_-]{43}$/.test(dpopJkt)) throw new OAuthError('invalid_request', 'dpop_jkt must be a JWK SHA-256 thumbprint (RFC 7638), base64url');

    let started: StartedAuthorization;
    try {
      started = await services.deviceFlow.start({
        provider,
        client,
        scopes,
        codeChallenge: challenge?.codeChallenge ?? null,
        codeChallengeMethod: challenge?.codeChallengeMethod ?? null,
        audience,
        dpopJkt: dpopJkt ?? null,
      });
    } catch (error) {
      if (!(error instanceof UserCodeSpaceExhaustedError)) throw error;
      // Only a provider with a very small code space in heavy use gets here; the admin should lengthen its codes.
      throw new OAuthError('temporarily_unavailable', 'no user code is free right now; try again shortly', `${error.message} for provider ${provider.slug}`);
    }
    const uri = verificationUri(services, provider);
    const response: DeviceAuthorizationResponse = {
      device_code: started.deviceCode,
      user_code: started.userCode,
      verification_uri: uri,
      verification_uri_complete: verificationUriComplete(uri, started.userCode),
      expires_in: provider.deviceFlow.codeLifetimeSeconds,
      interval: started.authorization.intervalSeconds,
    };
    ctx.status = 200;
    ctx.body = response;
  }, perAddressLimit(services));
}

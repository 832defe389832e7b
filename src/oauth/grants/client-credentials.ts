/**
 * grant_type=client_credentials (and grant_type=password, treated the same): a machine gets a
 * token without a person. The identity is found by the first of the contract's rules that applies:
 *
 *   1. username + password parameters: an app password of that active user;
 *   2. the client secret is base64(username ":" app_password);
 *   3. the client's own secret: a generated service account `<provider slug>-<client_id>-client_credentials`;
 *   4. a JWT (client_assertion of the jwt-bearer type, or as the client secret): verified against
 *      a federated source (→ a generated account per (source, sub)) or an access token of a
 *      federated provider (→ the same user).
 *
 * Every attempt is a LOGIN or LOGIN_FAILED event with the rule, the client, the user and the
 * precise reason of a failure, which the error body leaves out.
 */
import type { Client, GrantType, Provider, User } from '../../domain/model.js';
import type { Services } from '../../domain/services.js';
import { isUsable } from '../../domain/users.js';
import { grantableScopes, parseScopeParameter, permittedScopes } from '../../domain/scopes.js';
import { sha256Hex } from '../../domain/secrets.js';
import { Memo } from '../../domain/cache.js';
import { AssertionRejected, FederationVerifier, looksLikeJwt, peekJwt } from '../../domain/federation/verify-assertion.js';
import { clientServiceAccountUsername, sourceServiceAccountUsername } from '../../domain/federation/service-accounts.js';
import { OAuthError, invalidGrant } from '../errors.js';
import type { Grant, TokenRequest, TokenResponse } from './grant.js';

export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export type IdentityRule = 'app_password' | 'app_password_in_secret' | 'client_secret' | 'federated_source' | 'federated_provider';

interface Identity {
  rule: IdentityRule;
  user: User;
  /** The credential expires then; the token must not outlive it. */
  notAfter: Date | null;
  /** The app password the token is issued on (rules 1 and 2): the token dies with it. */
  appPasswordId?: string;
  /** What the event should say about how the identity was established. */
  context: Record<string, unknown>;
  /** The input JWT's claims (rule 4), for policies (`request.context.oauth_jwt`). */
  jwtClaims?: Record<string, unknown>;
}

/** What the grant learned before failing, for the LOGIN_FAILED event. */
interface Attempt {
  rule: IdentityRule | 'none';
  username: string | null;
  context: Record<string, unknown>;
}

/** One verifier (and JWKS cache) per running server. */
const verifiers = new WeakMap<Services, FederationVerifier>();
export function federationVerifier(services: Services): FederationVerifier {
  let verifier = verifiers.get(services);
  if (!verifier) {
    verifier = new FederationVerifier(services.store);
    verifiers.set(services, verifier);
  }
  return verifier;
}

const USERNAME = /^[A-Za-z0-9@.+_-]{1,150}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2})$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

type DecodedUserSecret =
  | { kind: 'credentials'; username: string; appPassword: string }
  | { kind: 'trailing_newline'; username: string };

/**
 * Rule 2's shape: base64 of UTF-8 `username:app_password` with a username of the username
 * charset. Anything else (a random client secret, a JWT) does not have it.
 */
export function decodeUserSecret(secret: string): DecodedUserSecret | null {
  if (secret.length < 4 || secret.length > 2048 || !BASE64.test(secret)) return null;
  let text: string;
  try {
    text = utf8.decode(Buffer.from(secret, secret.includes('-') || secret.includes('_') ? 'base64url' : 'base64'));
  } catch {
    return null;
  }
  const colon = text.indexOf(':');
  if (colon <= 0) return null;
  const username = text.slice(0, colon);
  if (!USERNAME.test(username)) return null;
  const appPassword = text.slice(colon + 1);
  // `echo user:token | base64` encodes the newline echo adds.
  if (/\r?\n$/.test(appPassword)) return { kind: 'trailing_newline', username };
  if (appPassword === '' || /[\x00-\x1f\x7f]/.test(appPassword)) return null;
  return { kind: 'credentials', username, appPassword };
}

/** Why an app password was refused; looked up only after a refusal, never on the success path. */
async function explainAppPasswordRefusal(services: Services, secret: string, username: string): Promise<string> {
  if (secret.length === 0 || secret.length > 512) return 'the app password is empty or longer than 512 characters';
  const appPassword = await services.store.appPasswords.findOne({ secretHash: sha256Hex(secret) });
  if (!appPassword) return `wrong app password for '${username}' (no app password has this secret: mistyped, or revoked)`;
  if (appPassword.expiresAt && appPassword.expiresAt.getTime() <= Date.now()) {
    return `app password ${appPassword.id} expired at ${appPassword.expiresAt.toISOString()}`;
  }
  const owner = await services.store.users.findOne({ id: appPassword.userId });
  if (!owner) return `app password ${appPassword.id} belongs to a user that no longer exists`;
  if (owner.username !== username) return `app password ${appPassword.id} belongs to another user than '${username}'`;
  if (!owner.isActive) return `user '${owner.username}' is inactive`;
  if (owner.expiresAt && owner.expiresAt.getTime() <= Date.now()) return `user '${owner.username}' expired at ${owner.expiresAt.toISOString()}`;
  return 'the app password was refused';
}

async function appPasswordIdentity(
  services: Services, rule: 'app_password' | 'app_password_in_secret', username: string, secret: string, attempt: Attempt,
): Promise<Identity> {
  attempt.rule = rule;
  attempt.username = username;
  const verified = await services.appPasswords.verify(secret, username);
  if (!verified) {
    throw invalidGrant('the username or app password is wrong, expired or revoked, or the user is inactive', await explainAppPasswordRefusal(services, secret, username));
  }
  const { user, appPassword } = verified;
  return { rule, user, notAfter: earliest(appPassword.expiresAt, user.expiresAt), appPasswordId: appPassword.id, context: { appPasswordId: appPassword.id } };
}

function earliest(...dates: (Date | null | undefined)[]): Date | null {
  let result: Date | null = null;
  for (const d of dates) if (d && (!result || d < result)) result = d;
  return result;
}

/**
 * The generated account must really be the generated account of this client or (source, sub):
 * a person or another source's account that happens to hold the name is never used.
 */
function assertGeneratedAccount(user: User, expected: Record<string, string>, username: string): void {
  const matches = user.type === 'GENERATED_SERVICE_ACCOUNT'
    && Object.entries(expected).every(([key, value]) => user.attributes[key] === value);
  if (!matches) throw invalidGrant('the token cannot be issued for this identity', `username '${username}' is taken by an account that is not this generated service account`);
  if (!user.isActive) throw invalidGrant('the token cannot be issued for this identity', `generated service account '${username}' is inactive`);
}

/** Rule 3's account names, worked out once per (provider slug, client_id): the name is a pure function of them. */
const clientAccountNames = new Memo<string>(10_000);
function clientAccountName(providerSlug: string, clientId: string): string {
  return clientAccountNames.get(`${providerSlug}/${clientId}`, () => clientServiceAccountUsername(providerSlug, clientId));
}

async function clientSecretIdentity(services: Services, provider: Provider, client: Client, attempt: Attempt): Promise<Identity> {
  attempt.rule = 'client_secret';
  const username = clientAccountName(provider.slug, client.clientId);
  attempt.username = username;
  const attributes = { providerId: provider.id, clientId: client.clientId };
  const user = await services.users.ensureGeneratedServiceAccount(username, attributes, null);
  assertGeneratedAccount(user, attributes, username);
  return { rule: 'client_secret', user, notAfter: user.expiresAt, context: {} };
}

async function jwtIdentity(
  services: Services, provider: Provider, jwt: string, carrier: string, attempt: Attempt, requestId: string,
): Promise<Identity> {
  attempt.context.assertionCarrier = carrier;
  const peeked = peekJwt(jwt);
  // A token one of our providers issued goes the federated-provider way; anything else is for the sources.
  const ourProvider = typeof peeked?.payload.iss === 'string' ? await issuingProvider(services, peeked.payload.iss) : null;
  if (ourProvider && provider.federatedProviderIds.includes(ourProvider.id)) return federatedProviderIdentity(services, provider, ourProvider, jwt, attempt);
  attempt.rule = 'federated_source';
  if (ourProvider && provider.federatedSourceIds.length === 0) {
    throw invalidGrant('the JWT is not accepted', `the JWT was issued by provider ${ourProvider.slug}, which is not a federated provider of ${provider.slug}`);
  }
  if (provider.federatedSourceIds.length === 0 && provider.federatedProviderIds.length === 0) {
    throw invalidGrant('the JWT is not accepted', `provider ${provider.slug} trusts no federated sources or providers`);
  }
  const verifier = federationVerifier(services);
  let verified;
  try {
    verified = await verifier.verify(jwt, provider.federatedSourceIds);
  } catch (error) {
    if (!(error instanceof AssertionRejected)) throw error;
    attempt.context.assertionRejection = error.reason;
    if (error.sourceSlug) attempt.context.source = error.sourceSlug;
    throw invalidGrant('the JWT is not accepted', error.detail);
  }
  const { source, claims } = verified;
  attempt.context.source = source.slug;
  const username = sourceServiceAccountUsername(source.slug, claims.sub);
  attempt.username = username;
  const expiresAt = new Date(claims.exp * 1000);
  // The source's property mappings add attributes; they cannot change which account this is.
  const mapped = await services.policies.applySourcePropertyMappings(source.id, claims, requestId);
  const attributes = { ...mapped, federatedSourceId: source.id, iss: typeof claims.iss === 'string' ? claims.iss : null, sub: claims.sub };
  const user = await services.users.ensureGeneratedServiceAccount(username, attributes, expiresAt);
  assertGeneratedAccount(user, { federatedSourceId: source.id, sub: claims.sub }, username);
  return {
    rule: 'federated_source', user, notAfter: earliest(expiresAt, user.expiresAt),
    context: { source: source.slug, iss: claims.iss ?? null, sub: claims.sub, kid: verified.header.kid ?? null },
    jwtClaims: claims,
  };
}

async function federatedProviderIdentity(services: Services, provider: Provider, issuer: Provider, jwt: string, attempt: Attempt): Promise<Identity> {
  attempt.rule = 'federated_provider';
  attempt.context.federatedProvider = issuer.slug;
  const verified = await services.tokens.verifyAccessToken(jwt);
  if (!verified || verified.provider.id !== issuer.id) {
    throw invalidGrant('the JWT is not accepted', `not a live access token of provider ${issuer.slug}: ${await explainAccessTokenRefusal(services, jwt)}`);
  }
  const user = await services.users.get(verified.claims.sub);
  attempt.username = user?.username ?? null;
  if (!user) throw invalidGrant('the JWT is not accepted', `the user ${verified.claims.sub} of the access token no longer exists`);
  if (!isUsable(user)) throw invalidGrant('the JWT is not accepted', `user '${user.username}' is inactive or expired`);
  return {
    rule: 'federated_provider', user, notAfter: earliest(new Date(verified.claims.exp * 1000), user.expiresAt),
    context: { federatedProvider: issuer.slug, inputJti: verified.claims.jti },
    jwtClaims: verified.claims,
  };
}

async function explainAccessTokenRefusal(services: Services, jwt: string): Promise<string> {
  const payload = peekJwt(jwt)?.payload;
  if (!payload) return 'malformed';
  if (typeof payload.exp === 'number' && payload.exp <= Date.now() / 1000) return `expired at ${new Date(payload.exp * 1000).toISOString()}`;
  if (typeof payload.jti === 'string' && (await services.tokens.isRevoked(payload.jti))) return `revoked (jti ${payload.jti})`;
  return 'the signature, type or claims do not verify';
}

async function issuingProvider(services: Services, iss: string): Promise<Provider | null> {
  const match = /\/application\/o\/([a-z0-9-]{1,64})\/$/.exec(iss);
  if (!match) return null;
  const provider = await services.providers.getBySlugCached(match[1]!);
  return provider && services.providers.issuer(provider) === iss ? provider : null;
}

/** Applies the contract's rules in order; throws the OAuth error the first applicable rule ends in. */
async function identify(services: Services, request: TokenRequest, attempt: Attempt): Promise<Identity> {
  const { params, client: authenticated } = request;
  const { client, provider, secretVerified, presentedSecrets, viaBasic } = authenticated;
  const username = params.get('username');
  const password = params.get('password');
  const assertionType = params.get('client_assertion_type');
  const assertion = params.get('client_assertion');

  // A secret that is not the client's own and was not meant for rules 2 or 4 is a wrong client secret.
  const wrongClientSecret = (): OAuthError => {
    attempt.context.clientSecret = 'wrong';
    if (client.type === 'CONFIDENTIAL' && viaBasic) {
      return new OAuthError('invalid_client', 'client authentication failed', 'the Basic password is neither the client secret nor a credential of the client_credentials rules')
        .withHeader('WWW-Authenticate', 'Basic realm="tessera"');
    }
    return invalidGrant('the client secret is wrong', 'the client secret is neither the client\'s secret nor a credential of the client_credentials rules');
  };

  // Rule 1: username + app password.
  if (username !== undefined || password !== undefined) {
    if (!username || !password) throw new OAuthError('invalid_request', 'username and password go together: send both');
    if (presentedSecrets.length > 0 && !secretVerified) throw wrongClientSecret();
    return appPasswordIdentity(services, 'app_password', username, password, attempt);
  }

  // Rule 2: the client secret is base64(username:app_password). The client's own secret never has that shape.
  if (!secretVerified) {
    for (const secret of presentedSecrets) {
      const decoded = decodeUserSecret(secret);
      if (!decoded) continue;
      if (decoded.kind === 'trailing_newline') {
        attempt.rule = 'app_password_in_secret';
        attempt.username = decoded.username;
        throw invalidGrant(
          'the client secret decodes to username:app_password followed by a newline; encode it without one (echo -n, or printf \'%s\')',
          'base64(username:app_password) secret ends with a newline (made with echo without -n)',
        );
      }
      return appPasswordIdentity(services, 'app_password_in_secret', decoded.username, decoded.appPassword, attempt);
    }
  }

  // Rule 3: the client's own secret.
  if (secretVerified) return clientSecretIdentity(services, provider, client, attempt);

  // Rule 4: a JWT, as client_assertion or as the client secret.
  if (assertion !== undefined || assertionType !== undefined) {
    attempt.rule = 'federated_source';
    if (assertionType !== JWT_BEARER_ASSERTION_TYPE) {
      throw new OAuthError('invalid_request', `client_assertion_type must be ${JWT_BEARER_ASSERTION_TYPE}`);
    }
    if (!assertion) throw new OAuthError('invalid_request', 'client_assertion is required with client_assertion_type');
    if (presentedSecrets.length > 0) throw wrongClientSecret();
    return jwtIdentity(services, provider, assertion, 'client_assertion', attempt, request.requestId);
  }
  const jwtSecret = presentedSecrets.find(looksLikeJwt);
  if (jwtSecret) return jwtIdentity(services, provider, jwtSecret, 'client_secret', attempt, request.requestId);

  if (presentedSecrets.length > 0) throw wrongClientSecret();
  throw invalidGrant(
    'no credential for client_credentials: send username and password, a client secret, or a JWT as client_assertion',
    'no rule applies: no username/password, no client secret and no assertion',
  );
}

function grantedScopes(client: Client, requested: string | undefined): string[] {
  const asked = parseScopeParameter(requested);
  if (asked === null && requested !== undefined) throw new OAuthError('invalid_scope', 'the scope parameter is malformed');
  const scopes = asked ?? [];
  const permitted = permittedScopes(client.allowedScopes);
  const refused = scopes.filter((s) => !permitted.includes(s));
  if (refused.length > 0) throw new OAuthError('invalid_scope', `this client may not ask for: ${refused.join(' ')}`);
  return scopes;
}

async function handle(services: Services, request: TokenRequest, grantType: string): Promise<TokenResponse> {
  const { client, provider } = request.client;
  const attempt: Attempt = { rule: 'none', username: null, context: {} };
  const authMethod = request.client.method;
  try {
    const asked = grantedScopes(client, request.params.get('scope') ?? request.params.get('scopes'));
    const identity = await identify(services, request, attempt);
    const { user } = identity;
    // The admin scope only for admins, not granted otherwise (RFC 6749 §3.3; the response says what was).
    const scopes = grantableScopes(user, asked);
    attempt.rule = identity.rule;
    attempt.username = user.username;
    const decision = await services.policies.evaluateTokenPolicies({
      provider, client, user, grantType, scopes, jwtClaims: identity.jwtClaims ?? null, requestId: request.requestId,
    });
    if (!decision.allowed) {
      attempt.context.policy = decision.policyName;
      throw invalidGrant('the token was refused by a policy', `policy '${decision.policyName}' denied: ${decision.reason}`);
    }
    const extraClaims = await services.policies.scopeMappingClaims({ provider, user, client, scopes, requestId: request.requestId });
    const issue = { provider, client, user, scopes, notAfter: identity.notAfter, extraClaims, appPasswordId: identity.appPasswordId ?? null };
    const access = await services.tokens.issueAccessToken(issue);
    const response: TokenResponse = { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, scope: scopes.join(' ') };
    if (scopes.includes('openid')) response.id_token = await services.tokens.issueIdToken(issue);
    services.events.record({
      action: 'LOGIN',
      requestId: request.requestId,
      clientId: client.clientId,
      username: user.username,
      context: Object.assign(
        { grantType, providerId: provider.id, authMethod, rule: identity.rule, userId: user.id, scope: response.scope, jti: access.claims.jti },
        identity.context,
      ),
    });
    return response;
  } catch (error) {
    const reason = error instanceof OAuthError ? (error.detail ?? error.description) : 'internal error';
    services.events.record({
      action: 'LOGIN_FAILED',
      requestId: request.requestId,
      clientId: client.clientId,
      username: attempt.username,
      context: { grantType, providerId: provider.id, authMethod, ...attempt.context, rule: attempt.rule, error: error instanceof OAuthError ? error.code : 'server_error', reason },
    });
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

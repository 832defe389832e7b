/**
 * The identity rules of client_credentials (and password), in the contract's order; the first
 * that applies decides:
 *
 *   1. username + password parameters: an app password of that active user;
 *   2. the client secret is base64(username ":" app_password);
 *   3. the client's own secret: the generated service account of (provider id, client_id);
 *   4. a JWT (client_assertion of the jwt-bearer type, or as the client secret): a federated
 *      source's (→ the generated account of (source id, sub)) or a live access token of a
 *      federated provider (→ the same user).
 *
 * Each rule returns an Identity or a typed Refusal and writes nothing: a generated account comes
 * back prospective, to be saved by the grant once the bound policies allowed the request.
 */
import type { Client, Provider, User } from './model.js';
import type { Services } from './services.js';
import type { ProspectiveAccount } from './generated-accounts.js';
import { isUsable } from './users.js';
import { looksLikeJwt } from './federation/verify-assertion.js';
import type { IncomingJwtOptions } from './federation/incoming-jwt.js';
import { clientIdentityKey, sourceIdentityKey } from './federation/service-accounts.js';

export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export type IdentityRule = 'app_password' | 'app_password_in_secret' | 'client_secret' | 'federated_source' | 'federated_provider';

export interface Identity {
  kind: 'identity';
  rule: IdentityRule;
  /** Who the token is for; for a generated account, the account as it will be saved. */
  user: User;
  /** A generated account to save once the policies allowed the request; null for a stored user. */
  account: ProspectiveAccount | null;
  /** The credential expires then; the token must not outlive it. */
  notAfter: Date | null;
  /** The app password the token is issued on (rules 1 and 2): the token dies with it. */
  appPasswordId?: string;
  /** What the event should say about how the identity was established. */
  context: Record<string, unknown>;
  /** The input JWT's claims (rule 4), for policies (`request.context.oauth_jwt`). */
  jwtClaims: Record<string, unknown> | null;
  /** The most that may be granted (a federated provider's input token's scope), or null for no limit. */
  scopeLimit: readonly string[] | null;
}

export interface Refusal {
  kind: 'refused';
  rule: IdentityRule | 'none';
  /** wrong_client_secret: a secret that is neither the client's nor a credential of the rules (client-auth answers it). */
  error: 'invalid_grant' | 'invalid_request' | 'wrong_client_secret';
  description: string;
  /** For the event log, never for the client. */
  detail: string;
  username: string | null;
  context: Record<string, unknown>;
}

/** What the request presented, as plain values. */
export interface PresentedCredentials {
  username?: string;
  password?: string;
  clientAssertionType?: string;
  clientAssertion?: string;
  /** The client secret in every form it may have been meant (decoded, as sent). */
  secrets: readonly string[];
  /** The secret is the client's own. */
  secretVerified: boolean;
}

export type RuleServices = Pick<Services, 'appPasswords' | 'generatedAccounts' | 'jwtVerifier' | 'policies' | 'users'>;

const NOT_ACCEPTED = 'the JWT is not accepted';

/** Where the JWT came: client_credentials' assertion or secret, jwt-bearer's assertion, token exchange's subject_token. */
export type JwtCarrier = 'client_assertion' | 'client_secret' | 'assertion' | 'subject_token';

function refused(rule: Refusal['rule'], error: Refusal['error'], description: string, detail: string, extra: Partial<Refusal> = {}): Refusal {
  return { kind: 'refused', rule, error, description, detail, username: null, context: {}, ...extra };
}

function earliest(...dates: (Date | null | undefined)[]): Date | null {
  let result: Date | null = null;
  for (const d of dates) if (d && (!result || d < result)) result = d;
  return result;
}

/** Applies the rules in order. */
export async function identify(
  services: RuleServices, provider: Provider, client: Client, presented: PresentedCredentials, requestId: string,
): Promise<Identity | Refusal> {
  const { username, password, clientAssertionType: assertionType, clientAssertion: assertion, secrets, secretVerified } = presented;
  const wrongSecret = () => refused('none', 'wrong_client_secret', 'the client secret is wrong', 'the secret is not the client secret', { context: { clientSecret: 'wrong' } });
  if (username !== undefined || password !== undefined) {
    if (!username || !password) return refused('app_password', 'invalid_request', 'username and password go together: send both', 'username and password go together');
    if (secrets.length > 0 && !secretVerified) return wrongSecret();
    return appPasswordRule(services, 'app_password', username, password);
  }
  // Rule 2 before rule 3: the client's own secret never has the base64(username:app_password) shape.
  if (!secretVerified) {
    for (const secret of secrets) {
      const decoded = decodeUserSecret(secret);
      if (decoded?.kind === 'trailing_newline') {
        return refused('app_password_in_secret', 'invalid_grant',
          'the client secret decodes to username:app_password followed by a newline; encode it without one (echo -n, or printf \'%s\')',
          'base64(username:app_password) secret ends with a newline (made with echo without -n)', { username: decoded.username });
      }
      if (decoded) return appPasswordRule(services, 'app_password_in_secret', decoded.username, decoded.appPassword);
    }
  }
  if (secretVerified) return clientSecretRule(services, provider, client);
  if (assertion !== undefined || assertionType !== undefined) {
    if (assertionType !== JWT_BEARER_ASSERTION_TYPE) {
      return refused('federated_source', 'invalid_request', `client_assertion_type must be ${JWT_BEARER_ASSERTION_TYPE}`, 'wrong client_assertion_type');
    }
    if (!assertion) return refused('federated_source', 'invalid_request', 'client_assertion is required with client_assertion_type', 'no client_assertion');
    if (secrets.length > 0) return wrongSecret();
    return jwtRule(services, provider, assertion, 'client_assertion', requestId);
  }
  const jwtSecret = secrets.find(looksLikeJwt);
  if (jwtSecret) return jwtRule(services, provider, jwtSecret, 'client_secret', requestId);
  if (secrets.length > 0) return wrongSecret();
  return refused('none', 'invalid_grant',
    'no credential for client_credentials: send username and password, a client secret, or a JWT as client_assertion',
    'no rule applies: no username/password, no client secret and no assertion');
}

/** Rules 1 and 2: an app password of an active user of that name. */
export async function appPasswordRule(
  services: RuleServices, rule: 'app_password' | 'app_password_in_secret', username: string, secret: string,
): Promise<Identity | Refusal> {
  const verified = await services.appPasswords.verify(secret, username);
  if (!verified) {
    return refused(rule, 'invalid_grant', 'the username or app password is wrong, expired or revoked, or the user is inactive',
      await services.appPasswords.explainRefusal(secret, username), { username });
  }
  const { user, appPassword } = verified;
  return {
    kind: 'identity', rule, user, account: null, notAfter: earliest(appPassword.expiresAt, user.expiresAt), appPasswordId: appPassword.id,
    context: { appPasswordId: appPassword.id }, jwtClaims: null, scopeLimit: null,
  };
}

/** Rule 3: the generated account of (provider id, client_id). */
export async function clientSecretRule(services: RuleServices, provider: Provider, client: Client): Promise<Identity | Refusal> {
  const prospective = await services.generatedAccounts.prospective({
    key: clientIdentityKey(provider.id, client.clientId),
    readable: { slug: provider.slug, name: client.clientId },
    identity: { providerId: provider.id, clientId: client.clientId },
    expiresAt: null,
  });
  if ('refused' in prospective) return refused('client_secret', 'invalid_grant', 'the token cannot be issued for this identity', prospective.refused);
  const { account } = prospective;
  return { kind: 'identity', rule: 'client_secret', user: account.user, account, notAfter: account.user.expiresAt, context: {}, jwtClaims: null, scopeLimit: null };
}

/** Rule 4: a JWT, through the one verifier of incoming JWTs. */
export async function jwtRule(
  services: RuleServices, provider: Provider, jwt: string, carrier: JwtCarrier, requestId: string, options: IncomingJwtOptions = {},
): Promise<Identity | Refusal> {
  const verified = await services.jwtVerifier.verifyIncomingJwt(provider, jwt, options);
  if (verified.kind === 'refused') {
    const rule = verified.federatedProvider ? 'federated_provider' : 'federated_source';
    const context: Record<string, unknown> = { assertionCarrier: carrier, assertionRejection: verified.reason };
    if (verified.source) context.source = verified.source;
    if (verified.federatedProvider) context.federatedProvider = verified.federatedProvider;
    return refused(rule, 'invalid_grant', NOT_ACCEPTED, verified.detail, { context });
  }
  if (verified.kind === 'federated_provider') {
    const { issuer, claims } = verified;
    const context = { assertionCarrier: carrier, federatedProvider: issuer.slug, inputJti: claims.jti };
    const user = await services.users.get(claims.sub);
    if (!user) return refused('federated_provider', 'invalid_grant', NOT_ACCEPTED, `the user ${claims.sub} of the access token no longer exists`, { context });
    if (!isUsable(user)) return refused('federated_provider', 'invalid_grant', NOT_ACCEPTED, `user '${user.username}' is inactive or expired`, { context, username: user.username });
    return {
      kind: 'identity', rule: 'federated_provider', user, account: null, notAfter: earliest(new Date(claims.exp * 1000), user.expiresAt),
      context, jwtClaims: claims, scopeLimit: claims.scope.split(' ').filter(Boolean),
    };
  }
  const { source, claims, header } = verified;
  const context = { assertionCarrier: carrier, source: source.slug, iss: claims.iss ?? null, sub: claims.sub, kid: header.kid ?? null };
  const expiresAt = new Date(claims.exp * 1000);
  // The source's property mappings add attributes; they cannot change which account this is.
  const mapped = await services.policies.applySourcePropertyMappings(source.id, claims, requestId);
  const prospective = await services.generatedAccounts.prospective({
    key: sourceIdentityKey(source.id, claims.sub),
    readable: { slug: source.slug, name: claims.sub },
    identity: { federatedSourceId: source.id, iss: typeof claims.iss === 'string' ? claims.iss : null, sub: claims.sub },
    mapped,
    expiresAt,
  });
  if ('refused' in prospective) return refused('federated_source', 'invalid_grant', 'the token cannot be issued for this identity', prospective.refused, { context });
  const { account } = prospective;
  return {
    kind: 'identity', rule: 'federated_source', user: account.user, account, notAfter: earliest(expiresAt, account.user.expiresAt),
    context, jwtClaims: claims, scopeLimit: null,
  };
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
function decodeUserSecret(secret: string): DecodedUserSecret | null {
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

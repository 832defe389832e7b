/** Scopes (RFC 6749 §3.3): space-delimited tokens of printable ASCII without space, quote or backslash. */
import { ValidationError } from './errors.js';

export const DEFAULT_SCOPES = ['openid', 'profile', 'email', 'offline_access'] as const;
/** Admin API access by access token (contract v2): only for admins, only through clients that list it. */
export const ADMIN_SCOPE = 'tessera:admin';
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/;

export function isScopeToken(value: string): boolean {
  return SCOPE_TOKEN.test(value);
}

export function validateScopes(field: string, scopes: string[]): string[] {
  for (const scope of scopes) {
    if (!isScopeToken(scope)) throw new ValidationError(field, `'${scope}' is not a valid scope (printable ASCII, no spaces, quotes or backslashes, at most 128 characters)`);
  }
  return [...new Set(scopes)];
}

/** Splits a request's scope parameter; empty or absent means "none asked". */
export function parseScopeParameter(value: string | undefined): string[] | null {
  if (value === undefined) return null;
  const parts = value.split(' ').filter((s) => s !== '');
  return parts.every(isScopeToken) ? [...new Set(parts)] : null;
}

/** What a client may ask for: its allowed scopes, or the provider defaults when it has none. */
export function permittedScopes(allowedScopes: readonly string[]): readonly string[] {
  return allowedScopes.length > 0 ? allowedScopes : DEFAULT_SCOPES;
}

/**
 * The scopes this user may be granted of those asked (and allowed to the client): the admin scope
 * only for admins. RFC 6749 §3.3 lets the server grant less than asked, and the response's
 * `scope` then says what was granted; refusing (invalid_scope) could not work for the device
 * flow, where the scope is asked before anyone knows who will approve it.
 */
export function grantableScopes(user: { isAdmin: boolean }, scopes: readonly string[]): string[] {
  return user.isAdmin ? [...scopes] : scopes.filter((s) => s !== ADMIN_SCOPE);
}

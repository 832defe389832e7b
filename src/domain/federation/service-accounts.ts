/**
 * Names of generated service accounts. Deterministic (the same client or the same (source, sub)
 * always maps to the same account) and within the username charset; where a name had to be
 * changed to fit (characters outside the charset, or too long), a short hash of the original is
 * appended, so two different subjects can never end up sharing one account.
 */
import { sha256Hex } from '../secrets.js';

const USERNAME_CHAR = /[A-Za-z0-9@.+_-]/;
const MAX_USERNAME = 150;
const HASH_LENGTH = 12;

export function generatedUsername(name: string): string {
  const sanitized = [...name].map((c) => (USERNAME_CHAR.test(c) ? c : '_')).join('');
  if (sanitized === name && name.length <= MAX_USERNAME) return name;
  const suffix = `-${sha256Hex(name).slice(0, HASH_LENGTH)}`;
  return sanitized.slice(0, MAX_USERNAME - suffix.length) + suffix;
}

/** Rule 3 of client_credentials: `<provider slug>-<client_id>-client_credentials`. */
export function clientServiceAccountUsername(providerSlug: string, clientId: string): string {
  return generatedUsername(`${providerSlug}-${clientId}-client_credentials`);
}

/** One account per (source, sub): `<source slug>-<sub>`. */
export function sourceServiceAccountUsername(sourceSlug: string, sub: string): string {
  return generatedUsername(`${sourceSlug}-${sub}`);
}

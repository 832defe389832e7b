/**
 * The identity of a generated service account is a key, never a name:
 *
 *   - rule 3 of client_credentials: (provider id, client_id);
 *   - a federated source's JWT: (source id, sub).
 *
 * The key is a JSON array, so no choice of parts can give two identities one key (joining with
 * '-' did: `k8s` + `prod-x` and `k8s-prod` + `x`). The account's id, the `sub` of its tokens, is
 * derived from the key, so it is the same after the account expired and was made again. The
 * username is for display only: readable parts plus a hash of the key.
 */
import { createHash } from 'node:crypto';
import { sha256Hex } from '../secrets.js';

export type IdentityKind = 'client_credentials' | 'federated_source';

export interface IdentityKey {
  kind: IdentityKind;
  /** The injective encoding stored (unique) as the account's identityKey. */
  value: string;
}

/** Attributes that say whose account this is: set from the key, never changed by a mapping or a later use. */
export const IDENTITY_ATTRIBUTES: readonly string[] = ['providerId', 'clientId', 'federatedSourceId', 'sub', 'iss'];

export function clientIdentityKey(providerId: string, clientId: string): IdentityKey {
  return { kind: 'client_credentials', value: JSON.stringify(['client_credentials', providerId, clientId]) };
}

export function sourceIdentityKey(sourceId: string, sub: string): IdentityKey {
  return { kind: 'federated_source', value: JSON.stringify(['federated_source', sourceId, sub]) };
}

/** Domain-separated SHA-256 of the key: the hash is never shared with another use of SHA-256 here. */
function keyDigest(key: IdentityKey): Buffer {
  return createHash('sha256').update('tessera generated account v1\0').update(key.value).digest();
}

/**
 * The account id: the first 128 bits of the key's digest in UUID form, version 8 ("custom",
 * RFC 9562 §5.8), so it looks like every other user id in the admin API and in tokens.
 */
export function generatedAccountId(key: IdentityKey): string {
  const bytes = keyDigest(key).subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const USERNAME_CHAR = /[A-Za-z0-9@.+_-]/;
const MAX_USERNAME = 150;
/** 64 bits: making another identity's display name costs ~2^64 hashes (and would still not take its account). */
const NAME_HASH_LENGTH = 16;

function sanitize(text: string): string {
  return [...text].map((c) => (USERNAME_CHAR.test(c) ? c : '_')).join('');
}

/**
 * The display name: `<provider slug>-<client_id>-client_credentials-<hash>` or
 * `<source slug>-<sub>-<hash>`, within the username charset and length. `fallback` is the name
 * used when a person already holds that one: the whole digest, which nothing else is named.
 */
export function generatedUsername(key: IdentityKey, readable: { slug: string; name: string }, fallback = false): string {
  const digest = keyDigest(key).toString('hex');
  if (fallback) return `${readable.slug}-${digest}`.slice(-MAX_USERNAME);
  const suffix = key.kind === 'client_credentials' ? `-client_credentials-${digest.slice(0, NAME_HASH_LENGTH)}` : `-${digest.slice(0, NAME_HASH_LENGTH)}`;
  const head = sanitize(`${readable.slug}-${readable.name}`);
  return head.slice(0, MAX_USERNAME - suffix.length) + suffix;
}

// ---- round 1's names of rule 3's accounts, for recognising them once (see migrateLegacyAccounts) ----

function legacyName(name: string): string {
  const sanitized = sanitize(name);
  if (sanitized === name && name.length <= MAX_USERNAME) return name;
  const suffix = `-${sha256Hex(name).slice(0, 12)}`;
  return sanitized.slice(0, MAX_USERNAME - suffix.length) + suffix;
}

export function legacyClientAccountUsername(providerSlug: string, clientId: string): string {
  return legacyName(`${providerSlug}-${clientId}-client_credentials`);
}

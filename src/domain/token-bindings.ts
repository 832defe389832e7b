/**
 * What an access token is bound to besides its own jti: the credential it was issued on (an app
 * password, or the refresh-token family of its grant). The token carries `sid`, a digest of that
 * credential's id, so no internal id leaves the server; revoking the credential puts the sid on
 * the denylist of revoked jtis, which every verification reads anyway (one lookup for both).
 */
import { LIMITS } from './providers.js';
import { sha256 } from './secrets.js';
import { ConflictError } from '../store/errors.js';
import type { Collections } from '../store/ports.js';

export type BindingKind = 'app_password' | 'refresh_family';

/** 128 bits of a SHA-256: unique enough, and shorter in every token. */
export function credentialSid(kind: BindingKind, id: string): string {
  return sha256(`${kind}:${id}`).subarray(0, 16).toString('base64url');
}

/**
 * Every access token carrying this sid is revoked from now on. The denial is kept as long as any
 * access token can live (the longest lifetime a provider may set): one issued just before is dead too.
 * Store failures propagate: a revocation that did not happen must not be reported as done.
 */
export async function denyTokensOf(collections: Pick<Collections, 'revokedTokens'>, sid: string, now = new Date()): Promise<void> {
  const expiresAt = new Date(now.getTime() + LIMITS.accessTokenLifetimeSeconds.max * 1000);
  try {
    await collections.revokedTokens.insert({ id: sid, expiresAt, createdAt: now });
  } catch (error) {
    // Denied already: a denial is never undone.
    if (!(error instanceof ConflictError)) throw error;
  }
}

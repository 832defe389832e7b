/**
 * Signed-in /device sessions, kept in the store: the cookie holds only a random secret, the store
 * its SHA-256 with the user and the CSRF token. So a session ends for every server process when
 * it is deleted: at sign-out, and for all of a user's sessions at a password change or deletion
 * (UserService). Sessions before sign-in hold no authority and stay in the cookie alone, so an
 * anonymous visit writes nothing.
 */
import { randomBytes } from 'node:crypto';
import type { DeviceSessionRecord } from './model.js';
import { generateSecret, sha256Hex } from './secrets.js';
import type { Collections } from '../store/ports.js';

export const SESSION_LIFETIME_MS = 60 * 60 * 1000;

export function newCsrfToken(): string {
  return randomBytes(32).toString('base64url');
}

export class DeviceSessionStore {
  constructor(private readonly collections: Pick<Collections, 'deviceSessions'>) {}

  /** A new session for the user; the secret goes into the cookie and nowhere else. */
  async start(userId: string, now = Date.now()): Promise<{ secret: string; record: DeviceSessionRecord }> {
    const secret = generateSecret();
    const record: DeviceSessionRecord = {
      id: sha256Hex(secret), userId, csrf: newCsrfToken(), expiresAt: new Date(now + SESSION_LIFETIME_MS), createdAt: new Date(now),
    };
    await this.collections.deviceSessions.insert(record);
    return { secret, record };
  }

  /** The live session of this secret, or null (unknown, ended or expired). */
  async find(secret: string, now = Date.now()): Promise<DeviceSessionRecord | null> {
    if (secret.length === 0 || secret.length > 128) return null;
    const record = await this.collections.deviceSessions.findOne({ id: sha256Hex(secret) });
    return record && record.expiresAt.getTime() > now ? record : null;
  }

  async end(secret: string): Promise<void> {
    await this.collections.deviceSessions.deleteOne({ id: sha256Hex(secret) });
  }
}

/**
 * App passwords: long random secrets a user or service account hands to machines. Shown once,
 * stored as SHA-256 (they are high-entropy, so a fast hash is safe and allows lookup by hash).
 */
import { randomUUID } from 'node:crypto';
import type { AppPassword, User } from './model.js';
import { NotFoundError, ValidationError } from './errors.js';
import { generateSecret, sha256Hex } from './secrets.js';
import { isUsable } from './users.js';
import { TtlCache } from './cache.js';
import { credentialSid, denyTokensOf } from './token-bindings.js';
import type { Collections } from '../store/ports.js';

export interface CreateAppPasswordInput {
  userId: string;
  description?: string | null;
  expiresAt?: Date | null;
}

export interface VerifiedAppPassword {
  user: User;
  appPassword: AppPassword;
}

/** lastUsedAt is written at most once a minute per app password, off the response path. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** How long another process's revocation can go unseen here (this process's own is seen at once). */
const CACHE_TTL_MS = 2_000;

/** Blank means none. */
export function validateDescription(value: string | null | undefined): string | null {
  const description = value?.trim() || null;
  if (description && description.length > 500) throw new ValidationError('description', 'must be at most 500 characters');
  return description;
}

export class AppPasswordService {
  /** Live app passwords by secret hash (never by the secret); unknown hashes are not remembered. */
  private readonly byHash = new TtlCache<AppPassword>(CACHE_TTL_MS);

  /**
   * `users` reads owners through UserService's brief cache, which the admin API invalidates when a
   * user changes; without it, owners are read from the store each time.
   */
  constructor(
    private readonly collections: Pick<Collections, 'appPasswords' | 'users' | 'revokedTokens'>,
    private readonly users?: { get(id: string): Promise<User | null> },
  ) {}

  async create(input: CreateAppPasswordInput, secret = generateSecret()): Promise<{ appPassword: AppPassword; secret: string }> {
    const user = await this.collections.users.findOne({ id: input.userId });
    if (!user) throw new NotFoundError('user', input.userId);
    if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) throw new ValidationError('expiresAt', 'must be in the future');
    const description = validateDescription(input.description);
    const appPassword: AppPassword = {
      id: randomUUID(),
      userId: user.id,
      description,
      secretHash: sha256Hex(secret),
      expiresAt: input.expiresAt ?? null,
      lastUsedAt: null,
      createdAt: new Date(),
    };
    await this.collections.appPasswords.insert(appPassword);
    this.byHash.delete(appPassword.secretHash);
    return { appPassword, secret };
  }

  get(id: string): Promise<AppPassword | null> {
    return this.collections.appPasswords.findOne({ id });
  }

  listForUsers(userIds: readonly string[]): Promise<AppPassword[]> {
    return this.collections.appPasswords.find({ userId: { $in: [...userIds] } }, { sort: { createdAt: 1 } });
  }

  /** Revoking an app password revokes the access tokens issued on it (the denial first: a failure leaves it usable, never half-revoked). */
  async revoke(id: string): Promise<boolean> {
    if (!(await this.collections.appPasswords.findOne({ id }))) throw new NotFoundError('app password', id);
    await denyTokensOf(this.collections, credentialSid('app_password', id));
    const deleted = await this.collections.appPasswords.deleteOne({ id });
    this.byHash.clear();
    if (!deleted) throw new NotFoundError('app password', id);
    return true;
  }

  /**
   * Finds the live app password with this secret and its usable owner; when `username` is given
   * the owner must be that user. Expired, revoked and unknown secrets are refused alike.
   */
  async verify(secret: string, username?: string): Promise<VerifiedAppPassword | null> {
    if (secret.length === 0 || secret.length > 512) return null;
    const secretHash = sha256Hex(secret);
    let appPassword = this.byHash.get(secretHash) ?? null;
    if (!appPassword) {
      appPassword = await this.collections.appPasswords.findOne({ secretHash });
      if (appPassword) this.byHash.set(secretHash, appPassword);
    }
    const now = Date.now();
    if (!appPassword || (appPassword.expiresAt && appPassword.expiresAt.getTime() <= now)) return null;
    const user = this.users ? await this.users.get(appPassword.userId) : await this.collections.users.findOne({ id: appPassword.userId });
    if (!user || !isUsable(user, now)) return null;
    if (username !== undefined && user.username !== username) return null;
    this.touch(appPassword, now);
    return { user, appPassword };
  }

  /**
   * Why verify(secret, username) refused: for the event log only (the client hears a plain
   * refusal). Looked up only after a refusal, never on the success path.
   */
  async explainRefusal(secret: string, username: string): Promise<string> {
    if (secret.length === 0 || secret.length > 512) return 'the app password is empty or longer than 512 characters';
    const appPassword = await this.collections.appPasswords.findOne({ secretHash: sha256Hex(secret) });
    if (!appPassword) return `wrong app password for '${username}' (no app password has this secret: mistyped, or revoked)`;
    if (appPassword.expiresAt && appPassword.expiresAt.getTime() <= Date.now()) {
      return `app password ${appPassword.id} expired at ${appPassword.expiresAt.toISOString()}`;
    }
    const owner = await this.collections.users.findOne({ id: appPassword.userId });
    if (!owner) return `app password ${appPassword.id} belongs to a user that no longer exists`;
    if (owner.username !== username) return `app password ${appPassword.id} belongs to another user than '${username}'`;
    if (!owner.isActive) return `user '${owner.username}' is inactive`;
    if (owner.expiresAt && owner.expiresAt.getTime() <= Date.now()) return `user '${owner.username}' expired at ${owner.expiresAt.toISOString()}`;
    return 'the app password was refused';
  }

  /** Ensures `secret` is an app password of the user (bootstrap token); idempotent. */
  async ensure(userId: string, secret: string, description: string): Promise<void> {
    const existing = await this.collections.appPasswords.findOne({ secretHash: sha256Hex(secret) });
    if (existing?.userId === userId) return;
    if (existing) await this.revoke(existing.id);
    this.byHash.clear();
    await this.create({ userId, description }, secret);
  }

  private touch(appPassword: AppPassword, now: number): void {
    if (appPassword.lastUsedAt && now - appPassword.lastUsedAt.getTime() < LAST_USED_RESOLUTION_MS) return;
    // The cached record (if any) learns the write too, so later uses within the minute skip it.
    appPassword.lastUsedAt = new Date(now);
    void this.collections.appPasswords
      .updateOne({ id: appPassword.id, $or: [{ lastUsedAt: null }, { lastUsedAt: { $lt: new Date(now - LAST_USED_RESOLUTION_MS) } }] }, { $set: { lastUsedAt: new Date(now) } })
      .catch(() => undefined);
  }
}

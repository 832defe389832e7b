/**
 * Users: people (INTERNAL, EXTERNAL), service accounts, and generated service accounts that
 * client_credentials creates. Login passwords are argon2id hashes; `id` is the stable `sub`.
 */
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import argon2 from 'argon2';
import type { User, UserType } from './model.js';
import { DomainConflictError, NotFoundError, ValidationError } from './errors.js';
import { TtlCache } from './cache.js';
import { ConcurrencyGate } from './concurrency.js';
import { literalContains, type Collections, type Filter } from '../store/ports.js';
import { ConflictError } from '../store/errors.js';
import { keysetPage, type Page, type PageRequest } from './pagination.js';
import { USER_TYPES } from './model.js';

export interface CreateUserInput {
  username: string;
  name?: string | null;
  email?: string | null;
  password?: string | null;
  isAdmin?: boolean | null;
  attributes?: Record<string, unknown> | null;
  type?: UserType;
  expiresAt?: Date | null;
}

export interface UpdateUserInput {
  name?: string | null;
  email?: string | null;
  isActive?: boolean | null;
  isAdmin?: boolean | null;
  attributes?: Record<string, unknown> | null;
}

export interface UserListFilter {
  type?: UserType | null;
  /** Substring of username, name or email, case-insensitive. */
  search?: string | null;
}

const USERNAME = /^[A-Za-z0-9@.+_-]{1,150}$/;

/** Whether a string can be a username at all (so can name a user). */
export function isUsername(value: string): boolean {
  return USERNAME.test(value);
}

/**
 * Login-password verifications run at most this many at once (argon2 runs on libuv's pool of 4
 * threads, and on no more cores than there are), with a short queue; the rest are refused at once
 * (OverloadedError) rather than queued behind a burst.
 */
const CONCURRENT_PASSWORD_CHECKS = Math.max(1, Math.min(4, availableParallelism()));
const WAITING_PASSWORD_CHECKS = 2 * CONCURRENT_PASSWORD_CHECKS;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}$/;
export const MIN_PASSWORD_LENGTH = 8;
const MAX_PASSWORD_LENGTH = 1024;

export function validateUsername(value: string): string {
  if (!USERNAME.test(value)) throw new ValidationError('username', 'must be 1–150 characters of letters, digits and @ . + _ -');
  return value;
}

/** A display name is optional; blank means none. */
export function validateOptionalName(value: string | null | undefined): string | null {
  const name = value?.trim();
  if (!name) return null;
  if (name.length > 200) throw new ValidationError('name', 'must be at most 200 characters');
  return name;
}

export function validateEmail(value: string | null | undefined): string | null {
  if (value === null || value === undefined || value === '') return null;
  if (!EMAIL.test(value)) throw new ValidationError('email', 'must be an email address');
  return value;
}

export function validateAttributes(value: unknown): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ValidationError('attributes', 'must be a JSON object');
  if (JSON.stringify(value).length > 64 * 1024) throw new ValidationError('attributes', 'must be at most 64 KiB of JSON');
  return value as Record<string, unknown>;
}

function validatePassword(value: string): string {
  if (value.length < MIN_PASSWORD_LENGTH) throw new ValidationError('password', `must be at least ${MIN_PASSWORD_LENGTH} characters`);
  if (value.length > MAX_PASSWORD_LENGTH) throw new ValidationError('password', `must be at most ${MAX_PASSWORD_LENGTH} characters`);
  return value;
}

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, { type: argon2.argon2id });
}

export class UserService {
  private readonly byId = new TtlCache<User | null>(2_000);
  /** Told of every change to a user here (caches of generated accounts forget it at once). */
  private readonly changeListeners: ((id: string) => void)[] = [];
  /** Verified against when the username is unknown, so both paths cost one argon2 verification. */
  private dummyHash: Promise<string> | null = null;
  private readonly passwordChecks = new ConcurrencyGate(CONCURRENT_PASSWORD_CHECKS, WAITING_PASSWORD_CHECKS);

  constructor(private readonly collections: Pick<Collections, 'users' | 'appPasswords' | 'refreshTokens' | 'deviceSessions'>) {}

  /** Briefly cached for the token endpoint; admin changes on this process invalidate at once. */
  get(id: string): Promise<User | null> {
    return this.byId.getOrLoad(id, () => this.collections.users.findOne({ id }));
  }

  getByUsername(username: string): Promise<User | null> {
    return this.collections.users.findOne({ username });
  }

  getMany(ids: readonly string[]): Promise<User[]> {
    return this.collections.users.find({ id: { $in: [...ids] } });
  }

  /** One page of users, newest first (keyset on createdAt, id: deep pages cost what the first does). */
  listPage(filter: UserListFilter, request: PageRequest): Promise<Page<User>> {
    return keysetPage(this.collections.users, userFilter(filter, 'page'), request, -1);
  }

  count(filter: UserListFilter): Promise<number> {
    return this.collections.users.count(userFilter(filter, 'count'));
  }

  /** A service account: a non-admin identity for machines, without a login password, optionally expiring. */
  createServiceAccount(input: Pick<CreateUserInput, 'username' | 'name' | 'attributes' | 'expiresAt'>): Promise<User> {
    if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) throw new ValidationError('expiresAt', 'must be in the future');
    return this.create({ username: input.username, name: input.name, attributes: input.attributes, expiresAt: input.expiresAt, type: 'SERVICE_ACCOUNT' });
  }

  async create(input: CreateUserInput): Promise<User> {
    const now = new Date();
    const user: User = {
      id: randomUUID(),
      username: validateUsername(input.username),
      name: validateOptionalName(input.name),
      email: validateEmail(input.email),
      type: input.type ?? 'INTERNAL',
      isActive: true,
      isAdmin: input.isAdmin ?? false,
      attributes: validateAttributes(input.attributes),
      passwordHash: input.password != null ? await hashPassword(validatePassword(input.password)) : null,
      expiresAt: input.expiresAt ?? null,
      createdAt: now,
      updatedAt: now,
    };
    try {
      await this.collections.users.insert(user);
    } catch (error) {
      if (error instanceof ConflictError) throw new DomainConflictError('username', `a user named '${user.username}' already exists`);
      throw error;
    }
    return user;
  }

  async update(id: string, input: UpdateUserInput): Promise<User> {
    const $set: Partial<User> = { updatedAt: new Date() };
    if (input.name !== undefined) $set.name = validateOptionalName(input.name);
    if (input.email !== undefined) $set.email = validateEmail(input.email);
    if (input.isActive != null) $set.isActive = input.isActive;
    if (input.isAdmin != null) $set.isAdmin = input.isAdmin;
    if (input.attributes != null) $set.attributes = validateAttributes(input.attributes);
    const updated = await this.collections.users.updateOne({ id }, { $set });
    if (!updated) throw new NotFoundError('user', id);
    this.changed(id);
    return updated;
  }

  async setPassword(id: string, password: string): Promise<void> {
    const passwordHash = await hashPassword(validatePassword(password));
    const updated = await this.collections.users.updateOne({ id }, { $set: { passwordHash, updatedAt: new Date() } });
    if (!updated) throw new NotFoundError('user', id);
    // A new password ends the user's signed-in /device sessions (whoever knew the old one is out).
    await this.collections.deviceSessions.deleteMany({ userId: id });
    this.changed(id);
  }

  /** Deleting a user revokes everything issued on its behalf that is stored: app passwords, refresh tokens, /device sessions. */
  async delete(id: string): Promise<boolean> {
    const existing = await this.collections.users.findOne({ id });
    if (!existing) throw new NotFoundError('user', id);
    await this.collections.appPasswords.deleteMany({ userId: id });
    await this.collections.refreshTokens.deleteMany({ userId: id });
    await this.collections.deviceSessions.deleteMany({ userId: id });
    await this.collections.users.deleteOne({ id });
    this.changed(id);
    return true;
  }

  /**
   * Checks a login password. Unknown users cost the same argon2 verification as known ones, so
   * timing does not tell which usernames exist. Inactive or expired users never pass. Throws
   * OverloadedError when too many verifications are already running or waiting.
   */
  async verifyPassword(username: string, password: string): Promise<User | null> {
    if (password.length > MAX_PASSWORD_LENGTH) return null;
    const user = USERNAME.test(username) ? await this.getByUsername(username) : null;
    const ok = await this.passwordChecks.run(async () => {
      const hash = user?.passwordHash ?? (await (this.dummyHash ??= hashPassword(randomUUID())));
      return argon2.verify(hash, password).catch(() => false);
    });
    if (!ok || !user || !user.passwordHash) return null;
    return isUsable(user) ? user : null;
  }

  /** A write made elsewhere (a generated account's attributes on a token request): read it afresh. */
  forgetCached(id: string): void {
    this.byId.delete(id);
  }

  onChange(listener: (id: string) => void): void {
    this.changeListeners.push(listener);
  }

  private changed(id: string): void {
    this.byId.delete(id);
    for (const listener of this.changeListeners) listener(id);
  }
}

const MAX_SEARCH_LENGTH = 200;

/** The store filter of a user listing; the search is matched literally (regex characters escaped). */
function userFilter(filter: UserListFilter, use: 'page' | 'count'): Filter {
  const out: Filter = {};
  if (filter.type != null) {
    if (!USER_TYPES.includes(filter.type)) throw new ValidationError('filter.type', 'is not a user type');
    // For a page, under $and: a type is not selective (four values), and at the top the embedded
    // store would take every user of that type and order them, where under $and it walks the
    // createdAt index and stops at the page. For a count, at the top, where the type index answers it.
    if (use === 'page') out.$and = [{ type: filter.type }];
    else out.type = filter.type;
  }
  const search = filter.search?.trim();
  if (search) {
    if (search.length > MAX_SEARCH_LENGTH) throw new ValidationError('filter.search', `must be at most ${MAX_SEARCH_LENGTH} characters`);
    const contains = literalContains(search);
    out.$or = [{ username: contains }, { name: contains }, { email: contains }];
  }
  return out;
}

/** People (INTERNAL, EXTERNAL), who alone may approve a device; service accounts are machines. */
export function isPerson(user: Pick<User, 'type'>): boolean {
  return user.type === 'INTERNAL' || user.type === 'EXTERNAL';
}

/** Active and not expired. */
export function isUsable(user: User, now = Date.now()): boolean {
  return user.isActive && (user.expiresAt === null || user.expiresAt.getTime() > now);
}

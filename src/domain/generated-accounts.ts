/**
 * Generated service accounts, found by their identity key (see federation/service-accounts.ts),
 * never by name. A request first gets a *prospective* account (read only: what the account would
 * be), the bound policies judge that, and only then is it saved: a refused request writes nothing.
 */
import type { User } from './model.js';
import { DomainConflictError } from './errors.js';
import { TtlCache } from './cache.js';
import { isUsable } from './users.js';
import type { Collections } from '../store/ports.js';
import { ConflictError } from '../store/errors.js';
import {
  IDENTITY_ATTRIBUTES, clientIdentityKey, generatedAccountId, generatedUsername, legacyClientAccountUsername, type IdentityKey,
} from './federation/service-accounts.js';

export interface AccountRequest {
  key: IdentityKey;
  /** The readable parts of the display name. */
  readable: { slug: string; name: string };
  /** The identity attributes (providerId and clientId, or federatedSourceId, iss and sub): always these values. */
  identity: Record<string, string | null>;
  /** Attributes from the source's property mappings; identity attributes among them are ignored. */
  mapped?: Record<string, unknown>;
  /** When the credential expires (the JWT's exp), or null. */
  expiresAt: Date | null;
}

export interface ProspectiveAccount {
  request: AccountRequest;
  /** The stored account of this key, if there is one. */
  existing: User | null;
  /** The account as it will be once saved: what policies see. */
  user: User;
}

export type ProspectiveResult = { account: ProspectiveAccount } | { refused: string };

const CACHE_TTL_MS = 2_000;

export class GeneratedAccountService {
  /** Accounts by identity key; any change to a user through UserService clears it. */
  private readonly byKey = new TtlCache<User>(CACHE_TTL_MS);

  constructor(
    private readonly collections: Pick<Collections, 'users' | 'clients' | 'providers'>,
    private readonly users: { onChange(listener: (id: string) => void): void; forgetCached(id: string): void },
  ) {
    users.onChange(() => this.byKey.clear());
  }

  /** The account of this identity, or null. Only this key's account: the lookup is by the unique identityKey. */
  async find(key: IdentityKey): Promise<User | null> {
    const cached = this.byKey.get(key.value);
    if (cached && isUsable(cached)) return cached;
    const stored = await this.collections.users.findOne({ identityKey: key.value });
    if (!stored || stored.identityKey !== key.value || stored.type !== 'GENERATED_SERVICE_ACCOUNT') return null;
    this.byKey.set(key.value, stored);
    return stored;
  }

  /** What the account will be for this request; reads, never writes. */
  async prospective(request: AccountRequest): Promise<ProspectiveResult> {
    const existing = await this.find(request.key);
    if (existing && !existing.isActive) return { refused: `generated service account '${existing.username}' (${existing.id}) is inactive` };
    const now = new Date();
    const live = existing && isUsable(existing, now.getTime()) ? existing : null;
    const attributes = { ...(existing?.attributes ?? {}), ...withoutIdentity(request.mapped ?? {}), ...request.identity };
    // The expiry moves only forward while the account lives: an older JWT does not cut short what a newer one allowed.
    const keepExpiry = live?.expiresAt && request.expiresAt && live.expiresAt > request.expiresAt;
    const expiresAt = keepExpiry ? live.expiresAt : request.expiresAt;
    const user: User = existing
      ? { ...existing, attributes, expiresAt }
      : {
        id: generatedAccountId(request.key), username: generatedUsername(request.key, request.readable), name: null, email: null,
        type: 'GENERATED_SERVICE_ACCOUNT', isActive: true, isAdmin: false, attributes, passwordHash: null, expiresAt,
        identityKey: request.key.value, createdAt: now, updatedAt: now,
      };
    return { account: { request, existing, user } };
  }

  /** Stores the prospective account (after the policies allowed it); concurrent first uses make one account. */
  async save(account: ProspectiveAccount): Promise<User> {
    if (account.existing) {
      const updated = await this.update(account.request.key, account.existing, account.user);
      if (updated) return updated;
    }
    return this.create(account);
  }

  private async update(key: IdentityKey, existing: User, next: Pick<User, 'attributes' | 'expiresAt'>): Promise<User | null> {
    const sameExpiry = (existing.expiresAt?.getTime() ?? null) === (next.expiresAt?.getTime() ?? null);
    if (sameExpiry && sameAttributes(existing.attributes, next.attributes)) return existing;
    // The filter names the key: a write can only ever reach this identity's account.
    const updated = await this.collections.users.updateOne(
      { id: existing.id, identityKey: key.value },
      { $set: { attributes: next.attributes, expiresAt: next.expiresAt, updatedAt: new Date() } },
    );
    if (updated) this.byKey.set(key.value, updated);
    // userinfo and token verification read users through UserService's cache: not the old attributes.
    this.users.forgetCached(existing.id);
    return updated;
  }

  private async create(account: ProspectiveAccount): Promise<User> {
    const { request, user } = account;
    const now = new Date();
    const base: User = {
      ...user, id: generatedAccountId(request.key), identityKey: request.key.value, isActive: true, isAdmin: false, createdAt: now, updatedAt: now,
    };
    // The display name is the only part another record may hold (a person named so): then the long form.
    for (const fallback of [false, true]) {
      const record: User = { ...base, username: generatedUsername(request.key, request.readable, fallback) };
      try {
        await this.collections.users.insert(record);
        this.byKey.set(request.key.value, record);
        return record;
      } catch (error) {
        if (!(error instanceof ConflictError)) throw error;
        if (error.field === 'username') continue;
        // id or identityKey: a concurrent request made this account first; use it.
        this.byKey.delete(request.key.value);
        const winner = await this.find(request.key);
        if (!winner) throw error;
        return (await this.update(request.key, winner, user)) ?? winner;
      }
    }
    throw new DomainConflictError('username', `the display names of generated account ${base.id} are taken by other users`);
  }

  /**
   * Round 1 kept rule 3's accounts by name only. Each such account whose name and attributes
   * name exactly one (provider, client) pair of this store is given that pair's key, keeping its
   * id (tokens' sub), its admin flag and its app passwords. An account whose attributes name two
   * identities (a source's JWT reached it through a colliding name) is left unkeyed, and so
   * unused: nothing can tell whose it is. Round 1's source accounts expire with their JWT and
   * are made again, keyed, by the next one. Idempotent, and safe on several processes at once.
   */
  async migrateLegacyAccounts(): Promise<{ migrated: number; ambiguous: string[] }> {
    const legacy = await this.collections.users.find({ type: 'GENERATED_SERVICE_ACCOUNT', identityKey: { $exists: false } });
    const candidates = legacy.filter((u) => typeof u.attributes.providerId === 'string' && typeof u.attributes.clientId === 'string');
    if (candidates.length === 0) return { migrated: 0, ambiguous: [] };
    const [providers, clients] = await Promise.all([this.collections.providers.find({}), this.collections.clients.find({})]);
    const slugOf = new Map(providers.map((p) => [p.id, p.slug]));
    const pairsByName = new Map<string, number>();
    for (const client of clients) {
      const slug = slugOf.get(client.providerId);
      if (!slug) continue;
      const name = legacyClientAccountUsername(slug, client.clientId);
      pairsByName.set(name, (pairsByName.get(name) ?? 0) + 1);
    }
    let migrated = 0;
    const ambiguous: string[] = [];
    for (const user of candidates) {
      const { providerId, clientId } = user.attributes as { providerId: string; clientId: string };
      const slug = slugOf.get(providerId);
      const consistent = slug !== undefined && legacyClientAccountUsername(slug, clientId) === user.username
        && pairsByName.get(user.username) === 1 && user.attributes.federatedSourceId === undefined;
      if (!consistent) {
        if (slug !== undefined) ambiguous.push(user.username);
        continue;
      }
      try {
        const done = await this.collections.users.updateOne(
          { id: user.id, identityKey: { $exists: false } }, { $set: { identityKey: clientIdentityKey(providerId, clientId).value } },
        );
        if (done) migrated += 1;
      } catch (error) {
        // A keyed account of this pair exists already (made since the upgrade): it stays the one.
        if (!(error instanceof ConflictError)) throw error;
      }
    }
    this.byKey.clear();
    return { migrated, ambiguous };
  }
}

function withoutIdentity(attributes: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(attributes)) if (!IDENTITY_ATTRIBUTES.includes(name)) out[name] = value;
  return out;
}

function sameAttributes(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const keys = Object.keys(b);
  if (keys.length !== Object.keys(a).length) return false;
  for (const key of keys) {
    const x = a[key];
    const y = b[key];
    if (x === y) continue;
    if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null || JSON.stringify(x) !== JSON.stringify(y)) return false;
  }
  return true;
}

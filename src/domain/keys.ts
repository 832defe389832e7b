/**
 * Signing keys, several per provider, each NEXT → CURRENT → PREVIOUS → RETIRED (OAUTH.md, Signing
 * keys). Private keys are kept encrypted (compact JWE, dir + A256GCM, under a key derived from
 * TESSERA_SECRET_KEY with HKDF) and imported once into KeyObjects; the NEXT, CURRENT and PREVIOUS
 * public JWKs are the provider's JWKS.
 *
 * Every change is decided in the store by conditional updates, so that processes (or admins)
 * changing the same keys at once agree: a rotation promotes the NEXT key only where it is still
 * NEXT (of callers that read the same state, one wins), and the unique `nextOf` lets a provider
 * have one NEXT key however many processes make one. The order of the writes is chosen so that a
 * crash between two of them leaves a provider that signs: the new CURRENT key first, then the old
 * one stops (two CURRENT keys: the newest signs, and settle() demotes the other).
 */
import { createPrivateKey, createPublicKey, hkdfSync, randomUUID, type KeyObject } from 'node:crypto';
import { CompactEncrypt, compactDecrypt, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Provider, SigningAlgorithm, SigningKey, SigningKeyStatus } from './model.js';
import { NotFoundError } from './errors.js';
import { ConflictError } from '../store/errors.js';
import type { Collections } from '../store/ports.js';

/** Milliseconds since the epoch; injectable so that tests can move time. */
export type Clock = () => number;
export const systemClock: Clock = () => Date.now();

/** `Cache-Control: max-age` of the JWKS: how long a resource server may keep it (short: a retired key leaves their caches within it). */
export const JWKS_MAX_AGE_SECONDS = 60;
/** How long a process keeps a provider's keys (its signing key, JWKS and verification keys) before reading them again. */
export const KEY_CACHE_TTL_MS = 30_000;
/**
 * Resource servers accept a token a little past its exp (.NET's default clock skew is 5 minutes):
 * a PREVIOUS key stays published that much longer than its last token lives.
 */
const RETIREMENT_SKEW_SECONDS = 300;
/**
 * A NEXT key signs only once every JWKS a resource server may hold lists it: published by every
 * process (their key caches) and then kept for the JWKS max-age.
 */
export const NEXT_KEY_PUBLICATION_MS = KEY_CACHE_TTL_MS + JWKS_MAX_AGE_SECONDS * 1000;

export interface ActiveSigningKey {
  kid: string;
  alg: SigningAlgorithm;
  /** Imported once; jose signs with it (converting it to a CryptoKey once). */
  privateKey: KeyObject;
}

export interface PublicJwks {
  keys: JWK[];
}

/** A published key, imported once, for verifying tokens by their kid. */
export interface VerificationKey {
  alg: string;
  key: KeyObject;
  /** A PREVIOUS key's retirement (ms): from then on it verifies nothing, even before the store says RETIRED. */
  retiresAt: number | null;
}

/** A key's status now: round-1 records have none (the active one signed), and a PREVIOUS key past retiresAt is retired. */
export function statusOf(record: SigningKey, now: number): SigningKeyStatus {
  const status = record.status ?? (record.active ? 'CURRENT' : 'PREVIOUS');
  if (status === 'PREVIOUS' && record.retiresAt && record.retiresAt.getTime() <= now) return 'RETIRED';
  return status;
}

const activation = (r: SigningKey): number => (r.activatedAt ?? r.createdAt).getTime();

/** A key made CURRENT now is activated after every CURRENT key (by a millisecond if need be): the newest activation signs, so it must be this one. */
function activationAfter(currents: readonly SigningKey[], now: number): Date {
  return new Date(Math.max(now, ...currents.map((r) => activation(r) + 1)));
}

/** A provider's keys by status: the CURRENT ones newest first (the first signs), and its NEXT key. */
export function keyState(records: readonly SigningKey[], now: number): { currents: SigningKey[]; next: SigningKey | null } {
  const currents = records.filter((r) => statusOf(r, now) === 'CURRENT')
    .sort((a, b) => activation(b) - activation(a) || (a.id < b.id ? 1 : -1));
  const next = records.filter((r) => statusOf(r, now) === 'NEXT').sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())[0] ?? null;
  return { currents, next };
}

/**
 * When a key that stops signing now may retire: after the longest-lived token it signed (access
 * and ID tokens share the lifetime; a lifetime lowered while it signed counts as it was).
 */
function retirementOf(provider: Pick<Provider, 'accessTokenLifetimeSeconds'> | null, key: SigningKey, now: number): Date {
  const lifetime = Math.max(provider?.accessTokenLifetimeSeconds ?? 86_400, key.longestLifetimeSeconds ?? 0);
  return new Date(now + KEY_CACHE_TTL_MS + (lifetime + RETIREMENT_SKEW_SECONDS) * 1000);
}

const JWKS_ORDER: Record<SigningKeyStatus, number> = { CURRENT: 0, NEXT: 1, PREVIOUS: 2, RETIRED: 3 };

interface KeySet {
  jwks: PublicJwks;
  byKid: Map<string, VerificationKey>;
  current: SigningKey | null;
  signing?: Promise<ActiveSigningKey>;
  at: number;
}

export class SigningKeyService {
  private readonly encryptionKey: Uint8Array;
  private readonly sets = new Map<string, KeySet>();
  private readonly listeners: ((providerId: string) => void)[] = [];
  /** Rotations of this process in flight, by provider: a second call while one runs joins it. */
  private readonly rotating = new Map<string, Promise<boolean>>();

  constructor(
    private readonly collections: Pick<Collections, 'signingKeys' | 'providers'>,
    secretKey: string,
    readonly now: Clock = systemClock,
  ) {
    this.encryptionKey = new Uint8Array(hkdfSync('sha256', secretKey, 'tessera', 'signing-key-encryption', 32));
  }

  private async generate(providerId: string, alg: SigningAlgorithm, fields: Partial<SigningKey>): Promise<SigningKey> {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    const privateJwk = { ...(await exportJWK(privateKey)), kid, alg };
    const encryptedPrivateJwk = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(privateJwk)))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid })
      .encrypt(this.encryptionKey);
    return { id: kid, providerId, algorithm: alg, publicJwk, encryptedPrivateJwk, createdAt: new Date(this.now()), ...fields };
  }

  /**
   * A new key that signs at once (a new provider, a new algorithm): the key before it becomes
   * PREVIOUS, and a NEXT key of the same algorithm is made.
   */
  async createKey(providerId: string, alg: SigningAlgorithm): Promise<SigningKey> {
    const { currents } = keyState(await this.collections.signingKeys.find({ providerId }), this.now());
    const record = await this.generate(providerId, alg, { status: 'CURRENT', activatedAt: activationAfter(currents, this.now()) });
    await this.collections.signingKeys.insert(record);
    await this.settle(providerId);
    this.invalidate(providerId);
    return record;
  }

  /**
   * NEXT becomes CURRENT, CURRENT becomes PREVIOUS, a new NEXT is made; true when this call
   * rotated. Callers that read the same keys rotate once (the promotion is conditional), and a
   * call that finds a rotation half done (two CURRENT keys, no NEXT) finishes it instead of
   * starting another; a call while another of this process runs joins it. `expectedCurrent`:
   * rotate only if that key still signs (the scheduler).
   */
  rotate(providerId: string, expectedCurrent?: string): Promise<boolean> {
    const running = this.rotating.get(providerId);
    // Joined: the rotation is the other call's (which reports it).
    if (running) return running.then(() => false);
    const rotation = this.rotateOnce(providerId, expectedCurrent).finally(() => this.rotating.delete(providerId));
    this.rotating.set(providerId, rotation);
    return rotation;
  }

  private async rotateOnce(providerId: string, expectedCurrent?: string): Promise<boolean> {
    const now = this.now();
    const { currents, next } = keyState(await this.collections.signingKeys.find({ providerId }), now);
    const current = currents[0];
    if (expectedCurrent !== undefined && current?.id !== expectedCurrent) return false;
    if (!current || currents.length > 1 || !next || next.algorithm !== current.algorithm) {
      await this.settle(providerId);
      this.invalidate(providerId);
      return false;
    }
    const promoted = await this.collections.signingKeys.updateOne(
      { id: next.id, status: 'NEXT' }, { $set: { status: 'CURRENT', activatedAt: activationAfter(currents, now) }, $unset: { nextOf: true } },
    );
    if (!promoted) return false;
    await this.settle(providerId);
    this.invalidate(providerId);
    return true;
  }

  /**
   * Retires a key at once (a leaked key): gone from the JWKS, and every token it signed stops
   * verifying. A CURRENT key hands over to the NEXT one first (made now if there is none), so
   * the provider always signs.
   */
  async retire(id: string): Promise<SigningKey> {
    const now = this.now();
    let key = await this.collections.signingKeys.findOne({ id });
    if (!key) throw new NotFoundError('signing key', id);
    // Conditional on the status read: a NEXT key a rotation promotes meanwhile must hand over
    // first like any CURRENT one, so a changed status means reading and deciding again.
    for (let attempt = 0; key && key.status !== 'RETIRED' && attempt < 5; attempt++) {
      if (statusOf(key, now) === 'CURRENT') await this.handOver(key, now);
      const retired = await this.collections.signingKeys.updateOne(
        { id, status: key.status ?? { $exists: false } },
        { $set: { status: 'RETIRED', deactivatedAt: key.deactivatedAt ?? new Date(now), retiresAt: new Date(now) }, $unset: { nextOf: true } },
      );
      key = retired ?? (await this.collections.signingKeys.findOne({ id }));
    }
    if (!key) throw new NotFoundError('signing key', id);
    await this.settle(key.providerId);
    this.invalidate(key.providerId);
    return key;
  }

  /**
   * A key newer than `key` signs instead: the NEXT one, or a new one when there is none. Only a
   * newer CURRENT key counts: settle() keeps the newest CURRENT key and demotes the others, so an
   * older one may be on its way out (a rotation under way on another process).
   */
  private async handOver(key: SigningKey, now: number): Promise<void> {
    const newer = (currents: SigningKey[]) => currents.some((r) => r.id !== key.id && activation(r) > activation(key));
    const { currents, next } = keyState(await this.collections.signingKeys.find({ providerId: key.providerId }), now);
    if (newer(currents)) return;
    const promoted = next && await this.collections.signingKeys.updateOne(
      { id: next.id, status: 'NEXT' }, { $set: { status: 'CURRENT', activatedAt: activationAfter(currents, now) }, $unset: { nextOf: true } },
    );
    if (promoted) return;
    const again = keyState(await this.collections.signingKeys.find({ providerId: key.providerId }), now);
    if (newer(again.currents)) return;
    await this.collections.signingKeys.insert(await this.generate(key.providerId, key.algorithm, { status: 'CURRENT', activatedAt: activationAfter(again.currents, now) }));
  }

  /**
   * Brings a provider's keys to the settled state: the newest CURRENT key signs and the other
   * CURRENT ones become PREVIOUS; NEXT keys of another algorithm (never used) retire; a NEXT key of
   * the signing algorithm is made when there is none. Idempotent; safe to run on many processes.
   */
  async settle(providerId: string): Promise<void> {
    const now = this.now();
    const provider = await this.collections.providers.findOne({ id: providerId });
    const records = await this.collections.signingKeys.find({ providerId });
    const { currents } = keyState(records, now);
    const signing = currents[0];
    if (!signing || !provider) return;
    for (const older of currents.slice(1)) {
      await this.collections.signingKeys.updateOne(
        { id: older.id, status: 'CURRENT' },
        { $set: { status: 'PREVIOUS', deactivatedAt: new Date(now), retiresAt: retirementOf(provider, older, now) } },
      );
    }
    let hasNext = false;
    for (const next of records.filter((r) => statusOf(r, now) === 'NEXT')) {
      if (next.algorithm === signing.algorithm && !hasNext) {
        hasNext = true;
        continue;
      }
      await this.collections.signingKeys.updateOne(
        { id: next.id, status: 'NEXT' }, { $set: { status: 'RETIRED', retiresAt: new Date(now) }, $unset: { nextOf: true } },
      );
    }
    if (hasNext) return;
    try {
      await this.collections.signingKeys.insert(await this.generate(providerId, signing.algorithm, { status: 'NEXT', nextOf: providerId }));
    } catch (error) {
      // Another process made the NEXT key first.
      if (!(error instanceof ConflictError)) throw error;
    }
  }

  /**
   * Start-up: round-1 records get a status (the active key stays CURRENT, unchanged; the others
   * are PREVIOUS, retiring after the longest token lifetime), then every provider is settled, so
   * each one has a NEXT key. Returns how many providers got a key.
   */
  async migrate(): Promise<number> {
    const now = this.now();
    const legacy = await this.collections.signingKeys.find({ status: { $exists: false } });
    for (const providerId of new Set(legacy.map((r) => r.providerId))) {
      const provider = await this.collections.providers.findOne({ id: providerId });
      const records = legacy.filter((r) => r.providerId === providerId);
      const [signing] = keyState(records, now).currents;
      for (const record of records) {
        const $set: Partial<SigningKey> = record === signing
          ? { status: 'CURRENT', activatedAt: record.createdAt }
          : { status: 'PREVIOUS', deactivatedAt: new Date(now), retiresAt: retirementOf(provider, record, now) };
        await this.collections.signingKeys.updateOne({ id: record.id, status: { $exists: false } }, { $set });
      }
    }
    let made = 0;
    for (const provider of await this.collections.providers.find({})) {
      const before = keyState(await this.collections.signingKeys.find({ providerId: provider.id }), now).next;
      await this.settle(provider.id);
      if (!before) made += 1;
      this.invalidate(provider.id);
    }
    return made;
  }

  /**
   * The provider's access-token lifetime is about to be lowered from `seconds`: its CURRENT keys
   * remember it, so that they retire after the tokens they signed before (see retirementOf).
   */
  async rememberLifetime(providerId: string, seconds: number): Promise<void> {
    const { currents } = keyState(await this.collections.signingKeys.find({ providerId }), this.now());
    for (const key of currents) {
      if ((key.longestLifetimeSeconds ?? 0) >= seconds) continue;
      await this.collections.signingKeys.updateOne({ id: key.id, status: 'CURRENT' }, { $set: { longestLifetimeSeconds: seconds } });
    }
  }

  /** PREVIOUS keys past their retirement are marked RETIRED (they already verify nothing) and leave this process's JWKS. */
  async sweep(): Promise<number> {
    const retired = await this.collections.signingKeys.updateMany(
      { status: 'PREVIOUS', retiresAt: { $lte: new Date(this.now()) } }, { $set: { status: 'RETIRED' } },
    );
    if (retired > 0) for (const providerId of [...this.sets.keys()]) this.invalidate(providerId);
    return retired;
  }

  /** Every key of the provider, newest first (the admin API). */
  list(providerId: string): Promise<SigningKey[]> {
    return this.collections.signingKeys.find({ providerId }, { sort: { createdAt: -1 } });
  }

  /** The key new tokens of this provider are signed with, imported once and cached with the key set. */
  async activeKey(providerId: string): Promise<ActiveSigningKey> {
    const set = await this.keySet(providerId);
    set.signing ??= this.importSigningKey(providerId, set.current);
    return set.signing;
  }

  private async importSigningKey(providerId: string, record: SigningKey | null): Promise<ActiveSigningKey> {
    if (!record) throw new Error(`provider ${providerId} has no CURRENT signing key`);
    const { plaintext } = await compactDecrypt(record.encryptedPrivateJwk, this.encryptionKey);
    const privateJwk = JSON.parse(new TextDecoder().decode(plaintext)) as JWK;
    return { kid: record.id, alg: record.algorithm, privateKey: createPrivateKey({ key: privateJwk, format: 'jwk' }) };
  }

  /** The published keys (CURRENT, NEXT, then PREVIOUS). */
  async publicJwks(providerId: string): Promise<PublicJwks> {
    return (await this.keySet(providerId)).jwks;
  }

  /** The provider's published keys by kid, imported once (cached with the key set). */
  async verificationKeys(providerId: string): Promise<ReadonlyMap<string, VerificationKey>> {
    return (await this.keySet(providerId)).byKid;
  }

  /** Whether a published key may verify now (a PREVIOUS key past its retirement may not). */
  isLive(key: VerificationKey): boolean {
    return key.retiresAt === null || key.retiresAt > this.now();
  }

  private async keySet(providerId: string): Promise<KeySet> {
    const cached = this.sets.get(providerId);
    if (cached && Date.now() - cached.at < KEY_CACHE_TTL_MS) return cached;
    const now = this.now();
    const records = await this.collections.signingKeys.find({ providerId }, { sort: { createdAt: -1 } });
    const published = records.filter((r) => statusOf(r, now) !== 'RETIRED')
      .sort((a, b) => JWKS_ORDER[statusOf(a, now)] - JWKS_ORDER[statusOf(b, now)]);
    const byKid = new Map<string, VerificationKey>();
    for (const record of published) {
      const retiresAt = statusOf(record, now) === 'PREVIOUS' && record.retiresAt ? record.retiresAt.getTime() : null;
      byKid.set(record.id, { alg: record.algorithm, key: createPublicKey({ key: record.publicJwk, format: 'jwk' }), retiresAt });
    }
    const set: KeySet = { jwks: { keys: published.map((r) => r.publicJwk) }, byKid, current: keyState(records, now).currents[0] ?? null, at: Date.now() };
    this.sets.set(providerId, set);
    return set;
  }

  /** Called whenever a provider's keys may have changed (a new key, deleted keys, a reload). */
  onInvalidate(listener: (providerId: string) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Whether TESSERA_SECRET_KEY (or the kept secret.key) decrypts the keys already stored: false
   * means it changed, and no provider could sign; checked once at start-up.
   */
  async secretKeyMatches(): Promise<boolean> {
    const [record] = await this.collections.signingKeys.find({}, { sort: { createdAt: -1 }, limit: 1 });
    if (!record) return true;
    try {
      await compactDecrypt(record.encryptedPrivateJwk, this.encryptionKey);
      return true;
    } catch {
      return false;
    }
  }

  async deleteKeys(providerId: string): Promise<void> {
    await this.collections.signingKeys.deleteMany({ providerId });
    this.invalidate(providerId);
  }

  invalidate(providerId: string): void {
    this.sets.delete(providerId);
    for (const listener of this.listeners) listener(providerId);
  }
}

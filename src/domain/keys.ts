/**
 * Signing keys, one set per provider. Private keys are kept encrypted (compact JWE, dir +
 * A256GCM, under a key derived from TESSERA_SECRET_KEY with HKDF) and imported once into
 * KeyObjects; public JWKs are served as the provider's JWKS.
 */
import { createPrivateKey, createPublicKey, hkdfSync, randomUUID, type KeyObject } from 'node:crypto';
import { CompactEncrypt, compactDecrypt, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { SigningAlgorithm, SigningKey } from './model.js';
import type { Collections } from '../store/ports.js';

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
}

const CACHE_TTL_MS = 30_000;

export class SigningKeyService {
  private readonly encryptionKey: Uint8Array;
  private readonly active = new Map<string, { key: ActiveSigningKey; at: number }>();
  private readonly jwks = new Map<string, { jwks: PublicJwks; byKid: Map<string, VerificationKey>; at: number }>();
  private readonly listeners: ((providerId: string) => void)[] = [];

  constructor(private readonly collections: Pick<Collections, 'signingKeys'>, secretKey: string) {
    this.encryptionKey = new Uint8Array(hkdfSync('sha256', secretKey, 'tessera', 'signing-key-encryption', 32));
  }

  async createKey(providerId: string, alg: SigningAlgorithm): Promise<SigningKey> {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    const privateJwk = { ...(await exportJWK(privateKey)), kid, alg };
    const encryptedPrivateJwk = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(privateJwk)))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid })
      .encrypt(this.encryptionKey);
    const record: SigningKey = { id: kid, providerId, algorithm: alg, publicJwk, encryptedPrivateJwk, active: true, createdAt: new Date() };
    // The new key first, then the older ones stop signing (they stay published for tokens already
    // issued). In this order a crash in between leaves two active keys (the newest signs), never none.
    await this.collections.signingKeys.insert(record);
    await this.collections.signingKeys.updateMany({ providerId, active: true, id: { $ne: kid } }, { $set: { active: false } });
    this.invalidate(providerId);
    return record;
  }

  /** The key new tokens of this provider are signed with, imported once and cached briefly. */
  async activeKey(providerId: string): Promise<ActiveSigningKey> {
    const cached = this.active.get(providerId);
    if (cached && Date.now() - cached.at < CACHE_TTL_MS) return cached.key;
    const [record] = await this.collections.signingKeys.find({ providerId, active: true }, { sort: { createdAt: -1 }, limit: 1 });
    if (!record) throw new Error(`provider ${providerId} has no active signing key`);
    const { plaintext } = await compactDecrypt(record.encryptedPrivateJwk, this.encryptionKey);
    const privateJwk = JSON.parse(new TextDecoder().decode(plaintext)) as JWK;
    const key: ActiveSigningKey = { kid: record.id, alg: record.algorithm, privateKey: createPrivateKey({ key: privateJwk, format: 'jwk' }) };
    this.active.set(providerId, { key, at: Date.now() });
    return key;
  }

  /** Every published public key of the provider (the active one first). */
  async publicJwks(providerId: string): Promise<PublicJwks> {
    return (await this.published(providerId)).jwks;
  }

  /** The provider's published keys by kid, imported once (cached like the JWKS). */
  async verificationKeys(providerId: string): Promise<ReadonlyMap<string, VerificationKey>> {
    return (await this.published(providerId)).byKid;
  }

  private async published(providerId: string) {
    const cached = this.jwks.get(providerId);
    if (cached && Date.now() - cached.at < CACHE_TTL_MS) return cached;
    const records = await this.collections.signingKeys.find({ providerId }, { sort: { createdAt: -1 } });
    const jwks = { keys: records.sort((a, b) => Number(b.active) - Number(a.active)).map((r) => r.publicJwk) };
    const byKid = new Map<string, VerificationKey>();
    for (const record of records) {
      byKid.set(record.id, { alg: record.algorithm, key: createPublicKey({ key: record.publicJwk, format: 'jwk' }) });
    }
    const entry = { jwks, byKid, at: Date.now() };
    this.jwks.set(providerId, entry);
    return entry;
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
    this.active.delete(providerId);
    this.jwks.delete(providerId);
    for (const listener of this.listeners) listener(providerId);
  }
}

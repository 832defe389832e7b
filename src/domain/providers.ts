/**
 * Providers: one issuer each, with its signing key, token lifetimes and device-flow settings.
 * Settings that could not work are refused when saved, not when a device first calls.
 */
import { randomUUID } from 'node:crypto';
import type { DeviceFlowSettings, Provider, SigningAlgorithm, UserCodeCharset } from './model.js';
import { SIGNING_ALGORITHMS, USER_CODE_CHARSETS } from './model.js';
import { DomainConflictError, NotFoundError, ValidationError } from './errors.js';
import { Memo, TtlCache } from './cache.js';
import type { SigningKeyService } from './keys.js';
import type { Collections } from '../store/ports.js';
import { ConflictError } from '../store/errors.js';

export const USER_CODE_ALPHABETS: Record<Exclude<UserCodeCharset, 'CUSTOM'>, string> = {
  BASE20: 'BCDFGHJKLMNPQRSTVWXZ',
  NUMERIC: '0123456789',
  ALPHANUMERIC: '23456789ABCDEFGHJKLMNPQRSTUVWXYZ',
};

export const LIMITS = {
  pollIntervalSeconds: { min: 1, max: 60, default: 5 },
  codeLifetimeSeconds: { min: 1, max: 86_400, default: 600 },
  userCodeLength: { min: 4, max: 32, default: 8 },
  accessTokenLifetimeSeconds: { min: 1, max: 86_400, default: 600 },
  refreshTokenLifetimeSeconds: { min: 1, max: 31_536_000, default: 2_592_000 },
  keyRotationDays: { min: 1, max: 3650 },
  minUserCodeEntropyBits: 20,
} as const;

export const DEFAULT_DEVICE_FLOW: DeviceFlowSettings = {
  userCodeCharset: 'BASE20',
  userCodeAlphabet: null,
  userCodeLength: LIMITS.userCodeLength.default,
  codeLifetimeSeconds: LIMITS.codeLifetimeSeconds.default,
  pollIntervalSeconds: LIMITS.pollIntervalSeconds.default,
  verificationUri: null,
  requirePkce: false,
};

/**
 * The poll interval a new device code gets and its response names: the provider's, but shorter
 * than the code's lifetime when that is longer (at least 1 s), so a device polls before its code
 * expires. The contract's ranges are independent (codeLifetimeSeconds 1 with the default interval
 * 5 is valid), so this is answered rather than refused.
 */
export function answeredPollInterval(settings: Pick<DeviceFlowSettings, 'pollIntervalSeconds' | 'codeLifetimeSeconds'>): number {
  return Math.max(1, Math.min(settings.pollIntervalSeconds, settings.codeLifetimeSeconds - 1));
}

/** The characters user codes of these settings are drawn from. */
export function userCodeAlphabet(settings: Pick<DeviceFlowSettings, 'userCodeCharset' | 'userCodeAlphabet'>): string {
  return settings.userCodeCharset === 'CUSTOM' ? (settings.userCodeAlphabet ?? '') : USER_CODE_ALPHABETS[settings.userCodeCharset];
}

// Providers have a handful of alphabets; the bound only guards against unbounded growth.
const caseInsensitiveAlphabets = new Memo<boolean>(1_000);

/** Letters are case-insensitive on entry unless the alphabet itself tells cases apart. */
export function alphabetIsCaseInsensitive(alphabet: string): boolean {
  return caseInsensitiveAlphabets.get(alphabet, () => new Set(alphabet.toUpperCase()).size === new Set(alphabet).size);
}

export function userCodeEntropyBits(length: number, alphabetSize: number): number {
  return alphabetSize < 2 ? 0 : length * Math.log2(alphabetSize);
}

export interface DeviceFlowSettingsInput {
  userCodeCharset?: UserCodeCharset | null;
  userCodeAlphabet?: string | null;
  userCodeLength?: number | null;
  codeLifetimeSeconds?: number | null;
  pollIntervalSeconds?: number | null;
  verificationUri?: string | null;
  requirePkce?: boolean | null;
}

export interface ProviderInput {
  name?: string | null;
  slug?: string | null;
  accessTokenLifetimeSeconds?: number | null;
  refreshTokenLifetimeSeconds?: number | null;
  signingAlgorithm?: SigningAlgorithm | null;
  deviceFlow?: DeviceFlowSettingsInput | null;
  federatedSourceIds?: string[] | null;
  federatedProviderIds?: string[] | null;
  dpopNonce?: boolean | null;
  /** null: rotate only when asked (and, on update, stop rotating); undefined: unchanged. */
  keyRotationDays?: number | null;
  /** On update, '' clears it. */
  displayName?: string | null;
  /** On update, '' clears it. */
  logoUrl?: string | null;
}

const SLUG = /^[a-z0-9-]{1,64}$/;

export function validateName(field: string, value: string): string {
  const name = value.trim();
  if (name === '') throw new ValidationError(field, 'must not be empty');
  if (name.length > 200) throw new ValidationError(field, 'must be at most 200 characters');
  return name;
}

export function validateSlug(field: string, value: string): string {
  if (!SLUG.test(value)) throw new ValidationError(field, 'must be 1–64 characters of a-z, 0-9 and -');
  return value;
}

export function validateRange(field: string, value: number, range: { min: number; max: number }): number {
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    throw new ValidationError(field, `must be a whole number from ${range.min} to ${range.max}`);
  }
  return value;
}

export function validateHttpUrl(field: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError(field, 'must be an absolute URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ValidationError(field, 'must be an http or https URL');
  if (url.username || url.password) throw new ValidationError(field, 'must not carry credentials');
  return url.toString();
}

/** What people see on the verification page: printable text, at most 100 characters. */
export function validateDisplayName(field: string, value: string): string {
  const name = validateName(field, value);
  if (name.length > 100) throw new ValidationError(field, 'must be at most 100 characters');
  if (/[\p{Cc}\p{Cf}]/u.test(name)) throw new ValidationError(field, 'must not contain control or formatting characters');
  return name;
}

export function validateLogoUrl(field: string, value: string): string {
  if (value.length > 2048) throw new ValidationError(field, 'must be at most 2048 characters');
  return validateHttpUrl(field, value);
}

/** undefined or null: leave as is; '': clear; else the validated value. */
function optionalText(field: string, value: string | null | undefined, validate: (field: string, value: string) => string): string | null | undefined {
  if (value === undefined || value === null) return undefined;
  return value === '' ? null : validate(field, value);
}

export function resolveDeviceFlowSettings(current: DeviceFlowSettings, input: DeviceFlowSettingsInput | null | undefined): DeviceFlowSettings {
  const next: DeviceFlowSettings = { ...current };
  if (input) {
    for (const key of Object.keys(input) as (keyof DeviceFlowSettingsInput)[]) {
      const value = input[key];
      if (value === undefined) continue;
      if (value === null && key !== 'userCodeAlphabet' && key !== 'verificationUri') continue;
      (next as unknown as Record<string, unknown>)[key] = value;
    }
  }
  const f = 'deviceFlow';
  if (!USER_CODE_CHARSETS.includes(next.userCodeCharset)) throw new ValidationError(`${f}.userCodeCharset`, 'is not a known charset');
  if (next.userCodeCharset === 'CUSTOM') {
    const alphabet = next.userCodeAlphabet ?? '';
    if (alphabet.length < 2) throw new ValidationError(`${f}.userCodeAlphabet`, 'is required with CUSTOM and needs at least 2 characters');
    if (!/^[\x21-\x7e]+$/.test(alphabet) || /[-&=+%#?/\\]/.test(alphabet)) {
      throw new ValidationError(`${f}.userCodeAlphabet`, 'may hold only printable ASCII characters other than - & = + % # ? / \\');
    }
    if (new Set(alphabet).size !== alphabet.length) throw new ValidationError(`${f}.userCodeAlphabet`, 'must not repeat a character');
  } else if (input?.userCodeAlphabet !== undefined && input.userCodeAlphabet !== null) {
    throw new ValidationError(`${f}.userCodeAlphabet`, 'is only used with userCodeCharset CUSTOM');
  } else {
    next.userCodeAlphabet = null;
  }
  validateRange(`${f}.userCodeLength`, next.userCodeLength, LIMITS.userCodeLength);
  validateRange(`${f}.codeLifetimeSeconds`, next.codeLifetimeSeconds, LIMITS.codeLifetimeSeconds);
  validateRange(`${f}.pollIntervalSeconds`, next.pollIntervalSeconds, LIMITS.pollIntervalSeconds);
  const alphabet = userCodeAlphabet(next);
  const bits = userCodeEntropyBits(next.userCodeLength, alphabet.length);
  if (bits < LIMITS.minUserCodeEntropyBits) {
    throw new ValidationError(
      `${f}.userCodeLength`,
      `gives user codes of ${bits.toFixed(1)} bits of entropy (${next.userCodeLength} × log2(${alphabet.length})); at least ${LIMITS.minUserCodeEntropyBits} bits are needed (RFC 8628 §5.1)`,
    );
  }
  if (next.verificationUri !== null) next.verificationUri = validateHttpUrl(`${f}.verificationUri`, next.verificationUri);
  return next;
}

export class ProviderService {
  private readonly byId = new TtlCache<Provider | null>(5_000);
  private readonly bySlug = new TtlCache<Provider | null>(5_000);

  constructor(
    private readonly collections: Pick<
      Collections, 'providers' | 'clients' | 'federatedSources' | 'deviceAuthorizations' | 'refreshTokens' | 'policyBindings' | 'scopeMappings'
    >,
    private readonly keys: SigningKeyService,
    private readonly publicUrl: string,
  ) {}

  issuer(provider: Pick<Provider, 'slug'>): string {
    return `${this.publicUrl}/application/o/${provider.slug}/`;
  }

  list(): Promise<Provider[]> {
    return this.collections.providers.find({}, { sort: { createdAt: 1 } });
  }

  /** Cached briefly: the token endpoint reads the provider on every request. */
  get(id: string): Promise<Provider | null> {
    return this.byId.getOrLoad(id, () => this.collections.providers.findOne({ id }));
  }

  getMany(ids: readonly string[]): Promise<Provider[]> {
    return this.collections.providers.find({ id: { $in: [...ids] } });
  }

  getBySlug(slug: string): Promise<Provider | null> {
    return this.collections.providers.findOne({ slug });
  }

  /** For verifying tokens by their issuer: cached like get(). A string that cannot be a slug is no provider, unread and uncached. */
  getBySlugCached(slug: string): Promise<Provider | null> {
    if (!SLUG.test(slug)) return Promise.resolve(null);
    return this.bySlug.getOrLoad(slug, () => this.getBySlug(slug));
  }

  async create(input: ProviderInput & { name: string; slug: string }): Promise<Provider> {
    const now = new Date();
    const provider: Provider = {
      id: randomUUID(),
      name: validateName('name', input.name),
      slug: validateSlug('slug', input.slug),
      accessTokenLifetimeSeconds: validateRange('accessTokenLifetimeSeconds', input.accessTokenLifetimeSeconds ?? LIMITS.accessTokenLifetimeSeconds.default, LIMITS.accessTokenLifetimeSeconds),
      refreshTokenLifetimeSeconds: validateRange('refreshTokenLifetimeSeconds', input.refreshTokenLifetimeSeconds ?? LIMITS.refreshTokenLifetimeSeconds.default, LIMITS.refreshTokenLifetimeSeconds),
      signingAlgorithm: this.validateAlgorithm(input.signingAlgorithm ?? 'RS256'),
      deviceFlow: resolveDeviceFlowSettings(DEFAULT_DEVICE_FLOW, input.deviceFlow),
      federatedSourceIds: await this.validateSourceIds(input.federatedSourceIds ?? []),
      federatedProviderIds: await this.validateProviderIds(input.federatedProviderIds ?? [], null),
      dpopNonce: input.dpopNonce ?? false,
      keyRotationDays: input.keyRotationDays == null ? null : validateRange('keyRotationDays', input.keyRotationDays, LIMITS.keyRotationDays),
      displayName: optionalText('displayName', input.displayName, validateDisplayName) ?? null,
      logoUrl: optionalText('logoUrl', input.logoUrl, validateLogoUrl) ?? null,
      createdAt: now,
      updatedAt: now,
    };
    try {
      await this.collections.providers.insert(provider);
    } catch (error) {
      if (error instanceof ConflictError) throw new DomainConflictError('slug', `a provider with slug '${provider.slug}' already exists`);
      throw error;
    }
    try {
      await this.keys.createKey(provider.id, provider.signingAlgorithm);
    } catch (error) {
      // No provider without a key: undo the insert.
      await this.collections.providers.deleteOne({ id: provider.id });
      throw error;
    }
    this.bySlug.delete(provider.slug);
    return provider;
  }

  async update(id: string, input: ProviderInput): Promise<Provider> {
    const current = await this.collections.providers.findOne({ id });
    if (!current) throw new NotFoundError('provider', id);
    const $set: Partial<Provider> = { updatedAt: new Date() };
    if (input.name !== undefined && input.name !== null) $set.name = validateName('name', input.name);
    if (input.accessTokenLifetimeSeconds != null) {
      $set.accessTokenLifetimeSeconds = validateRange('accessTokenLifetimeSeconds', input.accessTokenLifetimeSeconds, LIMITS.accessTokenLifetimeSeconds);
    }
    if (input.refreshTokenLifetimeSeconds != null) {
      $set.refreshTokenLifetimeSeconds = validateRange('refreshTokenLifetimeSeconds', input.refreshTokenLifetimeSeconds, LIMITS.refreshTokenLifetimeSeconds);
    }
    if (input.deviceFlow) $set.deviceFlow = resolveDeviceFlowSettings(current.deviceFlow, input.deviceFlow);
    if (input.federatedSourceIds) $set.federatedSourceIds = await this.validateSourceIds(input.federatedSourceIds);
    if (input.federatedProviderIds) $set.federatedProviderIds = await this.validateProviderIds(input.federatedProviderIds, id);
    if (input.dpopNonce != null) $set.dpopNonce = input.dpopNonce;
    if (input.keyRotationDays !== undefined) {
      $set.keyRotationDays = input.keyRotationDays === null ? null : validateRange('keyRotationDays', input.keyRotationDays, LIMITS.keyRotationDays);
    }
    // Tokens already signed keep their longer lifetime: the signing key must stay published for them.
    if ($set.accessTokenLifetimeSeconds !== undefined && $set.accessTokenLifetimeSeconds < current.accessTokenLifetimeSeconds) {
      await this.keys.rememberLifetime(id, current.accessTokenLifetimeSeconds);
    }
    const displayName = optionalText('displayName', input.displayName, validateDisplayName);
    if (displayName !== undefined) $set.displayName = displayName;
    const logoUrl = optionalText('logoUrl', input.logoUrl, validateLogoUrl);
    if (logoUrl !== undefined) $set.logoUrl = logoUrl;
    const algorithmChanged = input.signingAlgorithm != null && input.signingAlgorithm !== current.signingAlgorithm;
    if (algorithmChanged) $set.signingAlgorithm = this.validateAlgorithm(input.signingAlgorithm!);
    // A new algorithm signs at once with a new key (not published before: unavoidable); the old
    // one stays PREVIOUS, so tokens signed with it still verify against the JWKS.
    if (algorithmChanged) await this.keys.createKey(id, $set.signingAlgorithm!);
    const updated = await this.collections.providers.updateOne({ id }, { $set });
    if (!updated) throw new NotFoundError('provider', id);
    this.byId.delete(id);
    this.bySlug.delete(updated.slug);
    return updated;
  }

  /**
   * Deleting a provider deletes what belongs to it: its clients, their pending device codes,
   * refresh tokens and policy bindings, its own policy bindings and scope mappings, and its signing
   * keys (so its access tokens stop verifying). Other providers that trusted it stop doing so.
   */
  async delete(id: string): Promise<boolean> {
    const existing = await this.collections.providers.findOne({ id });
    if (!existing) throw new NotFoundError('provider', id);
    const clients = await this.collections.clients.find({ providerId: id });
    const clientIds = clients.map((c) => c.clientId);
    if (clientIds.length > 0) {
      await this.collections.deviceAuthorizations.deleteMany({ clientId: { $in: clientIds } });
      await this.collections.refreshTokens.deleteMany({ providerId: id });
      await this.collections.clients.deleteMany({ providerId: id });
    }
    await this.collections.policyBindings.deleteMany({ targetId: { $in: [id, ...clients.map((c) => c.id)] } });
    await this.collections.scopeMappings.deleteMany({ providerId: id });
    await this.collections.providers.updateMany({ federatedProviderIds: id }, { $pull: { federatedProviderIds: id } });
    await this.keys.deleteKeys(id);
    await this.collections.providers.deleteOne({ id });
    this.byId.clear();
    this.bySlug.clear();
    return true;
  }

  private validateAlgorithm(value: SigningAlgorithm): SigningAlgorithm {
    if (!SIGNING_ALGORITHMS.includes(value)) throw new ValidationError('signingAlgorithm', `must be one of ${SIGNING_ALGORITHMS.join(', ')}`);
    return value;
  }

  private async validateSourceIds(ids: string[]): Promise<string[]> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    const found = await this.collections.federatedSources.find({ id: { $in: unique } });
    const missing = unique.filter((id) => !found.some((s) => s.id === id));
    if (missing.length > 0) throw new ValidationError('federatedSourceIds', `no federated source with id ${missing.join(', ')}`);
    return unique;
  }

  private async validateProviderIds(ids: string[], selfId: string | null): Promise<string[]> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    if (selfId && unique.includes(selfId)) throw new ValidationError('federatedProviderIds', 'a provider cannot federate with itself');
    const found = await this.collections.providers.find({ id: { $in: unique } });
    const missing = unique.filter((id) => !found.some((p) => p.id === id));
    if (missing.length > 0) throw new ValidationError('federatedProviderIds', `no provider with id ${missing.join(', ')}`);
    return unique;
  }
}

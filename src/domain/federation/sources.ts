/**
 * Federated sources: external JWT issuers (a Kubernetes cluster, a CI system) whose tokens a
 * provider accepts as client_credentials assertions. Known by a JWKS URL, an OIDC discovery URL or
 * raw JWKS. With a URL, the keys in use are always the ones fetched from it (when the source is
 * saved and on refresh), so a source that cannot work is refused when the admin saves it, not when
 * the first machine calls; raw JWKS are for sources without a URL.
 */
import { createPublicKey, randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import type { FederatedSource } from '../model.js';
import { DomainConflictError, NotFoundError, ValidationError } from '../errors.js';
import { validateHttpUrl, validateName, validateSlug } from '../providers.js';
import type { Collections } from '../../store/ports.js';
import { ConflictError } from '../../store/errors.js';
import { assertJwks, fetchJwks, JwksFetchError } from './fetch-jwks.js';

export interface CreateFederatedSourceInput {
  name: string;
  slug: string;
  issuer?: string | null;
  audience?: string | null;
  maxTokenAgeSeconds?: number | null;
  jwksUrl?: string | null;
  oidcDiscoveryUrl?: string | null;
  jwks?: unknown;
}

/** Every field but the slug; absent (undefined) leaves a field as it is, null clears it. */
export type UpdateFederatedSourceInput = { [K in keyof Omit<CreateFederatedSourceInput, 'slug'>]?: CreateFederatedSourceInput[K] | null };

type Jwks = { keys: JWK[] };
type KeySource = Pick<FederatedSource, 'jwksUrl' | 'oidcDiscoveryUrl' | 'jwks'>;

export function optionalText(field: string, value: string | null | undefined, max: number): string | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (text === '') throw new ValidationError(field, 'must not be empty (give null to leave it unset)');
  if (text.length > max) throw new ValidationError(field, `must be at most ${max} characters`);
  return text;
}

/** Up to a year: a bound on how old an accepted JWT may be, not a lifetime. */
const MAX_TOKEN_AGE_LIMIT = 31_536_000;

export function optionalMaxAge(value: number | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  if (!Number.isInteger(value) || value < 1 || value > MAX_TOKEN_AGE_LIMIT) {
    throw new ValidationError('maxTokenAgeSeconds', `must be a whole number of seconds from 1 to ${MAX_TOKEN_AGE_LIMIT}, or null`);
  }
  return value;
}

export function optionalUrl(field: string, value: string | null | undefined): string | null {
  if (value === null || value === undefined || value.trim() === '') return null;
  if (value.length > 2048) throw new ValidationError(field, 'must be at most 2048 characters');
  return validateHttpUrl(field, value.trim());
}

export function validateRawJwks(value: unknown): Jwks | null {
  if (value === null || value === undefined) return null;
  let jwks: Jwks;
  try {
    jwks = assertJwks(value, 'jwks') as Jwks;
  } catch (error) {
    if (error instanceof JwksFetchError) throw new ValidationError('jwks', error.message.replace(/^jwks /, ''));
    throw error;
  }
  if (jwks.keys.length === 0) throw new ValidationError('jwks', 'holds no keys');
  // The admin typed these in: catch a key with missing parts now rather than at the first assertion.
  jwks.keys.forEach((key, index) => {
    try {
      createPublicKey({ key: key as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch (error) {
      throw new ValidationError('jwks', `key ${index}${key.kid ? ` (kid ${key.kid})` : ''} is not a usable public key: ${(error as Error).message}`);
    }
  });
  return jwks;
}

export class FederatedSourceService {
  /** Told of every change to a source here (the JWT verifier's caches forget it at once). */
  private readonly changeListeners: ((sourceId: string) => void)[] = [];

  constructor(
    private readonly collections: Pick<Collections, 'federatedSources' | 'providers' | 'sourcePropertyMappings'>,
    private readonly fetchTimeoutMs?: number,
  ) {}

  onChange(listener: (sourceId: string) => void): void {
    this.changeListeners.push(listener);
  }

  private changed(sourceId: string): void {
    for (const listener of this.changeListeners) listener(sourceId);
  }

  list(): Promise<FederatedSource[]> {
    return this.collections.federatedSources.find({}, { sort: { createdAt: 1 } });
  }

  get(id: string): Promise<FederatedSource | null> {
    return this.collections.federatedSources.findOne({ id });
  }

  getBySlug(slug: string): Promise<FederatedSource | null> {
    return this.collections.federatedSources.findOne({ slug });
  }

  getMany(ids: readonly string[]): Promise<FederatedSource[]> {
    return this.collections.federatedSources.find({ id: { $in: [...ids] } });
  }

  async create(input: CreateFederatedSourceInput): Promise<FederatedSource> {
    const now = new Date();
    const keySource: KeySource = {
      jwksUrl: optionalUrl('jwksUrl', input.jwksUrl),
      oidcDiscoveryUrl: optionalUrl('oidcDiscoveryUrl', input.oidcDiscoveryUrl),
      jwks: validateRawJwks(input.jwks),
    };
    const source: FederatedSource = {
      id: randomUUID(),
      name: validateName('name', input.name),
      slug: validateSlug('slug', input.slug),
      issuer: optionalText('issuer', input.issuer, 2048),
      audience: optionalText('audience', input.audience, 2048),
      maxTokenAgeSeconds: optionalMaxAge(input.maxTokenAgeSeconds),
      ...keySource,
      keysFetchedAt: null,
      createdAt: now,
      updatedAt: now,
    };
    requireKeySource(source);
    if (await this.getBySlug(source.slug)) throw slugTaken(source.slug);
    Object.assign(source, await this.loadKeys(source));
    try {
      await this.collections.federatedSources.insert(source);
    } catch (error) {
      if (error instanceof ConflictError) throw slugTaken(source.slug);
      throw error;
    }
    return source;
  }

  async update(id: string, input: UpdateFederatedSourceInput): Promise<FederatedSource> {
    const current = await this.get(id);
    if (!current) throw new NotFoundError('federated source', id);
    const next: FederatedSource = { ...current };
    if (input.name !== undefined && input.name !== null) next.name = validateName('name', input.name);
    if (input.issuer !== undefined) next.issuer = optionalText('issuer', input.issuer, 2048);
    if (input.audience !== undefined) next.audience = optionalText('audience', input.audience, 2048);
    if (input.maxTokenAgeSeconds !== undefined) next.maxTokenAgeSeconds = optionalMaxAge(input.maxTokenAgeSeconds);
    if (input.jwksUrl !== undefined) next.jwksUrl = optionalUrl('jwksUrl', input.jwksUrl);
    if (input.oidcDiscoveryUrl !== undefined) next.oidcDiscoveryUrl = optionalUrl('oidcDiscoveryUrl', input.oidcDiscoveryUrl);
    if (input.jwks !== undefined) next.jwks = validateRawJwks(input.jwks);
    const urlsChanged = next.jwksUrl !== current.jwksUrl || next.oidcDiscoveryUrl !== current.oidcDiscoveryUrl;
    // Keys that came from a URL that is now gone are vouched for by no one: drop them unless new raw keys are given.
    if (urlsChanged && !hasUrl(next) && input.jwks === undefined) next.jwks = null;
    requireKeySource(next);
    // A new issuer is checked against the discovery document at once (fetch-jwks.ts).
    const discoveryIssuerChanged = next.oidcDiscoveryUrl !== null && next.jwksUrl === null && next.issuer !== current.issuer;
    if (hasUrl(next) && (urlsChanged || discoveryIssuerChanged || input.jwks !== undefined)) Object.assign(next, await this.loadKeys(next));
    if (!hasUrl(next)) next.keysFetchedAt = null;
    const { id: _id, createdAt: _createdAt, ...fields } = next;
    return this.save(id, fields);
  }

  /** Fetches the keys again from jwksUrl or oidcDiscoveryUrl. */
  async refreshKeys(id: string): Promise<FederatedSource> {
    const current = await this.get(id);
    if (!current) throw new NotFoundError('federated source', id);
    if (!hasUrl(current)) throw new ValidationError('jwksUrl', 'this source has raw JWKS and neither jwksUrl nor oidcDiscoveryUrl to fetch keys from');
    const keys = await this.loadKeys(current);
    return this.save(id, keys);
  }

  /** Writes the fields (a source's verifier forgets it at once). */
  private async save(id: string, fields: Partial<FederatedSource>): Promise<FederatedSource> {
    const updated = await this.collections.federatedSources.updateOne({ id }, { $set: { ...fields, updatedAt: new Date() } });
    if (!updated) throw new NotFoundError('federated source', id);
    this.changed(id);
    return updated;
  }

  /** Deleting a source also removes it from every provider that trusted it, and its property mappings, so nothing points at it. */
  async delete(id: string): Promise<boolean> {
    const existing = await this.get(id);
    if (!existing) throw new NotFoundError('federated source', id);
    await this.collections.providers.updateMany({ federatedSourceIds: id }, { $pull: { federatedSourceIds: id } });
    await this.collections.sourcePropertyMappings.deleteMany({ federatedSourceId: id });
    await this.collections.federatedSources.deleteOne({ id });
    this.changed(id);
    return true;
  }

  private async loadKeys(source: KeySource & Pick<FederatedSource, 'issuer'>): Promise<Pick<FederatedSource, 'jwks' | 'keysFetchedAt'>> {
    if (!hasUrl(source)) return { jwks: source.jwks, keysFetchedAt: null };
    const field = source.jwksUrl ? 'jwksUrl' : 'oidcDiscoveryUrl';
    try {
      const jwks = (await fetchJwks(source, this.fetchTimeoutMs)) as Jwks;
      return { jwks, keysFetchedAt: new Date() };
    } catch (error) {
      if (error instanceof JwksFetchError) throw new ValidationError(field, error.message);
      throw error;
    }
  }
}

function hasUrl(source: Pick<FederatedSource, 'jwksUrl' | 'oidcDiscoveryUrl'>): boolean {
  return source.jwksUrl !== null || source.oidcDiscoveryUrl !== null;
}

export function requireKeySource(source: KeySource): void {
  if (!hasUrl(source) && source.jwks === null) {
    throw new ValidationError('jwks', 'give at least one of jwks, jwksUrl or oidcDiscoveryUrl');
  }
}

function slugTaken(slug: string): DomainConflictError {
  return new DomainConflictError('slug', `a federated source with slug '${slug}' already exists`);
}

/** OAuth clients. A client_id is unique across the server; the secret is shown once, stored as SHA-256. */
import { randomUUID } from 'node:crypto';
import type { Client, ClientType, GrantType } from './model.js';
import { GRANT_TYPES } from './model.js';
import { DomainConflictError, NotFoundError, ValidationError } from './errors.js';
import { TtlCache } from './cache.js';
import { generateSecret, sha256Hex } from './secrets.js';
import { validateName } from './providers.js';
import { validateScopes } from './scopes.js';
import { validateAllowedAudiences } from './audiences.js';
import type { Collections } from '../store/ports.js';
import { ConflictError } from '../store/errors.js';

export interface CreateClientInput {
  providerId: string;
  name: string;
  type: ClientType;
  grantTypes: GrantType[];
  allowedScopes?: string[] | null;
  clientId?: string | null;
  allowedAudiences?: string[] | null;
  requireDpop?: boolean | null;
}

export interface UpdateClientInput {
  name?: string | null;
  grantTypes?: GrantType[] | null;
  allowedScopes?: string[] | null;
  allowedAudiences?: string[] | null;
  requireDpop?: boolean | null;
}

export interface ClientWithSecret {
  client: Client;
  clientSecret: string | null;
}

/** RFC 6749 Appendix A: client-id = *VSCHAR (%x20-7E), as the admin chooses it; generated ones are base64url. */
export const CLIENT_ID = /^[\x20-\x7E]{1,128}$/;
export const MAX_CLIENT_ID_LENGTH = 128;

export function validateGrantTypes(grantTypes: GrantType[]): GrantType[] {
  if (grantTypes.length === 0) throw new ValidationError('grantTypes', 'must name at least one grant type');
  for (const g of grantTypes) if (!GRANT_TYPES.includes(g)) throw new ValidationError('grantTypes', `'${g}' is not a grant type`);
  return [...new Set(grantTypes)];
}

export class ClientService {
  private readonly byClientId = new TtlCache<Client | null>(5_000);

  constructor(private readonly collections: Pick<Collections, 'clients' | 'providers' | 'deviceAuthorizations' | 'refreshTokens' | 'policyBindings'>) {}

  /** Cached briefly: every OAuth request reads its client. An id longer than any client_id is no client, unread and uncached. */
  getByClientId(clientId: string): Promise<Client | null> {
    if (clientId.length > MAX_CLIENT_ID_LENGTH) return Promise.resolve(null);
    return this.byClientId.getOrLoad(clientId, () => this.collections.clients.findOne({ clientId }));
  }

  get(id: string): Promise<Client | null> {
    return this.collections.clients.findOne({ id });
  }

  /** Uncached, for admins: what the store holds right now. */
  findByClientId(clientId: string): Promise<Client | null> {
    return this.collections.clients.findOne({ clientId });
  }

  list(providerId?: string | null): Promise<Client[]> {
    return this.collections.clients.find(providerId ? { providerId } : {}, { sort: { createdAt: 1 } });
  }

  listForProviders(providerIds: readonly string[]): Promise<Client[]> {
    return this.collections.clients.find({ providerId: { $in: [...providerIds] } }, { sort: { createdAt: 1 } });
  }

  async create(input: CreateClientInput): Promise<ClientWithSecret> {
    const provider = await this.collections.providers.findOne({ id: input.providerId });
    if (!provider) throw new NotFoundError('provider', input.providerId);
    if (input.type !== 'CONFIDENTIAL' && input.type !== 'PUBLIC') throw new ValidationError('type', 'must be CONFIDENTIAL or PUBLIC');
    const clientId = input.clientId ?? generateSecret(24);
    if (!CLIENT_ID.test(clientId)) throw new ValidationError('clientId', 'must be 1–128 printable ASCII characters (RFC 6749 VSCHAR, %x20–7E)');
    const clientSecret = input.type === 'CONFIDENTIAL' ? generateSecret() : null;
    const now = new Date();
    const client: Client = {
      id: randomUUID(),
      providerId: provider.id,
      name: validateName('name', input.name),
      clientId,
      type: input.type,
      grantTypes: validateGrantTypes(input.grantTypes),
      allowedScopes: validateScopes('allowedScopes', input.allowedScopes ?? []),
      allowedAudiences: validateAllowedAudiences('allowedAudiences', input.allowedAudiences ?? []),
      secretHash: clientSecret ? sha256Hex(clientSecret) : null,
      requireDpop: input.requireDpop ?? false,
      createdAt: now,
      updatedAt: now,
    };
    try {
      await this.collections.clients.insert(client);
    } catch (error) {
      if (error instanceof ConflictError) throw new DomainConflictError('clientId', `a client with client_id '${clientId}' already exists`);
      throw error;
    }
    this.byClientId.delete(clientId);
    return { client, clientSecret };
  }

  async update(id: string, input: UpdateClientInput): Promise<Client> {
    const $set: Partial<Client> = { updatedAt: new Date() };
    if (input.name != null) $set.name = validateName('name', input.name);
    if (input.grantTypes != null) $set.grantTypes = validateGrantTypes(input.grantTypes);
    if (input.allowedScopes != null) $set.allowedScopes = validateScopes('allowedScopes', input.allowedScopes);
    if (input.allowedAudiences != null) $set.allowedAudiences = validateAllowedAudiences('allowedAudiences', input.allowedAudiences);
    if (input.requireDpop != null) $set.requireDpop = input.requireDpop;
    const updated = await this.collections.clients.updateOne({ id }, { $set });
    if (!updated) throw new NotFoundError('client', id);
    this.byClientId.delete(updated.clientId);
    return updated;
  }

  async rotateSecret(id: string): Promise<ClientWithSecret> {
    const current = await this.collections.clients.findOne({ id });
    if (!current) throw new NotFoundError('client', id);
    if (current.type !== 'CONFIDENTIAL') throw new ValidationError('id', 'a PUBLIC client has no secret to rotate');
    const clientSecret = generateSecret();
    const client = await this.collections.clients.updateOne({ id }, { $set: { secretHash: sha256Hex(clientSecret), updatedAt: new Date() } });
    if (!client) throw new NotFoundError('client', id);
    this.byClientId.delete(client.clientId);
    return { client, clientSecret };
  }

  /** Deleting a client ends what it started (pending device codes, refresh tokens) and its policy bindings. */
  async delete(id: string): Promise<boolean> {
    const client = await this.collections.clients.findOne({ id });
    if (!client) throw new NotFoundError('client', id);
    await this.collections.deviceAuthorizations.deleteMany({ clientId: client.clientId });
    await this.collections.refreshTokens.deleteMany({ clientId: client.clientId });
    await this.collections.policyBindings.deleteMany({ targetType: 'CLIENT', targetId: id });
    await this.collections.clients.deleteOne({ id });
    this.byClientId.delete(client.clientId);
    return true;
  }
}

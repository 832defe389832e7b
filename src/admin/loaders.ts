/**
 * Per-request DataLoaders, so nested fields (providers { clients { provider } }) cost a bounded
 * number of store calls however many objects a page holds.
 */
import DataLoader from 'dataloader';
import type { Services } from '../domain/services.js';
import type { AppPassword, Client, FederatedSource, Provider, User } from '../domain/model.js';

export interface Loaders {
  provider: DataLoader<string, Provider | null>;
  clientsByProvider: DataLoader<string, Client[]>;
  user: DataLoader<string, User | null>;
  appPasswordsByUser: DataLoader<string, AppPassword[]>;
  federatedSource: DataLoader<string, FederatedSource | null>;
}

function byId<T extends { id: string }>(ids: readonly string[], records: T[]): (T | null)[] {
  const map = new Map(records.map((r) => [r.id, r]));
  return ids.map((id) => map.get(id) ?? null);
}

function groupBy<T>(keys: readonly string[], records: T[], keyOf: (r: T) => string): T[][] {
  const groups = new Map<string, T[]>(keys.map((k) => [k, []]));
  for (const r of records) groups.get(keyOf(r))?.push(r);
  return keys.map((k) => groups.get(k) ?? []);
}

export function createLoaders(services: Services): Loaders {
  return {
    provider: new DataLoader(async (ids) => byId(ids, await services.providers.getMany(ids))),
    clientsByProvider: new DataLoader(async (ids) => groupBy(ids, await services.clients.listForProviders(ids), (c) => c.providerId)),
    user: new DataLoader(async (ids) => byId(ids, await services.users.getMany(ids))),
    appPasswordsByUser: new DataLoader(async (ids) => groupBy(ids, await services.appPasswords.listForUsers(ids), (a) => a.userId)),
    federatedSource: new DataLoader(async (ids) => byId(ids, await services.federatedSources.getMany(ids))),
  };
}

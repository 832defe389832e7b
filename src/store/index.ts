import type { StoreAdapter } from './ports.js';
import { openEmbeddedStore, type Durability } from './sqlite/sqlite-store.js';
import { instrumentCollections } from '../telemetry/store.js';
import { DeviceAuthorizationRepository, RefreshTokenRepository } from './repositories.js';

export interface Store extends StoreAdapter {
  deviceAuthorizationRepository: DeviceAuthorizationRepository;
  refreshTokenRepository: RefreshTokenRepository;
}

export function withRepositories(adapter: StoreAdapter): Store {
  instrumentCollections(adapter);
  return Object.assign(adapter, {
    deviceAuthorizationRepository: new DeviceAuthorizationRepository(adapter),
    refreshTokenRepository: new RefreshTokenRepository(adapter),
  });
}

export async function openStore(options: {
  mongodbUri: string | null;
  dataDir: string;
  /** TESSERA_EVENT_RETENTION_DAYS (both stores). */
  eventRetentionDays?: number;
  /** TESSERA_EMBEDDED_MAX_EVENTS (the embedded store only). */
  embeddedMaxEvents?: number;
  /** TESSERA_DURABILITY (the embedded store only). */
  durability?: Durability;
}): Promise<Store> {
  const retention = options.eventRetentionDays === undefined ? {} : { eventRetentionDays: options.eventRetentionDays };
  // mongoose is loaded only when MongoDB is configured: it is a third of the start-up time otherwise.
  const adapter = options.mongodbUri
    ? await (await import('./mongo/mongo-store.js')).openMongoStore(options.mongodbUri, retention)
    : await openEmbeddedStore(options.dataDir, {
      ...retention, ...(options.embeddedMaxEvents === undefined ? {} : { maxEvents: options.embeddedMaxEvents }),
      ...(options.durability === undefined ? {} : { durability: options.durability }),
    });
  return withRepositories(adapter);
}

export type { StoreAdapter } from './ports.js';
export { ConflictError, StoreUnavailableError } from './errors.js';

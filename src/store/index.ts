import type { StoreAdapter } from './ports.js';
import { openEmbeddedStore } from './embedded/embedded-store.js';
import { DeviceAuthorizationRepository, RefreshTokenRepository } from './repositories.js';

export interface Store extends StoreAdapter {
  deviceAuthorizationRepository: DeviceAuthorizationRepository;
  refreshTokenRepository: RefreshTokenRepository;
}

export function withRepositories(adapter: StoreAdapter): Store {
  return Object.assign(adapter, {
    deviceAuthorizationRepository: new DeviceAuthorizationRepository(adapter),
    refreshTokenRepository: new RefreshTokenRepository(adapter),
  });
}

export async function openStore(options: { mongodbUri: string | null; dataDir: string }): Promise<Store> {
  // mongoose is loaded only when MongoDB is configured: it is a third of the start-up time otherwise.
  const adapter = options.mongodbUri
    ? await (await import('./mongo/mongo-store.js')).openMongoStore(options.mongodbUri)
    : await openEmbeddedStore(options.dataDir);
  return withRepositories(adapter);
}

export type { StoreAdapter } from './ports.js';
export { ConflictError, StoreUnavailableError } from './errors.js';

import type { Services } from '../domain/services.js';
import type { User } from '../domain/model.js';
import type { Loaders } from './loaders.js';

/** What every resolver receives: the services, the authenticated admin, and per-request loaders. */
export interface AdminContext {
  services: Services;
  admin: User;
  requestId: string;
  loaders: Loaders;
}

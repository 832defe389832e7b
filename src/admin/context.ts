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

/** Every mutation leaves a CONFIG_CHANGED event: who, what, when, never a secret. */
export function recordConfigChange(ctx: AdminContext, operation: string, details: Record<string, unknown>): void {
  ctx.services.events.record({
    action: 'CONFIG_CHANGED',
    requestId: ctx.requestId,
    username: ctx.admin.username,
    context: { operation, ...details },
  });
}

/** The names of the fields an input set, for the audit log (never their values: they may be secret). */
export function setFields(input: object): string[] {
  return Object.entries(input).filter(([, v]) => v !== undefined).map(([k]) => k);
}

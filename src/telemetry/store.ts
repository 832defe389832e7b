/**
 * Store calls measured at the port: every collection method of the adapter is timed into
 * tessera_store_operation_duration_seconds and, when tracing is on, runs in a `store
 * <collection>.<operation>` span. Only names are recorded, never filters or documents (they hold
 * token hashes and user data).
 */
import type { Collections, StoreAdapter } from '../store/ports.js';
import { storeLatency } from './metrics.js';
import { inSpan, tracingEnabled } from './trace.js';

const COLLECTIONS = [
  'providers', 'clients', 'users', 'appPasswords', 'signingKeys', 'federatedSources', 'deviceAuthorizations',
  'refreshTokens', 'revokedTokens', 'events', 'expressionPolicies', 'policyBindings', 'sourcePropertyMappings',
  'scopeMappings', 'deviceSessions', 'dpopProofs',
] as const satisfies readonly (keyof Collections)[];
// A collection added to the port without being listed here fails to compile.
type Unlisted = Exclude<keyof Collections, (typeof COLLECTIONS)[number]>;
const everyCollectionListed: Unlisted extends never ? true : Unlisted = true;
void everyCollectionListed;

/** Replaces each collection of `adapter` by a measured view of it (in place, like withRepositories). */
export function instrumentCollections(adapter: StoreAdapter): void {
  const traced = tracingEnabled();
  for (const name of COLLECTIONS) {
    const collection = adapter[name] as unknown as object | undefined;
    if (!collection) continue;
    (adapter as unknown as Record<string, unknown>)[name] = measured(collection, name, adapter.kind, traced);
  }
}

function measured<T extends object>(collection: T, name: string, system: string, traced: boolean): T {
  // Keyed by the method itself, so a method replaced on the collection later is wrapped anew.
  const wrappers = new WeakMap<object, unknown>();
  return new Proxy(collection, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      let wrapper = wrappers.get(value);
      if (!wrapper) {
        const operation = String(property);
        const method = value as (...args: unknown[]) => unknown;
        // The labelled child, made once: observing it skips hashing the labels on every call.
        const latency = storeLatency.labels(name, operation);
        const timed = async (...args: unknown[]) => {
          const start = performance.now();
          try {
            return await method.apply(target, args);
          } finally {
            latency.observe((performance.now() - start) / 1000);
          }
        };
        const attributes = { 'db.system': system, 'db.collection.name': name, 'db.operation.name': operation };
        wrapper = traced ? (...args: unknown[]) => inSpan(`store ${name}.${operation}`, attributes, () => timed(...args)) : timed;
        wrappers.set(value, wrapper);
      }
      return wrapper;
    },
  });
}

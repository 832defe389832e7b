/**
 * One description of every collection and its indexes; both adapters build their indexes from it,
 * so the embedded store and MongoDB enforce the same unique keys and expiry. A collection or an
 * index added here is created by both at their next start (indexes gone from here are dropped by
 * the embedded store). Indexed fields hold scalars: the embedded store compares them as such.
 */
import type { Collections } from './ports.js';

export interface CollectionSpec {
  /** Unique single-field keys (sparse: records without the field do not collide). */
  unique: string[];
  /** Plain single-field indexes for lookups, filters and sorting. */
  indexes: string[];
  /**
   * Indexes on fields that many records share, built by MongoDB only: the embedded store answers
   * the filters on them (the audit log's action, client, username; the client of device
   * authorizations, used only when a client is deleted) while walking the createdAt index or by a
   * scan, and spares the audit log, written on every request, an index write per field.
   */
  mongoOnlyIndexes?: string[];
  /**
   * Fields searched by substring (a literal $regex, as the admin API's users search sends): the
   * embedded store keeps a trigram index of them (SQLite FTS5); MongoDB reads every record.
   */
  search?: string[];
  /** A Date field after which (plus `afterSeconds`) the record is removed by the store. */
  ttl?: { field: string; afterSeconds: number };
  /**
   * Free-form JSON fields, kept as JSON text by the adapters: their keys come from users and JWTs
   * ("kubernetes.io", "$ne") and neither store accepts every key. They cannot be queried.
   */
  json?: string[];
}

export const COLLECTION_SPECS: Record<keyof Collections, CollectionSpec> = {
  providers: { unique: ['slug'], indexes: [] },
  clients: { unique: ['clientId'], indexes: ['providerId'] },
  users: {
    unique: ['username', 'identityKey'], indexes: ['type', 'createdAt'], ttl: { field: 'expiresAt', afterSeconds: 0 },
    json: ['attributes'], search: ['username', 'name', 'email'],
  },
  appPasswords: { unique: ['secretHash'], indexes: ['userId'] },
  // nextOf: held by a provider's NEXT key only, so two processes making one at once make one.
  signingKeys: { unique: ['nextOf'], indexes: ['providerId'], json: ['publicJwk'] },
  federatedSources: { unique: ['slug'], indexes: [], json: ['jwks'] },
  // Kept an hour past expiry so that a late poll still hears expired_token, not invalid_grant
  // (RFC 8628 §3.5: a device stops at expires_in; either answer ends its flow). Longer would
  // only keep more dead records. clientId: only deleting a client or provider filters on it.
  deviceAuthorizations: {
    unique: ['deviceCodeHash', 'userCode'], indexes: [], mongoOnlyIndexes: ['clientId'],
    ttl: { field: 'expiresAt', afterSeconds: 3_600 },
  },
  refreshTokens: { unique: ['tokenHash'], indexes: ['familyId', 'userId'], ttl: { field: 'expiresAt', afterSeconds: 0 } },
  revokedTokens: { unique: [], indexes: [], ttl: { field: 'expiresAt', afterSeconds: 0 } },
  // Expiry (retention) is a deployment setting: see collectionSpecs().
  events: {
    unique: [], indexes: ['createdAt', 'requestId'], mongoOnlyIndexes: ['action', 'clientId', 'username'], json: ['context'],
  },
  expressionPolicies: { unique: ['name'], indexes: [] },
  policyBindings: { unique: [], indexes: ['policyId', 'targetId'] },
  sourcePropertyMappings: { unique: [], indexes: ['federatedSourceId'] },
  scopeMappings: { unique: [], indexes: ['providerId'] },
  // Signed-in /device sessions: looked up by id (the cookie secret's hash), ended per user on a password change.
  deviceSessions: { unique: [], indexes: ['userId'], ttl: { field: 'expiresAt', afterSeconds: 0 } },
  // A replayed DPoP proof collides on jtiHash; kept only while its iat is in the window.
  dpopProofs: { unique: ['jtiHash'], indexes: [], ttl: { field: 'expiresAt', afterSeconds: 0 } },
};

export const COLLECTION_NAMES = Object.keys(COLLECTION_SPECS) as (keyof Collections)[];

export interface RetentionOptions {
  /** Audit events are removed by the store this many days after createdAt (TESSERA_EVENT_RETENTION_DAYS); none when absent. */
  eventRetentionDays?: number;
}

/** COLLECTION_SPECS with the deployment's retention applied (the server passes TESSERA_EVENT_RETENTION_DAYS). */
export function collectionSpecs(options: RetentionOptions = {}): Record<keyof Collections, CollectionSpec> {
  if (options.eventRetentionDays === undefined) return COLLECTION_SPECS;
  const events: CollectionSpec = {
    ...COLLECTION_SPECS.events,
    ttl: { field: 'createdAt', afterSeconds: options.eventRetentionDays * 86_400 },
  };
  return { ...COLLECTION_SPECS, events };
}

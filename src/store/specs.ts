/**
 * One description of every collection and its indexes; both adapters build their indexes from it,
 * so the embedded store and MongoDB enforce the same unique keys and expiry.
 */
import type { Collections } from './ports.js';

export interface CollectionSpec {
  /** Unique single-field keys (sparse: records without the field do not collide). */
  unique: string[];
  /** Plain single-field indexes for lookups, filters and sorting. */
  indexes: string[];
  /**
   * Indexes on fields that many records share, built by MongoDB only. NeDB keeps one array of
   * records per key, so each write to a crowded key costs time proportional to the crowd, and it
   * answers a filter from one index only: the events' createdAt window serves it better.
   */
  mongoOnlyIndexes?: string[];
  /**
   * Indexed fields the embedded store keeps in key order (an AVL tree): those filtered by ranges
   * or walked in order. Its other indexes are hash maps, which answer equality and $in at once and
   * a range only by scanning every key; a TTL field neither listed here nor indexed otherwise gets
   * no index there (NeDB expires records without one). MongoDB ignores this.
   */
  ordered?: string[];
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
  // expiresAt ordered: the embedded count of users takes off the expired ones by a range on it.
  users: {
    unique: ['username', 'identityKey'], indexes: ['type', 'createdAt'], ordered: ['createdAt', 'expiresAt'], ttl: { field: 'expiresAt', afterSeconds: 0 },
    json: ['attributes'],
  },
  appPasswords: { unique: ['secretHash'], indexes: ['userId'] },
  // nextOf: held by a provider's NEXT key only, so two processes making one at once make one.
  signingKeys: { unique: ['nextOf'], indexes: ['providerId'], json: ['publicJwk'] },
  federatedSources: { unique: ['slug'], indexes: [], json: ['jwks'] },
  // Kept an hour past expiry so that a late poll still hears expired_token, not invalid_grant
  // (RFC 8628 §3.5: a device stops at expires_in; either answer ends its flow). Longer would
  // only hold more dead records: the embedded store keeps every one in memory until it goes.
  // clientId: only deleting a client or provider filters on it (every authorization of a busy
  // client shares the key, which each write of one of them would walk in the embedded store).
  deviceAuthorizations: {
    unique: ['deviceCodeHash', 'userCode'], indexes: [], mongoOnlyIndexes: ['clientId'],
    ttl: { field: 'expiresAt', afterSeconds: 3_600 },
  },
  refreshTokens: { unique: ['tokenHash'], indexes: ['familyId', 'userId'], ttl: { field: 'expiresAt', afterSeconds: 0 } },
  revokedTokens: { unique: [], indexes: [], ttl: { field: 'expiresAt', afterSeconds: 0 } },
  // Expiry (retention) is a deployment setting: see collectionSpecs().
  events: {
    unique: [], indexes: ['createdAt', 'requestId'], ordered: ['createdAt'], mongoOnlyIndexes: ['action', 'clientId', 'username'], json: ['context'],
  },
  expressionPolicies: { unique: ['name'], indexes: [] },
  policyBindings: { unique: [], indexes: ['policyId', 'targetId'] },
  sourcePropertyMappings: { unique: [], indexes: ['federatedSourceId'] },
  scopeMappings: { unique: [], indexes: ['providerId'] },
  // Signed-in /device sessions: looked up by id (the cookie secret's hash), ended per user on a password change.
  deviceSessions: { unique: [], indexes: ['userId'], ttl: { field: 'expiresAt', afterSeconds: 0 } },
};

export const COLLECTION_NAMES = Object.keys(COLLECTION_SPECS) as (keyof Collections)[];

export const DEFAULT_EVENT_RETENTION_DAYS = 30;

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

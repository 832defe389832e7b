/**
 * The storage port. Domain code talks to typed collections through a small, store-neutral
 * query language (a subset of MongoDB's, with MongoDB's meaning: MongoDB evaluates it natively,
 * the embedded SQLite adapter compiles it to SQL, src/store/sqlite/query.ts), so each adapter only
 * has to implement one generic collection, and every atomic rule lives in one place
 * (src/store/repositories.ts), tested once against both adapters (test/store/contract.ts).
 */
import type {
  AppPassword, AuditEvent, Client, DeviceAuthorization, FederatedSource, Provider, RefreshToken,
  RevokedToken, SigningKey, DeviceSessionRecord, User, ExpressionPolicy, PolicyBinding, SourcePropertyMapping, ScopeMapping, DpopProofRecord,
} from '../domain/model.js';

export type Scalar = string | number | boolean | Date | null;

export interface Operators {
  $gt?: Scalar;
  $gte?: Scalar;
  $lt?: Scalar;
  $lte?: Scalar;
  $ne?: Scalar;
  $in?: Scalar[];
  $nin?: Scalar[];
  $exists?: boolean;
  /**
   * What the domain sends is only a case-insensitive literal contains (literalContains below: the
   * users search); both stores evaluate it natively, the embedded one through its trigram index.
   */
  $regex?: RegExp;
}

/** A case-insensitive substring test of `text`, taken literally (regex characters escaped). */
export function literalContains(text: string): Operators {
  return { $regex: new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i') };
}

/** Field path → value (equality; arrays match an element) or operators. `id` is the record's id. */
export interface Filter {
  [field: string]: Scalar | Operators | Filter[] | undefined;
  $or?: Filter[];
  /** Conditions kept apart from the rest (the embedded store plans them apart: pagination.ts). */
  $and?: Filter[];
}

export interface Update {
  $set?: Record<string, unknown>;
  $unset?: Record<string, true>;
  $inc?: Record<string, number>;
  $addToSet?: Record<string, Scalar>;
  $pull?: Record<string, Scalar>;
}

export interface FindOptions {
  sort?: Record<string, 1 | -1>;
  limit?: number;
  skip?: number;
}

export interface DocumentCollection<T extends { id: string }> {
  /** Throws ConflictError when a unique field is taken. */
  insert(doc: T): Promise<T>;
  /**
   * Inserts several records in one write (the audit log's batches). Every record that does not
   * collide is stored; if any did, throws ConflictError afterwards (one of the colliding fields).
   */
  insertMany(docs: T[]): Promise<void>;
  findOne(filter: Filter): Promise<T | null>;
  find(filter: Filter, options?: FindOptions): Promise<T[]>;
  count(filter: Filter): Promise<number>;
  /**
   * Applies `update` to one record matching `filter`, atomically: the filter is the condition.
   * Returns the record after the update, or null when nothing matched. Two concurrent calls whose
   * filter excludes the other's result can never both succeed.
   */
  updateOne(filter: Filter, update: Update): Promise<T | null>;
  updateMany(filter: Filter, update: Update): Promise<number>;
  deleteOne(filter: Filter): Promise<boolean>;
  deleteMany(filter: Filter): Promise<number>;
}

export interface Collections {
  providers: DocumentCollection<Provider>;
  clients: DocumentCollection<Client>;
  users: DocumentCollection<User>;
  appPasswords: DocumentCollection<AppPassword>;
  signingKeys: DocumentCollection<SigningKey>;
  federatedSources: DocumentCollection<FederatedSource>;
  deviceAuthorizations: DocumentCollection<DeviceAuthorization>;
  refreshTokens: DocumentCollection<RefreshToken>;
  revokedTokens: DocumentCollection<RevokedToken>;
  events: DocumentCollection<AuditEvent>;
  expressionPolicies: DocumentCollection<ExpressionPolicy>;
  policyBindings: DocumentCollection<PolicyBinding>;
  sourcePropertyMappings: DocumentCollection<SourcePropertyMapping>;
  scopeMappings: DocumentCollection<ScopeMapping>;
  deviceSessions: DocumentCollection<DeviceSessionRecord>;
  /** DPoP proofs seen (RFC 9449 §11.1): a jti is used once, across processes. */
  dpopProofs: DocumentCollection<DpopProofRecord>;
}

/**
 * Where rate limits count when they must hold across processes: what rate-limiter-flexible's
 * RateLimiterMongo takes (a client whose `collection(name)` it uses, and the collection's name).
 */
export interface RateLimiterBackend {
  storeClient: { collection(name: string): unknown };
  tableName: string;
}

export interface StoreAdapter extends Collections {
  readonly kind: 'embedded' | 'mongodb';
  /**
   * The backend rate limits count in, shared by every process on the store; absent or null: the
   * counters live in process memory (the embedded store has one process).
   */
  rateLimiterBackend?(): RateLimiterBackend | null;
  /** Resolves when the store answers; throws otherwise (readiness). */
  ping(): Promise<void>;
  /** Flushes pending writes and releases files or connections. */
  close(): Promise<void>;
}

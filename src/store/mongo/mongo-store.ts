/**
 * The MongoDB store. mongoose manages the connection; the collections of the port run on the
 * driver's collections (mongo-collection.ts), with the indexes of COLLECTION_SPECS (mongo-indexes.ts).
 *
 * Time bounds: start-up waits up to `startupWaitMS` (10 s) for MongoDB; after that every operation
 * waits at most `serverSelectionTimeoutMS` (2 s) for a server and then fails with
 * StoreUnavailableError (503), and a ping (readiness) answers within PING_TIMEOUT_MS.
 */
import { createRequire } from 'node:module';
import mongoose, { type Connection, type mongo as Mongo } from 'mongoose';
import type * as Flexible from 'rate-limiter-flexible';
import type { DocumentCollection, RateLimiterBackend, StoreAdapter } from '../ports.js';
import { COLLECTION_NAMES, collectionSpecs, type CollectionSpec, type RetentionOptions } from '../specs.js';
import { StoreUnavailableError } from '../errors.js';
import { MongoCollection } from './mongo-collection.js';
import { ensureIndexes } from './mongo-indexes.js';
import { isUnavailable, unavailableOr } from './mongo-errors.js';

const require = createRequire(import.meta.url);

export const DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 2_000;
export const DEFAULT_STARTUP_WAIT_MS = 10_000;
/** Below /readyz's 2 s, whatever the connection string says. */
export const PING_TIMEOUT_MS = 1_500;

/** The collection of rate-limiter-flexible's counters (src/domain/rate-limits.ts). */
export const RATE_LIMITS_COLLECTION = 'rateLimits';

export interface MongoStoreOptions extends RetentionOptions {
  /** How long one operation waits for a server; a `serverSelectionTimeoutMS` in the URI wins. */
  serverSelectionTimeoutMS?: number;
  /** How long start-up keeps trying to reach MongoDB. */
  startupWaitMS?: number;
}

export type MongoStore = StoreAdapter & { rateLimiterBackend(): RateLimiterBackend };

/**
 * The adapter over a database, without touching it: openMongoStore makes the indexes first. Tests
 * build it over an unreachable MongoDB, which start-up (it needs the indexes) cannot reach.
 */
export function mongoStoreOver(db: Mongo.Db, specs: Record<string, CollectionSpec>, close: () => Promise<void>): MongoStore {
  const collections: Record<string, DocumentCollection<{ id: string }>> = {};
  const rateLimits: RateLimiterBackend = { storeClient: rateLimitClient(db), tableName: RATE_LIMITS_COLLECTION };
  for (const name of COLLECTION_NAMES) collections[name] = new MongoCollection(name, db.collection(name), specs[name]!);
  return {
    kind: 'mongodb',
    ...(collections as unknown as Omit<StoreAdapter, 'kind' | 'ping' | 'close'>),
    async ping() {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StoreUnavailableError(`MongoDB did not answer a ping within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
      });
      try {
        await Promise.race([db.command({ ping: 1 }), late]);
      } catch (error) {
        throw unavailableOr(error);
      } finally {
        clearTimeout(timer);
      }
    },
    close,
    rateLimiterBackend: () => rateLimits,
  };
}

/**
 * The database as rate-limiter-flexible sees it, with the same error rule as the store: an
 * unreachable MongoDB is StoreUnavailableError; a duplicate key stays the driver's error, which
 * the library handles itself (RateLimiterMongo._upsert checks code 11000).
 */
function rateLimitClient(db: Mongo.Db): RateLimiterBackend['storeClient'] {
  const guard = <R>(promise: Promise<R>): Promise<R> => promise.catch((error: unknown) => {
    throw unavailableOr(error);
  });
  return {
    collection(name: string) {
      const collection = db.collection(name);
      return {
        findOneAndUpdate: (...args: Parameters<typeof collection.findOneAndUpdate>) => guard(collection.findOneAndUpdate(...args)),
        findOne: (...args: Parameters<typeof collection.findOne>) => guard(collection.findOne(...args)),
        deleteOne: (...args: Parameters<typeof collection.deleteOne>) => guard(collection.deleteOne(...args)),
        createIndex: (...args: Parameters<typeof collection.createIndex>) => guard(collection.createIndex(...args)),
      };
    },
  };
}

/** A connection string that names serverSelectionTimeoutMS keeps its own. */
function connectOptions(uri: string, options: MongoStoreOptions): mongoose.ConnectOptions {
  if (/[?&]serverSelectionTimeoutMS=/i.test(uri)) return {};
  return { serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? DEFAULT_SERVER_SELECTION_TIMEOUT_MS };
}

/** Connects, trying again while MongoDB is out of reach (it may still be starting) for up to startupWaitMS. */
async function connect(uri: string, options: MongoStoreOptions): Promise<Connection> {
  const deadline = Date.now() + (options.startupWaitMS ?? DEFAULT_STARTUP_WAIT_MS);
  for (;;) {
    const connection = mongoose.createConnection(uri, connectOptions(uri, options));
    try {
      return await connection.asPromise();
    } catch (error) {
      await connection.destroy().catch(() => undefined);
      if (!isUnavailable(error) || Date.now() >= deadline) {
        throw new StoreUnavailableError(`cannot connect to MongoDB: ${(error as Error).message}`, { cause: error });
      }
    }
  }
}

export async function openMongoStore(uri: string, options: MongoStoreOptions = {}): Promise<MongoStore & { mongooseConnection: Connection }> {
  const specs = collectionSpecs(options);
  const connection = await connect(uri, options);
  const db = connection.db!;
  try {
    for (const name of COLLECTION_NAMES) await ensureIndexes(db, name, specs[name]);
    // The library would make these itself, unawaited, and report a failure on console.error
    // only; made here, with its own createIndexes, a failure stops start-up like any other.
    const RateLimiterMongo = require('rate-limiter-flexible/lib/RateLimiterMongo.js') as typeof Flexible.RateLimiterMongo;
    await new RateLimiterMongo({ storeClient: db, tableName: RATE_LIMITS_COLLECTION, disableIndexesCreation: true, points: 1, duration: 1 }).createIndexes();
  } catch (error) {
    await connection.destroy().catch(() => undefined);
    throw unavailableOr(error);
  }
  // destroy: closes, and takes the connection off mongoose's list (close alone leaves it there).
  const store = mongoStoreOver(db, specs, () => connection.destroy());
  /** For tests that drop their database. */
  return Object.assign(store, { mongooseConnection: connection });
}

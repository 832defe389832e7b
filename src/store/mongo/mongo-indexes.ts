/**
 * The indexes of COLLECTION_SPECS in MongoDB, made at start-up: unique keys, TTL indexes for
 * expiring records, lookup indexes. Index names are the ones MongoDB gives a one-field ascending
 * index by default (`field_1`), so indexes made by earlier releases (through mongoose) are the same.
 */
import mongoose, { type mongo as Mongo } from 'mongoose';
import type { CollectionSpec } from '../specs.js';
import { indexName } from './mongo-collection.js';
import { isUnavailable } from './mongo-errors.js';

const { mongo } = mongoose;

/** A TTL index's expireAfterSeconds is a 32-bit signed integer (MongoDB refuses more). */
export const MAX_TTL_SECONDS = 2 ** 31 - 1;

const NAMESPACE_NOT_FOUND = 26;
const INDEX_NOT_FOUND = 27;

export function indexesFor(collection: string, spec: CollectionSpec): Mongo.IndexDescription[] {
  const wanted = new Map<string, Mongo.IndexDescription>();
  const add = (field: string, options: Omit<Mongo.IndexDescription, 'key' | 'name'> = {}) => {
    if (!wanted.has(indexName(field))) wanted.set(indexName(field), { key: { [field]: 1 }, name: indexName(field), ...options });
  };
  if (spec.ttl) {
    if (!Number.isInteger(spec.ttl.afterSeconds) || spec.ttl.afterSeconds < 0 || spec.ttl.afterSeconds > MAX_TTL_SECONDS) {
      throw new Error(`${collection}.${spec.ttl.field}: a TTL of ${spec.ttl.afterSeconds} s is outside MongoDB's 0..${MAX_TTL_SECONDS}`);
    }
    add(spec.ttl.field, { expireAfterSeconds: spec.ttl.afterSeconds }); // it serves lookups too
  }
  for (const field of spec.unique) add(field, { unique: true, sparse: true });
  for (const field of [...spec.indexes, ...(spec.mongoOnlyIndexes ?? [])]) add(field);
  return [...wanted.values()];
}

/** The collection's indexes; none when it does not exist yet. Any other failure (network, auth) is thrown. */
async function existingIndexes(collection: Mongo.Collection): Promise<Mongo.Document[]> {
  try {
    return await collection.listIndexes().toArray();
  } catch (error) {
    if (error instanceof mongo.MongoServerError && error.code === NAMESPACE_NOT_FOUND) return [];
    throw error;
  }
}

/**
 * Makes the spec's indexes. MongoDB refuses to re-create an index with other options, so an index
 * whose expiry differs (TESSERA_EVENT_RETENTION_DAYS changed, or a plain index that should now
 * expire records) is changed in place with collMod first. collMod needs a privilege that the
 * readWrite role lacks (dbAdmin has it), and adding a TTL to a plain index needs MongoDB 5.1: when
 * the server refuses, the index is dropped and built again, as before. A TTL that should go (collMod
 * cannot remove one) is dropped too.
 */
export async function ensureIndexes(db: Mongo.Db, name: string, spec: CollectionSpec): Promise<void> {
  const collection = db.collection(name);
  const wanted = indexesFor(name, spec);
  for (const index of await existingIndexes(collection)) {
    const want = wanted.find((candidate) => candidate.name === index.name);
    if (!want || want.unique || index.expireAfterSeconds === want.expireAfterSeconds) continue;
    if (want.expireAfterSeconds !== undefined) {
      try {
        await db.command({ collMod: name, index: { keyPattern: want.key, expireAfterSeconds: want.expireAfterSeconds } });
        continue;
      } catch (error) {
        if (!(error instanceof mongo.MongoServerError) || isUnavailable(error)) throw error;
      }
    }
    // Another node starting at once may have dropped it already.
    await collection.dropIndex(index.name as string).catch((error: unknown) => {
      if (!(error instanceof mongo.MongoServerError && error.code === INDEX_NOT_FOUND)) throw error;
    });
  }
  await collection.createIndexes(wanted);
}

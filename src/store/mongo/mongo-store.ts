/**
 * The MongoDB store, through mongoose. One model per collection, with the indexes of
 * COLLECTION_SPECS: unique keys, TTL indexes for expiring records, lookup indexes. Schemas are
 * non-strict because the domain owns the shape of records; mongoose is here for connection
 * management, index building and models, not for validation.
 */
import mongoose, { type Connection, type Model } from 'mongoose';
import type { DocumentCollection, Filter, FindOptions, StoreAdapter, Update } from '../ports.js';
import { COLLECTION_NAMES, collectionSpecs, type CollectionSpec, type RetentionOptions } from '../specs.js';
import { ConflictError, StoreUnavailableError } from '../errors.js';
import { fromStored, toStored, toStoredFilter, toStoredSort, toStoredUpdate } from '../codec.js';

type Doc = Record<string, unknown>;

function duplicateKeyField(error: unknown): string | null {
  const e = error as { code?: number; keyPattern?: Record<string, unknown> } | null;
  if (!e || e.code !== 11000) return null;
  const field = Object.keys(e.keyPattern ?? {})[0] ?? 'unique key';
  return field === '_id' ? 'id' : field;
}

class MongoCollection<T extends { id: string }> implements DocumentCollection<T> {
  constructor(private readonly name: string, private readonly model: Model<Doc>, private readonly spec: CollectionSpec) {}

  private rethrow(error: unknown): never {
    const field = duplicateKeyField(error);
    if (field) throw new ConflictError(this.name, field);
    throw error;
  }

  async insert(doc: T): Promise<T> {
    try {
      await this.model.collection.insertOne(toStored(doc, this.spec) as Doc & { _id: never });
      return doc;
    } catch (error) {
      return this.rethrow(error);
    }
  }

  async insertMany(docs: T[]): Promise<void> {
    if (docs.length === 0) return;
    try {
      // Unordered: the records that do not collide are stored even when one does.
      await this.model.collection.insertMany(docs.map((doc) => toStored(doc, this.spec) as Doc & { _id: never }), { ordered: false });
    } catch (error) {
      const first = (error as { writeErrors?: unknown[] }).writeErrors?.[0];
      const field = duplicateKeyField((first as { err?: unknown } | undefined)?.err ?? first) ?? duplicateKeyField(error);
      if (field) throw new ConflictError(this.name, field);
      throw error;
    }
  }

  async findOne(filter: Filter): Promise<T | null> {
    return fromStored<T>(await this.model.collection.findOne(toStoredFilter(filter)), this.spec);
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    let cursor = this.model.collection.find(toStoredFilter(filter));
    const sort = toStoredSort(options.sort);
    if (sort) cursor = cursor.sort(sort);
    if (options.skip) cursor = cursor.skip(options.skip);
    if (options.limit !== undefined) cursor = cursor.limit(options.limit);
    const docs = await cursor.toArray();
    return docs.map((doc) => fromStored<T>(doc, this.spec)!);
  }

  async count(filter: Filter): Promise<number> {
    return this.model.collection.countDocuments(toStoredFilter(filter));
  }

  async updateOne(filter: Filter, update: Update): Promise<T | null> {
    try {
      const doc = await this.model.collection.findOneAndUpdate(toStoredFilter(filter), toStoredUpdate(update, this.spec), {
        returnDocument: 'after', includeResultMetadata: false,
      });
      return fromStored<T>(doc as Doc | null, this.spec);
    } catch (error) {
      return this.rethrow(error);
    }
  }

  async updateMany(filter: Filter, update: Update): Promise<number> {
    try {
      const result = await this.model.collection.updateMany(toStoredFilter(filter), toStoredUpdate(update, this.spec));
      // Matched, not modified: the embedded store counts a match the update left unchanged too.
      return result.matchedCount;
    } catch (error) {
      return this.rethrow(error);
    }
  }

  async deleteOne(filter: Filter): Promise<boolean> {
    return (await this.model.collection.deleteOne(toStoredFilter(filter))).deletedCount > 0;
  }

  async deleteMany(filter: Filter): Promise<number> {
    return (await this.model.collection.deleteMany(toStoredFilter(filter))).deletedCount;
  }
}

function schemaFor(spec: CollectionSpec): mongoose.Schema {
  const schema = new mongoose.Schema({ _id: String }, { strict: false, versionKey: false, autoIndex: false });
  for (const field of spec.unique) schema.index({ [field]: 1 }, { unique: true, sparse: true });
  for (const field of [...spec.indexes, ...(spec.mongoOnlyIndexes ?? [])]) {
    if (field !== spec.ttl?.field) schema.index({ [field]: 1 }); // the TTL index serves lookups too
  }
  if (spec.ttl) schema.index({ [spec.ttl.field]: 1 }, { expireAfterSeconds: spec.ttl.afterSeconds });
  return schema;
}

/**
 * MongoDB refuses to re-create an index with other options, so a plain index that should now
 * expire records (or a TTL whose retention changed, TESSERA_EVENT_RETENTION_DAYS) is dropped
 * first and built again by createIndexes.
 */
async function dropIndexesWithOtherExpiry(model: Model<Doc>, spec: CollectionSpec): Promise<void> {
  let existing: { name?: string; key: Record<string, unknown>; expireAfterSeconds?: number }[];
  try {
    existing = await model.collection.listIndexes().toArray() as typeof existing;
  } catch {
    return; // no collection yet
  }
  const plain = new Set([...spec.indexes, ...(spec.mongoOnlyIndexes ?? [])]);
  for (const index of existing) {
    const fields = Object.keys(index.key);
    const field = fields[0]!;
    if (fields.length !== 1 || field === '_id' || !index.name) continue;
    const wanted = spec.ttl?.field === field ? spec.ttl.afterSeconds : plain.has(field) ? undefined : null;
    if (wanted === null || index.expireAfterSeconds === wanted) continue;
    // Another node starting at once may have dropped it already.
    await model.collection.dropIndex(index.name).catch((error: { codeName?: string }) => {
      if (error.codeName !== 'IndexNotFound') throw error;
    });
  }
}

export async function openMongoStore(uri: string, options: { serverSelectionTimeoutMS?: number } & RetentionOptions = {}): Promise<StoreAdapter> {
  const specs = collectionSpecs(options);
  let connection: Connection;
  try {
    connection = await mongoose
      .createConnection(uri, { serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 10_000 })
      .asPromise();
  } catch (error) {
    throw new StoreUnavailableError(`cannot connect to MongoDB: ${(error as Error).message}`, { cause: error });
  }
  const collections: Record<string, DocumentCollection<{ id: string }>> = {};
  for (const name of COLLECTION_NAMES) {
    const spec = specs[name];
    const model = connection.model<Doc>(name, schemaFor(spec), name);
    await dropIndexesWithOtherExpiry(model, spec);
    await model.createIndexes();
    collections[name] = new MongoCollection(name, model, spec);
  }
  return {
    kind: 'mongodb',
    ...(collections as unknown as Omit<StoreAdapter, 'kind' | 'ping' | 'close'>),
    async ping() {
      await connection.db!.admin().ping();
    },
    async close() {
      await connection.close();
    },
    /** For rate-limiter-flexible's MongoDB backend. */
    mongooseConnection: connection,
  } as StoreAdapter & { mongooseConnection: Connection };
}

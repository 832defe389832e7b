/**
 * One collection of the port over a driver collection. Three rules beyond translating calls:
 * - Expiry answers as the embedded store does: MongoDB's TTL monitor removes expired records about
 *   once a minute (later under load), so every read and update of a collection with a TTL field
 *   leaves out the records past it, and an expired record that still holds a unique key is removed
 *   when a write needs the key.
 * - A duplicate key becomes ConflictError naming the field (from the index when the driver drops
 *   the key pattern).
 * - An unreachable MongoDB becomes StoreUnavailableError (503), never a driver error (500).
 */
import type { mongo as Mongo } from 'mongoose';
import type { DocumentCollection, Filter, FindOptions, Update } from '../ports.js';
import type { CollectionSpec } from '../specs.js';
import { ConflictError } from '../errors.js';
import { fromStored, toStored, toStoredFilter, toStoredSort, toStoredUpdate } from '../codec.js';
import { duplicateKey, storedToField, unavailableOr } from './mongo-errors.js';

type Doc = Record<string, unknown>;

/** The name MongoDB gives an index on one field, ascending (and the name we create it under). */
export const indexName = (field: string): string => `${field}_1`;

export class MongoCollection<T extends { id: string }> implements DocumentCollection<T> {
  /** Index name → field, for the unique keys of the spec; others are looked up once. */
  private readonly fieldOfIndex = new Map<string, string>();

  constructor(private readonly name: string, private readonly collection: Mongo.Collection<Doc>, private readonly spec: CollectionSpec) {
    this.fieldOfIndex.set('_id_', 'id');
    for (const field of spec.unique) this.fieldOfIndex.set(indexName(field), field);
  }

  /** The stored filter, without the records past the TTL field (the same rule as the TTL index). */
  private live(filter: Filter): Doc {
    const stored = toStoredFilter(filter);
    const ttl = this.spec.ttl;
    if (!ttl) return stored;
    const cutoff = new Date(Date.now() - ttl.afterSeconds * 1000);
    // $not/$lt also keeps records whose field is null or missing (they never expire).
    return { ...stored, $and: [{ [ttl.field]: { $not: { $lt: cutoff } } }] };
  }

  async insert(doc: T): Promise<T> {
    await this.write(() => this.collection.insertOne(toStored(doc, this.spec) as Doc & { _id: never }), (field) => (doc as Doc)[field]);
    return doc;
  }

  async insertMany(docs: T[]): Promise<void> {
    if (docs.length === 0) return;
    try {
      // Unordered: the records that do not collide are stored even when one does.
      await this.collection.insertMany(docs.map((doc) => toStored(doc, this.spec) as Doc & { _id: never }), { ordered: false });
    } catch (error) {
      throw await this.translate(error);
    }
  }

  async findOne(filter: Filter): Promise<T | null> {
    return this.guarded(async () => fromStored<T>(await this.collection.findOne(this.live(filter)), this.spec));
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    return this.guarded(async () => {
      let cursor = this.collection.find(this.live(filter));
      const sort = toStoredSort(options.sort);
      if (sort) cursor = cursor.sort(sort);
      if (options.skip) cursor = cursor.skip(options.skip);
      if (options.limit !== undefined) cursor = cursor.limit(options.limit);
      const docs = await cursor.toArray();
      return docs.map((doc) => fromStored<T>(doc, this.spec)!);
    });
  }

  async count(filter: Filter): Promise<number> {
    return this.guarded(() => this.collection.countDocuments(this.live(filter)));
  }

  async updateOne(filter: Filter, update: Update): Promise<T | null> {
    const doc = await this.write(() => this.collection.findOneAndUpdate(this.live(filter), toStoredUpdate(update, this.spec), {
      returnDocument: 'after', includeResultMetadata: false,
    }), (field) => update.$set?.[field]);
    return fromStored<T>(doc as Doc | null, this.spec);
  }

  async updateMany(filter: Filter, update: Update): Promise<number> {
    const result = await this.write(
      () => this.collection.updateMany(this.live(filter), toStoredUpdate(update, this.spec)),
      (field) => update.$set?.[field],
    );
    // Matched, not modified: the embedded store counts a match the update left unchanged too.
    return result.matchedCount;
  }

  // Deletes take expired records too: removing them is what the TTL monitor would do.
  async deleteOne(filter: Filter): Promise<boolean> {
    return this.guarded(async () => (await this.collection.deleteOne(toStoredFilter(filter))).deletedCount > 0);
  }

  async deleteMany(filter: Filter): Promise<number> {
    return this.guarded(async () => (await this.collection.deleteMany(toStoredFilter(filter))).deletedCount);
  }

  private async guarded<R>(run: () => Promise<R>): Promise<R> {
    try {
      return await run();
    } catch (error) {
      throw unavailableOr(error);
    }
  }

  /**
   * Runs a write; on a duplicate key held only by a record past its TTL (not yet removed by the
   * monitor), removes that record and tries once more, as the embedded store does.
   */
  private async write<R>(run: () => Promise<R>, valueOf: (field: string) => unknown): Promise<R> {
    try {
      return await run();
    } catch (error) {
      const translated = await this.translate(error);
      if (!(translated instanceof ConflictError) || !(await this.removeExpiredHolder(translated.field, valueOf(translated.field)))) throw translated;
    }
    try {
      return await run();
    } catch (error) {
      throw await this.translate(error);
    }
  }

  private async removeExpiredHolder(field: string, value: unknown): Promise<boolean> {
    const ttl = this.spec.ttl;
    if (!ttl || value === undefined || value === null) return false;
    const cutoff = new Date(Date.now() - ttl.afterSeconds * 1000);
    const filter = { [field === 'id' ? '_id' : field]: value, [ttl.field]: { $lt: cutoff } };
    return this.guarded(async () => (await this.collection.deleteMany(filter)).deletedCount > 0);
  }

  /** ConflictError naming the field, StoreUnavailableError, or the error itself. */
  private async translate(error: unknown): Promise<unknown> {
    const duplicate = duplicateKey(error);
    if (!duplicate) return unavailableOr(error);
    const field = duplicate.field ?? (duplicate.index === null ? null : await this.lookUpIndexField(duplicate.index));
    return new ConflictError(this.name, field ?? 'unique key');
  }

  /** The field of an index not made from the spec (one an operator added): asked of MongoDB once. */
  private async lookUpIndexField(index: string): Promise<string | null> {
    const known = this.fieldOfIndex.get(index);
    if (known !== undefined) return known;
    try {
      const indexes = await this.collection.listIndexes().toArray();
      const key = indexes.find((candidate) => candidate.name === index)?.key as Record<string, unknown> | undefined;
      const first = key ? Object.keys(key)[0] : undefined;
      if (first === undefined) return null;
      this.fieldOfIndex.set(index, storedToField(first));
      return storedToField(first);
    } catch {
      return null; // the conflict stands; only its field is unknown
    }
  }
}

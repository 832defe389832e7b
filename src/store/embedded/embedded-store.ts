/**
 * The embedded store: one NeDB datafile per collection under TESSERA_DATA_DIR. Each write is
 * appended to its file before the promise resolves, so an acknowledged write survives the process
 * being killed. NeDB runs its operations one at a time, which makes updateOne's filter an atomic
 * condition inside the one process that owns the data dir (the embedded store is single-process).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type NedbModule from '@seald-io/nedb';
import type { DocumentCollection, Filter, FindOptions, StoreAdapter, Update } from '../ports.js';
import { COLLECTION_NAMES, COLLECTION_SPECS, type CollectionSpec } from '../specs.js';
import { ConflictError } from '../errors.js';
import { fromStored, toStored, toStoredFilter, toStoredSort, toStoredUpdate } from '../codec.js';

type Doc = Record<string, unknown>;
// NeDB is CommonJS whose typings declare an ES default export; load it as CommonJS to get the class.
type Datastore<S> = NedbModule.default<S>;
const Datastore = createRequire(import.meta.url)('@seald-io/nedb') as typeof NedbModule.default;

function isUniqueViolation(error: unknown): error is { key?: unknown; errorType: string } {
  return typeof error === 'object' && error !== null && (error as { errorType?: unknown }).errorType === 'uniqueViolated';
}

class EmbeddedCollection<T extends { id: string }> implements DocumentCollection<T> {
  constructor(private readonly name: string, private readonly db: Datastore<Doc>, private readonly spec: CollectionSpec) {}

  private conflict(error: unknown): never {
    if (isUniqueViolation(error)) {
      // NeDB names the value, not the field; find which unique field it was.
      throw new ConflictError(this.name, this.spec.unique.length === 1 ? this.spec.unique[0]! : 'unique key');
    }
    throw error;
  }

  async insert(doc: T): Promise<T> {
    try {
      const stored = await this.db.insertAsync(toStored(doc, this.spec));
      return fromStored<T>(stored, this.spec)!;
    } catch (error) {
      if (isUniqueViolation(error)) await this.throwConflictFor(doc);
      throw error;
    }
  }

  /** Tells which unique field collided, so callers can say "slug is taken" rather than "something is". */
  private async throwConflictFor(doc: T): Promise<never> {
    const stored = toStored(doc, this.spec);
    for (const field of ['_id', ...this.spec.unique]) {
      if (stored[field] === undefined || stored[field] === null) continue;
      if (await this.db.findOneAsync({ [field]: stored[field] })) {
        throw new ConflictError(this.name, field === '_id' ? 'id' : field);
      }
    }
    throw new ConflictError(this.name, 'unique key');
  }

  async findOne(filter: Filter): Promise<T | null> {
    return fromStored<T>(await this.db.findOneAsync(toStoredFilter(filter)), this.spec);
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    let cursor = this.db.findAsync(toStoredFilter(filter));
    const sort = toStoredSort(options.sort);
    if (sort) cursor = cursor.sort(sort);
    if (options.skip) cursor = cursor.skip(options.skip);
    if (options.limit !== undefined) cursor = cursor.limit(options.limit);
    const docs = await cursor;
    return docs.map((doc: Doc) => fromStored<T>(doc, this.spec)!);
  }

  async count(filter: Filter): Promise<number> {
    return this.db.countAsync(toStoredFilter(filter));
  }

  async updateOne(filter: Filter, update: Update): Promise<T | null> {
    try {
      const { affectedDocuments } = await this.db.updateAsync(toStoredFilter(filter), toStoredUpdate(update, this.spec), {
        multi: false, returnUpdatedDocs: true,
      });
      return fromStored<T>(affectedDocuments as Doc | null, this.spec);
    } catch (error) {
      return this.conflict(error);
    }
  }

  async updateMany(filter: Filter, update: Update): Promise<number> {
    try {
      const { numAffected } = await this.db.updateAsync(toStoredFilter(filter), toStoredUpdate(update, this.spec), { multi: true });
      return numAffected;
    } catch (error) {
      return this.conflict(error);
    }
  }

  async deleteOne(filter: Filter): Promise<boolean> {
    return (await this.db.removeAsync(toStoredFilter(filter), { multi: false })) > 0;
  }

  async deleteMany(filter: Filter): Promise<number> {
    return this.db.removeAsync(toStoredFilter(filter), { multi: true });
  }
}

export async function openEmbeddedStore(dataDir: string): Promise<StoreAdapter> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const databases = new Map<string, Datastore<Doc>>();
  const collections: Record<string, DocumentCollection<{ id: string }>> = {};
  for (const name of COLLECTION_NAMES) {
    const spec = COLLECTION_SPECS[name];
    const db = new Datastore<Doc>({ filename: path.join(dataDir, `${name}.db`), timestampData: false });
    await db.loadDatabaseAsync();
    for (const fieldName of spec.unique) await db.ensureIndexAsync({ fieldName, unique: true, sparse: true });
    for (const fieldName of spec.indexes) await db.ensureIndexAsync({ fieldName });
    if (spec.ttl) await db.ensureIndexAsync({ fieldName: spec.ttl.field, expireAfterSeconds: spec.ttl.afterSeconds, sparse: true });
    // Rewrites the append-only file now and then, so it does not grow without bound.
    db.setAutocompactionInterval(10 * 60_000);
    databases.set(name, db);
    collections[name] = new EmbeddedCollection(name, db, spec);
  }
  return {
    kind: 'embedded',
    ...(collections as unknown as Omit<StoreAdapter, 'kind' | 'ping' | 'close'>),
    async ping() {
      await databases.get('providers')!.countAsync({});
    },
    async close() {
      for (const db of databases.values()) {
        db.stopAutocompaction();
        await db.compactDatafileAsync();
      }
    },
  };
}

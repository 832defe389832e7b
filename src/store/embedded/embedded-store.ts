/**
 * The embedded store: one NeDB datafile per collection under TESSERA_DATA_DIR. Each write is
 * appended to its file before the promise resolves, so an acknowledged write survives the process
 * being killed. NeDB runs its operations one at a time, which makes updateOne's filter an atomic
 * condition inside the one process that owns the data dir (the embedded store is single-process).
 *
 * NeDB evaluates the port's query language natively except in two places, which nedbFilter
 * rewrites so that both adapters answer alike: a null matches a missing field in MongoDB but not in
 * NeDB, and $ne / $nin on an array field mean "no element" in MongoDB but "some element" in NeDB.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type NedbModule from '@seald-io/nedb';
import type { DocumentCollection, Filter, FindOptions, StoreAdapter, Update } from '../ports.js';
import { COLLECTION_NAMES, collectionSpecs, type CollectionSpec, type RetentionOptions } from '../specs.js';
import { ConflictError } from '../errors.js';
import { fromStored, toStored, toStoredFilter, toStoredSort, toStoredUpdate } from '../codec.js';
import { useAppendLog, type AppendLog } from './append-log.js';
import { installIndexFastPaths } from './index-updates.js';
import { countMatching, orderedFind } from './sorted-page.js';
import { openEventLog, type EventLogCollection } from './event-log.js';
import { useHashIndex } from './hash-index.js';

type Doc = Record<string, unknown>;
// NeDB is CommonJS whose typings declare an ES default export; load it as CommonJS to get the class.
type Datastore<S> = NedbModule.default<S>;
const Datastore = createRequire(import.meta.url)('@seald-io/nedb') as typeof NedbModule.default;

function isUniqueViolation(error: unknown): error is { key?: unknown; errorType: string } {
  return typeof error === 'object' && error !== null && (error as { errorType?: unknown }).errorType === 'uniqueViolated';
}

const isOperators = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !(value instanceof Date) && !Array.isArray(value)
  && Object.keys(value).length > 0 && Object.keys(value).every((key) => key.startsWith('$'));

/** MongoDB's equality: a null also matches a record without the field. */
const equals = (field: string, value: unknown): Doc =>
  value === null ? { $or: [{ [field]: null }, { [field]: { $exists: false } }] } : { [field]: value };

const isIn = (field: string, values: unknown[]): Doc =>
  values.includes(null) ? { $or: [{ [field]: { $in: values } }, { [field]: { $exists: false } }] } : { [field]: { $in: values } };

/**
 * A stored filter (see codec.ts) as NeDB must be told it to answer as MongoDB does. Plain
 * conditions stay at the top level, where NeDB uses its indexes; rewritten ones go under $and.
 */
export function nedbFilter(filter: Doc): Doc {
  const out: Doc = {};
  const and: Doc[] = [];
  for (const [field, value] of Object.entries(filter)) {
    if (field === '$or') {
      out.$or = (value as Doc[]).map(nedbFilter);
    } else if (value === null) {
      and.push(equals(field, null));
    } else if (isOperators(value)) {
      const kept: Doc = {};
      for (const [op, operand] of Object.entries(value)) {
        if (op === '$ne') and.push({ $not: equals(field, operand) });
        else if (op === '$nin') and.push({ $not: isIn(field, operand as unknown[]) });
        else if (op === '$in' && (operand as unknown[]).includes(null)) and.push(isIn(field, operand as unknown[]));
        else kept[op] = operand;
      }
      if (Object.keys(kept).length > 0) out[field] = kept;
    } else {
      out[field] = value;
    }
  }
  if (and.length > 0) out.$and = and;
  return out;
}

const query = (filter: Filter): Doc => nedbFilter(toStoredFilter(filter));

/** Records inserted, or swept, per NeDB operation (each holds the event loop while NeDB indexes them). */
const INSERT_CHUNK = 100;
const SWEEP_CHUNK = 500;
/** How often expired records are swept out (see sweepExpired). */
export const SWEEP_INTERVAL_MS = 60_000;

class EmbeddedCollection<T extends { id: string }> implements DocumentCollection<T> {
  constructor(
    private readonly name: string,
    private readonly db: Datastore<Doc>,
    private readonly spec: CollectionSpec,
  ) {}

  /**
   * Removes the records past their TTL. NeDB expires a record only when a read meets it, and the
   * hot collections are read by one key at a time: without this, every device authorization,
   * refresh token and denylisted jti ever written would stay in memory until a restart. Runs off
   * the request path, SWEEP_CHUNK records per NeDB operation, yielding in between.
   */
  async sweepExpired(now = Date.now(), stopped: () => boolean = () => false): Promise<number> {
    const ttl = this.spec.ttl;
    if (!ttl) return 0;
    const limit = now - ttl.afterSeconds * 1000;
    const expired: unknown[] = [];
    for (const doc of this.db.getAllData()) {
      const at = doc[ttl.field];
      if (at instanceof Date && at.getTime() < limit) expired.push(doc._id);
    }
    let removed = 0;
    for (let at = 0; at < expired.length; at += SWEEP_CHUNK) {
      if (at > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      if (stopped()) break;
      // The TTL condition again: a record may have been updated since it was seen.
      removed += await this.db.removeAsync(
        { _id: { $in: expired.slice(at, at + SWEEP_CHUNK) }, [ttl.field]: { $lt: new Date(limit) } }, { multi: true },
      );
    }
    return removed;
  }

  /**
   * The unique field (of `fields`, as stored) whose value a live record already holds, or null.
   * Looking also drops an expired holder: NeDB removes expired records only when a read meets them,
   * so a unique key can be held by a record that has expired and not been read since.
   */
  private async takenField(values: Doc, fields: string[]): Promise<string | null> {
    for (const field of fields) {
      const value = values[field];
      if (value === undefined || value === null) continue;
      if (await this.db.findOneAsync({ [field]: value })) return field === '_id' ? 'id' : field;
    }
    return null;
  }

  /** Runs a write; on a unique violation names the field, or retries once if only expired records held it. */
  private async write<R>(run: () => Promise<R>, values: Doc, fields: string[]): Promise<R> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await run();
      } catch (caught) {
        if (!isUniqueViolation(caught)) throw caught;
        const taken = await this.takenField(values, fields);
        if (taken) throw new ConflictError(this.name, taken);
        if (attempt > 0) throw new ConflictError(this.name, this.guessField(values, fields, caught) ?? 'unique key');
      }
    }
  }

  /** When the collision is not with a stored record (an updateMany giving two records one value). */
  private guessField(values: Doc, fields: string[], error: { key?: unknown }): string | null {
    const matching = fields.filter((field) => values[field] !== undefined && values[field] === error.key);
    if (matching.length === 1) return matching[0] === '_id' ? 'id' : matching[0]!;
    return this.spec.unique.length === 1 ? this.spec.unique[0]! : null;
  }

  async insert(doc: T): Promise<T> {
    const stored = toStored(doc, this.spec);
    const inserted = await this.write(() => this.db.insertAsync(stored), stored, ['_id', ...this.spec.unique]);
    return fromStored<T>(inserted, this.spec)!;
  }

  async insertMany(docs: T[]): Promise<void> {
    if (docs.length === 0) return;
    // One executor turn and one append per chunk (NeDB inserts an array all-or-nothing), yielding
    // between chunks: a big batch would otherwise hold the event loop while it is indexed.
    let at = 0;
    try {
      for (; at < docs.length; at += INSERT_CHUNK) {
        if (at > 0) await new Promise<void>((resolve) => setImmediate(resolve));
        await this.db.insertAsync(docs.slice(at, at + INSERT_CHUNK).map((doc) => toStored(doc, this.spec)));
      }
    } catch (caught) {
      if (!isUniqueViolation(caught)) throw caught;
      // Some record of this chunk collides: store the rest one by one, and report the first collision.
      let conflict: unknown = null;
      for (const doc of docs.slice(at)) {
        try {
          await this.insert(doc);
        } catch (error) {
          if (!(error instanceof ConflictError)) throw error;
          conflict ??= error;
        }
      }
      if (conflict) throw conflict;
    }
  }

  async findOne(filter: Filter): Promise<T | null> {
    return fromStored<T>(await this.db.findOneAsync(query(filter)), this.spec);
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    const sort = toStoredSort(options.sort);
    // A sorted page walks the index of its first sort key, stopping at the limit (sorted-page.ts).
    const walked = orderedFind(this.db, query(filter), sort, options);
    if (walked) return walked.map((doc) => fromStored<T>(doc, this.spec)!);
    let cursor = this.db.findAsync(query(filter));
    if (sort) cursor = cursor.sort(sort);
    if (options.skip) cursor = cursor.skip(options.skip);
    if (options.limit !== undefined) cursor = cursor.limit(options.limit);
    const docs = await cursor;
    return docs.map((doc: Doc) => fromStored<T>(doc, this.spec)!);
  }

  async count(filter: Filter): Promise<number> {
    return countMatching(this.db, query(filter)) ?? this.db.countAsync(query(filter));
  }

  async updateOne(filter: Filter, update: Update): Promise<T | null> {
    const stored = toStoredUpdate(update, this.spec);
    const { affectedDocuments } = await this.write(
      () => this.db.updateAsync(query(filter), stored, { multi: false, returnUpdatedDocs: true }),
      (stored.$set ?? {}) as Doc, this.spec.unique,
    );
    return fromStored<T>(affectedDocuments as Doc | null, this.spec);
  }

  async updateMany(filter: Filter, update: Update): Promise<number> {
    const stored = toStoredUpdate(update, this.spec);
    const { numAffected } = await this.write(
      () => this.db.updateAsync(query(filter), stored, { multi: true }), (stored.$set ?? {}) as Doc, this.spec.unique,
    );
    return numAffected;
  }

  async deleteOne(filter: Filter): Promise<boolean> {
    return (await this.db.removeAsync(query(filter), { multi: false })) > 0;
  }

  async deleteMany(filter: Filter): Promise<number> {
    return this.db.removeAsync(query(filter), { multi: true });
  }
}

type IndexOptions = { fieldName: string; unique?: boolean; sparse?: boolean; expireAfterSeconds?: number };

/**
 * Builds the indexes of `spec`, and only those, afresh. NeDB restores the indexes it finds in a
 * datafile without their expiry (it does not persist expireAfterSeconds), and ensureIndex leaves
 * an existing index as it is: so without this, records stopped expiring after the first restart,
 * and an index whose options changed in COLLECTION_SPECS kept its old ones.
 */
async function buildIndexes(db: Datastore<Doc>, spec: CollectionSpec): Promise<void> {
  const wanted = new Map<string, IndexOptions>();
  const want = (fieldName: string, options: Omit<IndexOptions, 'fieldName'>) =>
    wanted.set(fieldName, { ...wanted.get(fieldName), fieldName, ...options });
  for (const fieldName of spec.indexes) want(fieldName, {});
  const ordered = new Set(spec.ordered ?? []);
  // A TTL field that is neither ordered nor otherwise indexed gets no index: NeDB expires records
  // by db.ttlIndexes as its reads meet them, without one, and an unordered index on a timestamp
  // would only ever be scanned (a memory entry and a write per record for nothing).
  const ttlOnly = spec.ttl && !ordered.has(spec.ttl.field) && !wanted.has(spec.ttl.field) && !spec.unique.includes(spec.ttl.field)
    ? spec.ttl : null;
  // Not sparse: NeDB's sparse index skips every Date key (it takes a Date for an object of
  // undefined fields), which left TTL indexes empty and range queries on them answering nothing.
  if (spec.ttl && !ttlOnly) want(spec.ttl.field, { expireAfterSeconds: spec.ttl.afterSeconds });
  for (const fieldName of spec.unique) want(fieldName, { unique: true, sparse: true });
  const indexes = (db as unknown as { indexes: Record<string, unknown> }).indexes;
  for (const fieldName of Object.keys(indexes)) if (fieldName !== '_id') await db.removeIndexAsync(fieldName);
  for (const options of wanted.values()) await db.ensureIndexAsync(options);
  if (ttlOnly) (db as unknown as { ttlIndexes: Record<string, number> }).ttlIndexes[ttlOnly.field] = ttlOnly.afterSeconds;
  // Looked up by equality and $in only: a hash map, not an ordered tree (see hash-index.ts).
  for (const fieldName of ['_id', ...wanted.keys()]) if (!ordered.has(fieldName)) useHashIndex(indexes[fieldName]);
}

export const DEFAULT_EMBEDDED_MAX_EVENTS = 100_000;

export interface EmbeddedStoreOptions extends RetentionOptions {
  /** The newest this many audit events are kept (TESSERA_EMBEDDED_MAX_EVENTS): a bound on the audit log's file (event-log.ts). */
  maxEvents?: number;
}

export interface EmbeddedStore extends StoreAdapter {
  /** Sweeps out every record past its TTL now (it also happens every SWEEP_INTERVAL_MS); resolves to how many went. */
  sweepExpired(): Promise<number>;
}

export async function openEmbeddedStore(dataDir: string, options: EmbeddedStoreOptions = {}): Promise<EmbeddedStore> {
  const specs = collectionSpecs(options);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  installIndexFastPaths();
  const databases = new Map<string, Datastore<Doc>>();
  const logs: AppendLog[] = [];
  const collections: Record<string, DocumentCollection<{ id: string }>> = {};
  const expiring: EmbeddedCollection<{ id: string }>[] = [];
  let events: EventLogCollection<{ id: string }> | null = null;
  for (const name of COLLECTION_NAMES) {
    const spec = specs[name];
    if (name === 'events') {
      // The audit log stays on disk, with a small index in memory (event-log.ts), not in NeDB.
      const maxRecords = options.maxEvents ?? DEFAULT_EMBEDDED_MAX_EVENTS;
      collections[name] = events = await openEventLog(path.join(dataDir, `${name}.db`), name, spec, { timeField: 'createdAt', maxRecords });
      continue;
    }
    const db = new Datastore<Doc>({ filename: path.join(dataDir, `${name}.db`), timestampData: false });
    logs.push(useAppendLog(db));
    await db.loadDatabaseAsync();
    await buildIndexes(db, spec);
    // Rewrites the append-only file now and then, so it does not grow without bound.
    db.setAutocompactionInterval(10 * 60_000);
    databases.set(name, db);
    const collection = new EmbeddedCollection(name, db, spec);
    collections[name] = collection;
    if (spec.ttl) expiring.push(collection);
  }
  // Expired records are swept out at start (a restart loads them all) and then every minute.
  let closing = false;
  let sweeping: Promise<number> = Promise.resolve(0);
  const sweep = (): Promise<number> => {
    sweeping = sweeping.then(async () => {
      let removed = 0;
      for (const collection of expiring) {
        if (closing) break;
        // A failed write is not lost work: what was not removed is removed by the next sweep.
        removed += await collection.sweepExpired(Date.now(), () => closing).catch(() => 0);
      }
      return removed;
    });
    return sweeping;
  };
  void sweep();
  const sweeper = setInterval(sweep, SWEEP_INTERVAL_MS).unref();
  return {
    kind: 'embedded',
    ...(collections as unknown as Omit<StoreAdapter, 'kind' | 'ping' | 'close'>),
    async ping() {
      await databases.get('providers')!.countAsync({});
    },
    sweepExpired: sweep,
    async close() {
      closing = true;
      clearInterval(sweeper);
      await sweeping;
      for (const db of databases.values()) {
        db.stopAutocompaction();
        await db.compactDatafileAsync();
      }
      for (const log of logs) log.close();
      await events?.close();
    },
  };
}

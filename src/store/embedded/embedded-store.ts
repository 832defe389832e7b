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

/** A node of NeDB's AVL index tree (@seald-io/binary-search-tree): the records with one key. */
interface TreeNode { key?: unknown; data: Doc[]; left?: TreeNode | null; right?: TreeNode | null }

/**
 * The key at or below which the `count` records with the smallest keys lie, walking the tree in
 * order (the largest key when there are fewer; undefined when the tree is empty).
 */
function keyOfNth(root: TreeNode, count: number): unknown {
  if (!Object.prototype.hasOwnProperty.call(root, 'key')) return undefined; // an empty tree
  const stack: TreeNode[] = [];
  let node: TreeNode | null | undefined = root;
  let seen = 0;
  let last: unknown;
  while (node || stack.length > 0) {
    while (node) {
      stack.push(node);
      node = node.left;
    }
    const current = stack.pop()!;
    seen += current.data.length;
    last = current.key;
    if (seen >= count) return last;
    node = current.right;
  }
  return last;
}

/** Records inserted, or pruned, per NeDB operation (each holds the event loop while NeDB indexes them). */
const INSERT_CHUNK = 100;
const PRUNE_CHUNK = 250;

/** Retention of the embedded store's audit events: at most `maxRecords`, and none older than the TTL. */
interface RecordCap { field: string; maxRecords: number }

class EmbeddedCollection<T extends { id: string }> implements DocumentCollection<T> {
  /** An upper bound of the record count (expiry on read is not seen), recounted before each pruning. */
  private size: number | null = null;

  constructor(
    private readonly name: string,
    private readonly db: Datastore<Doc>,
    private readonly spec: CollectionSpec,
    private readonly cap: RecordCap | null = null,
  ) {}

  private indexRoot(field: string): TreeNode {
    return (this.db as unknown as { indexes: Record<string, { tree: { tree: TreeNode } }> }).indexes[field]!.tree.tree;
  }

  /**
   * Keeps a capped collection within its cap, and removes what is past its TTL even if no read
   * meets it (NeDB expires on read only, and the audit log is written far more than read). Runs
   * after each insert, off the response path (the audit log's flush), removing the oldest records
   * PRUNE_CHUNK at a time and yielding in between, so requests are not held up behind it.
   */
  private async prune(added: number): Promise<void> {
    const cap = this.cap;
    if (!cap) return;
    const ttl = this.spec.ttl?.field === cap.field ? this.spec.ttl.afterSeconds : null;
    // Counted once; then kept by inserts and deletes (an upper bound: expiry on read is not seen).
    this.size = (this.size ?? this.db.getAllData().length - added) + added;
    for (;;) {
      const excess = this.size - cap.maxRecords;
      const limit = ttl === null ? null : new Date(Date.now() - ttl * 1000);
      const oldest = keyOfNth(this.indexRoot(cap.field), 1);
      const tooOld = limit !== null && oldest instanceof Date && oldest < limit;
      if (excess <= 0 && !tooOld) return;
      // Over the cap: the oldest `excess` (a chunk at most). Only too old: up to a chunk, none newer than the limit.
      let cutoff = keyOfNth(this.indexRoot(cap.field), excess > 0 ? Math.min(excess, PRUNE_CHUNK) : PRUNE_CHUNK);
      if (cutoff === undefined) return;
      if (excess <= 0 && limit !== null && cutoff instanceof Date && cutoff >= limit) cutoff = new Date(limit.getTime() - 1);
      const removed = await this.db.removeAsync({ [cap.field]: { $lte: cutoff } }, { multi: true });
      this.size -= removed;
      if (removed === 0) return;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
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
    await this.prune(1);
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
      if (at > 0) await this.prune(at);
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
      return;
    }
    await this.prune(docs.length);
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
    const removed = await this.db.removeAsync(query(filter), { multi: false });
    if (this.size !== null) this.size -= removed;
    return removed > 0;
  }

  async deleteMany(filter: Filter): Promise<number> {
    const removed = await this.db.removeAsync(query(filter), { multi: true });
    if (this.size !== null) this.size -= removed;
    return removed;
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

export async function openEmbeddedStore(dataDir: string, options: EmbeddedStoreOptions = {}): Promise<StoreAdapter> {
  const specs = collectionSpecs(options);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  installIndexFastPaths();
  const databases = new Map<string, Datastore<Doc>>();
  const logs: AppendLog[] = [];
  const collections: Record<string, DocumentCollection<{ id: string }>> = {};
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
      for (const log of logs) log.close();
      await events?.close();
    },
  };
}

/**
 * The embedded store: one SQLite database (`tessera.db` under TESSERA_DATA_DIR, WAL mode) through
 * better-sqlite3, one table per collection of COLLECTION_SPECS: the record as JSON (records.ts)
 * and an expression index for each field specs.ts indexes, unique ones included (SQLite's unique
 * indexes let records without the field, or with null, share it: sparse, as specs.ts asks).
 *
 * Queries are compiled to SQL (query.ts) and each SQL text is prepared once. The writes of one
 * turn of the event loop share one IMMEDIATE transaction (group-commit.ts), committed to the WAL
 * before any of their promises resolves: an acknowledged write survives the process being killed;
 * with TESSERA_DURABILITY=full the commit is also fsynced, and survives a power loss. updateOne
 * reads and writes while holding the database's write lock: its filter is an atomic condition for
 * every connection to the file, in this process and in others.
 *
 * Records past their TTL (specs.ts) are invisible to every operation at once, and swept out by
 * their indexed expiry column at start and every SWEEP_INTERVAL_MS.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Collections, DocumentCollection, Filter, FindOptions, StoreAdapter, Update } from '../ports.js';
import { COLLECTION_NAMES, collectionSpecs, type CollectionSpec, type RetentionOptions } from '../specs.js';
import { ConflictError } from '../errors.js';
import { fromStored, toStored, toStoredFilter, toStoredSort, toStoredUpdate } from '../codec.js';
import { FilterCompiler, fieldExpression, orderBy, type Param, type SearchIndex } from './query.js';
import { indexesOf, migrate, quote, searchTable } from './schema.js';
import { applyUpdate, decodeRow, encodeRow, type Row } from './records.js';
import { importNedbDataDir } from './nedb-import.js';
import { GroupCommit } from './group-commit.js';
import { startCheckpointer, type CheckpointTiming } from './checkpointer.js';

type Doc = Record<string, unknown>;
type Db = Database.Database;
type Statement = Database.Statement<Param[]>;

/** How often expired records are swept out. */
export const SWEEP_INTERVAL_MS = 60_000;
/** Rows removed per sweep statement: a sweep yields to the event loop in between. */
const SWEEP_CHUNK = 1_000;
/** Inserts into a capped collection between two counts of it (see SqliteCollection.known). */
const RECOUNT_EVERY = 1_000;
export const DEFAULT_EMBEDDED_MAX_EVENTS = 100_000;
/** Matches of a substring search under which the trigram index gives the candidates (see query.ts). */
const SELECTIVE_SEARCH = 1_000;
export const DATABASE_FILE = 'tessera.db';

export type Durability = 'normal' | 'full';

export interface EmbeddedStoreOptions extends RetentionOptions {
  /** The newest this many audit events are kept (TESSERA_EMBEDDED_MAX_EVENTS). */
  maxEvents?: number;
  /** TESSERA_DURABILITY: `full` fsyncs every commit (synchronous=FULL), `normal` at checkpoints. */
  durability?: Durability;
  /** When the checkpoint worker starts and stops (tests shorten it). */
  checkpointTiming?: CheckpointTiming;
}

export interface EmbeddedStore extends StoreAdapter {
  /** Sweeps out every record past its TTL now (it also happens every SWEEP_INTERVAL_MS); resolves to how many went. */
  sweepExpired(): Promise<number>;
  /** A PRAGMA's value on this connection (its settings: synchronous, journal_mode). */
  pragma(name: string): unknown;
  /** Whether the checkpoint worker runs (checkpointer.ts): for tests and diagnosis. */
  checkpointing(): boolean;
  /** How SQLite would answer a find on a collection (EXPLAIN QUERY PLAN): for tests and diagnosis. */
  plan(collection: keyof Collections, filter: Filter, options?: FindOptions): string[];
}

/** The field a SQLite unique-constraint error names (an index of ours, or the id), or null for another error. */
function conflictField(error: unknown, fieldsByIndex: ReadonlyMap<string, string>): string | null {
  const code = (error as { code?: unknown }).code;
  if (code !== 'SQLITE_CONSTRAINT_UNIQUE' && code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') return null;
  const message = String((error as Error).message);
  const index = /index '([^']+)'/.exec(message)?.[1];
  return (index && fieldsByIndex.get(index)) ?? (message.endsWith('.id') ? 'id' : 'unique key');
}

const regexps = new Map<string, RegExp>();
/** The REGEXP the compiled filters call ($regex; the users search), each pattern compiled once. */
function regexpTest(source: unknown, flags: unknown, value: unknown): number {
  if (typeof value !== 'string') return 0;
  const key = `${String(flags)}/${String(source)}`;
  let pattern = regexps.get(key);
  if (!pattern) {
    if (regexps.size > 1_000) regexps.clear();
    pattern = new RegExp(String(source), String(flags).replace(/[gy]/g, ''));
    regexps.set(key, pattern);
  }
  return pattern.test(value) ? 1 : 0;
}

class Statements {
  private readonly cache = new Map<string, Statement>();
  constructor(private readonly db: Db) {}

  get(sql: string): Statement {
    let statement = this.cache.get(sql);
    if (!statement) {
      // Filter shapes come from code, so they are few; the bound is only a guard.
      if (this.cache.size > 2_000) this.cache.clear();
      statement = this.db.prepare<Param[]>(sql);
      this.cache.set(sql, statement);
    }
    return statement;
  }
}

interface Selection { where: string; params: Param[] }

class SqliteCollection<T extends { id: string }> implements DocumentCollection<T> {
  private readonly table: string;
  private readonly scalar: Set<string>;
  private readonly fieldsByIndex: Map<string, string>;
  private readonly ttlColumn: string | null;
  private readonly search: SearchIndex | null;
  private readonly updateMatching: (selection: Selection, update: Doc) => Doc[];
  /**
   * The size of a capped collection (maxRecords) as last known: counted at its first write and
   * after every RECOUNT_EVERY inserts (other processes' writes make it drift), else kept by adding
   * what is inserted and taking away what is deleted. A count(*) is a scan of an index: per
   * insert, at 100,000 events, it cost more than the insert itself.
   */
  private known: number | null = null;
  private sinceCount = 0;

  constructor(
    private readonly name: string,
    private readonly db: Db,
    private readonly statements: Statements,
    private readonly group: GroupCommit,
    private readonly spec: CollectionSpec,
    private readonly maxRecords: number | null,
  ) {
    this.table = quote(name);
    const indexes = indexesOf(name, spec);
    this.scalar = new Set(['_id', ...indexes.map((index) => index.field)]);
    this.fieldsByIndex = new Map(indexes.map((index) => [index.name, index.field]));
    this.ttlColumn = spec.ttl ? fieldExpression(spec.ttl.field) : null;
    this.search = spec.search ? {
      table: searchTable(name),
      fields: new Set(spec.search),
      selective: (query) => (this.statement(
        `SELECT count(*) AS n FROM (SELECT 1 FROM ${quote(searchTable(name))} WHERE ${quote(searchTable(name))} MATCH ? LIMIT ${SELECTIVE_SEARCH})`,
      ).get(query) as { n: number }).n < SELECTIVE_SEARCH,
    } : null;
    // updateMany's rows change together or not at all (a unique conflict on one undoes the others):
    // a savepoint inside the group's transaction. updateOne changes one row in one statement.
    this.updateMatching = db.transaction((selection: Selection, update: Doc) => this.applyTo(selection, update, true)).immediate;
  }

  /** Reads the matching records, applies the update to each in memory and writes it back, in the group's transaction. */
  private applyTo(selection: Selection, update: Doc, many: boolean): Doc[] {
    const rows = this.statement(`SELECT rowid, json(doc) AS doc, dates FROM ${this.table} WHERE ${selection.where}${many ? '' : ' LIMIT 1'}`)
      .all(...selection.params) as (Row & { rowid: number })[];
    const write = this.statement(`UPDATE ${this.table} SET doc = jsonb(?), dates = ? WHERE rowid = ?`);
    return rows.map((row) => {
      const doc = decodeRow(row);
      applyUpdate(doc, update);
      const next = encodeRow(doc);
      write.run(next.doc, next.dates, row.rowid);
      return doc;
    });
  }

  private statement(sql: string): Statement {
    return this.statements.get(sql);
  }

  /** The earliest TTL value still alive (records below it have expired). */
  private expiryLimit(now = Date.now()): number {
    return now - this.spec.ttl!.afterSeconds * 1000;
  }

  /** The WHERE of a port filter, with the TTL condition: expired records are never seen. */
  private select(filter: Filter): Selection {
    const compiler = new FilterCompiler({ scalar: this.scalar, jsonFields: this.spec.json, search: this.search });
    let where = compiler.where(toStoredFilter(filter));
    if (this.ttlColumn) {
      where = `(${where}) AND (${this.ttlColumn} IS NULL OR ${this.ttlColumn} >= ?)`;
      compiler.params.push(this.expiryLimit());
    }
    return { where, params: compiler.params };
  }

  private decode(row: Row): T {
    return fromStored<T>(decodeRow(row), this.spec)!;
  }

  /** Runs a write; a unique key held only by expired records is freed (they are swept) and the write tried again. */
  private write<R>(run: () => R): R {
    for (let attempt = 0; ; attempt++) {
      try {
        return run();
      } catch (caught) {
        const field = conflictField(caught, this.fieldsByIndex);
        if (field === null) throw caught;
        if (attempt > 0 || !this.ttlColumn || this.removeExpired() === 0) throw new ConflictError(this.name, field);
      }
    }
  }

  /** Deletes up to `limit` expired records (all when absent); returns how many. */
  removeExpired(limit = -1): number {
    if (!this.ttlColumn) return 0;
    const removed = this.statement(
      `DELETE FROM ${this.table} WHERE rowid IN (SELECT rowid FROM ${this.table} WHERE ${this.ttlColumn} < ? LIMIT ?)`,
    ).run(this.expiryLimit(), limit).changes;
    if (this.known !== null) this.known -= removed;
    return removed;
  }

  private insertRow(doc: T): void {
    const row = encodeRow(toStored(doc, this.spec));
    this.statement(`INSERT INTO ${this.table} (id, doc, dates) VALUES (?, jsonb(?), ?)`).run(doc.id, row.doc, row.dates);
  }

  insert(doc: T): Promise<T> {
    return this.group.write(() => {
      this.write(() => this.insertRow(doc));
      this.trim(1);
      // The record as given, as the MongoDB adapter answers (reading it back cost a JSON.parse per insert).
      return doc;
    });
  }

  async insertMany(docs: T[]): Promise<void> {
    if (docs.length === 0) return;
    return this.group.write(() => {
      let conflict: ConflictError | null = null;
      let inserted = 0;
      // A colliding record fails alone; the others are stored.
      for (const doc of docs) {
        try {
          this.write(() => this.insertRow(doc));
          inserted++;
        } catch (error) {
          if (!(error instanceof ConflictError)) throw error;
          conflict ??= error;
        }
      }
      this.trim(inserted);
      if (conflict) throw conflict;
    });
  }

  /**
   * The audit log's bounds after a write: its retention (the TTL on createdAt) and the newest
   * maxRecords (TESSERA_EMBEDDED_MAX_EVENTS), the oldest beyond it deleted in the same transaction.
   */
  private trim(inserted: number): void {
    if (this.maxRecords === null) return;
    if (this.ttlColumn) this.removeExpired();
    this.sinceCount += inserted;
    if (this.known === null || this.sinceCount >= RECOUNT_EVERY) {
      this.known = (this.statement(`SELECT count(*) AS n FROM ${this.table}`).get() as { n: number }).n;
      this.sinceCount = 0;
    } else {
      this.known += inserted;
    }
    if (this.known <= this.maxRecords) return;
    const createdAt = fieldExpression('createdAt');
    this.known -= this.statement(
      `DELETE FROM ${this.table} WHERE rowid IN (SELECT rowid FROM ${this.table} ORDER BY ${createdAt} ASC LIMIT ?)`,
    ).run(this.known - this.maxRecords).changes;
  }

  /** SQLite's plan for find(filter, options): one line per step (EXPLAIN QUERY PLAN). */
  plan(filter: Filter, options: FindOptions = {}): string[] {
    const { where, params } = this.select(filter);
    const sql = `EXPLAIN QUERY PLAN SELECT json(doc) AS doc, dates FROM ${this.table} WHERE ${where}${orderBy(toStoredSort(options.sort))} LIMIT ?`;
    return (this.db.prepare<Param[]>(sql).all(...params, options.limit || -1) as { detail: string }[]).map((row) => row.detail);
  }

  async findOne(filter: Filter): Promise<T | null> {
    const { where, params } = this.select(filter);
    const row = this.statement(`SELECT json(doc) AS doc, dates FROM ${this.table} WHERE ${where} LIMIT 1`).get(...params) as Row | undefined;
    return this.group.read(row ? this.decode(row) : null);
  }

  async find(filter: Filter, options: FindOptions = {}): Promise<T[]> {
    const { where, params } = this.select(filter);
    const sql = `SELECT json(doc) AS doc, dates FROM ${this.table} WHERE ${where}${orderBy(toStoredSort(options.sort))} LIMIT ? OFFSET ?`;
    // A limit of 0 is no limit, as in MongoDB.
    const rows = this.statement(sql).all(...params, options.limit || -1, options.skip ?? 0) as Row[];
    return this.group.read(rows.map((row) => this.decode(row)));
  }

  async count(filter: Filter): Promise<number> {
    if (this.ttlColumn && Object.values(filter).every((value) => value === undefined)) {
      // Every record but the expired ones: SQLite counts a whole table without reading it, and
      // the expired ones by their index, where the TTL condition would be read from every record.
      const sql = `SELECT (SELECT count(*) FROM ${this.table}) - (SELECT count(*) FROM ${this.table} WHERE ${this.ttlColumn} < ?) AS n`;
      return this.group.read((this.statement(sql).get(this.expiryLimit()) as { n: number }).n);
    }
    const { where, params } = this.select(filter);
    return this.group.read((this.statement(`SELECT count(*) AS n FROM ${this.table} WHERE ${where}`).get(...params) as { n: number }).n);
  }

  async updateOne(filter: Filter, update: Update): Promise<T | null> {
    const stored = toStoredUpdate(update, this.spec);
    const selection = this.select(filter);
    return this.group.write(() => {
      const [doc] = this.write(() => this.applyTo(selection, stored, false));
      return doc ? fromStored<T>(doc, this.spec) : null;
    });
  }

  async updateMany(filter: Filter, update: Update): Promise<number> {
    const stored = toStoredUpdate(update, this.spec);
    const selection = this.select(filter);
    return this.group.write(() => this.write(() => this.updateMatching(selection, stored)).length);
  }

  async deleteOne(filter: Filter): Promise<boolean> {
    const { where, params } = this.select(filter);
    const sql = `DELETE FROM ${this.table} WHERE rowid = (SELECT rowid FROM ${this.table} WHERE ${where} LIMIT 1)`;
    this.known = null;
    return this.group.write(() => this.statement(sql).run(...params).changes > 0);
  }

  async deleteMany(filter: Filter): Promise<number> {
    const { where, params } = this.select(filter);
    this.known = null;
    return this.group.write(() => this.statement(`DELETE FROM ${this.table} WHERE ${where}`).run(...params).changes);
  }
}

/** Opens (creating) the database of `dataDir`, importing a NeDB data dir of an earlier release first. */
export async function openEmbeddedStore(dataDir: string, options: EmbeddedStoreOptions = {}): Promise<EmbeddedStore> {
  const specs = collectionSpecs(options);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, DATABASE_FILE);
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
    // Another process holding the write lock (a second worker, a backup) is waited for, not an error.
    db.pragma('busy_timeout = 5000');
    // 4 MB of pages of its own; the rest is the OS's page cache, a pread away. Measured against
    // 16 MB: the same bench throughput and users-page latencies at 100,000 users, 10–25 MB less RSS.
    db.pragma('cache_size = -4000');
    db.function('tessera_regexp', { deterministic: true }, regexpTest);
    migrate(db, specs);
  } catch (error) {
    db.close();
    throw error;
  }
  const statements = new Statements(db);
  const checkpointer = startCheckpointer(file, db, options.checkpointTiming);
  const group = new GroupCommit(db, () => checkpointer.committed());
  const maxEvents = options.maxEvents ?? DEFAULT_EMBEDDED_MAX_EVENTS;
  const collections: Record<string, SqliteCollection<{ id: string }>> = {};
  for (const name of COLLECTION_NAMES) {
    collections[name] = new SqliteCollection(name, db, statements, group, specs[name], name === 'events' ? maxEvents : null);
  }
  await importNedbDataDir(dataDir, db);

  const expiring = COLLECTION_NAMES.filter((name) => specs[name].ttl).map((name) => collections[name]!);
  let closing = false;
  let sweeping: Promise<number> = Promise.resolve(0);
  const sweep = (): Promise<number> => {
    sweeping = sweeping.then(async () => {
      let removed = 0;
      for (const collection of expiring) {
        for (;;) {
          if (closing) return removed;
          const gone = await group.write(() => collection.removeExpired(SWEEP_CHUNK));
          removed += gone;
          if (gone < SWEEP_CHUNK) break;
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
      return removed;
    }).catch(() => 0); // a failed sweep is not lost work: the next one removes what this one did not
    return sweeping;
  };
  void sweep();
  const sweeper = setInterval(sweep, SWEEP_INTERVAL_MS).unref();
  const ping = db.prepare('SELECT 1');
  return {
    kind: 'embedded',
    ...(collections as unknown as Omit<StoreAdapter, 'kind' | 'ping' | 'close'>),
    async ping() {
      ping.get();
    },
    sweepExpired: sweep,
    pragma: (name: string) => db.pragma(name, { simple: true }),
    checkpointing: () => checkpointer.running(),
    plan: (name: keyof Collections, filter: Filter, options?: FindOptions) => collections[name]!.plan(filter, options),
    async close() {
      if (closing) return;
      closing = true;
      clearInterval(sweeper);
      await sweeping;
      group.flush();
      await checkpointer.close();
      db.close();
    },
  };
}

/**
 * The embedded store's schema, built from COLLECTION_SPECS at every start: a table per collection
 * (`id`, `doc` as JSONB, `dates`; see records.ts), an expression index per indexed field, and a
 * trigram index for the `search` fields. What specs.ts adds is created, what it drops is dropped,
 * and an index whose definition changed is built again.
 */
import type Database from 'better-sqlite3';
import { COLLECTION_NAMES, type CollectionSpec } from '../specs.js';
import { fieldExpression, jsonPath } from './query.js';

type Db = Database.Database;

export const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

export interface IndexWanted { name: string; field: string; sql: string }

/**
 * The indexes of a collection, named `<table>__<field>` (`__u__` for unique ones). In a collection
 * with a TTL, a plain index also holds the expiry, so that the TTL condition every query carries
 * is decided from the index, without reading the record (a count of users of a type, a page).
 */
export function indexesOf(name: string, spec: CollectionSpec): IndexWanted[] {
  const wanted = new Map<string, IndexWanted>();
  const on = (columns: string[]) => `ON ${quote(name)} (${columns.join(', ')})`;
  for (const field of spec.unique) {
    const index = `${name}__u__${field}`;
    wanted.set(field, { name: index, field, sql: `CREATE UNIQUE INDEX ${quote(index)} ${on([fieldExpression(field)])}` });
  }
  const ttl = spec.ttl ? [fieldExpression(spec.ttl.field)] : [];
  for (const field of [...spec.indexes, ...(spec.ttl ? [spec.ttl.field] : [])]) {
    if (wanted.has(field)) continue;
    const index = `${name}__${field}`;
    const columns = field === spec.ttl?.field ? ttl : [fieldExpression(field), ...ttl];
    wanted.set(field, { name: index, field, sql: `CREATE INDEX ${quote(index)} ${on(columns)}` });
  }
  return [...wanted.values()];
}

export const searchTable = (name: string): string => `${name}__search`;

/**
 * The trigram index of a collection's `search` fields: an FTS5 table holding no copy of the text
 * (contentless), kept by triggers, and filled from the records when it is new or its fields changed.
 */
function migrateSearch(db: Db, name: string, fields: string[] | undefined): void {
  const fts = searchTable(name);
  const create = fields && `CREATE VIRTUAL TABLE ${quote(fts)} USING fts5(${fields.map(quote).join(', ')}, `
    + `content='', contentless_delete=1, tokenize='trigram')`;
  const existing = db.prepare<[string]>(`SELECT sql FROM sqlite_master WHERE name = ?`).pluck().get(fts) as string | undefined;
  if (existing === create) return;
  for (const trigger of ['insert', 'delete', 'update']) db.exec(`DROP TRIGGER IF EXISTS ${quote(`${fts}_${trigger}`)}`);
  if (existing) db.exec(`DROP TABLE ${quote(fts)}`);
  if (!fields || !create) return;
  db.exec(create);
  const columns = ['rowid', ...fields.map(quote)].join(', ');
  const valueOf = (row: string, field: string): string => `json_extract(${row}.doc, ${jsonPath(field)})`;
  const values = (row: string): string => [`${row}.rowid`, ...fields.map((field) => valueOf(row, field))].join(', ');
  const changed = fields.map((field) => `${valueOf('old', field)} IS NOT ${valueOf('new', field)}`);
  db.exec(`INSERT INTO ${quote(fts)} (${columns}) SELECT ${values(quote(name))} FROM ${quote(name)}`);
  db.exec(`CREATE TRIGGER ${quote(`${fts}_insert`)} AFTER INSERT ON ${quote(name)} BEGIN
    INSERT INTO ${quote(fts)} (${columns}) VALUES (${values('new')}); END`);
  db.exec(`CREATE TRIGGER ${quote(`${fts}_delete`)} AFTER DELETE ON ${quote(name)} BEGIN
    DELETE FROM ${quote(fts)} WHERE rowid = old.rowid; END`);
  db.exec(`CREATE TRIGGER ${quote(`${fts}_update`)} AFTER UPDATE ON ${quote(name)} WHEN ${changed.join(' OR ')} BEGIN
    DELETE FROM ${quote(fts)} WHERE rowid = old.rowid; INSERT INTO ${quote(fts)} (${columns}) VALUES (${values('new')}); END`);
}

/** Creates the tables and the indexes COLLECTION_SPECS asks for, and drops the ones it no longer does. */
export function migrate(db: Db, specs: Record<string, CollectionSpec>): void {
  db.transaction(() => {
    for (const name of COLLECTION_NAMES) {
      const table = quote(name);
      db.exec(`CREATE TABLE IF NOT EXISTS ${table} (id TEXT PRIMARY KEY NOT NULL, doc BLOB NOT NULL, dates TEXT)`);
      const wanted = indexesOf(name, specs[name]!);
      const existing = db.prepare<[string, string]>(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name LIKE ? ESCAPE '!'`)
        .all(name, `${name.replace(/[!%_]/g, '!$&')}!_!_%`) as { name: string; sql: string }[];
      const built = new Map(existing.map((index) => [index.name, index.sql]));
      const sqlOf = new Map(wanted.map((index) => [index.name, index.sql]));
      // An index gone from specs.ts, or defined otherwise now, is dropped (and built again).
      for (const [index, sql] of built) if (sqlOf.get(index) !== sql) db.exec(`DROP INDEX ${quote(index)}`);
      for (const index of wanted) if (built.get(index.name) !== index.sql) db.exec(index.sql);
      migrateSearch(db, name, specs[name]!.search);
    }
  }).immediate();
}

/**
 * Upgrading from a release whose embedded store was NeDB: its datafiles (`<collection>.db` under
 * the data dir, events.db included) are imported into the SQLite database once, at start, in one
 * transaction, then moved aside into `nedb-imported-<time>/` (kept, not deleted: the upgrade loses
 * nothing, and going back is a move).
 *
 * The format is read here rather than through NeDB, which is no longer a dependency: one JSON
 * record per line, Dates as {"$$date": ms}; a later line for an _id replaces the earlier one,
 * {"$$deleted": true, "_id": …} removes it, and {"$$indexCreated": …} and
 * {"$$indexRemoved": …} lines describe indexes.
 * Lines that do not parse are skipped (a kill -9 can leave the last one half-written), but, as
 * NeDB did, a file with more than a tenth of them is refused rather than half-imported.
 */
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { COLLECTION_NAMES } from '../specs.js';
import { encodeRow } from './records.js';

type Doc = Record<string, unknown>;

const CORRUPT_SHARE = 0.1;
const MARKER = 'nedb-import';

/** NeDB's reviver: {"$$date": ms} is a Date. */
function revive(key: string, value: unknown): unknown {
  if (key === '$$date') return new Date(value as number);
  if (value !== null && typeof value === 'object' && '$$date' in value) return (value as { $$date: unknown }).$$date;
  return value;
}

/** The live records of one NeDB datafile, by _id. */
export function readNedbFile(file: string): Map<string, Doc> {
  const records = new Map<string, Doc>();
  const lines = readFileSync(file, 'utf8').split('\n');
  let corrupt = 0;
  let total = 0;
  for (const line of lines) {
    if (line.trim() === '') continue;
    total++;
    let doc: Doc;
    try {
      doc = JSON.parse(line, revive) as Doc;
    } catch {
      corrupt++;
      continue;
    }
    if (doc.$$indexCreated !== undefined || doc.$$indexRemoved !== undefined) continue;
    if (typeof doc._id !== 'string') {
      corrupt++;
      continue;
    }
    if (doc.$$deleted === true) records.delete(doc._id);
    else records.set(doc._id, doc);
  }
  if (total > 0 && corrupt / total > CORRUPT_SHARE) {
    throw new Error(`${file}: ${corrupt} of ${total} lines are unreadable; not importing it (move it away to start without it)`);
  }
  return records;
}

/**
 * Imports the NeDB datafiles found in `dataDir`, if any, and moves them aside. Resolves to the
 * number of records imported per collection (empty when there was nothing to import).
 */
export async function importNedbDataDir(dataDir: string, db: Database.Database): Promise<Record<string, number>> {
  const files = COLLECTION_NAMES.map((name) => ({ name, file: path.join(dataDir, `${name}.db`) })).filter(({ file }) => existsSync(file));
  if (files.length === 0) return {};
  db.exec('CREATE TABLE IF NOT EXISTS tessera_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)');
  const imported: Record<string, number> = {};
  db.transaction(() => {
    // Done already (the files were not moved: the process stopped in between): only move them.
    if (db.prepare('SELECT 1 FROM tessera_meta WHERE key = ?').get(MARKER)) return;
    for (const { name, file } of files) {
      // NeDB enforced the unique keys, so nothing collides but the same _id: the datafile wins.
      const insert = db.prepare(`INSERT OR REPLACE INTO "${name}" (id, doc, dates) VALUES (?, jsonb(?), ?)`);
      const records = readNedbFile(file);
      for (const [id, doc] of records) {
        const row = encodeRow(doc);
        insert.run(id, row.doc, row.dates);
      }
      imported[name] = records.size;
    }
    db.prepare('INSERT INTO tessera_meta (key, value) VALUES (?, ?)').run(MARKER, new Date().toISOString());
  }).immediate();
  const aside = path.join(dataDir, `nedb-imported-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(aside, { mode: 0o700 });
  for (const { name, file } of files) {
    renameSync(file, path.join(aside, `${name}.db`));
    // NeDB's compaction writes `<file>~` first; one may be left over.
    if (existsSync(`${file}~`)) renameSync(`${file}~`, path.join(aside, `${name}.db~`));
  }
  db.prepare('DELETE FROM tessera_meta WHERE key = ?').run(MARKER);
  return imported;
}

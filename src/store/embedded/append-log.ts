/**
 * A faster append for a NeDB datafile. NeDB (4.x) persists each insert, update or remove by
 * opening the datafile, appending the changed records and closing it again (fs.promises.appendFile,
 * a thread-pool round trip per operation), and its executor runs operations one at a time, so that
 * open-append-close bounded the store's write throughput.
 *
 * This keeps one append-mode descriptor per datafile and writes each operation's lines with one
 * synchronous write. The durability promise is unchanged: the bytes are in the operating system's
 * page cache before the operation's promise resolves (as with appendFile, no fsync), so killing the
 * process loses nothing that was acknowledged.
 *
 * Compaction (persistCachedDatabaseAsync, also run at the end of loading) rewrites the datafile into
 * a temp file and renames it over the old one; a descriptor opened before that would keep appending
 * to the unlinked old file. So the descriptor is closed when a compaction ends and reopened by the
 * next write. Both compaction and every write run inside NeDB's executor (compactDatafileAsync,
 * loadDatabaseAsync, insert/update/remove and ensureIndex/removeIndex all go through
 * executor.pushAsync; the TTL removal runs inside a find/update that is already in it), so no write
 * can fall between the rename and the reopen.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * NeDB's datafile form of a value: a Date as { $$date: ms }, the rest as JSON. Same text as NeDB's
 * model.serialize, about three times faster: that one runs a replacer function on every key (to
 * check field names, which NeDB already checked when the record was inserted or modified).
 */
function datafileValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Date) return { $$date: value.getTime() };
  if (Array.isArray(value)) return value.map(datafileValue);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) out[key] = datafileValue((value as Record<string, unknown>)[key]);
  return out;
}

export const serializeForDatafile = (doc: unknown): string => JSON.stringify(datafileValue(doc));

/** The parts of NeDB's Persistence object this replaces (see node_modules/@seald-io/nedb/lib/persistence.js). */
interface Persistence {
  filename: string;
  inMemoryOnly: boolean;
  modes: { fileMode: number; dirMode: number };
  persistNewStateAsync(newDocs: unknown[]): Promise<void>;
  persistCachedDatabaseAsync(): Promise<void>;
}

export interface AppendLog {
  /** Releases the descriptor (the next write would reopen it). */
  close(): void;
}

/**
 * Writes all of `bytes` at the file's position. write(2) on a regular file may in principle write
 * less than asked (a full disk): this finishes it, or throws if the file system takes nothing.
 */
export function writeAllSync(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) {
    const written = writeSync(fd, bytes, done, bytes.length - done);
    if (written <= 0) throw new Error('the file system took no bytes');
    done += written;
  }
}

/** Replaces `db`'s per-operation append with writes on one kept descriptor. */
export function useAppendLog(db: unknown): AppendLog {
  const persistence = (db as { persistence: Persistence }).persistence;
  if (persistence.inMemoryOnly) return { close() {} };
  let fd: number | null = null;
  const close = () => {
    if (fd === null) return;
    const open = fd;
    fd = null;
    closeSync(open);
  };

  persistence.persistNewStateAsync = async (newDocs: unknown[]) => {
    let text = '';
    for (const doc of newDocs) text += `${serializeForDatafile(doc)}\n`;
    if (text.length === 0) return;
    fd ??= openSync(persistence.filename, 'a', persistence.modes.fileMode);
    writeAllSync(fd, Buffer.from(text, 'utf8'));
  };

  persistence.persistCachedDatabaseAsync = async () => {
    try {
      await compact(db as CompactedDatastore, persistence);
    } finally {
      // The datafile is (or may now be) a new file: drop the descriptor of the old one.
      close();
    }
  };
  return { close };
}

/** What compaction reads of a NeDB Datastore. */
interface CompactedDatastore {
  getAllData(): unknown[];
  indexes: Record<string, { fieldName: string; unique: boolean; sparse: boolean }>;
  emit(event: 'compaction.done'): void;
}

const storage = createRequire(import.meta.url)('@seald-io/nedb/lib/storage.js') as {
  flushToStorageAsync(options: { filename: string; isDir?: boolean; mode?: number }): Promise<void>;
  existsAsync(filename: string): Promise<boolean>;
};

/** Text handed to the file system at a time while compacting (bounds the memory, and yields in between). */
const COMPACTION_CHUNK_CHARS = 1 << 20;

/**
 * NeDB's compaction (persistCachedDatabaseAsync), writing the same lines with the same crash-safe
 * steps (flush the directory and the old file, write a temp file, flush it, rename it over the
 * datafile, flush the directory), but serialized by serializeForDatafile and written in chunks of
 * about a megabyte: NeDB serialized each record with a replacer, awaited a promise per record and
 * wrote the file a line at a time through a stream, which held the event loop for a long time on a
 * large datafile.
 */
async function compact(db: CompactedDatastore, persistence: Persistence): Promise<void> {
  const { filename, modes } = persistence;
  const directory = path.dirname(filename);
  const temp = `${filename}~`;
  // The records as they are now: compaction runs inside NeDB's executor, so nothing changes them meanwhile.
  const docs: unknown[] = db.getAllData();
  for (const [fieldName, index] of Object.entries(db.indexes)) {
    if (fieldName !== '_id') docs.push({ $$indexCreated: { fieldName: index.fieldName, unique: index.unique, sparse: index.sparse } });
  }
  await storage.flushToStorageAsync({ filename: directory, isDir: true, mode: modes.dirMode });
  if (await storage.existsAsync(filename)) await storage.flushToStorageAsync({ filename, mode: modes.fileMode });
  const handle = await open(temp, 'w', modes.fileMode);
  // write(2) may take fewer bytes than asked (a full disk takes what fits): finish each chunk or
  // throw, never rename a short file over the datafile.
  const writeAll = async (text: string): Promise<void> => {
    const bytes = Buffer.from(text, 'utf8');
    for (let done = 0; done < bytes.length; ) {
      const { bytesWritten } = await handle.write(bytes, done, bytes.length - done);
      if (bytesWritten <= 0) throw new Error(`${temp}: the file system took no bytes`);
      done += bytesWritten;
    }
  };
  try {
    let text = '';
    for (const doc of docs) {
      text += `${serializeForDatafile(doc)}\n`;
      if (text.length >= COMPACTION_CHUNK_CHARS) {
        await writeAll(text);
        text = '';
      }
    }
    if (text.length > 0) await writeAll(text);
  } finally {
    await handle.close();
  }
  await storage.flushToStorageAsync({ filename: temp, mode: modes.fileMode });
  await rename(temp, filename);
  await storage.flushToStorageAsync({ filename: directory, isDir: true, mode: modes.dirMode });
  db.emit('compaction.done');
}

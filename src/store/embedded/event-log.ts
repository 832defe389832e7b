/**
 * The embedded store's audit log, kept on disk rather than in memory. NeDB holds every record of a
 * collection in memory (about 1 KB per audit event with its indexes), and the audit log is by far
 * the largest collection while being written far more than read: so its records stay in the
 * datafile and memory holds only a small index per line (time, offset, length, a hash of the id:
 * about 60 bytes per event).
 *
 * The datafile keeps NeDB's format (one serialized record per line; a later line for the same _id
 * replaces it, `{"$$deleted":true,"_id":…}` removes it), so an events.db written by NeDB loads here,
 * and this one would load in NeDB. Writes are appended with one synchronous write on a kept-open
 * descriptor before their promise resolves: the same durability as the other collections (see
 * append-log.ts): an acknowledged write survives the process being killed.
 *
 * Reads parse the lines they visit and match them with NeDB's own model.match, sort with its
 * compareThings, and update with its modify, so every answer equals what the NeDB collection gave.
 * A read visits lines newest first (by createdAt, from the in-memory order) and stops as soon as the
 * limit is met, so the admin API's pages cost about a page of reads; a filter that picks few events
 * out of many (a requestId) reads the whole file.
 *
 * Retention (the cap on the number of events, and the TTL on createdAt) drops the oldest events
 * from the index after each batch, off the response path; the file is rewritten without dead lines
 * (compaction) once they outnumber the live ones, on load and on close. After a crash, records the
 * retention had dropped since the last compaction are dropped again on load by the same settings.
 *
 * Every operation runs one at a time (a queue, like NeDB's executor), which keeps updateOne's
 * filter an atomic condition; long scans and compaction yield to the event loop in between.
 */
import { closeSync, existsSync, fstatSync, fsync, ftruncateSync, openSync, readSync, renameSync } from 'node:fs';
import { promisify } from 'node:util';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { DocumentCollection, Filter, FindOptions, Update } from '../ports.js';
import type { CollectionSpec } from '../specs.js';
import { ConflictError } from '../errors.js';
import { fromStored, toStored, toStoredFilter, toStoredSort, toStoredUpdate } from '../codec.js';
import { serializeForDatafile, writeAllSync } from './append-log.js';
// A function import only (called after both modules have loaded), so the import cycle is harmless.
import { nedbFilter } from './embedded-store.js';

type Doc = Record<string, unknown>;

interface NedbModel {
  deserialize(line: string): Doc;
  match(doc: Doc, query: Doc): boolean;
  modify(doc: Doc, update: Doc): Doc;
  checkObject(doc: unknown): void;
  compareThings(a: unknown, b: unknown): number;
  getDotValue(doc: Doc, field: string): unknown;
}
const model = createRequire(import.meta.url)('@seald-io/nedb/lib/model.js') as NedbModel;

/** Lines visited between yields to the event loop in long scans. */
const SCAN_CHUNK = 2_000;
/** Bytes read from the datafile at a time. */
const BLOCK_BYTES = 256 * 1024;
/** Bytes written at a time while compacting. */
const WRITE_BYTES = 1024 * 1024;
/** Dead lines tolerated before a compaction, at least (or as many as the live ones, if more). */
const COMPACT_MIN_DEAD = 10_000;
/** NeDB's corruptAlertThreshold: refuse to load a datafile with more unreadable lines than this share. */
const CORRUPT_ALERT_THRESHOLD = 0.1;

const NEWLINE = Buffer.from('\n');
/** On the thread pool: flushing a large file to disk must not hold the event loop. */
const flushToDisk = promisify(fsync);
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A 30-bit FNV-1a hash of an id (a small integer: a Map keyed by it stores no boxed number). */
function idHash(id: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 16_777_619);
  return hash >>> 2;
}

export interface EventLogOptions {
  /** The Date field events are ordered and retained by. */
  timeField: string;
  /** The newest this many records are kept. */
  maxRecords: number;
}

/** Opens (creating, or loading and compacting) the append-only log at `filename`. */
export async function openEventLog<T extends { id: string }>(
  filename: string, name: string, spec: CollectionSpec, options: EventLogOptions,
): Promise<EventLogCollection<T>> {
  const log = new EventLogCollection<T>(filename, name, spec, options);
  await log.load();
  return log;
}

/** A window on the datafile, so that neighbouring lines are read with one system call. */
class LineReader {
  private block: Buffer = Buffer.alloc(0);
  private start = 0;
  /** Whether the current block holds every needle asked about (null: not asked yet). */
  private holdsNeedles: boolean | null = null;
  constructor(private readonly fd: number, private readonly fileSize: number) {}

  /** The bytes [offset, offset + length); `backwards` reads the block ending there (newest-first scans). */
  read(offset: number, length: number, backwards: boolean): Buffer {
    if (offset < this.start || offset + length > this.start + this.block.length) {
      const size = Math.max(length, BLOCK_BYTES);
      const start = backwards ? Math.max(0, offset + length - size) : offset;
      const end = Math.min(this.fileSize, start + size);
      const block = Buffer.allocUnsafe(end - start);
      for (let done = 0; done < block.length; ) {
        const got = readSync(this.fd, block, done, block.length - done, start + done);
        if (got === 0) throw new Error('the events datafile is shorter than its index');
        done += got;
      }
      this.block = block;
      this.start = start;
      this.holdsNeedles = null;
    }
    return this.block.subarray(offset - this.start, offset - this.start + length);
  }

  /** Whether the block of the last read holds every needle: when not, no line in it does (one search per block). */
  blockHolds(needles: Buffer[]): boolean {
    this.holdsNeedles ??= needles.every((needle) => this.block.indexOf(needle) !== -1);
    return this.holdsNeedles;
  }
}

/** A growable set of per-line columns. */
class Lines {
  count = 0;
  time = new Float64Array(1024);
  offset = new Float64Array(1024);
  length = new Uint32Array(1024);
  hash = new Int32Array(1024);
  live = new Uint8Array(1024);

  push(time: number, offset: number, length: number, hash: number, live: boolean): number {
    if (this.count === this.time.length) {
      const grow = <A extends Float64Array | Uint32Array | Int32Array | Uint8Array>(old: A): A => {
        const next = new (old.constructor as new (n: number) => A)(old.length * 2);
        next.set(old);
        return next;
      };
      this.time = grow(this.time);
      this.offset = grow(this.offset);
      this.length = grow(this.length);
      this.hash = grow(this.hash);
      this.live = grow(this.live);
    }
    const line = this.count++;
    this.time[line] = time;
    this.offset[line] = offset;
    this.length[line] = length;
    this.hash[line] = hash;
    this.live[line] = live ? 1 : 0;
    return line;
  }
}

interface Plan {
  /** Lines to visit, in order (already without dead or expired ones), or a generator of them. */
  lines: Iterable<number>;
  backwards: boolean;
  /** The visit is in time order (first sort key), so a limited sorted read may stop early. */
  timeOrdered: 1 | -1 | 0;
}

export class EventLogCollection<T extends { id: string }> implements DocumentCollection<T> {
  private fd = -1;
  private size = 0;
  private lines = new Lines();
  private liveCount = 0;
  /** Live lines whose time field is not a Date (they sort apart; time-ordered shortcuts are off while any exist). */
  private untimedLive = 0;
  /** id hash → line of the live record; ids whose hash another live id holds are in `overflow`. */
  private readonly byHash = new Map<number, number>();
  private readonly overflow = new Map<string, number>();
  /** Timed lines (live or dead) in (time, line) order; null when it must be rebuilt. */
  private byTime: Uint32Array | null = new Uint32Array(1024);
  private byTimeCount = 0;
  /** Position in byTime before which every line is dead. */
  private oldestLive = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly ttlMs: number | null;

  constructor(
    private readonly filename: string,
    private readonly name: string,
    private readonly spec: CollectionSpec,
    private readonly options: EventLogOptions,
  ) {
    this.ttlMs = spec.ttl?.field === options.timeField ? spec.ttl.afterSeconds * 1000 : null;
  }

  /** Runs `task` after every earlier operation (one at a time, as NeDB's executor does). */
  private run<R>(task: () => Promise<R> | R): Promise<R> {
    const result = this.queue.then(task);
    this.queue = result.catch(() => undefined);
    return result;
  }

  // ---------------------------------------------------------------------------------------------
  // The index
  // ---------------------------------------------------------------------------------------------

  private expiredBefore(): number {
    return this.ttlMs === null ? -Infinity : Date.now() - this.ttlMs;
  }

  /** NeDB's TTL rule: expired once now is past the time plus the TTL. */
  private isVisible(line: number, expiredBefore: number): boolean {
    return this.lines.live[line] === 1 && !(this.lines.time[line]! < expiredBefore);
  }

  private timeOf(doc: Doc): number {
    const value = doc[this.options.timeField];
    return value instanceof Date ? value.getTime() : NaN;
  }

  private readLine(line: number, reader: LineReader, backwards = false, needles: Buffer[] = []): Doc | null {
    const bytes = reader.read(this.lines.offset[line]!, this.lines.length[line]!, backwards);
    if (needles.length > 0 && !reader.blockHolds(needles)) return null;
    for (const needle of needles) if (bytes.indexOf(needle) === -1) return null;
    return model.deserialize(bytes.toString('utf8'));
  }

  private reader(): LineReader {
    return new LineReader(this.fd, this.size);
  }

  /** The live line holding `id`, or undefined. */
  private lineOf(id: string, reader: LineReader): number | undefined {
    const line = this.byHash.get(idHash(id));
    if (line !== undefined && this.readLine(line, reader)!._id === id) return line;
    return this.overflow.get(id);
  }

  private setLineOf(id: string, hash: number, line: number, previous: number | undefined): void {
    const held = this.byHash.get(hash);
    if (held === undefined || held === previous) this.byHash.set(hash, line);
    else this.overflow.set(id, line);
  }

  /** Marks a line dead and forgets its id (when it was the record's current line). */
  private kill(line: number): void {
    const lines = this.lines;
    if (lines.live[line] !== 1) return;
    lines.live[line] = 0;
    this.liveCount--;
    if (Number.isNaN(lines.time[line])) this.untimedLive--;
    const hash = lines.hash[line]!;
    if (this.byHash.get(hash) === line) {
      this.byHash.delete(hash);
      return;
    }
    for (const [id, held] of this.overflow) {
      if (held === line) {
        this.overflow.delete(id);
        return;
      }
    }
  }

  /** Indexes a line just written. */
  private addLine(doc: Doc, offset: number, length: number, previous: number | undefined): number {
    const time = this.timeOf(doc);
    const id = doc._id as string;
    const hash = idHash(id);
    const line = this.lines.push(time, offset, length, hash, true);
    this.liveCount++;
    if (Number.isNaN(time)) this.untimedLive++;
    this.setLineOf(id, hash, line, previous);
    if (previous !== undefined) this.kill(previous);
    if (!Number.isNaN(time) && this.byTime) {
      const last = this.byTimeCount > 0 ? this.lines.time[this.byTime[this.byTimeCount - 1]!]! : -Infinity;
      if (time >= last) {
        if (this.byTimeCount === this.byTime.length) {
          const next = new Uint32Array(Math.max(1024, this.byTime.length * 2));
          next.set(this.byTime);
          this.byTime = next;
        }
        this.byTime[this.byTimeCount++] = line;
      } else {
        this.byTime = null; // out of order (an older event inserted late, or an update): sorted again when needed
      }
    }
    return line;
  }

  private timeOrder(): Uint32Array {
    if (this.byTime) return this.byTime;
    const lines = this.lines;
    const timed: number[] = [];
    for (let line = 0; line < lines.count; line++) if (lines.live[line] === 1 && !Number.isNaN(lines.time[line])) timed.push(line);
    timed.sort((a, b) => lines.time[a]! - lines.time[b]! || a - b);
    this.byTime = new Uint32Array(Math.max(1024, timed.length));
    this.byTime.set(timed);
    this.byTimeCount = timed.length;
    this.oldestLive = 0;
    return this.byTime;
  }

  /** First position in byTime whose time is ≥ t (or > t when `after`). */
  private timePosition(t: number, after: boolean): number {
    const order = this.timeOrder();
    let low = 0;
    let high = this.byTimeCount;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const time = this.lines.time[order[mid]!]!;
      if (time < t || (after && time === t)) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Drops the oldest records beyond the cap and those past the TTL (from the index; the file at the next compaction). */
  private retain(): void {
    const expiredBefore = this.expiredBefore();
    if (this.liveCount <= this.options.maxRecords && expiredBefore === -Infinity) return;
    const order = this.timeOrder();
    const lines = this.lines;
    let at = this.oldestLive;
    for (; at < this.byTimeCount; at++) {
      const line = order[at]!;
      if (lines.live[line] !== 1) continue;
      if (this.liveCount <= this.options.maxRecords && !(lines.time[line]! < expiredBefore)) break;
      this.kill(line);
    }
    this.oldestLive = at;
  }

  // ---------------------------------------------------------------------------------------------
  // The file
  // ---------------------------------------------------------------------------------------------

  private append(text: string): number {
    const offset = this.size;
    const bytes = Buffer.from(text, 'utf8');
    try {
      writeAllSync(this.fd, bytes);
    } catch (error) {
      // No half line may stay behind to run into the next one.
      ftruncateSync(this.fd, offset);
      throw error;
    }
    this.size += bytes.length;
    return offset;
  }

  /** Appends records (one write) and indexes them; `previous` are the lines they replace. */
  private writeRecords(docs: Doc[], previous: (number | undefined)[]): void {
    const texts = docs.map((doc) => serializeForDatafile(doc));
    let offset = this.append(texts.map((text) => `${text}\n`).join(''));
    docs.forEach((doc, i) => {
      const length = Buffer.byteLength(texts[i]!, 'utf8');
      this.addLine(doc, offset, length, previous[i]);
      offset += length + 1;
    });
  }

  async load(): Promise<void> {
    // A compaction that died between writing the new file and renaming it left only the new one.
    const temp = `${this.filename}~`;
    if (!existsSync(this.filename) && existsSync(temp)) renameSync(temp, this.filename);
    this.fd = openSync(this.filename, 'a+', 0o600);
    this.size = fstatSync(this.fd).size;
    const reader = this.reader();
    let total = 0;
    let corrupt = 0;
    let pending: Buffer = Buffer.alloc(0);
    const take = (start: number, bytes: Buffer) => {
      total++;
      if (!this.loadLine(bytes.toString('utf8'), start, bytes.length)) corrupt++;
    };
    for (let offset = 0; offset < this.size; ) {
      const block = reader.read(offset, Math.min(BLOCK_BYTES, this.size - offset), false);
      const chunk = pending.length > 0 ? Buffer.concat([pending, block]) : block;
      const chunkStart = offset - pending.length;
      offset += block.length;
      let start = 0;
      for (let end = chunk.indexOf(10); end !== -1; start = end + 1, end = chunk.indexOf(10, start)) {
        if (end > start) take(chunkStart + start, chunk.subarray(start, end));
      }
      pending = chunk.subarray(start);
      await yieldToEventLoop();
    }
    // A last line without its newline is a write cut short, never acknowledged (a write resolves once
    // all its lines are written): dropped if unreadable, and the file rewritten below either way, so
    // that the next append starts a line of its own.
    const unterminated = pending.length > 0;
    if (unterminated) this.loadLine(pending.toString('utf8'), this.size - pending.length, pending.length);
    if (total > 0 && corrupt / total > CORRUPT_ALERT_THRESHOLD) {
      closeSync(this.fd);
      throw new Error(`${this.filename}: ${corrupt} of ${total} lines are unreadable; refusing to load it (as NeDB does) to prevent data loss`);
    }
    this.retain();
    if (unterminated || this.lines.count > this.liveCount) await this.compact();
  }

  /** Indexes one line of the datafile as loaded; false when it cannot be read. */
  private loadLine(text: string, offset: number, length: number): boolean {
    let doc: Doc;
    try {
      doc = model.deserialize(text);
    } catch {
      this.lines.push(NaN, offset, length, 0, false);
      return false;
    }
    const id = doc._id;
    if (typeof id !== 'string' || id === '') {
      // Index definitions ($$indexCreated / $$indexRemoved) from NeDB: not needed here.
      this.lines.push(NaN, offset, length, 0, false);
      return true;
    }
    const previous = this.lineOf(id, this.reader());
    if (doc.$$deleted === true) {
      if (previous !== undefined) this.kill(previous);
      this.lines.push(NaN, offset, length, 0, false);
      return true;
    }
    this.addLine(doc, offset, length, previous);
    return true;
  }

  /**
   * Rewrites the datafile with the live records only (untimed ones first, then by time), into a
   * temp file that is flushed to disk and renamed over the old one (as NeDB compacts), and
   * rebuilds the index for the new offsets.
   */
  private async compact(): Promise<void> {
    const temp = `${this.filename}~`;
    const out = openSync(temp, 'w', 0o600);
    const lines = this.lines;
    const order = this.timeOrder();
    const keep: number[] = [];
    for (let line = 0; line < lines.count; line++) if (lines.live[line] === 1 && Number.isNaN(lines.time[line])) keep.push(line);
    const untimed = keep.length;
    for (let at = this.oldestLive; at < this.byTimeCount; at++) if (lines.live[order[at]!] === 1) keep.push(order[at]!);
    const next = new Lines();
    /** Old line → new line. */
    const moved = new Int32Array(lines.count);
    const reader = this.reader();
    let buffered: Buffer[] = [];
    let bufferedBytes = 0;
    let written = 0;
    const flush = () => {
      const bytes = Buffer.concat(buffered);
      writeAllSync(out, bytes);
      buffered = [];
      bufferedBytes = 0;
    };
    try {
      for (const line of keep) {
        const length = lines.length[line]!;
        // A view of the reader's block (a block is replaced by the next one, never overwritten).
        buffered.push(reader.read(lines.offset[line]!, length, false), NEWLINE);
        moved[line] = next.push(lines.time[line]!, written, length, lines.hash[line]!, true);
        written += length + 1;
        bufferedBytes += length + 1;
        if (bufferedBytes >= WRITE_BYTES) {
          flush();
          await yieldToEventLoop();
        }
      }
      flush();
      await flushToDisk(out);
    } finally {
      closeSync(out);
    }
    renameSync(temp, this.filename);
    try {
      const dir = openSync(path.dirname(this.filename), 'r');
      try {
        await flushToDisk(dir);
      } finally {
        closeSync(dir);
      }
    } catch {
      // Not every platform can fsync a directory; the rename is still atomic.
    }
    closeSync(this.fd);
    this.fd = openSync(this.filename, 'a+', 0o600);
    this.size = written;
    this.lines = next;
    for (const [hash, line] of this.byHash) this.byHash.set(hash, moved[line]!);
    for (const [id, line] of this.overflow) this.overflow.set(id, moved[line]!);
    this.byTime = new Uint32Array(Math.max(1024, keep.length - untimed));
    for (let line = untimed; line < keep.length; line++) this.byTime[line - untimed] = line;
    this.byTimeCount = keep.length - untimed;
    this.oldestLive = 0;
  }

  /** Compacts once dead lines outnumber live ones (and a minimum), after the current operation. */
  private compactWhenDue(): void {
    const dead = this.lines.count - this.liveCount;
    if (dead < Math.max(COMPACT_MIN_DEAD, this.liveCount)) return;
    void this.run(() => (this.lines.count - this.liveCount >= Math.max(COMPACT_MIN_DEAD, this.liveCount) ? this.compact() : undefined))
      .catch(() => undefined); // a failed compaction leaves the old file in use: retried when due again
  }

  // ---------------------------------------------------------------------------------------------
  // Queries
  // ---------------------------------------------------------------------------------------------

  /** Which lines a query must look at, and in which order. */
  private plan(query: Doc, sort: Record<string, 1 | -1> | undefined): Plan {
    const expiredBefore = this.expiredBefore();
    const visible = (line: number) => this.isVisible(line, expiredBefore);
    const id = query._id;
    if (typeof id === 'string') {
      const line = this.lineOf(id, this.reader());
      return { lines: line !== undefined && visible(line) ? [line] : [], backwards: false, timeOrdered: 0 };
    }
    const field = this.options.timeField;
    const sortKeys = sort ? Object.keys(sort) : [];
    // Unsorted reads go newest first too: the admin API asks for recent events.
    const direction: 1 | -1 = sortKeys[0] === field ? sort![field]! : -1;
    const byTime = this.untimedLive === 0 && (sortKeys.length === 0 || sortKeys[0] === field);
    const range = this.timeRange(query[field]);
    if (!byTime && !range) {
      // Everything, newest line first.
      const lines = this.lines;
      return { lines: (function* () { for (let line = lines.count - 1; line >= 0; line--) if (visible(line)) yield line; })(), backwards: true, timeOrdered: 0 };
    }
    const order = this.timeOrder();
    const from = range ? Math.max(this.oldestLive, this.timePosition(range.low, range.lowExclusive)) : this.oldestLive;
    const to = range ? this.timePosition(range.high, !range.highExclusive) : this.byTimeCount;
    if (range && !byTime) {
      // Only records with a Date can be in a Date range; the rest of the query is matched per line.
      return { lines: (function* () { for (let at = to - 1; at >= from; at--) if (visible(order[at]!)) yield order[at]!; })(), backwards: true, timeOrdered: 0 };
    }
    const descending = direction === -1;
    return {
      lines: descending
        ? (function* () { for (let at = to - 1; at >= from; at--) if (visible(order[at]!)) yield order[at]!; })()
        : (function* () { for (let at = from; at < to; at++) if (visible(order[at]!)) yield order[at]!; })(),
      backwards: descending,
      timeOrdered: sortKeys.length === 0 ? 0 : direction,
    };
  }

  /** The Date bounds a query puts on the time field, when it puts any that an index range can answer. */
  private timeRange(condition: unknown): { low: number; lowExclusive: boolean; high: number; highExclusive: boolean } | null {
    if (condition instanceof Date) return { low: condition.getTime(), lowExclusive: false, high: condition.getTime(), highExclusive: false };
    if (typeof condition !== 'object' || condition === null || Array.isArray(condition)) return null;
    const range = { low: -Infinity, lowExclusive: false, high: Infinity, highExclusive: false };
    let bounded = false;
    for (const [op, value] of Object.entries(condition)) {
      if (!(value instanceof Date)) continue;
      const t = value.getTime();
      if (op === '$gt' || op === '$gte') {
        if (t > range.low || (t === range.low && op === '$gt')) Object.assign(range, { low: t, lowExclusive: op === '$gt' });
        bounded = true;
      } else if (op === '$lt' || op === '$lte') {
        if (t < range.high || (t === range.high && op === '$lt')) Object.assign(range, { high: t, highExclusive: op === '$lt' });
        bounded = true;
      }
    }
    return bounded ? range : null;
  }

  /**
   * Text that every line matching `query` contains: the JSON of each string a top-level field (or
   * a plain condition under $and) must equal. A record whose field is, or holds, that string has it
   * in its line verbatim (the line is JSON.stringify's output), so a line without it is skipped
   * unparsed: a lookup by requestId reads the file rather than parsing it.
   */
  private needles(query: Doc): Buffer[] {
    const needles: Buffer[] = [];
    const conditions = [query, ...(Array.isArray(query.$and) ? (query.$and as Doc[]) : [])];
    for (const condition of conditions) {
      for (const [field, value] of Object.entries(condition)) {
        if (!field.startsWith('$') && typeof value === 'string') needles.push(Buffer.from(JSON.stringify(value), 'utf8'));
      }
    }
    return needles;
  }

  /** The matching records with their lines: sorted, skipped and limited as NeDB's cursor does. */
  private async select(filter: Filter, options: FindOptions = {}): Promise<{ doc: Doc; line: number }[]> {
    const query = nedbFilter(toStoredFilter(filter));
    const sort = toStoredSort(options.sort);
    const plan = this.plan(query, sort);
    const needles = this.needles(query);
    const reader = this.reader();
    const skip = options.skip ?? 0;
    const wanted = options.limit ? skip + options.limit : Infinity; // NeDB: a limit of 0 is no limit
    const found: { doc: Doc; line: number }[] = [];
    let visited = 0;
    let boundary: number | null = null;
    for (const line of plan.lines) {
      if (++visited % SCAN_CHUNK === 0) await yieldToEventLoop();
      if (found.length >= wanted) {
        if (!sort) break;
        // Sorted by time first: past the time of the last wanted match, nothing can sort before it.
        if (plan.timeOrdered !== 0 && this.lines.time[line] !== boundary) break;
      }
      const doc = this.readLine(line, reader, plan.backwards, needles);
      if (doc === null || !model.match(doc, query)) continue;
      found.push({ doc, line });
      if (found.length === wanted && sort && plan.timeOrdered !== 0) boundary = this.lines.time[line]!;
    }
    if (sort) {
      const criteria = Object.entries(sort);
      found.sort((a, b) => {
        for (const [key, direction] of criteria) {
          const order = direction * model.compareThings(model.getDotValue(a.doc, key), model.getDotValue(b.doc, key));
          if (order !== 0) return order;
        }
        return 0;
      });
      return found.slice(skip, wanted);
    }
    return found.slice(skip);
  }

  // ---------------------------------------------------------------------------------------------
  // The port
  // ---------------------------------------------------------------------------------------------

  async insert(doc: T): Promise<T> {
    await this.insertMany([doc]);
    return fromStored<T>(toStored(doc, this.spec), this.spec)!;
  }

  insertMany(docs: T[]): Promise<void> {
    if (docs.length === 0) return Promise.resolve();
    return this.run(() => {
      const stored = docs.map((doc) => toStored(doc, this.spec));
      for (const doc of stored) model.checkObject(doc); // NeDB's check of field names
      const reader = this.reader();
      const seen = new Set<string>();
      const accepted = stored.filter((doc) => {
        const id = doc._id as string;
        if (seen.has(id) || this.lineOf(id, reader) !== undefined) return false;
        seen.add(id);
        return true;
      });
      if (accepted.length > 0) this.writeRecords(accepted, accepted.map(() => undefined));
      this.retain();
      this.compactWhenDue();
      if (accepted.length < stored.length) throw new ConflictError(this.name, 'id');
    });
  }

  findOne(filter: Filter): Promise<T | null> {
    return this.run(async () => fromStored<T>((await this.select(filter, { limit: 1 }))[0]?.doc, this.spec));
  }

  find(filter: Filter, options?: FindOptions): Promise<T[]> {
    return this.run(async () => (await this.select(filter, options)).map(({ doc }) => fromStored<T>(doc, this.spec)!));
  }

  count(filter: Filter): Promise<number> {
    return this.run(async () => {
      if (Object.values(filter).every((value) => value === undefined)) {
        const expiredBefore = this.expiredBefore();
        if (expiredBefore === -Infinity) return this.liveCount;
        let expired = 0;
        const order = this.timeOrder();
        for (let at = this.oldestLive; at < this.byTimeCount && this.lines.time[order[at]!]! < expiredBefore; at++) {
          if (this.lines.live[order[at]!] === 1) expired++;
        }
        return this.liveCount - expired;
      }
      return (await this.select(filter)).length;
    });
  }

  /** Applies `update` to the matches (all of them, or the first) and appends their new versions. */
  private async modify(filter: Filter, update: Update, multi: boolean): Promise<Doc[]> {
    const stored = toStoredUpdate(update, this.spec);
    const matches = await this.select(filter, multi ? {} : { limit: 1 });
    const updated = matches.map(({ doc }) => model.modify(doc, stored));
    if (updated.length > 0) this.writeRecords(updated, matches.map(({ line }) => line));
    this.compactWhenDue();
    return updated;
  }

  updateOne(filter: Filter, update: Update): Promise<T | null> {
    return this.run(async () => fromStored<T>((await this.modify(filter, update, false))[0], this.spec));
  }

  updateMany(filter: Filter, update: Update): Promise<number> {
    return this.run(async () => (await this.modify(filter, update, true)).length);
  }

  private async remove(filter: Filter, multi: boolean): Promise<number> {
    const matches = await this.select(filter, multi ? {} : { limit: 1 });
    if (matches.length === 0) return 0;
    this.append(matches.map(({ doc }) => `${JSON.stringify({ $$deleted: true, _id: doc._id })}\n`).join(''));
    for (const { line } of matches) this.kill(line);
    // The deletion lines: dead from the start, gone at the next compaction.
    for (let i = 0; i < matches.length; i++) this.lines.push(NaN, 0, 0, 0, false);
    this.compactWhenDue();
    return matches.length;
  }

  deleteOne(filter: Filter): Promise<boolean> {
    return this.run(async () => (await this.remove(filter, false)) > 0);
  }

  deleteMany(filter: Filter): Promise<number> {
    return this.run(() => this.remove(filter, true));
  }

  /** Writes what retention dropped out of the file, and releases it. */
  close(): Promise<void> {
    return this.run(async () => {
      if (this.fd === -1) return;
      this.retain();
      if (this.lines.count > this.liveCount) await this.compact();
      closeSync(this.fd);
      this.fd = -1;
    });
  }
}

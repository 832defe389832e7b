/**
 * A stored record (codec.ts form: `_id`, JSON fields as text) as one row of the SQLite store: `doc`
 * is the record as JSON (kept as SQLite's binary JSONB, which json_extract reads without parsing
 * text, and read back as text by json()) with every Date written as its epoch milliseconds (so the indexes and the
 * SQL comparisons order them as numbers), and `dates` lists the paths that held a Date, so that
 * they come back as Dates. Also applies the port's update operators to a record in memory, inside
 * the transaction that read it (sqlite-store.ts).
 */
type Doc = Record<string, unknown>;

export interface Row {
  doc: string;
  dates: string | null;
}

const isPlainObject = (value: unknown): value is Doc =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);

/** A copy of `value` with Dates as milliseconds, their paths pushed to `dates`. */
function withoutDates(value: unknown, prefix: string, dates: string[]): unknown {
  if (value instanceof Date) {
    dates.push(prefix);
    return value.getTime();
  }
  if (Array.isArray(value)) return value.map((item, index) => withoutDates(item, `${prefix}.${index}`, dates));
  if (!isPlainObject(value)) return value;
  const out: Doc = {};
  for (const key in value) if (Object.prototype.hasOwnProperty.call(value, key)) out[key] = withoutDates(value[key], `${prefix}.${key}`, dates);
  return out;
}

export function encodeRow(stored: Doc): Row {
  const dates: string[] = [];
  const copy: Doc = {};
  for (const key in stored) {
    if (!Object.prototype.hasOwnProperty.call(stored, key)) continue;
    const value = stored[key];
    // Most fields are flat: only walk into the ones that can hold a Date.
    copy[key] = typeof value === 'object' && value !== null ? withoutDates(value, key, dates) : value;
  }
  return { doc: JSON.stringify(copy), dates: dates.length > 0 ? dates.join(',') : null };
}

export function decodeRow(row: Row): Doc {
  const doc = JSON.parse(row.doc) as Doc;
  if (row.dates) {
    for (const path of row.dates.split(',')) {
      const dot = path.lastIndexOf('.');
      const holder = dot === -1 ? doc : getPath(doc, path.slice(0, dot));
      const key = dot === -1 ? path : path.slice(dot + 1);
      if (holder && typeof holder === 'object') {
        const slot = holder as Doc;
        if (typeof slot[key] === 'number') slot[key] = new Date(slot[key] as number);
      }
    }
  }
  return doc;
}

function getPath(doc: Doc, path: string): unknown {
  let at: unknown = doc;
  for (const part of path.split('.')) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Doc)[part];
  }
  return at;
}

/** The object holding the last part of `path`, created on the way when `create`. */
function parentOf(doc: Doc, path: string, create: boolean): [Doc | null, string] {
  const parts = path.split('.');
  let at: Doc = doc;
  for (const part of parts.slice(0, -1)) {
    let next = at[part];
    if (next === undefined || next === null) {
      if (!create) return [null, ''];
      next = at[part] = {};
    }
    if (typeof next !== 'object') throw new Error(`${path}: ${part} is not an object`);
    at = next as Doc;
  }
  return [at, parts[parts.length - 1]!];
}

const same = (a: unknown, b: unknown): boolean =>
  a instanceof Date && b instanceof Date ? a.getTime() === b.getTime() : a === b;

function arrayAt(holder: Doc, key: string, path: string): unknown[] {
  const value = holder[key] ?? [];
  if (!Array.isArray(value)) throw new Error(`${path} is not an array`);
  return value;
}

/** Applies a stored update (codec.ts's toStoredUpdate) to `doc`, in place, as MongoDB does. */
export function applyUpdate(doc: Doc, update: Doc): void {
  for (const [op, fields] of Object.entries(update)) {
    for (const [path, value] of Object.entries(fields as Doc)) {
      const [holder, key] = parentOf(doc, path, op !== '$unset' && op !== '$pull');
      if (!holder) continue;
      switch (op) {
        case '$set': holder[key] = value; break;
        case '$unset': delete holder[key]; break;
        case '$inc': {
          const current = holder[key] ?? 0;
          if (typeof current !== 'number' || typeof value !== 'number') throw new Error(`$inc of a non-number at ${path}`);
          holder[key] = current + value;
          break;
        }
        case '$addToSet': {
          const list = arrayAt(holder, key, path);
          holder[key] = list.some((item) => same(item, value)) ? list : [...list, value];
          break;
        }
        case '$pull': {
          if (holder[key] !== undefined) holder[key] = arrayAt(holder, key, path).filter((item) => !same(item, value));
          break;
        }
        default: throw new Error(`unsupported update operator ${op}`);
      }
    }
  }
}

/** Translation between domain records and stored documents, shared by both adapters. */
import type { CollectionSpec } from './specs.js';
import type { Filter, FindOptions, Update } from './ports.js';

type Doc = Record<string, unknown>;

const hasOwn = Object.prototype.hasOwnProperty;

// Both copy field by field in one loop: an object rest pattern ({ id, ...rest }) takes V8's slow
// path (about twice the time), and every store read and write goes through these.

export function toStored(record: { id: string }, spec: CollectionSpec): Doc {
  const source = record as { id: string } & Doc;
  const doc: Doc = { _id: source.id };
  for (const key in source) if (key !== 'id' && hasOwn.call(source, key)) doc[key] = source[key];
  if (spec.json) {
    for (const field of spec.json) {
      if (field in doc) doc[field] = doc[field] === undefined ? null : JSON.stringify(doc[field]);
    }
  }
  return doc;
}

export function fromStored<T>(doc: Doc | null | undefined, spec: CollectionSpec): T | null {
  if (!doc) return null;
  const record: Doc = { id: String(doc._id) };
  for (const key in doc) if (key !== '_id' && key !== '__v' && hasOwn.call(doc, key)) record[key] = doc[key];
  if (spec.json) {
    for (const field of spec.json) {
      const value = record[field];
      record[field] = typeof value === 'string' ? JSON.parse(value) : (value ?? null);
    }
  }
  return record as T;
}

const renameId = (key: string): string => (key === 'id' ? '_id' : key);

export function toStoredFilter(filter: Filter): Doc {
  const out: Doc = {};
  for (const [key, value] of Object.entries(filter)) {
    if (value === undefined) continue;
    if (key === '$or') out.$or = (value as Filter[]).map(toStoredFilter);
    else out[renameId(key)] = value;
  }
  return out;
}

export function toStoredUpdate(update: Update, spec: CollectionSpec): Doc {
  const out: Doc = {};
  for (const [op, fields] of Object.entries(update)) {
    if (!fields) continue;
    const mapped: Doc = {};
    for (const [field, value] of Object.entries(fields as Doc)) {
      if (field === 'id') throw new Error('the id of a record cannot change');
      const json = spec.json?.find((name) => field === name || field.startsWith(`${name}.`));
      // Stored as JSON text: only a whole value can be set or unset, never a path inside it.
      if (json && (field !== json || (op !== '$set' && op !== '$unset'))) {
        throw new Error(`${json} is a JSON field: it can only be $set or $unset whole, not ${op} ${field}`);
      }
      mapped[field] = op === '$set' && spec.json?.includes(field) ? JSON.stringify(value ?? null) : value;
    }
    out[op] = mapped;
  }
  return out;
}

export function toStoredSort(sort: FindOptions['sort']): Record<string, 1 | -1> | undefined {
  if (!sort) return undefined;
  const out: Record<string, 1 | -1> = {};
  for (const [key, direction] of Object.entries(sort)) out[renameId(key)] = direction;
  return out;
}

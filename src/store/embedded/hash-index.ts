/**
 * Hash-backed indexes for NeDB (4.x). NeDB keeps every index as an AVL tree
 * (@seald-io/binary-search-tree) ordered by its compareThings: each insert walks and rebalances
 * the tree, comparing keys at every level, and each node costs some ten properties of memory. An
 * index only ever asked for equality or $in (unique hashes, ids, foreign keys) does not need the
 * order: a Map answers those in O(1), without a comparison, in a fraction of the memory.
 *
 * HashTree offers what NeDB's Index calls on its tree (insert, delete, search, betweenBounds,
 * executeOnEveryNode), with the tree's answers:
 * - keys are equal when compareThings says so: strings, numbers, booleans, null and undefined by
 *   value (a Map's SameValueZero, which also takes 0 and -0 as one key, as compareThings does), Dates
 *   by their time, objects and arrays by a canonical text of their content;
 * - a unique tree refuses a second record under a key with the same error (errorType 'uniqueViolated', key);
 * - the records under one key keep their insertion order; deleting (key, doc) from a key held by
 *   several removes that doc, and from a key held by one removes the key (as the tree does);
 * - betweenBounds (a range on a hashed field) scans every key and sorts the matching ones by
 *   compareThings, so it answers what the tree does, in the tree's order, at the cost of a scan.
 * One difference: executeOnEveryNode (NeDB's getAll, and getAllData for the _id index) visits keys
 * in insertion order, not key order. NeDB promises no order for a query without a sort, and
 * neither does MongoDB (its natural order is close to insertion order).
 */
import { createRequire } from 'node:module';

type Doc = Record<string, unknown>;
/** One key's records: the record itself when it is the only one (most keys), else an array. */
type Entry = Doc | Doc[];
type Bounds = { $gt?: unknown; $gte?: unknown; $lt?: unknown; $lte?: unknown };

const require = createRequire(import.meta.url);
const model = require('@seald-io/nedb/lib/model.js') as { compareThings(a: unknown, b: unknown): number };
const Index = require('@seald-io/nedb/lib/indexes.js') as {
  prototype: { reset(newData?: Doc | Doc[]): void; insert(doc: Doc | Doc[]): void; getAll(): Doc[] };
};
/** The tree's own bound matchers (they only use this.compareKeys), so ranges mean exactly what they do there. */
const BST = require('@seald-io/binary-search-tree').BinarySearchTree as {
  prototype: {
    getLowerBoundMatcher(this: { compareKeys: (a: unknown, b: unknown) => number }, query: Bounds): (key: unknown) => boolean;
    getUpperBoundMatcher(this: { compareKeys: (a: unknown, b: unknown) => number }, query: Bounds): (key: unknown) => boolean;
  };
};

const compareKeys = model.compareThings;

/** The text of an object or array key under which compareThings-equal keys coincide. */
function canonical(value: unknown): string {
  if (value === undefined) return 'u';
  if (value === null) return 'n';
  if (typeof value === 'string') return `s${JSON.stringify(value)}`;
  if (typeof value === 'number') return `d${Object.is(value, -0) ? 0 : value}`;
  if (typeof value === 'boolean') return `b${value}`;
  if (value instanceof Date) return `t${value.getTime()}`;
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const record = value as Record<string, unknown>;
  // compareThings compares objects by their sorted keys and then those keys' values.
  return `{${Object.keys(record).sort().map((key) => `${JSON.stringify(key)}:${canonical(record[key])}`).join(',')}}`;
}

/** A node as NeDB's getAll sees it. */
interface Node { key: unknown; data: Doc[] }

export class HashTree {
  /** Strings, numbers, booleans, null, undefined: the Map's own equality is compareThings'. */
  private readonly plain = new Map<unknown, Entry>();
  /** Dates by their time (a Date's identity is not its value). */
  private readonly dates = new Map<number, Entry>();
  /** Objects and arrays by canonical text, with one of the keys for ranges and getAll. */
  private readonly objects = new Map<string, { key: unknown; entry: Entry }>();

  constructor(readonly unique: boolean) {}

  private get(key: unknown): Entry | undefined {
    if (key instanceof Date) return this.dates.get(key.getTime());
    if (typeof key === 'object' && key !== null) return this.objects.get(canonical(key))?.entry;
    return this.plain.get(key);
  }

  private set(key: unknown, entry: Entry | undefined): void {
    if (key instanceof Date) {
      if (entry === undefined) this.dates.delete(key.getTime());
      else this.dates.set(key.getTime(), entry);
    } else if (typeof key === 'object' && key !== null) {
      const text = canonical(key);
      if (entry === undefined) this.objects.delete(text);
      else this.objects.set(text, { key: this.objects.get(text)?.key ?? key, entry });
    } else if (entry === undefined) {
      this.plain.delete(key);
    } else {
      this.plain.set(key, entry);
    }
  }

  insert(key: unknown, doc: Doc): void {
    const entry = this.get(key);
    if (entry === undefined) {
      this.set(key, doc);
      return;
    }
    if (this.unique) {
      const error = new Error(`Can't insert key ${JSON.stringify(key)}, it violates the unique constraint`) as Error & { key: unknown; errorType: string };
      error.key = key;
      error.errorType = 'uniqueViolated';
      throw error;
    }
    if (Array.isArray(entry)) entry.push(doc);
    else this.set(key, [entry, doc]);
  }

  /** Without `doc`, or when the key holds one record, the key goes; else every occurrence of `doc` under it. */
  delete(key: unknown, doc?: Doc): void {
    const entry = this.get(key);
    if (entry === undefined) return;
    if (!Array.isArray(entry) || doc === undefined) {
      this.set(key, undefined);
      return;
    }
    let kept = 0;
    for (const held of entry) if (held !== doc) entry[kept++] = held;
    entry.length = kept;
    if (kept === 1) this.set(key, entry[0]!);
  }

  /**
   * The records under `key`. Like the tree, a key held by several records gives the index's own
   * array (NeDB copies its candidates before it changes anything; copying here would cost a copy of
   * every user for a count by type); a key held by one gives a new array.
   */
  search(key: unknown): Doc[] {
    const entry = this.get(key);
    if (entry === undefined) return [];
    return Array.isArray(entry) ? entry : [entry];
  }

  /**
   * Puts `newDoc` where `oldDoc` is under `key` (an update that keeps the key), in O(1) for a key
   * held by one record. False, and nothing changed, when `oldDoc` is not there.
   */
  replace(key: unknown, oldDoc: Doc, newDoc: Doc): boolean {
    const entry = this.get(key);
    if (entry === oldDoc) {
      this.set(key, newDoc);
      return true;
    }
    if (!Array.isArray(entry)) return false;
    const at = entry.indexOf(oldDoc);
    if (at < 0) return false;
    entry[at] = newDoc;
    return true;
  }

  /** Every key with its records (in insertion order of the keys, see above). */
  executeOnEveryNode(fn: (node: Node) => void): void {
    for (const [key, entry] of this.plain) fn({ key, data: Array.isArray(entry) ? entry : [entry] });
    for (const [time, entry] of this.dates) fn({ key: new Date(time), data: Array.isArray(entry) ? entry : [entry] });
    for (const { key, entry } of this.objects.values()) fn({ key, data: Array.isArray(entry) ? entry : [entry] });
  }

  /** Every record (NeDB's Index.getAll, without a node per key). */
  all(): Doc[] {
    const out: Doc[] = [];
    const add = (entry: Entry) => {
      if (Array.isArray(entry)) for (const doc of entry) out.push(doc);
      else out.push(entry);
    };
    for (const entry of this.plain.values()) add(entry);
    for (const entry of this.dates.values()) add(entry);
    for (const { entry } of this.objects.values()) add(entry);
    return out;
  }

  /** The records whose key lies within the bounds, ordered by key (as the tree returns them). */
  betweenBounds(query: Bounds): Doc[] {
    const self = { compareKeys };
    const lower = BST.prototype.getLowerBoundMatcher.call(self, query);
    const upper = BST.prototype.getUpperBoundMatcher.call(self, query);
    const matching: Node[] = [];
    this.executeOnEveryNode((node) => {
      if (lower(node.key) && upper(node.key)) matching.push(node);
    });
    matching.sort((a, b) => compareKeys(a.key, b.key));
    return matching.flatMap((node) => node.data);
  }

  getNumberOfKeys(): number {
    return this.plain.size + this.dates.size + this.objects.size;
  }
}

interface IndexLike {
  unique: boolean;
  tree: unknown;
  reset(newData?: Doc | Doc[]): void;
  insert(doc: Doc | Doc[]): void;
}

let installed = false;

/** Makes a reset (NeDB's load) of a hashed index keep it hashed, and its getAll direct. Once per process. */
function installOnIndex(): void {
  if (installed) return;
  installed = true;
  const { reset, getAll } = Index.prototype;
  Index.prototype.getAll = function (this: IndexLike) {
    return this.tree instanceof HashTree ? this.tree.all() : getAll.call(this);
  };
  Index.prototype.reset = function (this: IndexLike, newData?: Doc | Doc[]) {
    if (!(this.tree instanceof HashTree)) {
      reset.call(this, newData);
      return;
    }
    this.tree = new HashTree(this.unique);
    if (newData) this.insert(newData);
  };
}

/** Turns a NeDB Index (built as a tree) into a hashed one holding the same records. */
export function useHashIndex(index: unknown): void {
  installOnIndex();
  const target = index as IndexLike;
  if (target.tree instanceof HashTree) return;
  const tree = target.tree as { executeOnEveryNode(fn: (node: { key?: unknown; data: Doc[] }) => void): void };
  const hashed = new HashTree(target.unique);
  tree.executeOnEveryNode((node) => {
    if (!Object.prototype.hasOwnProperty.call(node, 'key')) return; // the root of an empty tree
    for (const doc of node.data) hashed.insert(node.key, doc);
  });
  target.tree = hashed;
}

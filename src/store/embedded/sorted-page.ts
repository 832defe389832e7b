/**
 * Sorted pages and counts for the embedded store, answered from NeDB's in-memory indexes.
 *
 * NeDB (4.x) answers `find(query).sort(s).limit(n)` by gathering every candidate, checking each
 * for expiry and the query, sorting all that match and only then cutting n: "the 51 newest of
 * 100,000 users" sorted 100,000. And count() reads every candidate each time. Here instead:
 *
 * - orderedFind: when the first sort key has a (non-sparse, single-field) tree index, walk that
 *   tree in the sort's direction from the query's own bound on the field, testing each record,
 *   and stop once n records match and the key changes (so records sharing the last key are all
 *   seen and the remaining sort keys order them as NeDB would). When NeDB would rather take its
 *   candidates from an equality or $in index (a selective filter), those candidates are kept and
 *   only the best n of them are ordered (no full sort).
 * - countMatching: how many records match, remembered per query until the datastore next writes
 *   (every change NeDB makes to its records is handed to persistence.persistNewStateAsync in the
 *   same synchronous step, which this wraps), minus those that have expired by now, read from the
 *   TTL indexes. With no condition, the number of _id keys is the count.
 * - compileQuery: the query as one function with model.match's answers, for the shapes the
 *   domain sends (field values, ranges, $in, $regex, $or, $and, $not); a search that reads every
 *   record spends its time reading them, not in NeDB's generic matcher.
 *
 * Both give exactly NeDB's answer (same records, same order for a sort that orders every record:
 * one ending with _id; same count), using NeDB's own comparison. Both read NeDB's indexes
 * synchronously outside its executor: NeDB changes its in-memory records and indexes in
 * synchronous steps, so between awaits they are consistent, and what is read holds every write
 * whose promise has resolved. Expired records are skipped, not removed: NeDB removes them when
 * its own reads meet them. Anything unexpected (no tree index, an array key, a skip) returns
 * undefined, and the caller asks NeDB.
 */
import { createRequire } from 'node:module';

type Doc = Record<string, unknown>;

/** A node of NeDB's AVL index tree (@seald-io/binary-search-tree): the records with one key. */
interface TreeNode { key?: unknown; data: Doc[]; left?: TreeNode | null; right?: TreeNode | null }

interface IndexLike {
  _fields?: string[];
  sparse?: boolean;
  tree?: { tree?: TreeNode; getNumberOfKeys?(): number };
  getBetweenBounds?(query: Record<string, unknown>): Doc[];
}

interface PersistenceLike {
  persistNewStateAsync(docs: unknown[]): Promise<void>;
}

/** The parts of NeDB's Datastore this reads (node_modules/@seald-io/nedb/lib/datastore.js). */
interface DatastoreLike {
  indexes: Record<string, IndexLike | undefined>;
  ttlIndexes: Record<string, number>;
  compareStrings?: (a: string, b: string) => number;
  persistence: PersistenceLike;
  _getRawCandidates(query: Doc): Doc[];
}

const require = createRequire(import.meta.url);
const model = require('@seald-io/nedb/lib/model.js') as {
  match(doc: Doc, query: Doc): boolean;
  areThingsEqual(a: unknown, b: unknown): boolean;
  compareThings(a: unknown, b: unknown, compareStrings?: (a: string, b: string) => number): number;
  getDotValue(doc: Doc, field: string): unknown;
  deepCopy<D>(doc: D): D;
};

const RANGE_OPS = ['$lt', '$lte', '$gt', '$gte'] as const;

/** The tree of a plain single-field index on `field`, or undefined. */
function treeRoot(db: DatastoreLike, field: string): TreeNode | undefined {
  const index = db.indexes[field];
  const root = index?.tree?.tree;
  if (!index || index.sparse || index._fields?.length !== 1 || !root || !Array.isArray(root.data)) return undefined;
  return root;
}

interface Bound { value: unknown; inclusive: boolean }

/**
 * Visits the nodes of the tree in order (descending when `descending`), from `from` towards `to`
 * (either may be absent), until `visit` returns false. (A full scan visits every node: no
 * closures per node here.)
 */
function walk(root: TreeNode, descending: boolean, compare: (a: unknown, b: unknown) => number,
  from: Bound | undefined, to: Bound | undefined, visit: (node: TreeNode) => boolean): void {
  if (!Object.prototype.hasOwnProperty.call(root, 'key')) return; // an empty tree
  const sign = descending ? -1 : 1;
  const stack: TreeNode[] = [];
  let node: TreeNode | null | undefined = root;
  for (;;) {
    while (node) {
      // Before `from` in the walk's direction: the node and everything on its near side are skipped.
      let skip = false;
      if (from) {
        const c = compare(node.key, from.value) * sign;
        skip = c < 0 || (c === 0 && !from.inclusive);
      }
      if (skip) node = descending ? node.left : node.right;
      else {
        stack.push(node);
        node = descending ? node.right : node.left;
      }
    }
    const current = stack.pop();
    if (!current) return;
    if (to) {
      const c = compare(current.key, to.value) * sign;
      if (c > 0 || (c === 0 && !to.inclusive)) return;
    }
    if (!visit(current)) return;
    node = descending ? current.left : current.right;
  }
}

type Test = (doc: Doc) => boolean;

const isRegExp = (value: unknown): value is RegExp => Object.prototype.toString.call(value) === '[object RegExp]';
const isDate = (value: unknown): value is Date => Object.prototype.toString.call(value) === '[object Date]';

/** NeDB's areComparable (model.js), for its $lt, $lte, $gt and $gte. */
function comparable(a: unknown, b: unknown): boolean {
  if (typeof a !== 'string' && typeof a !== 'number' && !isDate(a) && typeof b !== 'string' && typeof b !== 'number' && !isDate(b)) return false;
  return typeof a === typeof b;
}

/**
 * One field's condition as NeDB's matchQueryPart (model.js) decides it for a value that is not an
 * array (an array goes to NeDB's own matcher), or undefined for conditions this does not spell out.
 */
function fieldTest(field: string, condition: unknown): Test | undefined {
  let test: ((value: unknown) => boolean) | undefined;
  if (isRegExp(condition)) {
    test = (value) => typeof value === 'string' && condition.test(value);
  } else if (condition !== null && typeof condition === 'object' && !Array.isArray(condition) && !isDate(condition)
    && Object.keys(condition).length > 0) {
    const ops = Object.entries(condition as Doc);
    if (!ops.every(([op]) => op.startsWith('$'))) return undefined;
    const tests: ((value: unknown) => boolean)[] = [];
    for (const [op, operand] of ops) {
      const b = operand as string | number | Date;
      if (op === '$lt') tests.push((a) => comparable(a, b) && (a as typeof b) < b);
      else if (op === '$lte') tests.push((a) => comparable(a, b) && (a as typeof b) <= b);
      else if (op === '$gt') tests.push((a) => comparable(a, b) && (a as typeof b) > b);
      else if (op === '$gte') tests.push((a) => comparable(a, b) && (a as typeof b) >= b);
      else if (op === '$ne') tests.push((a) => a === undefined || !model.areThingsEqual(a, operand));
      else if (op === '$in' && Array.isArray(operand)) tests.push((a) => operand.some((el) => model.areThingsEqual(a, el)));
      else if (op === '$nin' && Array.isArray(operand)) tests.push((a) => !operand.some((el) => model.areThingsEqual(a, el)));
      else if (op === '$regex' && isRegExp(operand)) tests.push((a) => typeof a === 'string' && operand.test(a));
      else return undefined;
    }
    test = tests.length === 1 ? tests[0]! : (value) => {
      for (const t of tests) if (!t(value)) return false;
      return true;
    };
  } else if (condition === null || typeof condition !== 'object' || isDate(condition)) {
    // A plain value (a Date included: NeDB finds no operator keys in it and compares for equality).
    test = (value) => model.areThingsEqual(value, condition);
  }
  if (!test) return undefined;
  const single = test;
  const part = { [field]: condition };
  return (doc) => {
    const value = doc[field];
    return Array.isArray(value) ? model.match(doc, part) : single(value);
  };
}

/**
 * The query as one function with exactly NeDB's answers (model.match), without its per-record
 * dispatch (operator lookups, dotted-path splits, type probes); undefined for a query shape this
 * does not spell out (dotted paths, $where, $size, $elemMatch, ...): then model.match it is.
 */
export function compileQuery(query: unknown): Test | undefined {
  if (query === null || typeof query !== 'object' || Array.isArray(query) || isDate(query) || isRegExp(query)) return undefined;
  const tests: Test[] = [];
  for (const [key, condition] of Object.entries(query as Doc)) {
    if (key === '$or' || key === '$and') {
      if (!Array.isArray(condition)) return undefined;
      const parts = condition.map(compileQuery);
      if (parts.some((part) => part === undefined)) return undefined;
      const all = parts as Test[];
      tests.push(key === '$or'
        ? (doc) => {
          for (const t of all) if (t(doc)) return true;
          return false;
        }
        : (doc) => {
          for (const t of all) if (!t(doc)) return false;
          return true;
        });
    } else if (key === '$not') {
      const inner = compileQuery(condition);
      if (!inner) return undefined;
      tests.push((doc) => !inner(doc));
    } else if (key.startsWith('$') || key.includes('.')) {
      return undefined;
    } else {
      const test = fieldTest(key, condition);
      if (!test) return undefined;
      tests.push(test);
    }
  }
  if (tests.length === 0) return () => true;
  if (tests.length === 1) return tests[0]!;
  return (doc) => {
    for (const t of tests) if (!t(doc)) return false;
    return true;
  };
}

/** The query's test: compiled when it can be, else NeDB's matcher. */
function matcher(query: Doc): Test {
  return compileQuery(query) ?? ((doc) => model.match(doc, query));
}

/** NeDB's expiry test (datastore.js _getCandidatesAsync), with one clock reading. */
function expiryTest(db: DatastoreLike): (doc: Doc) => boolean {
  const fields = Object.entries(db.ttlIndexes);
  const now = Date.now();
  if (fields.length === 0) return () => false;
  if (fields.length === 1) {
    // The usual case (one TTL field), without a loop per record.
    const [field, seconds] = fields[0]!;
    const cutoff = now - seconds * 1000;
    return (doc) => {
      const value = doc[field];
      return value instanceof Date && value.getTime() < cutoff;
    };
  }
  return (doc) => fields.some(([field, seconds]) => {
    const value = doc[field];
    return value instanceof Date && now > value.getTime() + seconds * 1000;
  });
}

/** NeDB's sort comparison (cursor.js _execAsync). */
function sortComparison(db: DatastoreLike, sort: [string, number][]): (a: Doc, b: Doc) => number {
  return (a, b) => {
    for (const [key, direction] of sort) {
      const c = direction * model.compareThings(model.getDotValue(a, key), model.getDotValue(b, key), db.compareStrings);
      if (c !== 0) return c;
    }
    return 0;
  };
}

/** Whether NeDB's planner (datastore.js _getRawCandidates) would take candidates from an equality or $in index. */
function usesEqualityIndex(db: DatastoreLike, query: Doc): boolean {
  return Object.entries(query).some(([field, value]) => {
    if (field.startsWith('$') || !db.indexes[field]) return false;
    if (value === null || typeof value !== 'object' || value instanceof Date) return true;
    return Object.prototype.hasOwnProperty.call(value, '$in');
  }) || Object.keys(db.indexes).some((name) => name.includes(','));
}

/** The query's own range on `field` (top level), as the walk's start and end. */
function rangeOf(query: Doc, field: string, descending: boolean): { from?: Bound; to?: Bound } {
  const condition = query[field];
  if (condition === null || typeof condition !== 'object' || condition instanceof Date || Array.isArray(condition)) return {};
  const ops = condition as Partial<Record<(typeof RANGE_OPS)[number], unknown>>;
  const low = '$gt' in ops ? { value: ops.$gt, inclusive: false } : '$gte' in ops ? { value: ops.$gte, inclusive: true } : undefined;
  const high = '$lt' in ops ? { value: ops.$lt, inclusive: false } : '$lte' in ops ? { value: ops.$lte, inclusive: true } : undefined;
  // Both $gt and $gte (or $lt and $lte): NeDB applies both; the walk just uses the wider bound.
  if (('$gt' in ops && '$gte' in ops) || ('$lt' in ops && '$lte' in ops)) return {};
  return descending ? { from: high, to: low } : { from: low, to: high };
}

/**
 * What `db.findAsync(query).sort(sort).limit(limit)` returns (deep copies, as NeDB's find), or
 * undefined when this cannot answer it faster and the caller should ask NeDB.
 */
export function orderedFind(datastore: object, query: Doc, sort: Record<string, number> | undefined,
  options: { limit?: number; skip?: number }): Doc[] | undefined {
  const db = datastore as DatastoreLike;
  const limit = options.limit;
  if (!sort || limit === undefined || limit <= 0 || !Number.isInteger(limit) || options.skip) return undefined;
  const order = Object.entries(sort);
  const [field, direction] = order[0] ?? [];
  if (field === undefined || (direction !== 1 && direction !== -1)) return undefined;
  const root = treeRoot(db, field);
  if (!root) return undefined;
  const expired = expiryTest(db);
  const compare = sortComparison(db, order);
  const matches = matcher(query);
  // The query first: a search turns most records away, and both tests are pure.
  const keep = (doc: Doc) => matches(doc) && !expired(doc);

  let found: Doc[];
  if (usesEqualityIndex(db, query)) {
    // NeDB's own candidates (few, as a rule): keep the best `limit` in order, ties in candidate order.
    found = [];
    for (const doc of db._getRawCandidates(query)) {
      if (found.length === limit && compare(doc, found[limit - 1]!) >= 0) continue;
      if (!keep(doc)) continue;
      let at = found.length;
      while (at > 0 && compare(doc, found[at - 1]!) < 0) at--;
      found.splice(at, 0, doc);
      if (found.length > limit) found.pop();
    }
  } else {
    const { from, to } = rangeOf(query, field, direction === -1);
    const keyCompare = (a: unknown, b: unknown) => model.compareThings(a, b, db.compareStrings);
    found = [];
    let arrayKey = false;
    const dotted = field.includes('.');
    walk(root, direction === -1, keyCompare, from, to, (node) => {
      for (const doc of node.data) {
        // A record with an array under the field sits in the tree once per element: NeDB's sort differs.
        if (Array.isArray(dotted ? model.getDotValue(doc, field) : doc[field])) {
          arrayKey = true;
          return false;
        }
        if (keep(doc)) found.push(doc);
      }
      // All records sharing the last key are in: the rest of the sort orders them.
      return found.length < limit;
    });
    if (arrayKey) return undefined;
    found.sort(compare);
  }
  return found.slice(0, limit).map((doc) => model.deepCopy(doc));
}

/** Per datastore: a version bumped on every write, and counts remembered for it. */
interface CountState { wrapped: PersistenceLike['persistNewStateAsync']; version: number; seen: number; counts: Map<string, number> }
const countStates = new WeakMap<DatastoreLike, CountState>();
const MAX_REMEMBERED_COUNTS = 64;

function countState(db: DatastoreLike): CountState {
  let state = countStates.get(db);
  // (Re)wrapped when first used or when something replaced the wrapper since: its writes were not seen.
  if (!state || db.persistence.persistNewStateAsync !== state.wrapped) {
    const persist = db.persistence.persistNewStateAsync;
    const fresh: CountState = {
      version: 0, seen: -1, counts: new Map(),
      wrapped(this: PersistenceLike, docs: unknown[]) {
        fresh.version++;
        return persist.call(this, docs);
      },
    };
    db.persistence.persistNewStateAsync = fresh.wrapped;
    countStates.set(db, fresh);
    state = fresh;
  }
  if (state.seen !== state.version) {
    state.counts.clear();
    state.seen = state.version;
  }
  return state;
}

/** A query as a map key; undefined when it holds something this does not spell out (then not remembered). */
function queryKey(value: unknown): string | undefined {
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'u';
  if (value instanceof Date) return `d${value.getTime()}`;
  if (value instanceof RegExp) return `r${JSON.stringify(value.source)}/${value.flags}`;
  if (Array.isArray(value)) {
    const parts = value.map(queryKey);
    return parts.includes(undefined) ? undefined : `[${parts.join(',')}]`;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    let out = '{';
    for (const [key, inner] of Object.entries(value)) {
      const part = queryKey(inner);
      if (part === undefined) return undefined;
      out += `${JSON.stringify(key)}:${part},`;
    }
    return `${out}}`;
  }
  return undefined;
}

/**
 * How many records expired by now (NeDB's test) match `query`: read from the TTL indexes, which
 * hold few dates in the past (NeDB removes expired records as its reads meet them).
 */
function expiredMatching(db: DatastoreLike, query: Doc): number | undefined {
  const now = Date.now();
  const seen = new Set<unknown>();
  for (const [field, seconds] of Object.entries(db.ttlIndexes)) {
    const index = db.indexes[field];
    if (typeof index?.getBetweenBounds !== 'function') return undefined;
    // Dates only (the earliest date on): other keys sort before every date (null) or after them all.
    for (const doc of index.getBetweenBounds({ $gte: new Date(-8.64e15), $lt: new Date(now - seconds * 1000) })) {
      const value = doc[field];
      if (value instanceof Date && now > value.getTime() + seconds * 1000 && model.match(doc, query)) seen.add(doc._id);
    }
  }
  return seen.size;
}

/** What `db.countAsync(query)` answers, or undefined when the caller should ask NeDB. */
export function countMatching(datastore: object, query: Doc): number | undefined {
  const db = datastore as DatastoreLike;
  if (typeof db._getRawCandidates !== 'function') return undefined;
  const state = countState(db);
  const key = queryKey(query);
  let matching = key === undefined ? undefined : state.counts.get(key);
  if (matching === undefined) {
    // Expired records included: they are taken off below, at this moment's clock. Every record
    // has its own _id key: with no condition, the keys of that index are the count (a hashed
    // index knows it without visiting a record).
    const ids = Object.keys(query).length === 0 ? db.indexes._id?.tree?.getNumberOfKeys?.() : undefined;
    if (typeof ids === 'number') matching = ids;
    else {
      matching = 0;
      const matches = matcher(query);
      for (const doc of db._getRawCandidates(query)) if (matches(doc)) matching++;
    }
    if (key !== undefined) {
      if (state.counts.size >= MAX_REMEMBERED_COUNTS) state.counts.clear();
      state.counts.set(key, matching);
    }
  }
  const expired = expiredMatching(db, query);
  return expired === undefined ? undefined : matching - expired;
}

/**
 * Cheaper index maintenance for NeDB (4.x). NeDB keeps each index as an AVL tree whose nodes hold
 * an array of the documents with that key. On every update it removes the old document from every
 * index and inserts the new one, and removing a document from a node rebuilds the node's array
 * with a filtering loop: for an index whose key many documents share (deviceAuthorizations by
 * clientId, events by action), every update or removal cost time proportional to that crowd.
 *
 * Two changes, same results:
 * - an update that leaves a document's key unchanged swaps the new document in for the old one in
 *   place in that key's array (no removal, no insertion, no uniqueness question: the key is the same);
 * - a removal from a key shared by several documents splices it out of the array in place.
 * Anything else (array, compound or missing keys, a key that changed) goes through NeDB's own code.
 *
 * On a hashed index (hash-index.ts) the swap is HashTree.replace, and a removal needs no help.
 *
 * On a tree both mutate the node's array where NeDB would have replaced it. That is safe because NeDB never
 * keeps an index array while it changes the indexes: _getCandidatesAsync copies the candidates
 * before any update or removal runs, and all of this happens inside NeDB's one-at-a-time executor.
 */
import { createRequire } from 'node:module';
import { HashTree } from './hash-index.js';

type Doc = Record<string, unknown>;
interface Tree {
  search(key: unknown): Doc[];
}
interface IndexPrototype {
  _fields: string[];
  sparse: boolean;
  tree: Tree | HashTree;
  remove(doc: Doc | Doc[]): void;
  updateMultipleDocs(pairs: { oldDoc: Doc; newDoc: Doc }[]): void;
}

const require = createRequire(import.meta.url);
const Index = require('@seald-io/nedb/lib/indexes.js') as { prototype: IndexPrototype };
const model = require('@seald-io/nedb/lib/model.js') as {
  getDotValues(doc: Doc, fields: string[]): unknown;
  compareThings(a: unknown, b: unknown): number;
};

/** The key of `doc` in `index` when it is one plain value this fast path handles (null included), else undefined. */
function plainKey(index: IndexPrototype, doc: Doc): string | number | boolean | Date | null | undefined {
  if (index._fields.length !== 1) return undefined;
  const field = index._fields[0]!;
  // A top-level field is what getDotValues reads for it, without splitting the name on every call.
  const key = field.includes('.') ? model.getDotValues(doc, index._fields) : doc[field];
  if (key === null || typeof key === 'string' || typeof key === 'number' || typeof key === 'boolean' || key instanceof Date) return key;
  return undefined;
}

let installed = false;

/** Installs the fast paths on NeDB's Index class (once per process; only the embedded store uses NeDB). */
export function installIndexFastPaths(): void {
  if (installed) return;
  installed = true;
  const proto = Index.prototype;
  const updateMultipleDocs = proto.updateMultipleDocs;
  const remove = proto.remove;

  proto.updateMultipleDocs = function (this: IndexPrototype, pairs) {
    const undo: (() => void)[] = [];
    const rest: typeof pairs = [];
    const tree = this.tree;
    for (const pair of pairs) {
      const before = plainKey(this, pair.oldDoc);
      const after = plainKey(this, pair.newDoc);
      if (before !== undefined && after !== undefined && typeof before === typeof after
        && model.compareThings(before, after) === 0) {
        if (tree instanceof HashTree) {
          if (tree.replace(before, pair.oldDoc, pair.newDoc)) {
            undo.push(() => tree.replace(before, pair.newDoc, pair.oldDoc));
            continue;
          }
        } else {
          const data = tree.search(before);
          const at = data.indexOf(pair.oldDoc);
          if (at >= 0) {
            data[at] = pair.newDoc;
            undo.push(() => { data[at] = pair.oldDoc; });
            continue;
          }
        }
      }
      rest.push(pair);
    }
    if (rest.length === 0) return;
    try {
      updateMultipleDocs.call(this, rest);
    } catch (error) {
      // NeDB leaves a failing index as it was: so must the swaps.
      for (const step of undo) step();
      throw error;
    }
  };

  proto.remove = function (this: IndexPrototype, doc) {
    // A hashed index removes a record from a shared key in place already.
    if (!Array.isArray(doc) && !(this.tree instanceof HashTree)) {
      const key = plainKey(this, doc);
      if (key !== undefined) {
        const data = this.tree.search(key);
        const at = data.length > 1 ? data.indexOf(doc) : -1;
        if (at >= 0) {
          data.splice(at, 1);
          return;
        }
      }
    }
    remove.call(this, doc);
  };
}

/**
 * The embedded store's hashed indexes (src/store/embedded/hash-index.ts) answer what NeDB's AVL
 * tree answers: the same random operations on both give the same records for every key and
 * range, the same unique violations, and the same records overall.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { HashTree } from '../../src/store/embedded/hash-index.js';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { ConflictError } from '../../src/store/errors.js';
import { makeDeviceAuthorization, makeRevokedToken } from './contract.js';

type Doc = Record<string, unknown>;
const require = createRequire(import.meta.url);
const model = require('@seald-io/nedb/lib/model.js') as { compareThings(a: unknown, b: unknown): number };
interface Tree {
  insert(key: unknown, doc: Doc): void;
  delete(key: unknown, doc?: Doc): void;
  search(key: unknown): Doc[];
  betweenBounds(query: Record<string, unknown>): Doc[];
  executeOnEveryNode(fn: (node: { key?: unknown; data: Doc[] }) => void): void;
  getNumberOfKeys(): number;
}
const AVLTree = require('@seald-io/binary-search-tree').AVLTree as new (options: object) => Tree;
const avl = (unique: boolean): Tree => new AVLTree({ unique, compareKeys: model.compareThings, checkValueEquality: (a: unknown, b: unknown) => a === b });

// Few distinct keys, so keys collide and are shared; of every kind compareThings orders.
const key = fc.oneof(
  fc.constantFrom('a', 'b', 'B', '', '10'),
  fc.constantFrom(0, -0, 1, 10, 2.5),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.constantFrom(0, 1, 10).map((time) => new Date(time)),
  fc.constantFrom({ a: 1 }, { a: 1, b: 2 }, { b: 2, a: 1 }, [1, 'a']),
);
const op = fc.oneof(
  fc.record({ kind: fc.constant('insert' as const), key, doc: fc.nat(7) }),
  fc.record({ kind: fc.constant('delete' as const), key, doc: fc.option(fc.nat(7), { nil: undefined }) }),
);
const bounds = fc.record({ $gt: key, $gte: key, $lt: key, $lte: key }, { requiredKeys: [] });

/** Every record a tree holds, as a multiset of doc ids (the hashed tree visits keys in another order). */
function allIds(tree: Tree): number[] {
  const ids: number[] = [];
  tree.executeOnEveryNode((node) => {
    for (const doc of node.data) ids.push(doc.n as number);
  });
  return ids.sort((a, b) => a - b);
}

test('a hashed index answers every key, range, key count and unique violation as NeDB\'s AVL tree does', () => {
  const docs: Doc[] = Array.from({ length: 8 }, (_, n) => ({ n }));
  fc.assert(fc.property(fc.boolean(), fc.array(op, { maxLength: 60 }), fc.array(key, { maxLength: 6 }), fc.array(bounds, { maxLength: 4 }),
    (unique, ops, probes, ranges) => {
      const tree = avl(unique);
      const hashed = new HashTree(unique);
      for (const step of ops) {
        const doc = step.doc === undefined ? undefined : docs[step.doc]!;
        let treeError: unknown = null;
        let hashError: unknown = null;
        try {
          if (step.kind === 'insert') tree.insert(step.key, doc!);
          else tree.delete(step.key, doc);
        } catch (error) {
          treeError = error;
        }
        try {
          if (step.kind === 'insert') hashed.insert(step.key, doc!);
          else hashed.delete(step.key, doc);
        } catch (error) {
          hashError = error;
        }
        if (treeError === null) assert.equal(hashError, null);
        else {
          const expected = treeError as Error & { key: unknown; errorType: string };
          const actual = hashError as Error & { key: unknown; errorType: string };
          assert.equal(actual.message, expected.message);
          assert.equal(actual.errorType, 'uniqueViolated');
          assert.equal(actual.key, expected.key);
        }
      }
      for (const probe of [...probes, ...ops.map((step) => step.key)]) assert.deepEqual(hashed.search(probe), tree.search(probe));
      for (const range of ranges) assert.deepEqual(hashed.betweenBounds(range), tree.betweenBounds(range));
      assert.deepEqual(allIds(hashed as unknown as Tree), allIds(tree));
      assert.equal(hashed.getNumberOfKeys(), tree.getNumberOfKeys());
    }), { numRuns: 400 });
});

test('replace swaps a record in place under its key, and refuses a record that is not there', () => {
  const tree = new HashTree(false);
  const [a, b, c, d] = [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }];
  tree.insert('k', a);
  tree.insert('k', b);
  tree.insert('u', c);
  assert.equal(tree.replace('k', a, d), true);
  assert.deepEqual(tree.search('k'), [d, b]);
  assert.equal(tree.replace('u', c, a), true);
  assert.deepEqual(tree.search('u'), [a]);
  assert.equal(tree.replace('u', c, b), false);
  assert.equal(tree.replace('missing', c, b), false);
  assert.deepEqual(tree.search('u'), [a]);
});

test('after a reopen, hashed unique keys still refuse duplicates and a TTL field without an index still expires records', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-hash-'));
  try {
    const first = await openEmbeddedStore(dir);
    const live = await first.deviceAuthorizations.insert(makeDeviceAuthorization());
    const gone = await first.revokedTokens.insert(makeRevokedToken({ expiresAt: new Date(Date.now() + 300) }));
    await first.close();
    await new Promise((resolve) => setTimeout(resolve, 400));
    const second = await openEmbeddedStore(dir);
    try {
      await assert.rejects(second.deviceAuthorizations.insert(makeDeviceAuthorization({ userCode: live.userCode })), ConflictError);
      await assert.rejects(second.deviceAuthorizations.insert(makeDeviceAuthorization({ deviceCodeHash: live.deviceCodeHash })), ConflictError);
      assert.deepEqual(await second.deviceAuthorizations.findOne({ deviceCodeHash: live.deviceCodeHash }), live);
      assert.equal(await second.revokedTokens.findOne({ id: gone.id }), null);
      assert.equal(await second.revokedTokens.count({}), 0);
    } finally {
      await second.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/**
 * The embedded store's kept-open append descriptor (src/store/embedded/append-log.ts): a write is
 * in the datafile when its promise resolves, and a compaction (which renames a new file over the
 * datafile) does not leave later writes going to the old, unlinked file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type NedbModule from '@seald-io/nedb';
import { serializeForDatafile, useAppendLog } from '../../src/store/embedded/append-log.js';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import { makeEvent, makeUser } from './contract.js';

type Doc = Record<string, unknown>;
const Datastore = createRequire(import.meta.url)('@seald-io/nedb') as typeof NedbModule.default;

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-append-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What a fresh process would load from `filename` (the first datastore is never closed: as after kill -9). */
async function reload(filename: string): Promise<Doc[]> {
  const db = new Datastore<Doc>({ filename });
  await db.loadDatabaseAsync();
  return (await db.findAsync({})).sort((a, b) => String(a._id).localeCompare(String(b._id)));
}

/** A datastore on `filename` with the append log in place of NeDB's persistence, loaded. */
async function openWithAppendLog(filename: string): Promise<NedbModule.default<Doc>> {
  const db = new Datastore<Doc>({ filename });
  useAppendLog(db);
  await db.loadDatabaseAsync();
  return db;
}

test('an acknowledged write is in the datafile before its promise resolves', async () => {
  await withTempDir(async (dir) => {
    const filename = path.join(dir, 'a.db');
    const db = await openWithAppendLog(filename);
    await db.insertAsync({ _id: 'one', n: 1 });
    await db.insertAsync([{ _id: 'two', n: 2 }, { _id: 'three', n: 3 }]);
    await db.updateAsync({ _id: 'one' }, { $set: { n: 10 } }, {});
    await db.removeAsync({ _id: 'three' }, {});
    const text = await readFile(filename, 'utf8');
    assert.match(text, /"_id":"two"/);
    assert.deepEqual(await reload(filename), [{ _id: 'one', n: 10 }, { _id: 'two', n: 2 }]);
  });
});

test('the datafile lines are the text NeDB itself would write (dates, nesting, arrays, undefined)', () => {
  const model = createRequire(import.meta.url)('@seald-io/nedb/lib/model.js') as { serialize(doc: unknown): string };
  const docs: unknown[] = [
    { _id: 'a', at: new Date(1_700_000_000_123), n: 1.5, s: 'x"\\\n', b: false, nil: null, gone: undefined },
    { _id: 'b', nested: { when: new Date(0), list: [1, new Date(5), undefined, { deep: [null] }] }, empty: {}, none: [] },
    { $$deleted: true, _id: 'c' },
    { $$indexCreated: { fieldName: 'f', unique: true, sparse: false } },
  ];
  for (const doc of docs) assert.equal(serializeForDatafile(doc), model.serialize(doc));
});

test('a compaction writes the datafile NeDB\'s own compaction writes', async () => {
  await withTempDir(async (dir) => {
    const ours = new Datastore<Doc>({ filename: path.join(dir, 'ours.db') });
    useAppendLog(ours);
    const nedbs = new Datastore<Doc>({ filename: path.join(dir, 'nedb.db') });
    const docs = Array.from({ length: 3000 }, (_, n) => ({
      _id: `id-${n}`, n, at: new Date(1_700_000_000_000 + n), tags: ['a', String(n)], nested: { s: 'x"\\\n', nil: null }, gone: undefined,
    }));
    for (const db of [ours, nedbs]) {
      await db.loadDatabaseAsync();
      await db.ensureIndexAsync({ fieldName: 'n', unique: true });
      await db.insertAsync(docs);
      await db.removeAsync({ _id: 'id-7' }, {});
      await db.compactDatafileAsync();
    }
    const text = await readFile(path.join(dir, 'ours.db'), 'utf8');
    assert.equal(text, await readFile(path.join(dir, 'nedb.db'), 'utf8'));
    assert.equal(text.split('\n').length, 3000 - 1 + 1 + 1); // one removed, the index line, the last newline
  });
});

test('a compaction that the file system takes in short writes still writes every record', async () => {
  await withTempDir(async (dir) => {
    const filename = path.join(dir, 'a.db');
    const db = await openWithAppendLog(filename);
    await db.insertAsync(Array.from({ length: 200 }, (_, n) => ({ _id: `id-${n}`, n, text: 'x'.repeat(50) })));
    // write(2) may take fewer bytes than asked (a full disk takes what fits, then fails): every
    // write here takes half of what it is given, as a file system close to full would.
    const probe = await open(path.join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<{ bytesWritten: number }> };
    await probe.close();
    const write = proto.write;
    proto.write = function (this: unknown, data: unknown, offset?: unknown, length?: unknown, position?: unknown) {
      if (typeof data === 'string') data = Buffer.from(data, 'utf8');
      const bytes = data as Buffer;
      const from = typeof offset === 'number' ? offset : 0;
      const size = typeof length === 'number' ? length : bytes.length - from;
      return write.call(this, bytes, from, Math.max(1, Math.floor(size / 2)), position ?? null);
    };
    try {
      await db.compactDatafileAsync();
    } finally {
      proto.write = write;
    }
    const loaded = await reload(filename);
    assert.equal(loaded.length, 200);
  });
});

test('writes after a compaction go to the new datafile and survive a reopen', async () => {
  await withTempDir(async (dir) => {
    const filename = path.join(dir, 'a.db');
    const db = await openWithAppendLog(filename);
    await db.insertAsync({ _id: 'before', n: 1 });
    await db.compactDatafileAsync();
    await db.insertAsync({ _id: 'after', n: 2 });
    await db.updateAsync({ _id: 'before' }, { $set: { n: 3 } }, {});
    // A compaction queued behind writes, and writes queued behind it: the executor runs them in order.
    const queued = [
      db.insertAsync({ _id: 'racing-1' }),
      db.compactDatafileAsync(),
      db.insertAsync({ _id: 'racing-2' }),
      db.compactDatafileAsync(),
      db.updateAsync({ _id: 'after' }, { $set: { n: 4 } }, {}),
    ];
    await Promise.all(queued);
    assert.deepEqual(await reload(filename), [
      { _id: 'after', n: 4 }, { _id: 'before', n: 3 }, { _id: 'racing-1' }, { _id: 'racing-2' },
    ]);
  });
});

test('the embedded store reopens with what was written after its start-up compaction', async () => {
  await withTempDir(async (dir) => {
    const first = await openEmbeddedStore(dir);
    await first.events.insert(makeEvent({ id: 'e1' }));
    await first.users.insert(makeUser({ username: 'ada' }));
    // Not closed (no compaction on close): as if the process were killed here.
    const second = await openEmbeddedStore(dir);
    try {
      assert.ok(await second.events.findOne({ id: 'e1' }));
      assert.ok(await second.users.findOne({ username: 'ada' }));
    } finally {
      await second.close();
      await first.close();
    }
  });
});

test('indexes stay exact when many records share a key and are updated or removed', async () => {
  await withTempDir(async (dir) => {
    const store = await openEmbeddedStore(dir);
    try {
      const made: { id: string }[] = [];
      for (let i = 0; i < 50; i++) made.push(await store.users.insert(makeUser({ username: `u${i}`, type: 'INTERNAL' })));
      // Key unchanged (type), other fields changed: found by the index, with the new values.
      await store.users.updateMany({ type: 'INTERNAL' }, { $set: { name: 'renamed' } });
      const byType = await store.users.find({ type: 'INTERNAL' });
      assert.equal(byType.length, 50);
      assert.ok(byType.every((u) => u.name === 'renamed'));
      // Key changed for some: each index answers with the right crowd.
      await store.users.updateOne({ id: made[0]!.id }, { $set: { type: 'SERVICE_ACCOUNT' } });
      assert.equal(await store.users.count({ type: 'INTERNAL' }), 49);
      assert.equal(await store.users.count({ type: 'SERVICE_ACCOUNT' }), 1);
      // A unique violation leaves every index as it was, the swapped-in-place ones included.
      await assert.rejects(store.users.updateOne({ id: made[1]!.id }, { $set: { username: 'u2', name: 'x' } }));
      assert.equal((await store.users.findOne({ id: made[1]!.id }))?.name, 'renamed');
      assert.equal((await store.users.find({ type: 'INTERNAL' })).find((u) => u.id === made[1]!.id)?.name, 'renamed');
      assert.equal((await store.users.findOne({ username: 'u1' }))?.id, made[1]!.id);
      // Removals from a shared key.
      assert.equal(await store.users.deleteMany({ username: { $in: ['u5', 'u6', 'u7'] } }), 3);
      assert.equal(await store.users.count({ type: 'INTERNAL' }), 46);
      assert.equal((await store.users.find({ type: 'INTERNAL' })).some((u) => u.username === 'u6'), false);
    } finally {
      await store.close();
    }
  });
});

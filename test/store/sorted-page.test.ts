/**
 * The embedded store's sorted walks and remembered counts (src/store/embedded/sorted-page.ts)
 * answer exactly what NeDB's own find().sort().limit() and count() answer: on a bare NeDB
 * datastore with awkward keys (ties, nulls, missing fields, mixed types, expired records), and
 * through the embedded store's users collection, including after writes and as records expire.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type NedbModule from '@seald-io/nedb';
import { compileQuery, countMatching, orderedFind } from '../../src/store/embedded/sorted-page.js';
import { openEmbeddedStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Filter, StoreAdapter } from '../../src/store/ports.js';
import type { User, UserType } from '../../src/domain/model.js';

type Doc = Record<string, unknown>;
const require = createRequire(import.meta.url);
const Datastore = require('@seald-io/nedb') as typeof NedbModule.default;
const model = require('@seald-io/nedb/lib/model.js') as { match(doc: Doc, query: Doc): boolean };

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('sorted walks on a bare NeDB datastore', () => {
  const now = Date.now();
  const base = now - 100_000;

  async function datastore(seed: number, size: number): Promise<{ db: NedbModule.default<Doc>; next: () => number }> {
    const next = random(seed);
    const db = new Datastore<Doc>({ inMemoryOnly: true });
    await db.ensureIndexAsync({ fieldName: 'createdAt' });
    await db.ensureIndexAsync({ fieldName: 'kind' });
    await db.ensureIndexAsync({ fieldName: 'expiresAt', expireAfterSeconds: 0 });
    const docs: Doc[] = [];
    for (let i = 0; i < size; i++) {
      const r = next();
      // Mostly dates bunched into few milliseconds (ties), some null, missing, numbers or strings.
      const createdAt = r < 0.8 ? new Date(base + Math.floor(next() * 40) * 1000 + (next() < 0.5 ? 0 : 1))
        : r < 0.85 ? null : r < 0.9 ? undefined : r < 0.95 ? Math.floor(next() * 5) : `s${Math.floor(next() * 5)}`;
      const e = next();
      const expiresAt = e < 0.7 ? null : e < 0.85 ? new Date(now - 1 - Math.floor(next() * 1000)) : new Date(now + 600_000);
      const doc: Doc = { _id: `id${String(Math.floor(next() * 1e9)).padStart(9, '0')}-${i}`, kind: ['a', 'b', 'c'][i % 3], n: i % 7, name: `Name ${i}`, expiresAt };
      if (createdAt !== undefined) doc.createdAt = createdAt;
      docs.push(doc);
    }
    await db.insertAsync(docs);
    return { db, next };
  }

  function queries(next: () => number): Doc[] {
    const t = new Date(base + Math.floor(next() * 40) * 1000);
    return [
      {},
      { kind: 'b' },
      { $and: [{ kind: 'c' }] },
      { n: { $gte: 3 } },
      { name: { $regex: /name 1/i } },
      { createdAt: { $lte: t } },
      { createdAt: { $gt: t } },
      { createdAt: { $gte: t }, $or: [{ createdAt: { $gt: t } }, { _id: { $gt: 'id5' } }] },
      { createdAt: { $lte: t }, $or: [{ createdAt: { $lt: t } }, { _id: { $lt: 'id5' } }], $and: [{ kind: 'a' }] },
      { kind: { $in: ['a', 'c'] }, n: { $lt: 4 } },
      { createdAt: { $gt: new Date(base), $lt: t } },
      { createdAt: t },
    ];
  }

  const sorts: Record<string, 1 | -1>[] = [
    { createdAt: -1, _id: -1 }, { createdAt: 1, _id: 1 }, { createdAt: -1, _id: 1 }, { createdAt: 1, n: -1, _id: 1 },
  ];

  test('a sorted find with a limit answers what NeDB answers, for every query, sort and limit', async () => {
    for (const seed of [1, 2, 3]) {
      const { db, next } = await datastore(seed, 400);
      for (const query of queries(next)) {
        for (const sort of sorts) {
          for (const limit of [1, 2, 7, 51, 1000]) {
            const walked = orderedFind(db, query, sort, { limit });
            assert.ok(walked, `answered: ${JSON.stringify(query)}`);
            // dontExpire is not asked: NeDB's own find drops (and removes) expired records, as the walk skips them.
            const plain = await db.findAsync(query).sort(sort).limit(limit);
            assert.deepEqual(walked.map((d) => d._id), plain.map((d: Doc) => d._id), `seed ${seed} ${JSON.stringify(query)} ${JSON.stringify(sort)} limit ${limit}`);
          }
        }
      }
    }
  });

  test('a walk returns copies: changing them leaves the store as it was', async () => {
    const { db } = await datastore(4, 50);
    const [first] = orderedFind(db, {}, { createdAt: -1, _id: -1 }, { limit: 1 })!;
    first!.name = 'changed';
    assert.notEqual((await db.findOneAsync({ _id: first!._id }))!.name, 'changed');
  });

  test('what it does not handle is left to NeDB: no limit, a skip, an unindexed sort key', async () => {
    const { db } = await datastore(5, 20);
    assert.equal(orderedFind(db, {}, { createdAt: -1 }, {}), undefined);
    assert.equal(orderedFind(db, {}, { createdAt: -1 }, { limit: 5, skip: 1 }), undefined);
    assert.equal(orderedFind(db, {}, { name: 1 }, { limit: 5 }), undefined);
  });

  test('a count answers what NeDB counts, before and after writes and as records expire', async () => {
    const { db, next } = await datastore(6, 300);
    const check = async (label: string) => {
      for (const query of queries(next)) {
        const remembered = countMatching(db, query);
        // NeDB's count removes what expired: ask it last.
        assert.equal(remembered, await db.countAsync(query), `${label}: ${JSON.stringify(query)}`);
      }
    };
    await check('fresh');
    await check('remembered');
    await db.insertAsync({ _id: 'zzz-new', kind: 'b', n: 5, name: 'Name 1 new', createdAt: new Date(base), expiresAt: new Date(Date.now() + 150) });
    await check('after an insert');
    await db.updateAsync({ kind: 'a' }, { $set: { n: 6, name: 'renamed' } }, { multi: true });
    await check('after an update');
    await db.removeAsync({ kind: 'c', n: 2 }, { multi: true });
    await check('after a removal');
    await new Promise((resolve) => setTimeout(resolve, 200));
    await check('after a record expired');
  });
});

describe('compiled queries', () => {
  test('a compiled query answers what NeDB\'s matcher answers, for every kind of value', () => {
    const at = new Date(1_700_000_000_000);
    const values: unknown[] = [
      undefined, null, 0, 1, 2.5, -1, '', 'a', 'b', 'Name 12', 'NAME 1', true, false, new Date(at), new Date(at.getTime() + 1),
      [], ['a'], ['a', 'b'], [1, 2], [null], [new Date(at)], { x: 1 }, {},
    ];
    const conditions: unknown[] = [
      null, 0, 1, 'a', 'Name 12', true, new Date(at), /name 1/i, /^a$/, ['a'], [1, 2],
      { $lt: 1 }, { $lte: 'b' }, { $gt: new Date(at) }, { $gte: 0, $lt: 2 }, { $ne: null }, { $ne: 'a' }, { $in: ['a', 1, null] },
      { $nin: ['a'] }, { $regex: /a/ }, { $gt: 'a', $regex: /b/ }, { $exists: true }, { $size: 2 }, { x: 1 }, {},
    ];
    const queries: Doc[] = [{}];
    for (const condition of conditions) {
      queries.push({ f: condition }, { $or: [{ f: condition }, { g: 1 }] }, { $and: [{ f: condition }], g: { $ne: 2 } }, { $not: { f: condition } });
    }
    queries.push({ 'f.x': 1 }, { $where: () => true }, { f: { $lt: 1, y: 2 } }, { $or: 'no array' as unknown as Doc[] });
    const outcome = (run: () => boolean) => {
      try {
        return run();
      } catch {
        return 'throws';
      }
    };
    let compiled = 0;
    for (const query of queries) {
      const test = compileQuery(query);
      if (test) compiled++;
      for (const f of values) {
        for (const g of [undefined, 1, 2]) {
          const doc: Doc = { _id: 'x', f, g };
          const expected = outcome(() => model.match(doc, query));
          const actual = test ? outcome(() => test(doc)) : expected;
          assert.equal(actual, expected, `${String(query.f ?? JSON.stringify(query))} on ${JSON.stringify(f)} (${f instanceof Date ? 'date' : typeof f}), g ${g}`);
        }
      }
    }
    assert.ok(compiled > queries.length / 2, 'most shapes are compiled');
  });
});

describe('through the embedded store (users collection)', () => {
  let store: StoreAdapter | undefined;
  let collection: StoreAdapter['users'];
  const users: User[] = [];
  // Closed here, not at a test's end: an open store's timers would keep a failed run from exiting.
  after(async () => {
    await store?.close();
  });

  async function open(): Promise<StoreAdapter> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-sorted-page-'));
    dirs.push(dir);
    return openEmbeddedStore(dir);
  }

  const byPageOrder = (a: User, b: User) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

  test('a sorted page of users equals sorting every match and cutting, and counts equal counting every match', async () => {
    store = await open();
    collection = store.users;
    const next = random(7);
    const now = Date.now();
    const types: UserType[] = ['INTERNAL', 'EXTERNAL', 'SERVICE_ACCOUNT', 'GENERATED_SERVICE_ACCOUNT'];
    for (let i = 0; i < 300; i++) {
      const createdAt = new Date(now - Math.floor(next() * 30) * 1000);
      const user: User = {
        id: randomUUID(), username: `user-${i}`, name: next() < 0.2 ? null : `User ${i}`, email: next() < 0.5 ? `u${i}@example.com` : null,
        type: types[i % 4]!, isActive: true, isAdmin: false, attributes: {}, passwordHash: null,
        expiresAt: i % 10 === 0 ? new Date(now + 600_000) : null, createdAt, updatedAt: createdAt,
      };
      users.push(user);
      await collection.insert(user);
    }
    const search = { $regex: /user 1/i } as unknown as Filter[string];
    const filters: Filter[] = [{}, { $and: [{ type: 'SERVICE_ACCOUNT' }] }, { type: 'EXTERNAL' }, { $or: [{ username: search }, { name: search }] }];
    for (const filter of filters) {
      const all = (await collection.find(filter)).sort(byPageOrder);
      for (const limit of [1, 5, 51, 500]) {
        const page = await collection.find(filter, { sort: { createdAt: -1, id: -1 }, limit });
        assert.deepEqual(page.map((u) => u.id), all.slice(0, limit).map((u) => u.id), `${JSON.stringify(filter)} limit ${limit}`);
      }
      assert.equal(await collection.count(filter), all.length, `count ${JSON.stringify(filter)}`);
    }
    // Pages come back as records (dates, parsed attributes), like any find.
    const [newest] = await collection.find({}, { sort: { createdAt: -1, id: -1 }, limit: 1 });
    assert.ok(newest!.createdAt instanceof Date);
    assert.deepEqual(newest!.attributes, {});
  });

  test('a remembered count follows every write: insert, update, delete, and an expiry', async () => {
    const count = async (filter: Filter) => [await collection.count(filter), (await collection.find(filter)).length];
    const same = async (filter: Filter, label: string) => {
      const [counted, found] = await count(filter);
      assert.equal(counted, found, label);
    };
    await same({}, 'before');
    const extra: User = { ...users[0]!, id: randomUUID(), username: 'extra', type: 'SERVICE_ACCOUNT', expiresAt: new Date(Date.now() + 300) };
    await collection.insert(extra);
    await same({}, 'after insert');
    await same({ type: 'SERVICE_ACCOUNT' }, 'typed, after insert');
    await collection.updateOne({ id: users[1]!.id }, { $set: { type: 'SERVICE_ACCOUNT' } });
    await same({ type: 'SERVICE_ACCOUNT' }, 'typed, after update');
    await collection.deleteOne({ id: users[2]!.id });
    await same({}, 'after delete');
    const before = await collection.count({ type: 'SERVICE_ACCOUNT' });
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.equal(await collection.count({ type: 'SERVICE_ACCOUNT' }), before - 1, 'the expired account is no longer counted');
    await same({ type: 'SERVICE_ACCOUNT' }, 'typed, after expiry');
  });
});

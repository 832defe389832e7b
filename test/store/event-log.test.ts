/**
 * The embedded store's on-disk audit log (src/store/embedded/event-log.ts): it answers as the NeDB
 * collection did, reads NeDB's datafile format, keeps what it acknowledged across a kill, keeps
 * its file bounded, and holds little memory per event. (The store contract, test/store/contract.ts,
 * runs against it too, through openEmbeddedStore.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type NedbModule from '@seald-io/nedb';
import { openEventLog } from '../../src/store/embedded/event-log.js';
import { nedbFilter } from '../../src/store/sqlite/sqlite-store.js';
import { serializeForDatafile } from '../../src/store/embedded/append-log.js';
import { COLLECTION_SPECS, collectionSpecs } from '../../src/store/specs.js';
import { fromStored, toStored, toStoredFilter, toStoredSort } from '../../src/store/codec.js';
import type { Filter, FindOptions } from '../../src/store/ports.js';
import type { AuditEvent } from '../../src/domain/model.js';
import { makeEvent } from './contract.js';

type Doc = Record<string, unknown>;
const Datastore = createRequire(import.meta.url)('@seald-io/nedb') as typeof NedbModule.default;
const spec = COLLECTION_SPECS.events;
const open = (filename: string, maxRecords = 100_000, eventSpec = spec) =>
  openEventLog<AuditEvent>(filename, 'events', eventSpec, { timeField: 'createdAt', maxRecords });

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-event-log-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const ids = (events: { id: string }[]) => events.map((e) => e.id);

test('reads answer exactly as NeDB answers the same query (filters, time windows, sorts, ties, skip and limit)', async () => {
  await withTempDir(async (dir) => {
    const log = await open(path.join(dir, 'events.db'));
    const nedb = new Datastore<Doc>({ inMemoryOnly: true });
    await nedb.loadDatabaseAsync();
    const base = Date.now() - 600_000;
    let seed = 7;
    const random = (n: number) => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) % n;
    // Mostly in time order, some late and some sharing a millisecond (ties broken by id).
    const events = Array.from({ length: 600 }, (_, i) => makeEvent({
      action: ['LOGIN', 'LOGIN_FAILED', 'TOKEN_REVOKED'][random(3)]!,
      clientId: random(4) === 0 ? null : `client-${random(5)}`,
      username: random(2) === 0 ? `user-${random(7)}` : null,
      requestId: `req-${i}`,
      createdAt: new Date(base + i * 500 - (random(10) === 0 ? 20_000 : 0) - (i % 7 === 0 ? 500 : 0)),
    }));
    // Values that JSON escapes, and one that a line holds elsewhere (its context) without matching.
    events.push(makeEvent({ username: 'we"ird \\ é \u2028', createdAt: new Date(base + 1_000) }));
    events.push(makeEvent({ context: { requestId: 'req-17', note: 'we"ird' }, createdAt: new Date(base + 2_000) }));
    for (let at = 0; at < events.length; at += 50) await log.insertMany(events.slice(at, at + 50));
    await nedb.insertAsync(events.map((e) => toStored(e, spec)));

    const nedbFind = async (filter: Filter, options: FindOptions = {}) => {
      let cursor = nedb.findAsync(nedbFilter(toStoredFilter(filter)));
      const sort = toStoredSort(options.sort);
      if (sort) cursor = cursor.sort(sort);
      if (options.skip) cursor = cursor.skip(options.skip);
      if (options.limit !== undefined) cursor = cursor.limit(options.limit);
      return (await cursor).map((doc: Doc) => fromStored<AuditEvent>(doc, spec)!);
    };
    const at = (ms: number) => new Date(base + ms);
    const newest = { createdAt: -1, id: -1 } as const;
    const cases: [Filter, FindOptions][] = [
      [{}, { sort: newest, limit: 51 }],
      [{}, { sort: { createdAt: 1, id: 1 }, limit: 20, skip: 13 }],
      [{ action: 'LOGIN' }, { sort: newest, limit: 10 }],
      [{ $and: [{ action: 'LOGIN_FAILED' }] }, { sort: newest, limit: 25, skip: 5 }],
      [{ createdAt: { $lte: at(200_000), $gte: at(100_000) } }, { sort: newest, limit: 30 }],
      [{ createdAt: { $lt: at(200_000), $gt: at(100_000) }, clientId: null }, { sort: newest }],
      [{ createdAt: { $lte: at(150_000) }, $or: [{ createdAt: { $lt: at(150_000) } }, { id: { $lt: events[300]!.id } }] }, { sort: newest, limit: 40 }],
      [{ username: 'user-3' }, { sort: newest, limit: 5 }],
      [{ requestId: 'req-17' }, {}],
      [{ username: 'we"ird \\ é \u2028' }, {}],
      [{ username: 'we"ird' }, {}],
      [{ $and: [{ action: 'LOGIN' }], username: { $in: ['user-1', 'user-2'] } }, { sort: newest, limit: 9 }],
      [{ clientId: { $in: ['client-1', null] } }, { sort: { action: 1, createdAt: -1, id: 1 } }],
      [{ clientId: { $ne: 'client-2' }, action: { $nin: ['LOGIN'] } }, { sort: { id: 1 } }],
      [{ id: events[42]!.id }, {}],
      [{ createdAt: at(3_500) }, { sort: newest }],
    ];
    for (const [filter, options] of cases) {
      const label = JSON.stringify([filter, options]);
      assert.deepEqual(ids(await log.find(filter, options)), ids(await nedbFind(filter, options)), label);
      if (!options.sort && !options.limit) assert.deepEqual(await log.count(filter), (await nedbFind(filter)).length, label);
    }
    // Unsorted and limited: some matching records, as many as asked.
    const some = await log.find({ action: 'LOGIN' }, { limit: 7 });
    assert.equal(some.length, 7);
    assert.ok(some.every((e) => e.action === 'LOGIN'));
    assert.equal(await log.count({}), 602);
    await log.close();
  });
});

test('an events.db written by NeDB (index lines, replaced versions, deletions) loads with the same records', async () => {
  await withTempDir(async (dir) => {
    const filename = path.join(dir, 'events.db');
    const db = new Datastore<Doc>({ filename });
    await db.loadDatabaseAsync();
    await db.ensureIndexAsync({ fieldName: 'createdAt' });
    const [a, b, c] = [makeEvent({ action: 'a' }), makeEvent({ action: 'b' }), makeEvent({ action: 'c', context: { 'x.y': 1 } })];
    await db.insertAsync([a, b, c].map((e) => toStored(e, spec)));
    await db.updateAsync({ _id: a.id }, { $set: { action: 'a2' } }, {});
    await db.removeAsync({ _id: b.id }, {});
    const log = await open(filename);
    try {
      assert.deepEqual((await log.find({}, { sort: { action: 1 } })).map((e) => [e.id, e.action]), [[a.id, 'a2'], [c.id, 'c']]);
      assert.deepEqual((await log.findOne({ id: c.id }))?.context, { 'x.y': 1 });
      assert.equal(await log.findOne({ id: b.id }), null);
    } finally {
      await log.close();
    }
  });
});

test('inserts, updates and deletions are in the datafile when acknowledged: a kill loses none of them', async () => {
  await withTempDir(async (dir) => {
    const filename = path.join(dir, 'events.db');
    const log = await open(filename);
    const [a, b, c] = [makeEvent({ action: 'a' }), makeEvent({ action: 'b' }), makeEvent({ action: 'c' })];
    await log.insertMany([a, b]);
    await log.insert(c);
    await log.updateOne({ id: a.id }, { $set: { action: 'a2' } });
    assert.equal(await log.deleteOne({ id: b.id }), true);
    // Not closed (as after kill -9): a second reader sees what the file holds.
    const reopened = await open(filename);
    assert.deepEqual((await reopened.find({}, { sort: { action: 1 } })).map((e) => e.action), ['a2', 'c']);
    // NeDB itself reads the same file alike.
    const db = new Datastore<Doc>({ filename });
    await db.loadDatabaseAsync();
    assert.deepEqual((await db.findAsync({})).map((doc: Doc) => doc.action).sort(), ['a2', 'c']);
    await reopened.close();
  });
});

test('a last line cut short by a crash is dropped, and the next event starts a line of its own', async () => {
  await withTempDir(async (dir) => {
    const filename = path.join(dir, 'events.db');
    const kept = makeEvent({ action: 'kept' });
    const cut = serializeForDatafile(toStored(makeEvent({ action: 'cut' }), spec)).slice(0, 40);
    await writeFile(filename, `${serializeForDatafile(toStored(kept, spec))}\n${cut}`);
    const log = await open(filename);
    const next = makeEvent({ action: 'next' });
    await log.insert(next);
    const reopened = await open(filename);
    assert.deepEqual((await reopened.find({}, { sort: { action: 1 } })).map((e) => e.action), ['kept', 'next']);
    await reopened.close();
    await log.close();
  });
});

test('the datafile stays bounded: once the dropped events outnumber the kept ones it is rewritten without them', async () => {
  await withTempDir(async (dir) => {
    const filename = path.join(dir, 'events.db');
    const log = await open(filename, 1000);
    const start = Date.now() - 100_000;
    const all: AuditEvent[] = [];
    for (let batch = 0; batch < 300; batch++) {
      const events = Array.from({ length: 100 }, (_, i) => makeEvent({ createdAt: new Date(start + all.length + i) }));
      all.push(...events);
      await log.insertMany(events);
    }
    await log.count({}); // after any compaction queued by the last batch
    const lines = (await readFile(filename, 'utf8')).split('\n').length - 1;
    assert.ok(lines <= 1000 + 10_000 + 100, `${lines} lines in the datafile for 1000 kept events`);
    assert.deepEqual(ids(await log.find({}, { sort: { createdAt: -1 }, limit: 3 })), ids(all.slice(-3).reverse()));
    assert.equal(await log.count({}), 1000);
    await log.close();
    assert.equal((await readFile(filename, 'utf8')).split('\n').length - 1, 1000, 'closing leaves only the kept events');
  });
});

test('events past the retention are not answered, even before the next batch removes them', async () => {
  await withTempDir(async (dir) => {
    const log = await open(path.join(dir, 'events.db'), 100_000, collectionSpecs({ eventRetentionDays: 1 }).events);
    const old = makeEvent({ createdAt: new Date(Date.now() - 86_400_000 - 60_000) });
    const recent = makeEvent();
    // Written together: the batch's retention pass drops the old one at once.
    await log.insertMany([old, recent]);
    assert.deepEqual(ids(await log.find({})), [recent.id]);
    assert.equal(await log.count({}), 1);
    assert.equal(await log.count({ action: 'test' }), 1);
    await log.close();
  });
});

test('the log holds little memory per event: the records stay in the file', { timeout: 60_000 }, async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  await withTempDir(async (dir) => {
    const log = await open(path.join(dir, 'events.db'));
    const event = () => makeEvent({
      action: 'LOGIN', requestId: crypto.randomUUID(), clientId: `client-${crypto.randomUUID()}`, username: 'someone',
      context: { grantType: 'client_credentials', rule: 'client secret', jti: crypto.randomUUID(), userId: crypto.randomUUID() },
    });
    gc();
    const before = process.memoryUsage().heapUsed;
    const count = 20_000;
    for (let at = 0; at < count; at += 200) await log.insertMany(Array.from({ length: 200 }, event));
    gc();
    const perEvent = (process.memoryUsage().heapUsed - before) / count;
    // NeDB held about 1,000 bytes per event (record and indexes).
    assert.ok(perEvent < 200, `${perEvent.toFixed(0)} bytes of heap per event`);
    assert.equal(await log.count({}), count);
    await log.close();
  });
});

test('emptied after an out-of-order insert, the log orders the next events again (its time order is rebuilt from nothing)', async () => {
  await withTempDir(async (dir) => {
    const log = await open(path.join(dir, 'events.db'));
    const first = makeEvent({ createdAt: new Date(2_000) });
    await log.insert(first);
    assert.equal(await log.deleteOne({ id: first.id }), true);
    const late = makeEvent({ createdAt: new Date(1_000) }); // older than the last one written
    await log.insert(late);
    assert.equal(await log.deleteOne({ id: late.id }), true);
    assert.equal(await log.count({ action: 'test' }), 0);
    const [a, b] = [makeEvent({ createdAt: new Date(3_000) }), makeEvent({ createdAt: new Date(4_000) })];
    await log.insert(a);
    assert.deepEqual(ids(await log.find({}, { sort: { createdAt: -1 }, limit: 5 })), [a.id]);
    await log.insert(b);
    assert.deepEqual(ids(await log.find({}, { sort: { createdAt: -1 }, limit: 5 })), [b.id, a.id]);
    assert.deepEqual(ids(await log.find({ createdAt: { $gte: new Date(3_500) } })), [b.id]);
    await log.close();
  });
});

test('any sequence of inserts, updates, deletions and restarts leaves the log answering as NeDB does', async () => {
  for (let seed = 1; seed <= 8; seed++) {
    await withTempDir(async (dir) => {
      const filename = path.join(dir, 'events.db');
      let log = await open(filename);
      const nedb = new Datastore<Doc>({ inMemoryOnly: true });
      await nedb.loadDatabaseAsync();
      let state = seed;
      const random = (n: number) => (state = (state * 1_103_515_245 + 12_345) % 2_147_483_648) % n;
      const actions = ['a', 'b', 'c'];
      const base = Date.now() - 3_600_000;
      const newest = { createdAt: -1, id: -1 } as const;
      const check = async (label: string) => {
        const want = (await nedb.findAsync({}).sort({ createdAt: -1, _id: -1 })).map((doc: Doc) => doc._id);
        assert.deepEqual(ids(await log.find({}, { sort: newest })), want, `seed ${seed}: ${label}`);
        const action = actions[random(3)]!;
        const some = (await nedb.findAsync({ action }).sort({ createdAt: -1, _id: -1 }).limit(3)).map((doc: Doc) => doc._id);
        assert.deepEqual(ids(await log.find({ action }, { sort: newest, limit: 3 })), some, `seed ${seed}: ${label}, action ${action}`);
        assert.equal(await log.count({ action }), await nedb.countAsync({ action }), `seed ${seed}: ${label}, count`);
      };
      for (let step = 0; step < 120; step++) {
        const op = random(10);
        if (op < 5) {
          const batch = Array.from({ length: 1 + random(4) }, () =>
            makeEvent({ action: actions[random(3)]!, createdAt: new Date(base + random(4) * 1000 + step * 10 - (random(6) === 0 ? 5000 : 0)) }));
          await log.insertMany(batch);
          await nedb.insertAsync(batch.map((e) => toStored(e, spec)));
        } else if (op < 7) {
          const [from, to] = [actions[random(3)]!, actions[random(3)]!];
          const shift = random(2) === 0 ? { createdAt: new Date(base + random(3000)) } : {};
          const updated = await log.updateOne({ action: from }, { $set: { action: to, ...shift } });
          if (updated) await nedb.updateAsync({ _id: updated.id }, { $set: { action: to, ...shift } }, {});
          else assert.equal(await nedb.countAsync({ action: from }), 0, `seed ${seed}: updateOne found nothing`);
        } else if (op < 8) {
          const action = actions[random(3)]!;
          assert.equal(await log.deleteMany({ action }), await nedb.removeAsync({ action }, { multi: true }), `seed ${seed}: deleteMany`);
        } else if (op < 9) {
          const doc = (await nedb.findAsync({}))[random(5)] as Doc | undefined;
          if (doc) {
            assert.equal(await log.deleteOne({ id: doc._id as string }), true);
            await nedb.removeAsync({ _id: doc._id }, {});
          }
        } else {
          // A restart: cleanly, or as after kill -9 (the old descriptor simply abandoned).
          if (random(2) === 0) await log.close();
          log = await open(filename);
        }
        await check(`step ${step} (op ${op})`);
      }
      await log.close();
    });
  }
});

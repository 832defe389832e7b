/**
 * Expiry on the MongoDB adapter, without a server: what it asks of the driver. MongoDB's TTL
 * monitor removes expired records about once a minute, so the adapter itself must leave them out
 * and free the unique keys they hold; the contract suite checks the answers on a real MongoDB
 * (test/store/mongodb.test.ts, where TESSERA_TEST_MONGODB_URI is set).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import mongoose from 'mongoose';
import { ConflictError } from '../../src/store/errors.js';
import { COLLECTION_SPECS } from '../../src/store/specs.js';
import { MongoCollection } from '../../src/store/mongo/mongo-collection.js';

type Doc = Record<string, unknown>;

/** A driver collection that records the filters it is given; `insertOne` answers from `inserts`. */
function recordingCollection(inserts: (() => Promise<unknown>)[] = [], expiredHolders = 0) {
  const filters: { op: string; filter: Doc }[] = [];
  const collection = {
    findOne: async (filter: Doc) => (filters.push({ op: 'findOne', filter }), null),
    countDocuments: async (filter: Doc) => (filters.push({ op: 'count', filter }), 0),
    findOneAndUpdate: async (filter: Doc) => (filters.push({ op: 'updateOne', filter }), null),
    updateMany: async (filter: Doc) => (filters.push({ op: 'updateMany', filter }), { matchedCount: 0 }),
    find: (filter: Doc) => {
      filters.push({ op: 'find', filter });
      const cursor = { sort: () => cursor, skip: () => cursor, limit: () => cursor, toArray: async () => [] };
      return cursor;
    },
    insertOne: async () => inserts.shift()!(),
    deleteMany: async (filter: Doc) => (filters.push({ op: 'deleteMany', filter }), { deletedCount: expiredHolders }),
  };
  return { filters, collection: collection as unknown as mongoose.mongo.Collection<Doc> };
}

const duplicateUsername = () => new mongoose.mongo.MongoServerError({
  message: 'E11000 duplicate key error collection: tessera.users index: username_1 dup key: { username: "gsa-1" }',
  code: 11000, keyPattern: { username: 1 }, keyValue: { username: 'gsa-1' },
});

test('reads and updates of a collection with a TTL field leave out the records past it', async () => {
  const { filters, collection } = recordingCollection();
  const devices = new MongoCollection('deviceAuthorizations', collection, COLLECTION_SPECS.deviceAuthorizations);
  const before = Date.now();
  await devices.findOne({ deviceCodeHash: 'h' });
  await devices.find({ clientId: 'c' });
  await devices.count({});
  await devices.updateOne({ id: 'd', $or: [{ nextPollAt: null }, { nextPollAt: { $lte: 1 } }] }, { $set: { nextPollAt: 2 } });
  await devices.updateMany({ clientId: 'c' }, { $set: { status: 'denied' } });
  const after = Date.now();
  assert.deepEqual(filters.map((f) => f.op), ['findOne', 'find', 'count', 'updateOne', 'updateMany']);
  for (const { op, filter } of filters) {
    // The same rule as the TTL index: expiresAt + 3600 s (device authorizations) before now is gone.
    const condition = (filter.$and as Doc[])[0]!.expiresAt as { $not: { $lt: Date } };
    const cutoff = condition.$not.$lt.getTime();
    assert.ok(cutoff >= before - 3_600_000 && cutoff <= after - 3_600_000, op);
  }
  // The caller's own conditions are kept as they were.
  assert.equal(filters[0]!.filter.deviceCodeHash, 'h');
  assert.deepEqual(filters[3]!.filter.$or, [{ nextPollAt: null }, { nextPollAt: { $lte: 1 } }]);
  assert.equal(filters[3]!.filter._id, 'd');
});

test('a collection without a TTL field is read as asked', async () => {
  const { filters, collection } = recordingCollection();
  await new MongoCollection('clients', collection, COLLECTION_SPECS.clients).findOne({ clientId: 'c' });
  assert.deepEqual(filters[0]!.filter, { clientId: 'c' });
});

test('a unique key held only by an expired record: the record is removed and the insert tried once more', async () => {
  let attempts = 0;
  const { filters, collection } = recordingCollection([
    async () => { attempts++; throw duplicateUsername(); },
    async () => { attempts++; return { acknowledged: true }; },
  ], 1);
  const users = new MongoCollection<{ id: string; username: string }>('users', collection, COLLECTION_SPECS.users);
  const user = { id: 'u2', username: 'gsa-1' };
  assert.deepEqual(await users.insert(user), user);
  assert.equal(attempts, 2);
  const removal = filters.find((f) => f.op === 'deleteMany')!.filter as { username: string; expiresAt: { $lt: Date } };
  assert.equal(removal.username, 'gsa-1');
  assert.ok(removal.expiresAt.$lt.getTime() <= Date.now(), 'only records already past their expiry');
});

test('a unique key held by a live record stays a ConflictError naming the field, without a second try', async () => {
  let attempts = 0;
  const { collection } = recordingCollection([async () => { attempts++; throw duplicateUsername(); }], 0);
  const users = new MongoCollection<{ id: string; username: string }>('users', collection, COLLECTION_SPECS.users);
  await assert.rejects(users.insert({ id: 'u3', username: 'gsa-1' }), (e: unknown) => e instanceof ConflictError && e.field === 'username');
  assert.equal(attempts, 1);
});

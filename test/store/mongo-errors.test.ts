/**
 * The MongoDB adapter's reading of driver errors, with errors the driver itself builds: no mongod
 * runs on our machines, so a bulk write's duplicate-key error is made by the driver's own code
 * (mergeBatchResults and handleWriteError, from mongoose's copy of the driver) out of the reply a
 * server sends; the server-side semantics run in test/store/mongodb.test.ts where a MongoDB is.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import mongoose from 'mongoose';
import { ConflictError, StoreUnavailableError } from '../../src/store/errors.js';
import { COLLECTION_SPECS, collectionSpecs } from '../../src/store/specs.js';
import { MongoCollection } from '../../src/store/mongo/mongo-collection.js';
import { duplicateKey, isUnavailable, unavailableOr } from '../../src/store/mongo/mongo-errors.js';
import { indexesFor, MAX_TTL_SECONDS } from '../../src/store/mongo/mongo-indexes.js';
import { loadConfig, ConfigError } from '../../src/config.js';

const require = createRequire(import.meta.url);
// The driver mongoose runs (node_modules/mongoose/node_modules/mongodb), not the top-level copy.
const driverBulk = createRequire(require.resolve('mongoose'))('mongodb/lib/bulk/common.js') as {
  Batch: new (type: number, originalZeroIndex: number) => { operations: unknown[]; originalIndexes: number[] };
  BatchType: { INSERT: number };
  BulkWriteResult: new (bulkResult: unknown, isOrdered: boolean) => unknown;
  BulkOperationBase: { prototype: { handleWriteError(this: { s: { bulkResult: unknown } }, writeResult: unknown): void } };
  mergeBatchResults(batch: unknown, bulkResult: unknown, error: unknown, result: unknown): void;
};

/** The MongoBulkWriteError an unordered insertMany throws when the server reports E11000 on `index`. */
function bulkDuplicateError(index: string, key: Record<string, string>): Error {
  const docs = [{ _id: 'a', ...key }, { _id: 'b', ...key }];
  const batch = new driverBulk.Batch(driverBulk.BatchType.INSERT, 0);
  docs.forEach((doc, i) => {
    batch.operations.push(doc);
    batch.originalIndexes.push(i);
  });
  const bulkResult = {
    ok: 1, writeErrors: [], writeConcernErrors: [], insertedIds: docs.map((doc, i) => ({ index: i, _id: doc._id })),
    nInserted: 0, nUpserted: 0, nMatched: 0, nModified: 0, nRemoved: 0, upserted: [],
  };
  const [field, value] = Object.entries(key)[0]!;
  // What the server answers (MongoDB 4.2+ sends keyPattern and keyValue with each write error).
  driverBulk.mergeBatchResults(batch, bulkResult, null, {
    ok: 1, n: 1,
    writeErrors: [{
      index: 1, code: 11000, keyPattern: { [field]: 1 }, keyValue: { [field]: value },
      errmsg: `E11000 duplicate key error collection: tessera.users index: ${index} dup key: { ${field}: "${value}" }`,
    }],
  });
  try {
    driverBulk.BulkOperationBase.prototype.handleWriteError.call({ s: { bulkResult } }, new driverBulk.BulkWriteResult(bulkResult, false));
  } catch (error) {
    return error as Error;
  }
  throw new Error('the driver raised no error');
}

/** A driver collection that throws `error` from insertMany, and lists `indexes`. */
function collectionThrowing(error: Error, indexes: { name: string; key: Record<string, number> }[] = []) {
  return {
    insertMany: async () => {
      throw error;
    },
    listIndexes: () => ({ toArray: async () => indexes }),
  } as unknown as mongoose.mongo.Collection<Record<string, unknown>>;
}

test('the driver drops keyPattern from a bulk write error: only the index name in errmsg is left', () => {
  const error = bulkDuplicateError('username_1', { username: 'ada' });
  assert.ok(error instanceof mongoose.mongo.MongoBulkWriteError);
  const first = (error as unknown as { writeErrors: { err: Record<string, unknown> }[] }).writeErrors[0]!;
  assert.equal(first.err.keyPattern, undefined);
  assert.equal((error as unknown as { keyPattern?: unknown }).keyPattern, undefined);
  assert.deepEqual(duplicateKey(error), { field: null, index: 'username_1' });
});

test('insertMany: a duplicate username is a ConflictError naming username (was "unique key")', async () => {
  const users = new MongoCollection('users', collectionThrowing(bulkDuplicateError('username_1', { username: 'ada' })), COLLECTION_SPECS.users);
  await assert.rejects(users.insertMany([{ id: 'x' }]), (error: unknown) =>
    error instanceof ConflictError && error.collection === 'users' && error.field === 'username');
});

test('insertMany: a duplicate _id is a ConflictError naming id', async () => {
  const events = new MongoCollection('events', collectionThrowing(bulkDuplicateError('_id_', { _id: 'e1' })), COLLECTION_SPECS.events);
  await assert.rejects(events.insertMany([{ id: 'e1' }]), (error: unknown) => error instanceof ConflictError && error.field === 'id');
});

test('insertMany: an index not made from specs.ts is looked up by name for its field', async () => {
  const error = bulkDuplicateError('username_per_tenant', { username: 'ada' });
  const indexes: { name: string; key: Record<string, number> }[] = [
    { name: '_id_', key: { _id: 1 } }, { name: 'username_per_tenant', key: { username: 1, tenant: 1 } },
  ];
  const users = new MongoCollection('users', collectionThrowing(error, indexes), COLLECTION_SPECS.users);
  await assert.rejects(users.insertMany([{ id: 'x' }]), (e: unknown) => e instanceof ConflictError && e.field === 'username');
});

test('a single write\'s duplicate key keeps keyPattern (MongoServerError), and the old message form is read too', () => {
  const single = new mongoose.mongo.MongoServerError({
    message: 'E11000 duplicate key error collection: tessera.clients index: clientId_1 dup key: { clientId: "c" }',
    code: 11000, keyPattern: { clientId: 1 }, keyValue: { clientId: 'c' },
  });
  assert.deepEqual(duplicateKey(single), { field: 'clientId', index: 'clientId_1' });
  const old = new mongoose.mongo.MongoServerError({ message: 'E11000 duplicate key error index: tessera.users.$username_1  dup key: { : "a" }', code: 11000 });
  assert.deepEqual(duplicateKey(old), { field: null, index: 'username_1' });
  assert.equal(duplicateKey(new mongoose.mongo.MongoServerError({ message: 'not a duplicate', code: 2 })), null);
});

test('connection errors are StoreUnavailableError; a duplicate key or a bad query is not', () => {
  const selection = new mongoose.mongo.MongoServerSelectionError('Server selection timed out after 300 ms', {
    type: 'Unknown', servers: new Map(), stale: false, compatible: true, heartbeatFrequencyMS: 10000, localThresholdMS: 15, setName: null,
    maxElectionId: null, maxSetVersion: null, commonWireVersion: 0, logicalSessionTimeoutMinutes: null,
  } as unknown as mongoose.mongo.TopologyDescription);
  const network = new mongoose.mongo.MongoNetworkError('connect ECONNREFUSED 127.0.0.1:1');
  const steppedDown = new mongoose.mongo.MongoServerError({ message: 'not primary', code: 10107 });
  for (const error of [selection, network, steppedDown]) {
    assert.ok(isUnavailable(error), error.name);
    const mapped = unavailableOr(error);
    assert.ok(mapped instanceof StoreUnavailableError, error.name);
    assert.equal((mapped as Error).cause, error);
  }
  // A bulk write that could not reach a server wraps the driver's error (bulk/common.js).
  const wrapped = new mongoose.mongo.MongoBulkWriteError(network as unknown as mongoose.mongo.AnyError, {} as mongoose.mongo.BulkWriteResult);
  assert.ok(isUnavailable(wrapped));
  assert.equal(isUnavailable(bulkDuplicateError('username_1', { username: 'ada' })), false);
  assert.equal(isUnavailable(new mongoose.mongo.MongoServerError({ message: 'unknown operator: $foo', code: 2 })), false);
  assert.equal(isUnavailable(new Error('anything else')), false);
});

test('TESSERA_EVENT_RETENTION_DAYS stops at 24,855 days, the most a TTL index holds (2^31 - 1 s)', () => {
  assert.equal(loadConfig({ TESSERA_EVENT_RETENTION_DAYS: '24855' }).eventRetentionDays, 24855);
  assert.ok(24855 * 86_400 <= MAX_TTL_SECONDS && 24856 * 86_400 > MAX_TTL_SECONDS);
  assert.throws(() => loadConfig({ TESSERA_EVENT_RETENTION_DAYS: '24856' }), (e: unknown) =>
    e instanceof ConfigError && e.variable === 'TESSERA_EVENT_RETENTION_DAYS' && /24855/.test(e.message));
  const events = indexesFor('events', collectionSpecs({ eventRetentionDays: 24855 }).events);
  assert.equal(events.find((index) => index.name === 'createdAt_1')?.expireAfterSeconds, 24855 * 86_400);
  // And the adapter refuses a TTL past the limit itself, rather than sending it to MongoDB.
  assert.throws(() => indexesFor('events', collectionSpecs({ eventRetentionDays: 24856 }).events), /outside MongoDB's/);
});

test('the index names are MongoDB\'s defaults, so indexes made by earlier releases are the same ones', () => {
  const users = indexesFor('users', COLLECTION_SPECS.users);
  assert.deepEqual(users.map((index) => index.name).sort(), ['createdAt_1', 'expiresAt_1', 'identityKey_1', 'type_1', 'username_1']);
  assert.deepEqual(users.find((index) => index.name === 'username_1'), { key: { username: 1 }, name: 'username_1', unique: true, sparse: true });
  // Generated accounts' identity key (trust issue): unique, and absent on every other user.
  assert.deepEqual(users.find((index) => index.name === 'identityKey_1'), { key: { identityKey: 1 }, name: 'identityKey_1', unique: true, sparse: true });
  assert.equal(users.find((index) => index.name === 'expiresAt_1')?.expireAfterSeconds, 0);
  const devices = indexesFor('deviceAuthorizations', COLLECTION_SPECS.deviceAuthorizations);
  assert.equal(devices.find((index) => index.name === 'expiresAt_1')?.expireAfterSeconds, 3_600);
  assert.ok(devices.some((index) => index.name === 'clientId_1'), 'mongoOnlyIndexes are built');
});

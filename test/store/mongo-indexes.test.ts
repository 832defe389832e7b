/**
 * Start-up's index setup on MongoDB, without a server: what ensureIndexes asks of the driver for
 * each state an existing database can be in, and which refusals it passes on. The driver's error
 * objects are the driver's own (mongoose.mongo); the database is a recorder standing in for one.
 * On a real MongoDB, test/store/mongodb.test.ts checks the results (TESSERA_TEST_MONGODB_URI).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import mongoose from 'mongoose';
import { collectionSpecs } from '../../src/store/specs.js';
import { ensureIndexes } from '../../src/store/mongo/mongo-indexes.js';

type Doc = Record<string, unknown>;

const serverError = (code: number, codeName: string, message: string) => new mongoose.mongo.MongoServerError({ message, code, codeName });

/** A database whose events collection has `existing` indexes; `refuse` makes a command fail. */
function recordingDb(existing: Doc[] | Error, refuse: { collMod?: Error; dropIndex?: Error } = {}) {
  const calls: string[] = [];
  const collection = {
    listIndexes: () => ({
      toArray: async () => {
        calls.push('listIndexes');
        if (existing instanceof Error) throw existing;
        return existing;
      },
    }),
    dropIndex: async (name: string) => {
      calls.push(`dropIndex ${name}`);
      if (refuse.dropIndex) throw refuse.dropIndex;
    },
    createIndexes: async (indexes: Doc[]) => {
      calls.push(`createIndexes ${indexes.map((index) => `${String(index.name)}${index.expireAfterSeconds === undefined ? '' : `:${String(index.expireAfterSeconds)}`}`).join(',')}`);
    },
  };
  const db = {
    collection: () => collection,
    command: async (command: Doc) => {
      calls.push(`command ${JSON.stringify(command)}`);
      if ('collMod' in command && refuse.collMod) throw refuse.collMod;
      return { ok: 1 };
    },
  };
  return { calls, db: db as unknown as mongoose.mongo.Db };
}

const events = (days: number) => collectionSpecs({ eventRetentionDays: days }).events;
const THIRTY_DAYS = 30 * 86_400;
const SIXTY_DAYS = 60 * 86_400;
const createdAt = (expireAfterSeconds?: number): Doc => ({ v: 2, key: { createdAt: 1 }, name: 'createdAt_1', ...(expireAfterSeconds === undefined ? {} : { expireAfterSeconds }) });

test('a retention change is made in place with collMod, nothing dropped', async () => {
  const { calls, db } = recordingDb([{ v: 2, key: { _id: 1 }, name: '_id_' }, createdAt(THIRTY_DAYS)]);
  await ensureIndexes(db, 'events', events(60));
  assert.deepEqual(calls.slice(0, 2), [
    'listIndexes',
    `command {"collMod":"events","index":{"keyPattern":{"createdAt":1},"expireAfterSeconds":${SIXTY_DAYS}}}`,
  ]);
  assert.ok(!calls.some((call) => call.startsWith('dropIndex')), calls.join('\n'));
  assert.match(calls.at(-1)!, new RegExp(`^createIndexes createdAt_1:${SIXTY_DAYS},`));
});

test('the same retention asks nothing of collMod', async () => {
  const { calls, db } = recordingDb([createdAt(THIRTY_DAYS)]);
  await ensureIndexes(db, 'events', events(30));
  assert.equal(calls.length, 2);
  assert.equal(calls[0], 'listIndexes');
});

test('collMod refused (readWrite has no collMod privilege): the index is dropped and built again', async () => {
  const unauthorized = serverError(13, 'Unauthorized', 'not authorized on tessera to execute command { collMod: "events" }');
  const { calls, db } = recordingDb([createdAt(THIRTY_DAYS)], { collMod: unauthorized });
  await ensureIndexes(db, 'events', events(60));
  assert.deepEqual(calls.filter((call) => !call.startsWith('command')).slice(0, 2), ['listIndexes', 'dropIndex createdAt_1']);
  assert.match(calls.at(-1)!, new RegExp(`createdAt_1:${SIXTY_DAYS}`));
});

test('a missing collection (NamespaceNotFound) is a database without indexes yet', async () => {
  const { calls, db } = recordingDb(serverError(26, 'NamespaceNotFound', 'ns does not exist: tessera.events'));
  await ensureIndexes(db, 'events', events(30));
  assert.match(calls.at(-1)!, /^createIndexes /);
});

test('listIndexes refused for any other reason (authentication, network) stops start-up: it is not "no collection yet"', async () => {
  const unauthorized = serverError(13, 'Unauthorized', 'not authorized on tessera to execute command { listIndexes: "events" }');
  const network = new mongoose.mongo.MongoNetworkError('connection 3 to db.example:27017 closed');
  for (const refusal of [unauthorized, network]) {
    const { calls, db } = recordingDb(refusal);
    await assert.rejects(ensureIndexes(db, 'events', events(30)), (error: unknown) => error === refusal);
    assert.deepEqual(calls, ['listIndexes'], 'nothing built on a guess');
  }
});

test('collMod failing because MongoDB is out of reach is not taken for a refusal: nothing is dropped', async () => {
  const network = new mongoose.mongo.MongoNetworkError('connection 4 to db.example:27017 closed');
  const { calls, db } = recordingDb([createdAt(THIRTY_DAYS)], { collMod: network });
  await assert.rejects(ensureIndexes(db, 'events', events(60)), (error: unknown) => error === network);
  assert.ok(!calls.some((call) => call.startsWith('dropIndex')));
});

test('an index another node dropped a moment ago (IndexNotFound) is fine; another dropIndex failure is not', async () => {
  const unauthorized = serverError(13, 'Unauthorized', 'no collMod');
  const gone = recordingDb([createdAt()], { collMod: unauthorized, dropIndex: serverError(27, 'IndexNotFound', 'index not found with name [createdAt_1]') });
  // A plain createdAt index on MongoDB before 5.1 cannot gain a TTL by collMod either.
  await ensureIndexes(gone.db, 'events', events(30));
  assert.match(gone.calls.at(-1)!, new RegExp(`createdAt_1:${THIRTY_DAYS}`));
  const denied = serverError(13, 'Unauthorized', 'not authorized to dropIndex');
  const refused = recordingDb([createdAt()], { collMod: unauthorized, dropIndex: denied });
  await assert.rejects(ensureIndexes(refused.db, 'events', events(30)), (error: unknown) => error === denied);
});

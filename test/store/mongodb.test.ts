/**
 * The storage contract on MongoDB, when one can be had (test/helpers/mongo.ts): each test gets a
 * database of its own, dropped afterwards. Without a MongoDB the suite is skipped, saying why.
 */
import assert from 'node:assert/strict';
import { after, describe, it, test } from 'node:test';
import mongoose, { type Connection } from 'mongoose';
import { openMongoStore } from '../../src/store/mongo/mongo-store.js';
import { withRepositories } from '../../src/store/index.js';
import { findTestMongo, MONGO_SKIP_REASON, mongoUriWithDatabase, uniqueDatabaseName } from '../helpers/mongo.js';
import { runStoreContract } from './contract.js';

const mongo = await findTestMongo();

if (!mongo) {
  console.log(MONGO_SKIP_REASON);
  it('store contract: MongoDB', { skip: MONGO_SKIP_REASON }, () => {});
} else {
  console.log(`store contract: MongoDB (${mongo.source})`);
  describe('MongoDB', () => {
    after(() => mongo.stop());
    runStoreContract('mongodb', async () => {
      const database = uniqueDatabaseName();
      const store = withRepositories(await openMongoStore(mongoUriWithDatabase(mongo.uri, database), { serverSelectionTimeoutMS: 5000 }));
      const connection = (store as typeof store & { mongooseConnection: Connection }).mongooseConnection;
      return {
        store,
        cleanup: async () => {
          try {
            await connection.dropDatabase();
          } finally {
            await store.close();
          }
        },
      };
    });

    describe('start-up: the indexes', () => {
      /** A database of its own, opened directly (not through the adapter), dropped afterwards. */
      async function withDatabase(run: (uri: string, direct: Connection) => Promise<void>): Promise<void> {
        const uri = mongoUriWithDatabase(mongo!.uri, uniqueDatabaseName());
        const direct = await mongoose.createConnection(uri).asPromise();
        try {
          await run(uri, direct);
        } finally {
          await direct.dropDatabase().catch(() => undefined);
          await direct.close();
        }
      }
      const indexes = async (direct: Connection, collection: string) =>
        (await direct.db!.collection(collection).listIndexes().toArray()) as { name: string; key: Record<string, number>; unique?: boolean; expireAfterSeconds?: number }[];

      test("rate-limiter-flexible's collection and its indexes are made at start-up", async () => {
        await withDatabase(async (uri, direct) => {
          const store = await openMongoStore(uri, { serverSelectionTimeoutMS: 5000 });
          await store.close();
          const made = await indexes(direct, 'rateLimits');
          assert.equal(made.find((index) => index.key.expire === -1)?.expireAfterSeconds, 0);
          assert.equal(made.find((index) => index.key.key === 1)?.unique, true);
        });
      });

      test('a retention change is made on the existing TTL index, and a plain createdAt index gains its TTL', async () => {
        await withDatabase(async (uri, direct) => {
          // An events collection from before retention existed: a plain createdAt index, one event.
          await direct.db!.collection('events').createIndex({ createdAt: 1 });
          await direct.db!.collection('events').insertOne({ _id: 'e1' as never, createdAt: new Date() });
          for (const days of [30, 60]) {
            const store = await openMongoStore(uri, { serverSelectionTimeoutMS: 5000, eventRetentionDays: days });
            await store.close();
            const createdAt = (await indexes(direct, 'events')).filter((index) => 'createdAt' in index.key);
            assert.equal(createdAt.length, 1, `one createdAt index (${days} days)`);
            assert.equal(createdAt[0]!.expireAfterSeconds, days * 86_400);
          }
          assert.equal(await direct.db!.collection('events').countDocuments({ _id: 'e1' as never }), 1, 'no event lost');
        });
      });

      test('index setup that fails closes its connection and says why', async () => {
        await withDatabase(async (uri, direct) => {
          // A username_1 index that is not unique: MongoDB refuses to make the unique one by that name.
          await direct.db!.collection('users').createIndex({ username: 1 }, { name: 'username_1' });
          const openBefore = mongoose.connections.filter((c) => c.readyState === mongoose.ConnectionStates.connected).length;
          await assert.rejects(openMongoStore(uri, { serverSelectionTimeoutMS: 5000 }), (error: Error) => /username_1|index/i.test(error.message));
          const openAfter = mongoose.connections.filter((c) => c.readyState === mongoose.ConnectionStates.connected).length;
          assert.equal(openAfter, openBefore, 'the failed start-up left no connection open');
        });
      });
    });
  });
}

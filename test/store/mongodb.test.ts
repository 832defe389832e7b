/**
 * The storage contract on MongoDB, when one can be had (test/helpers/mongo.ts): each test gets a
 * database of its own, dropped afterwards. Without a MongoDB the suite is skipped, saying why.
 */
import { after, describe, it } from 'node:test';
import type { Connection } from 'mongoose';
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
  });
}

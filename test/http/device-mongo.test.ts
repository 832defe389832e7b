/**
 * The device flow on two server nodes sharing one MongoDB (when one can be had, see
 * test/helpers/mongo.ts; skipped otherwise, saying why): success exactly once with polls spread
 * over both nodes, the wrong-code limit held in MongoDB across nodes, and a /device session
 * signed on one node accepted by the other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it, test } from 'node:test';
import mongoose from 'mongoose';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { findTestMongo, mongoUriWithDatabase, uniqueDatabaseName } from '../helpers/mongo.js';
import { seedClient, seedProvider, seedUser, type SeededUser } from '../helpers/seed.js';
import { decide, poll, startDevice } from '../helpers/device.js';

const mongo = await findTestMongo();
const SKIP = 'device flow on MongoDB: skipped (no TESSERA_TEST_MONGODB_URI and no mongod on PATH)';

if (!mongo) {
  console.log(SKIP);
  it('device flow across two nodes on MongoDB', { skip: SKIP }, () => {});
} else {
  console.log(`device flow on MongoDB (${mongo.source})`);
  describe('the device flow across two nodes on one MongoDB', () => {
    const uri = mongoUriWithDatabase(mongo.uri, uniqueDatabaseName('tessera_device'));
    const env = { TESSERA_MONGODB_URI: uri, TESSERA_SECRET_KEY: 'device-mongo-test-secret-key-0123456789abcdef' };
    let a: TestServer;
    let b: TestServer;
    let clientId: string;
    let user: SeededUser;

    before(async () => {
      a = await startTestServer(env);
      b = await startTestServer(env);
      const provider = await seedProvider(a);
      clientId = (await seedClient(a, { providerId: provider.id })).clientId;
      user = await seedUser(a);
    });
    after(async () => {
      await b?.stop();
      await a?.stop();
      const connection = await mongoose.createConnection(uri).asPromise();
      await connection.dropDatabase();
      await connection.close();
      await mongo.stop();
    });

    test('codes from one node, approval on the other, polls on both: exactly one success', async () => {
      const codes = await startDevice(a, clientId);
      assert.equal((await decide(b, user.username, user.appPassword, codes.user_code, 'allow')).status, 200);
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => poll(i % 2 === 0 ? a : b, clientId, codes.device_code)));
      const statuses = answers.map((x) => x.status);
      assert.equal(statuses.filter((s) => s === 200).length, 1, statuses.join(','));
      assert.ok(statuses.every((s) => s === 200 || s === 400), statuses.join(','));
    });

    test('the wrong-code limit is shared: 20 wrong on one node, the 21st on the other is 429', async () => {
      const guesser = await seedUser(a);
      for (let i = 0; i < 20; i++) {
        const answer = await decide(a, guesser.username, guesser.appPassword, `GGGG-GG${'BCDFGHJKLMNPQRSTVWXZ'[i]}G`, 'allow');
        assert.equal(answer.status, 400, `attempt ${i + 1}`);
      }
      const over = await decide(b, guesser.username, guesser.appPassword, 'GGGG-HHHH', 'allow');
      assert.equal(over.status, 429);
      assert.deepEqual(over.body, { error: 'slow_down' });
    });

    test('a /device session signed on one node is accepted by the other', async () => {
      const first = await fetch(`${a.url}/device`);
      const cookie = first.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
      const csrf = /name="csrf" value="([^"]+)"/.exec(await first.text())![1]!;
      const signedIn = await fetch(`${a.url}/device`, {
        method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf, action: 'signin', username: user.username, password: user.password }).toString(),
      });
      assert.equal(signedIn.status, 303);
      const session = signedIn.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
      const onB = await fetch(`${b.url}/device`, { headers: { cookie: session } });
      assert.match(await onB.text(), /Enter the code shown on your device/);
    });
  });
}

/**
 * An unreachable MongoDB, for real: the driver (mongoose's copy) against a loopback port where
 * nothing listens. Start-up needs a MongoDB (it builds the indexes first), and none runs on our
 * machines, so "after start-up" is the adapter and the whole app built over a database that stopped
 * answering: every request must answer 503 quickly, /readyz within 2 s, never 500 after 10 s.
 * With a MongoDB (TESSERA_TEST_MONGODB_URI), test/store/mongodb.test.ts covers start-up itself.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import mongoose from 'mongoose';
import { StoreUnavailableError } from '../../src/store/errors.js';
import { withRepositories, type Store } from '../../src/store/index.js';
import { collectionSpecs } from '../../src/store/specs.js';
import { DEFAULT_SERVER_SELECTION_TIMEOUT_MS, mongoStoreOver, openMongoStore, PING_TIMEOUT_MS } from '../../src/store/mongo/mongo-store.js';
import { FailedSignInLimiter } from '../../src/domain/rate-limits.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/http/logger.js';
import { createServices } from '../../src/domain/services.js';
import { createApp } from '../../src/app.js';
import { formatAdminError } from '../../src/admin/errors.js';
import { basic, freePort, postForm } from '../helpers/server.js';
import { GraphQLError } from 'graphql';

const SELECTION_MS = 300;

async function unreachableStore(serverSelectionTimeoutMS = SELECTION_MS): Promise<{ store: Store; uri: string }> {
  const uri = `mongodb://127.0.0.1:${await freePort()}/tessera`;
  const client = new mongoose.mongo.MongoClient(uri, { serverSelectionTimeoutMS });
  const store = withRepositories(mongoStoreOver(client.db(), collectionSpecs({ eventRetentionDays: 30 }), () => client.close()));
  return { store, uri };
}

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; error: unknown }> {
  const start = performance.now();
  try {
    await run();
    return { ms: performance.now() - start, error: null };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

describe('the MongoDB adapter with MongoDB out of reach', () => {
  let store: Store;
  before(async () => {
    ({ store } = await unreachableStore());
  });
  after(() => store.close());

  test('every operation fails with StoreUnavailableError after the server selection bound, not a driver error', async () => {
    const user = { id: 'u1', username: 'ada' } as never;
    const operations: [string, (on: Store) => Promise<unknown>][] = [
      ['findOne', (on) => on.users.findOne({ username: 'ada' })],
      ['find', (on) => on.users.find({}, { sort: { createdAt: -1 }, limit: 5 })],
      ['count', (on) => on.users.count({})],
      ['insert', (on) => on.users.insert(user)],
      ['insertMany', (on) => on.events.insertMany([{ id: 'e1' } as never])],
      ['updateOne', (on) => on.users.updateOne({ id: 'u1' }, { $set: { name: 'x' } })],
      ['updateMany', (on) => on.refreshTokens.updateMany({ familyId: 'f' }, { $set: { revokedAt: new Date() } })],
      ['deleteOne', (on) => on.appPasswords.deleteOne({ id: 'p' })],
      ['deleteMany', (on) => on.refreshTokens.deleteMany({ userId: 'u1' })],
      ['repository', (on) => on.refreshTokenRepository.spend('hash', new Date())],
    ];
    for (const [name, run] of operations) {
      // A client of its own for each: once a first connection attempt has failed, the driver
      // closes that client's topology and later operations fail at once (MongoTopologyClosedError,
      // mapped the same way), while a client connected at start-up waits for a server each time.
      const fresh = await unreachableStore();
      try {
        const { ms, error } = await timed(() => run(fresh.store));
        assert.ok(error instanceof StoreUnavailableError, `${name}: ${String(error)}`);
        assert.match(String((error.cause as Error).name), /^Mongo(ServerSelection|BulkWrite)Error$/, name);
        assert.ok(ms >= SELECTION_MS - 20 && ms < SELECTION_MS + 500, `${name} took ${Math.round(ms)} ms`);
        assert.ok((await timed(() => run(fresh.store))).error instanceof StoreUnavailableError, `${name}, again`);
      } finally {
        await fresh.store.close();
      }
    }
  });

  test('a ping fails within PING_TIMEOUT_MS even when server selection would wait 10 s', async () => {
    const slow = await unreachableStore(10_000);
    try {
      const { ms, error } = await timed(() => slow.store.ping());
      assert.ok(error instanceof StoreUnavailableError, String(error));
      assert.ok(ms >= PING_TIMEOUT_MS - 50 && ms < 2000, `ping took ${Math.round(ms)} ms`);
    } finally {
      await slow.store.close();
    }
  });

  test('rate limits on MongoDB: nothing on console, and a counter that cannot be reached is StoreUnavailableError', async () => {
    const printed: unknown[][] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => void printed.push(args);
    try {
      const limiter = new FailedSignInLimiter(store, 100);
      const attempt = { username: 'ada', address: '127.0.0.1' };
      const { error } = await timed(() => limiter.consume(attempt));
      assert.ok(error instanceof StoreUnavailableError, String(error));
      assert.ok((await timed(() => limiter.refund(attempt))).error instanceof StoreUnavailableError);
      // The library's own index creation (left on) would have failed by now, on console.error.
      await new Promise((resolve) => setTimeout(resolve, SELECTION_MS + 200));
    } finally {
      console.error = original;
    }
    assert.deepEqual(printed, []);
  });
});

test('start-up against an unreachable MongoDB tries for startupWaitMS, then StoreUnavailableError, and leaves nothing open', async () => {
  const uri = `mongodb://127.0.0.1:${await freePort()}/tessera`;
  const { ms, error } = await timed(() => openMongoStore(uri, { serverSelectionTimeoutMS: 200, startupWaitMS: 700 }));
  assert.ok(error instanceof StoreUnavailableError, String(error));
  assert.match((error as Error).message, /cannot connect to MongoDB/);
  assert.ok(ms >= 700 && ms < 2500, `gave up after ${Math.round(ms)} ms`);
  // Every attempt's connection is closed: an open one would keep this test file from ending.
});

test('server selection waits 2 s by default, and a serverSelectionTimeoutMS in the connection string wins', async () => {
  const closed = `mongodb://127.0.0.1:${await freePort()}/tessera`;
  const byDefault = await timed(() => openMongoStore(closed, { startupWaitMS: 0 }));
  assert.ok(byDefault.error instanceof StoreUnavailableError);
  assert.ok(byDefault.ms >= DEFAULT_SERVER_SELECTION_TIMEOUT_MS - 20 && byDefault.ms < DEFAULT_SERVER_SELECTION_TIMEOUT_MS + 700, `${Math.round(byDefault.ms)} ms`);
  const fromUri = await timed(() => openMongoStore(`${closed}?serverSelectionTimeoutMS=150`, { serverSelectionTimeoutMS: 5000, startupWaitMS: 0 }));
  assert.ok(fromUri.error instanceof StoreUnavailableError);
  assert.ok(fromUri.ms < 800, `${Math.round(fromUri.ms)} ms`);
});

describe('the app over a MongoDB that stopped answering', () => {
  let server: http.Server;
  let url: string;
  let store: Store;
  let closeApp: () => Promise<void>;

  before(async () => {
    const unreachable = await unreachableStore();
    store = unreachable.store;
    const config = loadConfig({
      TESSERA_MONGODB_URI: unreachable.uri, TESSERA_SECRET_KEY: 'unreachable-test-secret-key-0123456789abcdef',
      HOST: '127.0.0.1', PORT: '0', TESSERA_LOG_LEVEL: 'silent',
    });
    const services = createServices(config, store, createLogger('silent'), config.secretKey!);
    const app = await createApp(services);
    closeApp = async () => {
      await app.close();
      await services.events.close().catch(() => undefined);
    };
    server = http.createServer(app.koa.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await closeApp();
    await store.close();
  });

  test('/readyz answers 503 within 2 s', async () => {
    const start = performance.now();
    const response = await fetch(`${url}/readyz`);
    const ms = performance.now() - start;
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), { status: 'unavailable', store: 'mongodb' });
    assert.ok(ms < 2000, `${Math.round(ms)} ms`);
  });

  test('the token endpoint answers 503 temporarily_unavailable, quickly', async () => {
    const start = performance.now();
    const answer = await postForm(`${url}/application/o/token/`, { grant_type: 'client_credentials' }, { authorization: basic('m2m', 'secret') });
    const ms = performance.now() - start;
    assert.equal(answer.status, 503);
    assert.equal(answer.body.error, 'temporarily_unavailable');
    assert.equal(answer.headers.get('cache-control'), 'no-store');
    assert.ok(ms < SELECTION_MS * 2 + 1000, `${Math.round(ms)} ms`);
  });

  test('the device authorization endpoint and introspection answer 503 temporarily_unavailable', async () => {
    const device = await postForm(`${url}/application/o/device/`, { client_id: 'tv' });
    assert.equal(device.status, 503);
    assert.equal(device.body.error, 'temporarily_unavailable');
    const introspection = await postForm(`${url}/application/o/introspect/`, { token: 'x' }, { authorization: basic('rs', 'secret') });
    assert.equal(introspection.status, 503);
    assert.equal(introspection.body.error, 'temporarily_unavailable');
  });

  test('the /device JSON form answers 503 when its rate-limit counters (in MongoDB) cannot be read', async () => {
    const answer = await postForm(`${url}/device`, { user_code: 'BCDF-GHJK', action: 'allow' }, {
      accept: 'application/json', authorization: basic('ada', 'password-of-ada'),
    });
    assert.equal(answer.status, 503);
    assert.equal(answer.body.error, 'temporarily_unavailable');
  });

  test('/graphql answers 503 when the admin token cannot be checked', async () => {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer some-admin-token-0123456789' },
      body: JSON.stringify({ query: '{ providers { id } }' }),
    });
    assert.equal(response.status, 503);
    assert.equal(((await response.json()) as { error?: string }).error, 'temporarily_unavailable');
  });
});

test('/graphql: a resolver whose store stopped answering is SERVICE_UNAVAILABLE, not INTERNAL_SERVER_ERROR', () => {
  const cause = new StoreUnavailableError('MongoDB is not answering: Server selection timed out after 2000 ms');
  const error = new GraphQLError('MongoDB is not answering', { path: ['users'], originalError: cause });
  const formatted = formatAdminError(createLogger('silent'))({ message: error.message, path: ['users'], extensions: { code: 'INTERNAL_SERVER_ERROR' } }, error);
  assert.equal(formatted.extensions?.code, 'SERVICE_UNAVAILABLE');
  assert.doesNotMatch(formatted.message, /MongoDB|selection/, 'no driver detail in the answer');
});

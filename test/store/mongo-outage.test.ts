/**
 * MongoDB going away after start-up, end to end (when a MongoDB can be had, see
 * test/helpers/mongo.ts; skipped otherwise, saying why): a real server starts through a TCP proxy
 * on loopback, the proxy then cuts every connection and refuses new ones, and the server must
 * answer 503 (temporarily_unavailable on OAuth endpoints) within the 2 s server selection bound,
 * and /readyz within 2 s, instead of 500 after 10 s. test/store/mongo-unreachable.test.ts checks
 * the same answers without a MongoDB, over an adapter built on an unreachable port.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it, test } from 'node:test';
import mongoose from 'mongoose';
import { basic, postForm, startTestServer, type TestServer } from '../helpers/server.js';
import { findTestMongo, mongoUriWithDatabase, uniqueDatabaseName } from '../helpers/mongo.js';

const mongo = await findTestMongo();
// One host, no SRV: the proxy stands for that host (directConnection keeps the driver on it).
const single = mongo ? /^mongodb:\/\/(?:([^@/]*)@)?(\[[^\]]+\]|[^/?,:]+)(?::(\d+))?(?:\/[^?]*)?(\?.*)?$/.exec(mongo.uri) : null;
const SKIP = !mongo
  ? 'MongoDB outage: skipped (no TESSERA_TEST_MONGODB_URI and no mongod on PATH)'
  : !single ? 'MongoDB outage: skipped (it needs a single-host mongodb:// URI to put a proxy in front of)' : null;

interface Proxy { port: number; cut(): void; close(): Promise<void> }

/** Forwards loopback connections to host:port until cut: then it drops them all and refuses more. */
function tcpProxy(host: string, port: number): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  let cut = false;
  const server = net.createServer((client) => {
    if (cut) return client.destroy();
    const upstream = net.connect(port, host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      port: (server.address() as net.AddressInfo).port,
      cut() {
        cut = true;
        server.close();
        for (const socket of sockets) socket.destroy();
      },
      close: () => new Promise<void>((done) => (server.listening ? server.close(() => done()) : done())),
    }));
  });
}

if (SKIP) {
  console.log(SKIP);
  it('MongoDB outage after start-up', { skip: SKIP }, () => {});
} else {
  console.log(`MongoDB outage after start-up (${mongo!.source})`);
  describe('MongoDB going away after start-up', () => {
    const [, auth, rawHost, rawPort, options] = single!;
    const database = uniqueDatabaseName('tessera_outage');
    let proxy: Proxy;
    let server: TestServer;

    before(async () => {
      proxy = await tcpProxy(rawHost!.replace(/^\[|\]$/g, ''), Number(rawPort ?? 27017));
      const query = new URLSearchParams(options?.slice(1) ?? '');
      query.set('directConnection', 'true');
      const uri = `mongodb://${auth ? `${auth}@` : ''}127.0.0.1:${proxy.port}/${database}?${query}`;
      server = await startTestServer({ TESSERA_MONGODB_URI: uri, TESSERA_SECRET_KEY: 'outage-test-secret-key-0123456789abcdef' });
      assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
      proxy.cut();
    });
    after(async () => {
      await server?.stop().catch(() => undefined);
      await proxy?.close();
      const direct = await mongoose.createConnection(mongoUriWithDatabase(mongo!.uri, database)).asPromise();
      await direct.dropDatabase();
      await direct.close();
      await mongo!.stop();
    });

    test('/readyz answers 503 within 2 s', async () => {
      const start = performance.now();
      const response = await fetch(`${server.url}/readyz`);
      assert.equal(response.status, 503);
      assert.ok(performance.now() - start < 2000, `${Math.round(performance.now() - start)} ms`);
    });

    test('the token and device endpoints answer 503 temporarily_unavailable within the selection bound', async () => {
      for (const [path, form, headers] of [
        ['/application/o/token/', { grant_type: 'client_credentials' }, { authorization: basic('m2m-unknown', 'secret') }],
        ['/application/o/device/', { client_id: 'tv-unknown' }, {}],
      ] as [string, Record<string, string>, Record<string, string>][]) {
        const start = performance.now();
        const answer = await postForm(`${server.url}${path}`, form, headers);
        const ms = performance.now() - start;
        assert.equal(answer.status, 503, path);
        assert.equal(answer.body.error, 'temporarily_unavailable', path);
        // 2 s of server selection, once more at most for a retryable read.
        assert.ok(ms < 4_500, `${path}: ${Math.round(ms)} ms`);
      }
    });
  });
}
